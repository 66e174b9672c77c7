//! Transactions and savepoints.

use std::ops::{Deref, DerefMut};

use crate::connection::{rollback_sql, Connection};
use crate::error::Result;
use crate::runtime::Runtime;

/// An open transaction (depth 1) or savepoint (depth > 1) on a [`Connection`].
///
/// It derefs to the connection, so queries run inside it. End it with
/// [`commit`](Self::commit) or [`rollback`](Self::rollback); dropped without either (or with
/// its `commit` / `rollback` future dropped before it finished), it is rolled back before
/// the connection is used again. [`begin`](Self::begin) nests a savepoint.
///
/// A COMMIT whose answer is lost is reported as [`Error::Ambiguous`](crate::Error::Ambiguous):
/// the transaction may or may not have been applied.
///
/// ```no_run
/// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
/// let mut tx = conn.begin().await?;
/// tx.execute("INSERT INTO t VALUES (?)", (1i64,)).await?;
/// let mut sp = tx.begin().await?;          // SAVEPOINT
/// sp.execute("INSERT INTO t VALUES (?)", (2i64,)).await?;
/// sp.rollback().await?;                    // undoes only the second insert
/// tx.commit().await?;
/// # Ok(()) }
/// ```
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
        let sql = format!("SAVEPOINT dqlite_sp{depth}");
        self.conn.tx_control(&sql, depth, depth).await?;
        Ok(Transaction::new(self.conn, depth))
    }

    /// Commits the transaction, or releases the savepoint. On failure the transaction is
    /// rolled back before the connection's next use.
    pub async fn commit(mut self) -> Result<()> {
        let sql = if self.depth == 1 {
            "COMMIT".to_owned()
        } else {
            format!("RELEASE SAVEPOINT dqlite_sp{}", self.depth)
        };
        let result = self.conn.tx_control(&sql, self.depth, self.depth - 1).await;
        self.finished = true;
        result
    }

    /// Rolls the transaction (or the savepoint) back. A transaction that SQLite already
    /// rolled back by itself (after some errors it does) counts as rolled back.
    pub async fn rollback(mut self) -> Result<()> {
        let sql = rollback_sql(self.depth);
        let result = self.conn.tx_control(&sql, self.depth, self.depth - 1).await;
        self.finished = true;
        match result {
            Err(_) if self.depth == 1 && self.conn.knows_autocommit() => {
                // The server answered that no transaction was active.
                self.conn.settle_rollback();
                Ok(())
            }
            other => other,
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
            self.conn.mark_rollback(self.depth);
        }
    }
}
