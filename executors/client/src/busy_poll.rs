//! Busy-polling for a reply before parking ([`Config::busy_poll`](crate::Config::busy_poll)).
//!
//! When a read finds nothing, the wire may keep trying the socket directly (through
//! [`NodeStream::read_now`](crate::NodeStream::read_now)) until a short window closes: in bursts
//! of up to [`BURST`], asking the executor to poll it again at once after each instead of
//! parking. A reply that arrives within the window is then read without the wake-up of a
//! sleeping thread, which on loopback or a fast LAN is a large part of a small request's
//! latency.
//!
//! Polling is kept to the waits where it pays and costs little:
//! * only when this is the only connection of its group waiting for a server (a pool's
//!   connections form a group; a connection made on its own is a group of one): with
//!   several waiting, replies keep the executor busy anyway, and polling would only take
//!   CPU from the other tasks (or from a server on the same machine). Groups are separate,
//!   so unrelated pools or libraries in one process do not change each other's policy;
//! * not while the server is in the middle of a multi-part result, where larger, less
//!   frequent reads are cheaper;
//! * not after a window closed empty: the next 1, 3, 7, … up to [`MAX_SKIP`] waits park at
//!   once, so a slow query or a distant server costs little; a reply caught while polling
//!   resets that.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The most waits that park without polling after windows that closed empty.
const MAX_SKIP: u32 = 63;

/// How long one poll tries the socket before yielding to the executor: yielding after every
/// try costs more on a multi-threaded executor than the reply takes to come, and longer
/// bursts keep other tasks of the thread waiting.
const BURST: Duration = Duration::from_micros(10);

