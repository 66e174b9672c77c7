//! How a connection reaches its node: the stream type every transport produces, and the
//! dialing of an address by the configured transport (the runtime's TCP, a unix socket, or
//! the caller's own dial function), with TLS on top when configured.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::config::Config;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::resolve::resolve;
use crate::runtime::{timeout, BoxFuture, Runtime};

/// A byte stream to a dqlite node: any `futures-io` stream, with two optional hooks that
/// plain sockets provide and wrappers may forward or decline.
///
/// ```
/// use dqlite_client::NodeStream;
/// # use std::{io, pin::Pin, task::{Context, Poll}};
/// /// A stream that counts what it reads (a test wrapper, say).
/// struct Counting<S> { inner: S, read: usize }
/// # impl<S: futures_io::AsyncRead + Unpin> futures_io::AsyncRead for Counting<S> {
/// #     fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
/// #         let r = Pin::new(&mut self.inner).poll_read(cx, buf);
/// #         if let Poll::Ready(Ok(n)) = r { self.read += n; }
/// #         r
/// #     }
/// # }
/// # impl<S: futures_io::AsyncWrite + Unpin> futures_io::AsyncWrite for Counting<S> {
/// #     fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> { Pin::new(&mut self.inner).poll_write(cx, buf) }
/// #     fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> { Pin::new(&mut self.inner).poll_flush(cx) }
/// #     fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> { Pin::new(&mut self.inner).poll_close(cx) }
/// # }
///
/// impl<S: NodeStream> NodeStream for Counting<S> {
///     fn after_read(&self) {
///         self.inner.after_read(); // forward: keeps TCP_QUICKACK re-armed
///     }
///     // read_now is not forwarded: a read behind this wrapper's back would not be counted.
/// }
/// ```
pub trait NodeStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Called after every read. On Linux, TCP streams re-arm `TCP_QUICKACK` here: otherwise a
    /// delayed ACK from the client and Nagle's algorithm on the server can stall the tail of
    /// a large result by about 40 ms. The default does nothing.
    fn after_read(&self) {}

    /// Reads straight from the socket, never waiting and bypassing the runtime's reactor:
    /// `Some(Err(WouldBlock))` when nothing has arrived. The client uses it to busy-poll
    /// briefly for a reply before parking (see [`Config::busy_poll`]) and to read a long
    /// result a few frames at a time between naps (see [`Config::stream_coalesce`]). `None`
    /// (the default) means the stream cannot, and the client does neither. It must not block
    /// and must not skip a layer: a TLS stream reads ciphertext through its transport's
    /// `read_now` and returns only what it decrypted.
    ///
    /// [`Config::busy_poll`]: crate::Config::busy_poll
    /// [`Config::stream_coalesce`]: crate::Config::stream_coalesce
    fn read_now(&self, _buf: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
}

/// A stream of any transport, as connections hold it.
pub type BoxStream = Box<dyn NodeStream>;

impl NodeStream for BoxStream {
    fn after_read(&self) {
        (**self).after_read();
    }

    fn read_now(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        (**self).read_now(buf)
    }
}

/// The hooks a runtime's sockets offer ([`NodeStream::after_read`],
/// [`NodeStream::read_now`]), implemented by an adapter for its socket type, so that its
/// streams are [`Hooked`] ones. Both default to nothing.
pub trait SocketHooks<S>: Send + Sync + 'static {
    /// See [`NodeStream::after_read`].
    fn after_read(_stream: &S) {}

    /// See [`NodeStream::read_now`].
    fn read_now(_stream: &S, _buf: &mut [u8]) -> Option<io::Result<usize>> {
        None
    }
}

/// No hooks: see [`Plain`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl<S> SocketHooks<S> for NoHooks {}

/// A `futures-io` stream with the hooks `H` gives its socket type: how adapters make their
/// TCP streams [`NodeStream`]s.
pub struct Hooked<S, H> {
    inner: S,
    hooks: PhantomData<fn() -> H>,
}

/// Any `futures-io` stream as a [`NodeStream`] without hooks (no busy-polling, no read
/// coalescing): what a dial function returns for a stream type of its own.
pub type Plain<S> = Hooked<S, NoHooks>;

impl<S, H> Hooked<S, H> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Hooked {
            inner,
            hooks: PhantomData,
        }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, H> fmt::Debug for Hooked<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Hooked").field(&self.inner).finish()
    }
}

impl<S: AsyncRead + Unpin, H> AsyncRead for Hooked<S, H> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, H> AsyncWrite for Hooked<S, H> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl<S, H> NodeStream for Hooked<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: SocketHooks<S>,
{
    fn after_read(&self) {
        H::after_read(&self.inner);
    }

    fn read_now(&self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        H::read_now(&self.inner, buf)
    }
}

/// The caller's own dial function (see [`Config::dial_with`](crate::Config::dial_with)).
pub type DialFn = dyn Fn(&str) -> BoxFuture<'static, io::Result<BoxStream>> + Send + Sync;

/// The configured dial function, if any (shared by every clone of a [`Config`]).
#[derive(Clone, Default)]
pub(crate) struct Dialer(pub(crate) Option<Arc<DialFn>>);

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Some(_) => "Dialer(custom)",
            None => "Dialer(runtime)",
        })
    }
}

/// True for a unix-socket address as go-dqlite spells it: `@name` for a Linux abstract
/// address, or a path (starting with `/` or `./`). Anything else is `host:port`.
pub(crate) fn is_unix(address: &str) -> bool {
    address.starts_with('@') || address.starts_with('/') || address.starts_with("./")
}

/// Dials `address` within the dial timeout by the configured transport (TLS included) and
/// queues the handshake. Returns the wire and, for TCP, the socket address reached (names
/// are resolved now, at each dial).
pub(crate) async fn dial<R: Runtime>(
    rt: &R,
    address: &str,
    config: &Config,
) -> Result<(Driver<BoxStream>, Option<SocketAddr>)> {
    let work = async {
        let (stream, peer) = connect(rt, address, config).await?;
        #[cfg(feature = "tls")]
        let stream = match &config.tls {
            Some(tls) => tls.wrap(stream, address).await?,
            None => stream,
        };
        Ok::<_, Error>((stream, peer))
    };
    match timeout(rt, config.dial_timeout, work).await {
        None => Err(Error::Timeout("dialing")),
        Some(Err(e)) => Err(e),
        Some(Ok((stream, peer))) => {
            let wire = Driver::new(
                stream,
                config.core(),
                rt.nap_timer(),
                config.busy_poll,
                config.waiting.clone(),
                config.stream_coalesce,
            );
            Ok((wire, peer))
        }
    }
}

/// The bare stream (before TLS), and the TCP peer reached.
async fn connect<R: Runtime>(
    rt: &R,
    address: &str,
    config: &Config,
) -> Result<(BoxStream, Option<SocketAddr>)> {
    if let Some(dial) = &config.dialer.0 {
        return Ok((dial(address).await?, None));
    }
    if is_unix(address) {
        return Ok((rt.connect_unix(address).await?, None));
    }
    let mut last = None;
    for a in resolve(rt, address).await? {
        match rt.connect(&a.to_string()).await {
            Ok(stream) => return Ok((Box::new(stream), Some(a))),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_addresses_as_go_dqlite_spells_them() {
        assert!(is_unix("@dqlite-1"));
        assert!(is_unix("/run/dqlite.sock"));
        assert!(is_unix("./node.sock"));
        assert!(!is_unix("127.0.0.1:9001"));
        assert!(!is_unix("localhost:9001"));
        assert!(!is_unix("[::1]:9001"));
    }
}
