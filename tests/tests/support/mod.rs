//! Shared by the integration tests that watch how the client waits for data.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dqlite_client::{BoxFuture, Hooked, Runtime, SocketHooks};
use dqlite_smol::Smol;

/// Direct socket reads so far.
static READS_NOW: AtomicUsize = AtomicUsize::new(0);

/// The smol runtime, whose TCP streams count their direct reads
/// ([`NodeStream::read_now`](dqlite_client::NodeStream::read_now)).
#[derive(Clone)]
pub struct Counting;

impl SocketHooks<async_net::TcpStream> for Counting {
    fn after_read(stream: &async_net::TcpStream) {
        <Smol as SocketHooks<_>>::after_read(stream)
    }

    fn read_now(stream: &async_net::TcpStream, buf: &mut [u8]) -> Option<io::Result<usize>> {
        READS_NOW.fetch_add(1, Ordering::Relaxed);
        <Smol as SocketHooks<_>>::read_now(stream, buf)
    }
}

impl Runtime for Counting {
    type Stream = Hooked<async_net::TcpStream, Counting>;

    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>> {
        let dial = Smol.connect(address);
        Box::pin(async move {
            let stream = dial.await?;
            Ok(Hooked::new(stream.into_inner()))
        })
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Smol.sleep(duration)
    }
}

/// Direct reads made while running `f`.
pub async fn reads_now<T>(f: impl Future<Output = T>) -> (usize, T) {
    let before = READS_NOW.load(Ordering::Relaxed);
    let v = f.await;
    (READS_NOW.load(Ordering::Relaxed) - before, v)
}