/// `read_now` found nothing yet.
fn would_block(result: &Option<io::Result<usize>>) -> bool {
    matches!(result, Some(Err(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted))
}

/// One connection's busy-polling state.
pub(crate) struct BusyPoll {
    window: Duration,
    state: Spin,
    /// Connections of this connection's group (its pool, or itself alone) waiting for
    /// input from their server right now: unrelated pools never share a count.
    waiting: Arc<AtomicUsize>,
    /// This connection is counted in `waiting`.
    counted: bool,
    /// Waits left that park without polling.
    skip: u32,
    /// What `skip` becomes after the next window that closes empty.
    penalty: u32,
}

/// Where the current wait for input stands.
#[derive(Clone, Copy)]
enum Spin {
    /// No wait in progress.
    Idle,
    /// Polling the socket until this instant.
    Polling(Instant),
    /// Waiting for the runtime's reactor.
    Parked,
}

impl BusyPoll {
    /// Polls for up to `window` per wait, while no other connection counted in `waiting`
    /// waits; zero never polls.
    pub(crate) fn new(window: Duration, waiting: Arc<AtomicUsize>) -> BusyPoll {
        BusyPoll {
            window,
            state: Spin::Idle,
            waiting,
            counted: false,
            skip: 0,
            penalty: 0,
        }
    }

    /// A read found nothing: the connection is waiting for its server.
    pub(crate) fn waiting(&mut self) {
        if !self.counted {
            self.counted = true;
            self.waiting.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A read returned (data, end of stream or an error): the wait is over.
    pub(crate) fn wait_over(&mut self) {
        if let Spin::Polling(_) = self.state {
            self.penalty = 0;
        }
        self.state = Spin::Idle;
        self.uncount();
    }

    /// The waiter gave up (its future was dropped): nothing is waited for any more.
    pub(crate) fn gave_up(&mut self) {
        self.state = Spin::Idle;
        self.uncount();
    }

    fn uncount(&mut self) {
        if self.counted {
            self.counted = false;
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// One try while waiting: what `read_now` returned, or `Pending`, having asked `cx` to
    /// poll again at once while the window is open. `mid_result`: the server is in the middle
    /// of a multi-part result (no polling then). `read_now` is `None` when the runtime cannot
    /// read without its reactor, which turns polling off.
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        mid_result: bool,
        mut read_now: impl FnMut() -> Option<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let until = match self.state {
            Spin::Parked => return Poll::Pending,
            Spin::Polling(until) => until,
            Spin::Idle => {
                if self.window.is_zero() || mid_result {
                    return Poll::Pending;
                }
                self.state = Spin::Parked;
                if self.skip > 0 {
                    self.skip -= 1;
                    return Poll::Pending;
                }
                if self.waiting.load(Ordering::Relaxed) > 1 {
                    return Poll::Pending;
                }
                let until = Instant::now() + self.window;
                self.state = Spin::Polling(until);
                until
            }
        };
        // Try in a tight loop for a short burst, then let the executor run other tasks.
        let burst_end = (Instant::now() + BURST).min(until);
        let mut result = read_now();
        while would_block(&result) && Instant::now() < burst_end {
            std::hint::spin_loop();
            result = read_now();
        }
        match result {
            None => {
                self.window = Duration::ZERO;
                self.state = Spin::Parked;
                Poll::Pending
            }
            Some(Err(_)) if would_block(&result) => {
                if Instant::now() < until {
                    cx.waker().wake_by_ref();
                } else {
                    self.penalty = (self.penalty * 2 + 1).min(MAX_SKIP);
                    self.skip = self.penalty;
                    self.state = Spin::Parked;
                }
                Poll::Pending
            }
            Some(result) => Poll::Ready(result),
        }
    }
}

impl Drop for BusyPoll {
    fn drop(&mut self) {
        self.uncount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn would_block() -> Option<io::Result<usize>> {
        Some(Err(io::ErrorKind::WouldBlock.into()))
    }

    /// Waits until a window closes empty; true if the wait polled at all.
    fn empty_wait(bp: &mut BusyPoll) -> bool {
        empty_wait_in(bp, false)
    }

    /// As [`empty_wait`], with the server mid-result or not.
    fn empty_wait_in(bp: &mut BusyPoll, mid_result: bool) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        bp.waiting();
        let mut polled = false;
        while bp
            .poll_read(&mut cx, mid_result, || {
                polled = true;
                would_block()
            })
            .is_pending()
            && matches!(bp.state, Spin::Polling(_))
        {}
        bp.wait_over();
        polled
    }

    #[test]
    fn windows_that_close_empty_back_off_and_a_caught_reply_resets() {
        let group = Arc::new(AtomicUsize::new(0));
        let mut bp = BusyPoll::new(Duration::from_micros(20), group.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        // 1 then 3 then 7 waits are skipped after successive empty windows.
        assert!(empty_wait(&mut bp));
        assert!(!empty_wait(&mut bp));
        assert!(empty_wait(&mut bp));
        for _ in 0..3 {
            assert!(!empty_wait(&mut bp));
        }
        assert!(empty_wait(&mut bp));
        assert_eq!(bp.skip, 7);
        for _ in 0..7 {
            assert!(!empty_wait(&mut bp));
        }
        // A reply caught while polling resets the back-off.
        bp.waiting();
        assert!(matches!(
            bp.poll_read(&mut cx, false, || Some(Ok(5))),
            Poll::Ready(Ok(5))
        ));
        bp.wait_over();
        assert_eq!(bp.penalty, 0);
        // Mid-result, and with another connection waiting, it parks at once.
        assert!(!empty_wait_in(&mut bp, true));
        let mut other = BusyPoll::new(Duration::from_micros(20), group.clone());
        other.waiting();
        assert!(!empty_wait(&mut bp));
        // A connection of another group waiting changes nothing.
        let mut stranger = BusyPoll::new(Duration::from_micros(20), Arc::default());
        stranger.waiting();
        drop(other);
        assert!(empty_wait(&mut bp));
        drop(stranger);
        drop(bp);
        // A runtime without read_now turns it off.
        let mut bp = BusyPoll::new(Duration::from_micros(20), group.clone());
        bp.waiting();
        assert!(bp.poll_read(&mut cx, false, || None).is_pending());
        bp.wait_over();
        assert!(!empty_wait(&mut bp));
        assert!(bp.window.is_zero());
        drop(bp);
        assert_eq!(group.load(Ordering::Relaxed), 0);
    }
}
