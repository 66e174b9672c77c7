//! [`DqliteConnection`]: one connection to the cluster's leader, and its executor.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use sqlx_core::connection::Connection;
use sqlx_core::describe::Describe;
use sqlx_core::executor::{Execute, Executor};
use sqlx_core::logger::QueryLogger;
use sqlx_core::transaction::Transaction;
use sqlx_core::{Either, Error};

use crate::database::{
    Dqlite, DqliteQueryResult, DqliteRow, DqliteStatement, DqliteTypeInfo, ResultColumns,
};
use crate::error::from_client;
use crate::options::DqliteConnectOptions;

/// First words of statements run as queries (their rows are returned); every other statement
/// is executed and returns a [`DqliteQueryResult`].
const ROW_STATEMENTS: [&str; 5] = ["SELECT", "VALUES", "WITH", "PRAGMA", "EXPLAIN"];

/// A connection to the leader of a dqlite cluster, with its database open.
///
/// It wraps the async client's connection on tokio (`dqlite_tokio::Connection`) and keeps
/// its failure semantics: BUSY outside a transaction is retried within the busy timeout, an
/// ambiguous write or COMMIT is an error with code
/// [`CODE_AMBIGUOUS`](crate::CODE_AMBIGUOUS), and once the node answered "not leader" (or
/// the connection broke) [`ping`](Connection::ping) fails, so a `sqlx::Pool` closes it and
/// connects to the new leader.
pub struct DqliteConnection {
    pub(crate) inner: dqlite_tokio::Connection,
    /// Transaction levels opened through sqlx (`BEGIN`, then savepoints).
    pub(crate) depth: usize,
    /// A dropped transaction's rollback, sent before the next request: the level to return
    /// to (0 rolls the whole transaction back).
    pub(crate) rollback_to: Option<usize>,
    /// The migration lock (a write transaction) is held.
    pub(crate) migration_lock: bool,
    /// Migrations applied under the current lock, for resolving an ambiguous COMMIT.
    pub(crate) applied_in_run: Vec<(i64, Vec<u8>)>,
    /// Why this connection must not be used again, when a rollback could not be confirmed.
    pub(crate) poisoned: Option<String>,
    pub(crate) options: DqliteConnectOptions,
}

impl fmt::Debug for DqliteConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DqliteConnection")
            .field("address", &self.inner.address())
            .field("depth", &self.depth)
            .finish()
    }
}

impl DqliteConnection {
    /// Finds the leader among the configured nodes and connects to it.
    pub(crate) async fn establish(options: &DqliteConnectOptions) -> Result<Self, Error> {
        let inner = Self::connect_client(options).await?;
        Ok(Self::from_client(inner, options.clone()))
    }

    /// Wraps a connection made with the async client (to a chosen node, through a proxy,
    /// ...). `options` supplies the log settings, and the nodes that an ambiguous migration
    /// COMMIT is checked on again.
    pub fn from_client(inner: dqlite_tokio::Connection, options: DqliteConnectOptions) -> Self {
        DqliteConnection {
            inner,
            depth: 0,
            rollback_to: None,
            migration_lock: false,
            applied_in_run: Vec::new(),
            poisoned: None,
            options,
        }
    }

    pub(crate) async fn connect_client(
        options: &DqliteConnectOptions,
    ) -> Result<dqlite_tokio::Connection, Error> {
        if options.nodes.is_empty() {
            return Err(Error::Configuration("no dqlite node address given".into()));
        }
        let nodes: Vec<&str> = options.nodes.iter().map(String::as_str).collect();
        dqlite_tokio::connect_cluster(&nodes, options.to_client_config())
            .await
            .map_err(from_client)
    }

    /// The address of the node this connection talks to (the leader when it connected).
    pub fn address(&self) -> &str {
        self.inner.address()
    }

    /// False once the connection cannot serve requests: it broke, the node answered "not
    /// leader", or a rollback could not be confirmed. A pool discards such a connection.
    pub fn is_valid(&self) -> bool {
        self.poisoned.is_none() && !self.inner.is_broken() && !self.inner.saw_not_leader()
    }

