//! Transactions and savepoints.

use std::ops::{Deref, DerefMut};

use crate::connection::Connection;
use crate::error::Result;
use crate::runtime::Runtime;

/// An open transaction (depth 1) or savepoint (depth > 1) on a [`Connection`].
///
/// It derefs to the connection, so queries run inside it. End it with
/// [`commit`](Self::commit) or [`rollback`](Self::rollback); dropped without either, it is
/// rolled back before the connection is used again. [`begin`](Self::begin) nests a
/// savepoint.
///
/// A COMMIT whose answer is lost is reported as [`Error::Ambiguous`](crate::Error::Ambiguous):
/// the transaction may or may not have been applied.
pub struct Transaction<'c, R: Runtime> {
    conn: &'c mut Connection<R>,
    depth: u32,
    finished: bool,
}

impl<'c, R: Runtime> Transaction<'c, R> {
    pub(crate) fn new(conn: &'c mut Connection<R>, depth: u32) -> Self {
        Transaction {
            conn,
            depth,
            finished: false,
        }
    }

    /// Nesting depth: 1 for the transaction, 2 and more for savepoints.
    pub fn depth(&self) -> u32 {
        self.depth
    }

    /// Opens a savepoint inside this transaction.
    pub async fn begin(&mut self) -> Result<Transaction<'_, R>> {
        let depth = self.depth + 1;
        self.conn.ready().await?;
        self.conn
            .execute(&format!("SAVEPOINT dqlite_sp{depth}"), ())
            .await?;
        self.conn.tx_depth = depth;
        Ok(Transaction::new(self.conn, depth))
    }

    /// Commits the transaction, or releases the savepoint.
    pub async fn commit(mut self) -> Result<()> {
        self.finished = true;
        let sql = if self.depth == 1 {
            "COMMIT".to_owned()
        } else {
            format!("RELEASE SAVEPOINT dqlite_sp{}", self.depth)
        };
        let result = self.conn.execute(&sql, ()).await;
        self.end(result.is_ok());
        result.map(|_| ())
    }

    /// Rolls the transaction (or the savepoint) back.
    pub async fn rollback(mut self) -> Result<()> {
        self.finished = true;
        let sql = if self.depth == 1 {
            "ROLLBACK".to_owned()
        } else {
            let d = self.depth;
            format!("ROLLBACK TO SAVEPOINT dqlite_sp{d}; RELEASE SAVEPOINT dqlite_sp{d}")
        };
        let result = self.conn.execute(&sql, ()).await;
        self.end(true);
        result.map(|_| ())
    }

    fn end(&mut self, ok: bool) {
        if ok {
            self.conn.tx_depth = self.depth - 1;
        } else if self.depth == 1 {
            // A failed COMMIT leaves the transaction to be rolled back before reuse.
            self.conn.pending_rollback = Some(1);
        } else {
            self.conn.pending_rollback = Some(self.depth);
        }
    }
}

impl<R: Runtime> Deref for Transaction<'_, R> {
    type Target = Connection<R>;
    fn deref(&self) -> &Connection<R> {
        self.conn
    }
}

impl<R: Runtime> DerefMut for Transaction<'_, R> {
    fn deref_mut(&mut self) -> &mut Connection<R> {
        self.conn
    }
}

impl<R: Runtime> Drop for Transaction<'_, R> {
    fn drop(&mut self) {
        if !self.finished {
            let depth = self.depth;
            self.conn.pending_rollback =
                Some(self.conn.pending_rollback.map_or(depth, |d| d.min(depth)));
        }
    }
}
