//! Drives the sans-IO core over one async byte stream: writes what the core wants sent
//! while reading what the server sends, so neither side can stall the other.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use dqlite_proto::{Config as CoreConfig, Connection as Core, Event, RequestId};
use futures_io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};

const READ_BUFFER: usize = 64 * 1024;

/// A stream plus the protocol core.
pub(crate) struct Wire<S> {
    stream: S,
    pub(crate) core: Core,
    rbuf: Box<[u8]>,
    /// Events of requests other than the one being waited for (pipelined requests).
    stash: VecDeque<Event>,
    /// The runtime's hook after each read ([`Runtime::after_read`](crate::Runtime::after_read)).
    after_read: fn(&S),
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(crate) fn new(stream: S, config: CoreConfig, after_read: fn(&S)) -> Wire<S> {
        Wire {
            stream,
            core: Core::new(config),
            rbuf: vec![0; READ_BUFFER].into_boxed_slice(),
            stash: VecDeque::new(),
            after_read,
        }
    }

    /// Waits for the next event of `id`: one reply, or one batch of rows.
    pub(crate) async fn next_event(&mut self, id: RequestId) -> Result<Event> {
        if let Some(i) = self.stash.iter().position(|e| e.request == id) {
            if let Some(ev) = self.stash.remove(i) {
                return Ok(ev);
            }
        }
        poll_fn(|cx| self.poll_event_for(cx, id)).await
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
            Poll::Ready(Ok(n)) => {
                self.core
                    .handle_input(self.rbuf.get(..n).unwrap_or_default());
                matches!(self.core.poll_event(), Ok(None))
            }
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
                if ev.request == id {
                    return Poll::Ready(Ok(ev));
                }
                self.stash.push_back(ev);
            }
            let mut progressed = match self.poll_write_some(cx) {
                Poll::Ready(Ok(wrote)) => wrote,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => false,
            };
            match Pin::new(&mut self.stream).poll_read(cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => {
                    let e = self.core.handle_eof();
                    return Poll::Ready(Err(Error::from(e)));
                }
                Poll::Ready(Ok(n)) => {
                    (self.after_read)(&self.stream);
                    self.core
                        .handle_input(self.rbuf.get(..n).unwrap_or_default());
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
