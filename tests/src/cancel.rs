//! Cancellation on purpose: a future dropped after a given number of polls.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls the inner future at most `polls` times, then drops it (see [`drop_after`]).
pub struct DropAfter<F> {
    inner: Option<Pin<Box<F>>>,
    polls: usize,
}

impl<F: Future> Future for DropAfter<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.polls == 0 {
            self.inner = None;
            return Poll::Ready(None);
        }
        self.polls -= 1;
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match inner.as_mut().poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => {
                if self.polls == 0 {
                    // Come back at once to drop it.
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

/// Runs `f` for at most `polls` polls: `Some(output)` if it completed, `None` if it was
/// dropped unfinished.
pub fn drop_after<F: Future>(f: F, polls: usize) -> DropAfter<F> {
    DropAfter {
        inner: Some(Box::pin(f)),
        polls,
    }
}
