//! The little a runtime must provide: dialing a TCP stream (and a unix socket), sleeping,
//! and the time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};

use crate::transport::{BoxStream, NodeStream};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One connection's timer for its naps between reads of a long result
/// ([`Runtime::nap_timer`]): each call starts a nap of about the given length.
pub type NapTimer = Box<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

/// An async runtime, as the client needs it. Adapter crates implement this in a few lines.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The TCP stream type, with the [`NodeStream`] hooks the runtime can offer.
    type Stream: NodeStream;

    /// Dials `address` (`ip:port`), with `TCP_NODELAY` and keepalive set on the socket.
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>>;

    /// Dials a unix socket: a path, or `@name` for a Linux abstract address (as go-dqlite
    /// spells them). The default refuses with [`io::ErrorKind::Unsupported`]; the tokio and
    /// smol adapters implement it.
    fn connect_unix(&self, address: &str) -> BoxFuture<'static, io::Result<BoxStream>> {
        let e = io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this runtime cannot dial the unix socket {address}"),
        );
        Box::pin(std::future::ready(Err(e)))
    }

    /// Resolves `address` (`host:port`) to socket addresses, without blocking the executor.
    /// Leader discovery and [`NodeClient`](crate::NodeClient) resolve every name at each
    /// dial (never once for good), and compare resolved addresses to recognise a node named
    /// under another spelling (`localhost:9001` and `127.0.0.1:9001`). The default parses
    /// literal addresses at once and resolves names on a short-lived thread; adapters use
    /// their runtime's resolver.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(rt: R) -> std::io::Result<()> {
    /// let addrs = rt.resolve("localhost:9001").await?;
    /// assert!(addrs.iter().all(|a| a.port() == 9001));
    /// # Ok(()) }
    /// ```
    fn resolve(&self, address: &str) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> {
        crate::resolve::on_a_thread(address)
    }

    /// Completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// The current instant.
    fn now(&self) -> Instant {
        Instant::now()
    }

    /// Makes the timer one connection naps on in the middle of a long result (see
    /// [`Config::stream_coalesce`]), called once per connection; the connection has at most
    /// one nap under way at a time. Naps are short (1 ms by default) and should end close to
    /// their time: every bit of oversleep is data left waiting in the socket. The default
    /// naps with [`sleep`](Runtime::sleep), which suits runtimes whose timers are precise
    /// (smol, async-std); an adapter whose timer rounds up (tokio's timer wheel turns a 1 ms
    /// sleep into about 2 ms) overrides it.
    ///
    /// [`Config::stream_coalesce`]: crate::Config::stream_coalesce
    fn nap_timer(&self) -> NapTimer {
        let rt = self.clone();
        Box::new(move |duration| rt.sleep(duration))
    }
}

/// Connects a blocking unix socket to `address` (a path, or `@name` for a Linux abstract
/// address) and makes it non-blocking, ready for an adapter to hand to its reactor.
/// Connecting a local socket does not wait on the network.
#[cfg(unix)]
pub fn connect_unix_blocking(address: &str) -> io::Result<std::os::unix::net::UnixStream> {
    let stream = match address.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(name) => {
            #[cfg(target_os = "android")]
            use std::os::android::net::SocketAddrExt;
            #[cfg(target_os = "linux")]
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            std::os::unix::net::UnixStream::connect_addr(&addr)?
        }
        _ => std::os::unix::net::UnixStream::connect(address)?,
    };
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Runs `fut` for at most `limit`; `None` when the time ran out first.
pub(crate) async fn timeout<R: Runtime, T>(
    rt: &R,
    limit: Duration,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let fut = std::pin::pin!(fut);
    match select(fut, rt.sleep(limit)).await {
        Either::Left((v, _)) => Some(v),
        Either::Right(_) => None,
    }
}
