//! Locking the client's small shared state (idle connections, the known leader and nodes,
//! the statement cache, statements waiting for FINALIZE).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, recovering its data if a thread panicked while holding it.
///
/// Every critical section in this crate is a few statements that cannot panic (a push, a
/// pop, a `retain`, a field write), so the data behind a poisoned lock is still consistent.
/// Recovering it, rather than skipping the work, keeps for example statements queued for
/// FINALIZE from leaking on the server.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
