//! The little a runtime must provide: dialing a TCP stream, sleeping, and the time.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::future::{select, Either};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One connection's timer for its naps between reads of a long result
/// ([`Runtime::nap_timer`]): each call starts a nap of about the given length.
pub type NapTimer = Box<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

/// An async runtime, as the client needs it. Adapter crates implement this in a few lines.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The TCP stream type.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// Dials `address` (`host:port`), with `TCP_NODELAY` and keepalive set on the socket.
    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>>;

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

    /// Called after every read from `stream`. On Linux, adapters re-arm `TCP_QUICKACK` here:
    /// otherwise a delayed ACK from the client and Nagle's algorithm on the server can stall
    /// the tail of a large result by about 40 ms. The default does nothing.
    fn after_read(_stream: &Self::Stream) {}

    /// Reads from `stream` straight from the socket, never waiting and bypassing the
    /// runtime's reactor: `Some(Err(WouldBlock))` when nothing has arrived. The client uses
    /// it to busy-poll briefly for a reply before parking (see [`Config::busy_poll`]), which
    /// saves the wake-up of a sleeping thread on fast networks, and to read a long result a
    /// few frames at a time between naps (see [`Config::stream_coalesce`]). `None` (the
    /// default) means the adapter cannot, and the client does neither. It must not block: the
    /// socket must be in non-blocking mode, as runtimes' sockets are.
    ///
    /// [`Config::busy_poll`]: crate::Config::busy_poll
    /// [`Config::stream_coalesce`]: crate::Config::stream_coalesce
    fn read_now(_stream: &Self::Stream, _buf: &mut [u8]) -> Option<io::Result<usize>> {
        None
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