    /// The async client's connection underneath, for what sqlx has no words for (cluster
    /// requests, pipelined batches). Do not begin or end transactions through it while a
    /// sqlx transaction is open on this connection.
    pub fn as_client(&mut self) -> &mut dqlite_tokio::Connection {
        &mut self.inner
    }

    /// Sends the rollback of a dropped transaction, if one is owed.
    pub(crate) async fn settle(&mut self) -> Result<(), Error> {
        if let Some(reason) = &self.poisoned {
            return Err(Error::Protocol(format!("connection unusable: {reason}")));
        }
        let Some(level) = self.rollback_to.take() else {
            return Ok(());
        };
        let result = if level == 0 {
            if self.inner.in_transaction() {
                self.inner.execute("ROLLBACK", ()).await.map(|_| ())
            } else {
                Ok(())
            }
        } else {
            let name = savepoint_name(level);
            match self
                .inner
                .execute(&format!("ROLLBACK TO SAVEPOINT {name}"), ())
                .await
            {
                Ok(_) => self
                    .inner
                    .execute(&format!("RELEASE SAVEPOINT {name}"), ())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            self.poisoned = Some(format!("the rollback of a dropped transaction failed: {e}"));
            return Err(from_client(e));
        }
        Ok(())
    }

    /// Ends a migration lock that was left held (a run that failed part-way).
    pub(crate) async fn release_stale_lock(&mut self) -> Result<(), Error> {
        if self.migration_lock && self.depth == 0 {
            self.migration_lock = false;
            if self.inner.in_transaction() {
                if let Err(e) = self.inner.execute("ROLLBACK", ()).await {
                    self.poisoned = Some(format!("the rollback of a migration run failed: {e}"));
                    return Err(from_client(e));
                }
            }
        }
        Ok(())
    }
}

/// The name of the savepoint that opens transaction level `level + 1`.
pub(crate) fn savepoint_name(level: usize) -> String {
    format!("_sqlx_savepoint_{level}")
}

/// Whether `sql` is run as a query (it may return rows). A `WITH` statement that writes
/// (`WITH ... INSERT`, `UPDATE`, `DELETE`, `REPLACE`) and a `PRAGMA` that sets a value
/// (`PRAGMA name = value`) are executed.
fn returns_rows(sql: &str) -> bool {
    let summary = dqlite_proto::sql::summarize(sql);
    if summary.statements > 1 {
        return false;
    }
    let first = dqlite_proto::sql::first_word(sql).unwrap_or("");
    if first.eq_ignore_ascii_case("WITH") {
        let writes = dqlite_proto::sql::words(sql).any(|w| {
            ["INSERT", "UPDATE", "DELETE", "REPLACE"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
        });
        return !writes;
    }
    if first.eq_ignore_ascii_case("PRAGMA") {
        return !sql.contains('=');
    }
    ROW_STATEMENTS.iter().any(|k| first.eq_ignore_ascii_case(k))
}

impl Connection for DqliteConnection {
    type Database = Dqlite;
    type Options = DqliteConnectOptions;

    fn close(self) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move { self.inner.close().await.map_err(from_client) })
    }

    fn close_hard(self) -> BoxFuture<'static, Result<(), Error>> {
        Box::pin(async move {
            drop(self);
            Ok(())
        })
    }

    fn ping(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.settle().await?;
            self.release_stale_lock().await?;
            if !self.is_valid() {
                return Err(Error::Protocol(format!(
                    "the connection to {} is no longer usable (broken, or the node is not the leader)",
                    self.inner.address()
                )));
            }
            if self.depth == 0 && self.inner.in_transaction() {
                // Begun with SQL, not through sqlx: a pool must not keep a connection that
                // may hold the cluster's write lock, so it closes this one (which ends the
                // transaction on the server).
                return Err(Error::Protocol(
                    "a transaction begun with SQL (not through sqlx) is open on this connection"
                        .into(),
                ));
            }
            self.inner
                .fetch("SELECT 1", ())
                .await
                .map(|_| ())
                .map_err(from_client)
        })
    }

    fn begin(&mut self) -> BoxFuture<'_, Result<Transaction<'_, Dqlite>, Error>>
    where
        Self: Sized,
    {
        Transaction::begin(self, None)
    }

    fn shrink_buffers(&mut self) {}

    fn flush(&mut self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move { self.settle().await })
    }

    fn should_flush(&self) -> bool {
        self.rollback_to.is_some()
    }
}

