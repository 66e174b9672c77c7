//! # dqlite-smol: the dqlite client on smol
//!
//! ```no_run
//! # async fn demo() -> dqlite_smol::Result<()> {
//! let pool = dqlite_smol::create_pool(&["127.0.0.1:9001", "127.0.0.1:9002"]).await?;
//! pool.execute("CREATE TABLE IF NOT EXISTS test (id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
//! pool.execute("INSERT INTO test (name) VALUES (?)", ("hello",)).await?;
//! let n: i64 = pool.fetch_val("SELECT count(*) FROM test", ()).await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use dqlite_client::*;

/// The smol [`Runtime`]: TCP via `async-net`, timers via `async-io`. It works under any
/// executor, since `async-io` drives its own reactor.
#[derive(Debug, Clone, Copy, Default)]
pub struct Smol;

/// A TCP stream to a node on smol, with the client's socket hooks.
pub type TcpStream = Hooked<async_net::TcpStream, Smol>;

impl SocketHooks<async_net::TcpStream> for Smol {
    fn after_read(stream: &async_net::TcpStream) {
        // Best effort: a failure only costs the delayed-ACK stall this avoids.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(stream).set_quickack(true);
    }

    fn read_now(stream: &async_net::TcpStream, buf: &mut [u8]) -> Option<io::Result<usize>> {
        // The runtime keeps its sockets non-blocking, so this returns at once.
        Some(io::Read::read(&mut &*socket2::SockRef::from(stream), buf))
    }
}

impl Runtime for Smol {
    type Stream = TcpStream;

    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>> {
        let address = address.to_owned();
        Box::pin(async move {
            let stream = async_net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            socket2::SockRef::from(&stream).set_keepalive(true)?;
            Ok(Hooked::new(stream))
        })
    }

    fn connect_unix(&self, address: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let address = address.to_owned();
        Box::pin(async move {
            let stream = async_io::Async::new(connect_unix_blocking(&address)?)?;
            Ok(Box::new(Plain::new(async_net::unix::UnixStream::from(stream))) as BoxStream)
        })
    }

    fn resolve(&self, address: &str) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let address = address.to_owned();
        Box::pin(async move { async_net::resolve(address.as_str()).await })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            async_io::Timer::after(duration).await;
        })
    }
}

dqlite_client::adapter_api!(Smol);
