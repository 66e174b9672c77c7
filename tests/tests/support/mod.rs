//! Shared by the integration tests that watch how the client waits for data.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dqlite_client::{BoxFuture, Runtime};
use dqlite_smol::Smol;

/// Direct socket reads so far.
static READS_NOW: AtomicUsize = AtomicUsize::new(0);

/// The smol runtime, counting [`Runtime::read_now`] calls.
#[derive(Clone)]
pub struct Counting;

impl Runtime for Counting {
    type Stream = <Smol as Runtime>::Stream;

    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>> {
        Smol.connect(address)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Smol.sleep(duration)
    }

    fn after_read(stream: &Self::Stream) {
        Smol::after_read(stream)
    }

    fn read_now(stream: &Self::Stream, buf: &mut [u8]) -> Option<io::Result<usize>> {
        READS_NOW.fetch_add(1, Ordering::Relaxed);
        Smol::read_now(stream, buf)
    }
}

/// Direct reads made while running `f`.
pub async fn reads_now<T>(f: impl Future<Output = T>) -> (usize, T) {
    let before = READS_NOW.load(Ordering::Relaxed);
    let v = f.await;
    (READS_NOW.load(Ordering::Relaxed) - before, v)
}
