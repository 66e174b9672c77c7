//! sqlx transactions on dqlite: `BEGIN` for the outer level, savepoints inside it.

use std::borrow::Cow;

use futures_core::future::BoxFuture;
use sqlx_core::transaction::TransactionManager;
use sqlx_core::Error;

use crate::connection::{savepoint_name, DqliteConnection};
use crate::database::Dqlite;
use crate::error::from_client;

/// Transactions for sqlx: level 1 is `BEGIN` (or the statement given to `begin_with`) and
/// `COMMIT`; deeper levels are savepoints (`SAVEPOINT`, `RELEASE`, `ROLLBACK TO`). A
/// transaction dropped without commit or rollback is rolled back before the connection's
/// next request (or when a pool takes it back).
///
/// A `COMMIT` whose answer is lost is reported with code
/// [`CODE_AMBIGUOUS`](crate::CODE_AMBIGUOUS): the transaction may or may not have been
/// applied. BUSY inside a transaction is not retried (SQLite may have rolled it back):
/// retry the whole transaction, or begin write transactions with `BEGIN IMMEDIATE`
/// ([`DqliteConnectOptions::begin_immediate`](crate::DqliteConnectOptions::begin_immediate)
/// or `begin_with`), whose BUSY is retried before the transaction starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct DqliteTransactionManager;

impl TransactionManager for DqliteTransactionManager {
    type Database = Dqlite;

    fn begin<'conn>(
        conn: &'conn mut DqliteConnection,
        statement: Option<Cow<'static, str>>,
    ) -> BoxFuture<'conn, Result<(), Error>> {
        Box::pin(async move {
            conn.settle().await?;
            conn.release_stale_lock().await?;
            let sql: Cow<'static, str> = match (conn.depth, statement) {
                (0, Some(s)) => s,
                (0, None) if conn.options.begin_immediate => Cow::Borrowed("BEGIN IMMEDIATE"),
                (0, None) => Cow::Borrowed("BEGIN"),
                (_, Some(_)) => return Err(Error::InvalidSavePointStatement),
                (level, None) => Cow::Owned(format!("SAVEPOINT {}", savepoint_name(level))),
            };
            conn.inner.execute(&sql, ()).await.map_err(from_client)?;
            if conn.depth == 0 && !conn.inner.in_transaction() {
                return Err(Error::BeginFailed);
            }
            conn.depth += 1;
            Ok(())
        })
    }

    fn commit(conn: &mut DqliteConnection) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            conn.settle().await?;
            let sql = match conn.depth {
                0 => return Ok(()),
                1 => Cow::Borrowed("COMMIT"),
                level => Cow::Owned(format!("RELEASE SAVEPOINT {}", savepoint_name(level - 1))),
            };
            conn.inner.execute(&sql, ()).await.map_err(from_client)?;
            conn.depth -= 1;
            Ok(())
        })
    }

    fn rollback(conn: &mut DqliteConnection) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            conn.settle().await?;
            if conn.depth == 0 {
                return Ok(());
            }
            conn.depth -= 1;
            conn.rollback_to = Some(conn.depth);
            conn.settle().await
        })
    }

    fn start_rollback(conn: &mut DqliteConnection) {
        if conn.depth > 0 {
            conn.depth -= 1;
            let level = conn.rollback_to.map_or(conn.depth, |l| l.min(conn.depth));
            conn.rollback_to = Some(level);
        }
    }

    fn get_transaction_depth(conn: &DqliteConnection) -> usize {
        conn.depth
    }
}
