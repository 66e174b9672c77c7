//! Read coalescing in the middle of a multi-part result
//! ([`Config::stream_coalesce`](crate::Config::stream_coalesce)).
//!
//! A server sends a long result in frames of a few KiB, each as soon as it is ready, and
//! usually more slowly than the client decodes them: a client woken for every frame spends
//! most of its CPU time being woken. Instead, while a result is arriving, the wire reads
//! whatever the socket holds straight from it ([`NodeStream::read_now`](crate::NodeStream::read_now),
//! bypassing the reactor) and, when the socket is empty, naps for the coalescing interval on
//! the runtime's [nap timer](crate::Runtime::nap_timer) (without asking the reactor to wake it
//! for data) before reading everything that came meanwhile. A nap after which nothing has come
//! hands over to the reactor, so a slow server costs one interval, not a stall. Only long
//! results nap (from their [`AFTER_BATCHES`]th batch on): a result of a few frames must not
//! wait an interval for its last ones.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::runtime::{BoxFuture, NapTimer};

/// Batches of one result read the usual way before coalescing starts.
const AFTER_BATCHES: u32 = 8;

/// One connection's coalescing state.
pub(crate) struct Coalesce {
    interval: Duration,
    nap: NapTimer,
    state: State,
}

enum State {
    /// Reading straight from the socket.
    Reading,
    /// Sleeping before the next read.
    Napping(BoxFuture<'static, ()>),
    /// A nap ended: the next read decides.
    Woke,
    /// A nap was followed by nothing: waiting for the reactor until data comes.
    Parked,
}

impl Coalesce {
    /// Naps for `interval` between reads mid-result; zero never does.
    pub(crate) fn new(interval: Duration, nap: NapTimer) -> Coalesce {
        Coalesce {
            interval,
            nap,
            state: State::Reading,
        }
    }

    /// Data came in by whatever path, the waiter gave up, or the result is over: no nap is
    /// pending, and the next need reads directly again.
    pub(crate) fn reset(&mut self) {
        self.state = State::Reading;
    }

    /// The next read, `batches` into a result: `None` when the caller should read through the
    /// reactor as usual (coalescing off, a short result so far, or handed over),
    /// `Some(Pending)` while napping (the timer will wake the task), or what the direct read
    /// returned.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        batches: u32,
        mut read_now: impl FnMut() -> Option<io::Result<usize>>,
    ) -> Option<Poll<io::Result<usize>>> {
        if self.interval.is_zero() || batches < AFTER_BATCHES {
            return None;
        }
        loop {
            match &mut self.state {
                State::Parked => return None,
                State::Napping(nap) => {
                    if nap.as_mut().poll(cx).is_pending() {
                        return Some(Poll::Pending);
                    }
                    self.state = State::Woke;
                }
                State::Reading | State::Woke => match read_now() {
                    None => {
                        // The runtime cannot read without its reactor.
                        self.interval = Duration::ZERO;
                        return None;
                    }
                    Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        if matches!(self.state, State::Woke) {
                            self.state = State::Parked;
                            return None;
                        }
                        self.state = State::Napping((self.nap)(self.interval));
                    }
                    Some(result) => {
                        self.state = State::Reading;
                        return Some(Poll::Ready(result));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A coalescer whose naps end at the first poll (`done`) or never, counting naps.
    fn coalescer(done: bool) -> (Coalesce, Arc<AtomicUsize>) {
        let naps = Arc::new(AtomicUsize::new(0));
        let n = naps.clone();
        let nap: NapTimer = Box::new(move |_| {
            n.fetch_add(1, Ordering::Relaxed);
            if done {
                Box::pin(std::future::ready(()))
            } else {
                Box::pin(std::future::pending())
            }
        });
        (Coalesce::new(Duration::from_millis(1), nap), naps)
    }

    fn would_block() -> Option<io::Result<usize>> {
        Some(Err(io::ErrorKind::WouldBlock.into()))
    }

    #[test]
    fn reads_directly_naps_when_empty_and_hands_over_after_an_empty_nap() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // Data there: returned at once, no nap.
        let (mut c, naps) = coalescer(true);
        assert!(matches!(
            c.poll_read(&mut cx, AFTER_BATCHES, || Some(Ok(7))),
            Some(Poll::Ready(Ok(7)))
        ));
        assert_eq!(naps.load(Ordering::Relaxed), 0);
        // Empty, then data after the nap: one nap, then the data.
        let reads = Cell::new(0);
        let r = c.poll_read(&mut cx, AFTER_BATCHES, || {
            reads.set(reads.get() + 1);
            if reads.get() == 1 {
                would_block()
            } else {
                Some(Ok(3))
            }
        });
        assert!(matches!(r, Some(Poll::Ready(Ok(3)))));
        assert_eq!(naps.load(Ordering::Relaxed), 1);
        // Empty before and after a nap: handed over to the reactor until data comes.
        assert!(c.poll_read(&mut cx, AFTER_BATCHES, would_block).is_none());
        assert_eq!(naps.load(Ordering::Relaxed), 2);
        assert!(c
            .poll_read(&mut cx, AFTER_BATCHES, || Some(Ok(1)))
            .is_none());
        c.reset();
        assert!(matches!(
            c.poll_read(&mut cx, AFTER_BATCHES, || Some(Ok(1))),
            Some(Poll::Ready(Ok(1)))
        ));
    }

    #[test]
    fn a_nap_in_progress_is_pending_and_reset_drops_it() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut c, naps) = coalescer(false);
        assert!(matches!(
            c.poll_read(&mut cx, AFTER_BATCHES, would_block),
            Some(Poll::Pending)
        ));
        // Still napping: the socket is not even tried.
        assert!(matches!(
            c.poll_read(&mut cx, AFTER_BATCHES, || panic!("read while napping")),
            Some(Poll::Pending)
        ));
        c.reset();
        assert!(matches!(
            c.poll_read(&mut cx, AFTER_BATCHES, || Some(Ok(2))),
            Some(Poll::Ready(Ok(2)))
        ));
        assert_eq!(naps.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn short_results_and_finished_ones_do_not_nap() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let (mut c, naps) = coalescer(false);
        for batches in 0..AFTER_BATCHES {
            assert!(c.poll_read(&mut cx, batches, would_block).is_none());
        }
        assert!(matches!(
            c.poll_read(&mut cx, AFTER_BATCHES, would_block),
            Some(Poll::Pending)
        ));
        assert_eq!(naps.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn off_when_zero_or_unsupported() {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut c = Coalesce::new(
            Duration::ZERO,
            Box::new(|_| Box::pin(std::future::ready(()))),
        );
        assert!(c
            .poll_read(&mut cx, AFTER_BATCHES, || Some(Ok(1)))
            .is_none());
        let (mut c, _) = coalescer(true);
        assert!(c.poll_read(&mut cx, AFTER_BATCHES, || None).is_none());
        assert!(c
            .poll_read(&mut cx, AFTER_BATCHES, || Some(Ok(1)))
            .is_none());
    }
}
