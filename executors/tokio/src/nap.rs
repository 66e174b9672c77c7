//! Precise naps for read coalescing ([`Runtime::nap_timer`](dqlite_client::Runtime::nap_timer)).
//!
//! tokio's timer wheel counts whole milliseconds and its reactor waits in whole milliseconds,
//! so `tokio::time::sleep(1 ms)` lasts about 2 ms: twice the coalescing interval, with twice
//! the data left waiting in the socket. On Linux a connection therefore naps on a timerfd of
//! its own, registered with tokio's reactor, which fires on time. The timerfd is made at the
//! first nap (only connections that receive long results ever nap) and rearmed for each
//! later one; where it cannot be made, naps fall back to `tokio::time::sleep`.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dqlite_client::NapTimer;
use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// One connection's nap timer: a timerfd made at the first nap.
pub(crate) fn timer() -> NapTimer {
    let fd: OnceLock<Option<Arc<AsyncFd<OwnedFd>>>> = OnceLock::new();
    Box::new(move |duration| {
        let fd = fd.get_or_init(|| make().ok()).clone();
        Box::pin(async move {
            let precise = match fd {
                Some(fd) => nap(&fd, duration).await,
                None => Err(io::ErrorKind::Unsupported.into()),
            };
            if precise.is_err() {
                tokio::time::sleep(duration).await;
            }
        })
    })
}

fn make() -> io::Result<Arc<AsyncFd<OwnedFd>>> {
    // Registering with the reactor panics outside a tokio runtime.
    tokio::runtime::Handle::try_current().map_err(|_| io::ErrorKind::Unsupported)?;
    let fd = timerfd_create(
        TimerfdClockId::Monotonic,
        TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
    )?;
    // tokio deprecates this safe constructor because an arbitrary `AsRawFd` may close or
    // swap its descriptor while registered; an `OwnedFd` cannot. Its `unsafe` replacement
    // exists only since tokio 1.51.6, and this keeps the adapter building with any tokio 1.
    #[allow(deprecated)]
    let fd = AsyncFd::with_interest(fd, Interest::READABLE)?;
    Ok(Arc::new(fd))
}

/// Arms the timer for `duration` and waits until it fires.
async fn nap(fd: &AsyncFd<OwnedFd>, duration: Duration) -> io::Result<()> {
    if duration.is_zero() {
        // A zero time disarms a timerfd instead of firing it.
        return Ok(());
    }
    let it_value = Timespec::try_from(duration).map_err(|_| io::ErrorKind::InvalidInput)?;
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Arming also clears expirations left by an earlier nap that was abandoned.
    timerfd_settime(
        fd.get_ref(),
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: zero,
            it_value,
        },
    )?;
    loop {
        let mut ready = fd.readable().await?;
        // Readiness may be left from an abandoned nap: only a successful read of the
        // expiration count proves that this one is over.
        match ready.try_io(|fd| {
            let mut expirations = [0u8; 8];
            rustix::io::read(fd.get_ref(), &mut expirations).map_err(io::Error::from)
        }) {
            Ok(result) => return result.map(drop),
            Err(_would_block) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::Mutex;
    use std::time::Instant;

    /// The tests count the process's open timerfds, so they run one at a time.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn on_tokio<T>(f: impl Future<Output = T>) -> T {
        let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// The process's open timerfds (other tests of this binary open sockets and epoll
    /// descriptors of their own at any time; only these tests make timerfds).
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().contains("timerfd"))
            .count()
    }

    #[test]
    fn a_nap_never_ends_early_and_one_timerfd_serves_them_all() {
        on_tokio(async {
            let timer = timer();
            let fds = open_fds();
            for micros in [1000, 300, 2500, 1000, 50] {
                let want = Duration::from_micros(micros);
                let t = Instant::now();
                timer(want).await;
                assert!(t.elapsed() >= want, "{micros} µs nap ended early");
            }
            assert_eq!(open_fds(), fds + 1, "one timerfd for all naps");
            timer(Duration::ZERO).await;
            drop(timer);
            assert_eq!(open_fds(), fds, "the timerfd is closed with its timer");
        });
    }

    #[test]
    fn an_abandoned_nap_does_not_cut_the_next_one_short() {
        on_tokio(async {
            let timer = timer();
            // Start a 1 ms nap, abandon it, and let its timer fire unobserved.
            let mut first = timer(Duration::from_millis(1));
            let waker = std::task::Waker::noop();
            let _ = first
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker));
            drop(first);
            std::thread::sleep(Duration::from_millis(5));
            let want = Duration::from_millis(20);
            let t = Instant::now();
            timer(want).await;
            assert!(t.elapsed() >= want, "the stale expiry ended the nap early");
        });
    }

    #[test]
    fn outside_a_runtime_naps_fall_back_to_tokio_sleep() {
        // No timerfd without a reactor: the nap is made here and run on a runtime after.
        let nap = timer()(Duration::from_millis(2));
        let t = Instant::now();
        on_tokio(nap);
        assert!(t.elapsed() >= Duration::from_millis(2));
    }
}
