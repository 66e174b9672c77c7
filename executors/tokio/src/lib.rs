//! # dqlite-tokio: the dqlite client on tokio
//!
//! ```no_run
//! # async fn demo() -> dqlite_tokio::Result<()> {
//! let pool = dqlite_tokio::create_pool(&["127.0.0.1:9001", "127.0.0.1:9002"]).await?;
//! let mut conn = pool.acquire().await?;
//! let mut tx = conn.begin().await?;
//! tx.execute("CREATE TABLE IF NOT EXISTS test (id INTEGER PRIMARY KEY, name TEXT)", ()).await?;
//! tx.execute("INSERT INTO test (name) VALUES (?)", ("hello",)).await?;
//! for row in tx.fetch("SELECT id, name FROM test", ()).await? {
//!     let (id, name): (i64, String) = (row.get("id")?, row.get("name")?);
//!     println!("{id} {name}");
//! }
//! tx.commit().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

#[cfg(target_os = "linux")]
mod nap;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use dqlite_client::*;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

/// The tokio [`Runtime`]: TCP via `tokio::net`, sleeping via `tokio::time`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

/// A TCP stream to a node on tokio, with the client's socket hooks.
pub type TcpStream = Hooked<Compat<tokio::net::TcpStream>, Tokio>;

impl SocketHooks<Compat<tokio::net::TcpStream>> for Tokio {
    fn after_read(stream: &Compat<tokio::net::TcpStream>) {
        // Best effort: a failure only costs the delayed-ACK stall this avoids.
        #[cfg(target_os = "linux")]
        let _ = socket2::SockRef::from(stream.get_ref()).set_quickack(true);
    }

    fn read_now(
        stream: &Compat<tokio::net::TcpStream>,
        buf: &mut [u8],
    ) -> Option<io::Result<usize>> {
        // The runtime keeps its sockets non-blocking, so this returns at once.
        Some(io::Read::read(
            &mut &*socket2::SockRef::from(stream.get_ref()),
            buf,
        ))
    }
}

impl Runtime for Tokio {
    type Stream = TcpStream;

    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>> {
        let address = address.to_owned();
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(address).await?;
            stream.set_nodelay(true)?;
            socket2::SockRef::from(&stream).set_keepalive(true)?;
            Ok(Hooked::new(stream.compat()))
        })
    }

    fn connect_unix(&self, address: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let address = address.to_owned();
        Box::pin(async move {
            let stream = tokio::net::UnixStream::from_std(connect_unix_blocking(&address)?)?;
            Ok(Box::new(Plain::new(stream.compat())) as BoxStream)
        })
    }

    fn resolve(&self, address: &str) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        let address = address.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host(address).await?.collect()) })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    /// On Linux, naps on a timerfd registered with tokio's reactor: `tokio::time::sleep`
    /// rounds a 1 ms nap up to about 2 ms. Elsewhere, the default.
    #[cfg(target_os = "linux")]
    fn nap_timer(&self) -> NapTimer {
        nap::timer()
    }
}

dqlite_client::adapter_api!(Tokio);
