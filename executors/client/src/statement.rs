//! Prepared statements as handles that are finalized safely.

use std::sync::{Arc, Mutex};

use dqlite_proto::sql::TxControl;

use crate::error::{Error, Misuse, Result};
use crate::lock::lock;

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
    /// How executing it changes the transaction state.
    tx_control: Option<TxControl>,
    /// Its first word, when it always returns rows.
    returns_rows: Option<String>,
}

impl Statement {
    pub(crate) fn new(
        stmt: dqlite_proto::Stmt,
        finalize_queue: Arc<Mutex<Vec<dqlite_proto::Stmt>>>,
        tx_control: Option<TxControl>,
        returns_rows: Option<String>,
    ) -> Statement {
        Statement {
            stmt: Some(stmt),
            finalize_queue,
            tx_control,
            returns_rows,
        }
    }

    /// Number of parameters the statement takes.
    pub fn param_count(&self) -> u64 {
        self.stmt
            .as_ref()
            .map_or(0, dqlite_proto::Stmt::param_count)
    }

    /// The handle (the core checks parameters against the server's count).
    pub(crate) fn handle(&self) -> Result<&dqlite_proto::Stmt> {
        self.stmt.as_ref().ok_or(Error::Misuse(Misuse::Finalized))
    }

    /// How executing it changes the transaction state.
    pub(crate) fn tx_control(&self) -> Option<TxControl> {
        self.tx_control.clone()
    }

    /// Its first word, when it always returns rows.
    pub(crate) fn returns_rows(&self) -> Option<&str> {
        self.returns_rows.as_deref()
    }

    pub(crate) fn take(&mut self) -> Option<dqlite_proto::Stmt> {
        self.stmt.take()
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        if let Some(stmt) = self.stmt.take() {
            lock(&self.finalize_queue).push(stmt);
        }
    }
}
