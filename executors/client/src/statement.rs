//! Prepared statements as handles that are finalized safely.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A prepared statement of one [`Connection`](crate::Connection).
///
/// Use it with [`Connection::execute_prepared`](crate::Connection::execute_prepared) and
/// [`Connection::fetch_prepared`](crate::Connection::fetch_prepared) on the connection that
/// prepared it (another connection refuses it). Dropping it queues a FINALIZE that goes out
/// with the connection's next request; a statement the server already dropped (leadership
/// change) is never finalized, because its id may have been reused.
#[derive(Debug)]
pub struct Statement {
    stmt: Option<dqlite_proto::Stmt>,
    finalize_queue: Arc<Mutex<Vec<dqlite_proto::Stmt>>>,
}

impl Statement {
    pub(crate) fn new(
        stmt: dqlite_proto::Stmt,
        finalize_queue: Arc<Mutex<Vec<dqlite_proto::Stmt>>>,
    ) -> Statement {
        Statement {
            stmt: Some(stmt),
            finalize_queue,
        }
    }

    /// Number of parameters the statement takes.
    pub fn param_count(&self) -> u64 {
        self.stmt
            .as_ref()
            .map_or(0, dqlite_proto::Stmt::param_count)
    }

    /// The handle, checked against the parameters about to be bound: SQLite would bind
    /// missing ones as NULL silently, and servers disagree on extra ones.
    pub(crate) fn handle_for(&self, params: &[dqlite_proto::Value]) -> Result<&dqlite_proto::Stmt> {
        let stmt = self
            .stmt
            .as_ref()
            .ok_or_else(|| Error::Misuse("statement already finalized".into()))?;
        if params.len() as u64 != stmt.param_count() {
            return Err(Error::Misuse(format!(
                "statement takes {} parameter(s), {} given",
                stmt.param_count(),
                params.len()
            )));
        }
        Ok(stmt)
    }

    pub(crate) fn take(&mut self) -> Option<dqlite_proto::Stmt> {
        self.stmt.take()
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        if let Some(stmt) = self.stmt.take() {
            if let Ok(mut q) = self.finalize_queue.lock() {
                q.push(stmt);
            }
        }
    }
}