impl<'c> Executor<'c> for &'c mut DqliteConnection {
    type Database = Dqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxStream<'e, Result<Either<DqliteQueryResult, DqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Dqlite>,
    {
        let sql = query.sql();
        let arguments = query.take_arguments().map_err(Error::Encode);
        Box::pin(sqlx_core::try_stream! {
            let params = arguments?.map(|a| a.values).unwrap_or_default();
            self.settle().await?;
            let mut logger = QueryLogger::new(sql, self.options.log_settings.clone());
            if returns_rows(sql) {
                let mut stream = self.inner.stream(sql, params).await.map_err(from_client)?;
                let mut columns: Option<Arc<ResultColumns>> = None;
                while let Some(rows) = stream.next_rows().await.map_err(from_client)? {
                    for row in rows {
                        let columns = columns
                            .get_or_insert_with(|| Arc::new(ResultColumns::from_row(&row)))
                            .clone();
                        logger.increment_rows_returned();
                        r#yield!(Either::Right(DqliteRow { row, columns }));
                    }
                }
                r#yield!(Either::Left(DqliteQueryResult::default()));
            } else {
                let r = self.inner.execute(sql, params).await.map_err(from_client)?;
                logger.increase_rows_affected(r.rows_affected);
                r#yield!(Either::Left(DqliteQueryResult {
                    rows_affected: r.rows_affected,
                    last_insert_id: r.last_insert_id,
                }));
            }
            Ok(())
        })
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        mut query: E,
    ) -> BoxFuture<'e, Result<Option<DqliteRow>, Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Dqlite>,
    {
        let sql = query.sql();
        let arguments = query.take_arguments().map_err(Error::Encode);
        Box::pin(async move {
            let params = arguments?.map(|a| a.values).unwrap_or_default();
            self.settle().await?;
            let mut logger = QueryLogger::new(sql, self.options.log_settings.clone());
            if returns_rows(sql) {
                let mut stream = self.inner.stream(sql, params).await.map_err(from_client)?;
                while let Some(rows) = stream.next_rows().await.map_err(from_client)? {
                    if let Some(row) = rows.into_iter().next() {
                        logger.increment_rows_returned();
                        let columns = Arc::new(ResultColumns::from_row(&row));
                        // Dropping the stream drains the rest before the next request.
                        return Ok(Some(DqliteRow { row, columns }));
                    }
                }
                Ok(None)
            } else {
                let r = self.inner.execute(sql, params).await.map_err(from_client)?;
                logger.increase_rows_affected(r.rows_affected);
                Ok(None)
            }
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        _parameters: &'e [DqliteTypeInfo],
    ) -> BoxFuture<'e, Result<DqliteStatement<'q>, Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            self.settle().await?;
            let stmt = self.inner.prepare(sql).await.map_err(from_client)?;
            let params = usize::try_from(stmt.param_count())
                .map_err(|_| Error::Protocol("parameter count out of range".into()))?;
            self.inner.finalize(stmt).await.map_err(from_client)?;
            Ok(DqliteStatement {
                sql: Cow::Borrowed(sql),
                params,
            })
        })
    }

    fn describe<'e, 'q: 'e>(self, _sql: &'q str) -> BoxFuture<'e, Result<Describe<Dqlite>, Error>>
    where
        'c: 'e,
    {
        Box::pin(async move {
            Err(Error::Protocol(
                "dqlite cannot describe a query: its protocol reports no column types before \
                 the query runs (use prepare for the parameter count)"
                    .into(),
            ))
        })
    }
}
