//! Drives the sans-IO core over one async byte stream: writes what the core wants sent
//! while reading what the server sends, so neither side can stall the other.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use dqlite_proto::{Config as CoreConfig, Connection as Core, Event, RequestId};

use crate::busy_poll::BusyPoll;
use crate::coalesce::Coalesce;
use crate::error::{Error, Result};
use crate::runtime::NapTimer;
use crate::transport::NodeStream;

const READ_BUFFER: usize = 64 * 1024;

/// A stream plus the protocol core.
pub(crate) struct Driver<S> {
    stream: S,
    pub(crate) core: Core,
    rbuf: Box<[u8]>,
    /// Events of requests other than the one being waited for (pipelined requests).
    stash: VecDeque<Event>,
    spin: BusyPoll,
    coalesce: Coalesce,
    /// Batches received so far of a result with more to come (0: between results).
    batches: u32,
}

impl<S: NodeStream> Driver<S> {
    /// Waiting policy: `busy_poll` for replies (only while no other connection counted in
    /// `waiting` waits too), `coalesce` in the middle of a result, napping on `nap`.
    pub(crate) fn new(
        stream: S,
        config: CoreConfig,
        nap: NapTimer,
        busy_poll: Duration,
        waiting: Arc<AtomicUsize>,
        coalesce: Duration,
    ) -> Driver<S> {
        Driver {
            stream,
            core: Core::new(config),
            rbuf: vec![0; READ_BUFFER].into_boxed_slice(),
            stash: VecDeque::new(),
            spin: BusyPoll::new(busy_poll, waiting),
            coalesce: Coalesce::new(coalesce, nap),
            batches: 0,
        }
    }

    /// Waits for the next event of `id`: one reply, or one batch of rows.
    pub(crate) async fn next_event(&mut self, id: RequestId) -> Result<Event> {
        if let Some(i) = self.stash.iter().position(|e| e.request == id) {
            if let Some(ev) = self.stash.remove(i) {
                return Ok(ev);
            }
        }
        NextEvent { wire: self, id }.await
    }

    /// For an idle connection: true unless the peer has closed it (or sent something nobody
    /// asked for, which poisons the core). Never waits.
    pub(crate) fn still_open(&mut self) -> bool {
        if self.core.wants_input() || self.core.error().is_some() {
            return self.core.error().is_none();
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut self.stream).poll_read(&mut cx, &mut self.rbuf) {
            Poll::Pending => true,
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                self.core.handle_eof();
                false
            }
            Poll::Ready(Ok(n)) => match self.rbuf.get(..n) {
                Some(read) => {
                    self.core.handle_input(read);
                    matches!(self.core.poll_event(), Ok(None))
                }
                // A stream reporting more bytes than its buffer holds: nothing it says
                // can be trusted.
                None => false,
            },
        }
    }

    /// Sends everything queued (used before closing).
    pub(crate) async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| loop {
            match self.poll_write_some(cx) {
                Poll::Ready(Ok(true)) => continue,
                Poll::Ready(Ok(false)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        })
        .await
    }

    /// Writes some of what the core wants sent: `Ok(true)` if bytes went out, `Ok(false)`
    /// if nothing was queued. A failed write closes the core.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool>> {
        let Some(buf) = self.core.poll_transmit() else {
            return Poll::Ready(Ok(false));
        };
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(0)) => {
                self.core.handle_eof();
                Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into()))
            }
            Poll::Ready(Ok(n)) => {
                self.core.advance_transmit(n);
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Err(e)) => {
                self.core.handle_eof();
                Poll::Ready(Err(e.into()))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_event_for(&mut self, cx: &mut Context<'_>, id: RequestId) -> Poll<Result<Event>> {
        loop {
            while let Some(ev) = self.core.poll_event()? {
                // Batches of the result being received so far (0: between results).
                self.batches = if ev.completes_request() {
                    0
                } else {
                    self.batches.saturating_add(1)
                };
                if ev.request == id {
                    return Poll::Ready(Ok(ev));
                }
                self.stash.push_back(ev);
            }
            let mut write_blocked = false;
            let mut progressed = match self.poll_write_some(cx) {
                Poll::Ready(Ok(wrote)) => wrote,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    write_blocked = true;
                    false
                }
            };
            let mut read = None;
            if self.batches > 0 && !progressed && !write_blocked {
                let (stream, rbuf) = (&self.stream, &mut self.rbuf);
                match self
                    .coalesce
                    .poll_read(cx, self.batches, || stream.read_now(rbuf))
                {
                    Some(Poll::Pending) => return Poll::Pending,
                    direct => read = direct,
                }
            } else {
                self.coalesce.reset();
            }
            let mut read =
                read.unwrap_or_else(|| Pin::new(&mut self.stream).poll_read(cx, &mut self.rbuf));
            if read.is_pending() {
                self.spin.waiting();
                if !progressed && !write_blocked {
                    let (stream, rbuf) = (&self.stream, &mut self.rbuf);
                    let mid_result = self.batches > 0;
                    read = self
                        .spin
                        .poll_read(cx, mid_result, || stream.read_now(rbuf));
                }
            }
            if read.is_ready() {
                self.spin.wait_over();
            }
            match read {
                Poll::Ready(Ok(0)) => {
                    let e = self.core.handle_eof();
                    return Poll::Ready(Err(Error::from(e)));
                }
                Poll::Ready(Ok(n)) => {
                    let Some(read) = self.rbuf.get(..n) else {
                        return Poll::Ready(Err(Error::Internal(
                            "the stream reported more bytes read than its buffer holds",
                        )));
                    };
                    self.coalesce.reset();
                    self.stream.after_read();
                    self.core.handle_input(read);
                    progressed = true;
                }
                Poll::Ready(Err(e)) => {
                    self.core.handle_eof();
                    return Poll::Ready(Err(e.into()));
                }
                Poll::Pending => {}
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }
}

/// The wait for the next event of one request. Dropped before it completes (the caller gave
/// up), the connection no longer counts as waiting for its server.
struct NextEvent<'a, S> {
    wire: &'a mut Driver<S>,
    id: RequestId,
}

impl<S: NodeStream> Future for NextEvent<'_, S> {
    type Output = Result<Event>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<Event>> {
        let id = self.id;
        self.wire.poll_event_for(cx, id)
    }
}

impl<S> Drop for NextEvent<'_, S> {
    fn drop(&mut self) {
        self.wire.spin.gave_up();
        self.wire.coalesce.reset();
    }
}
