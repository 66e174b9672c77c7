//! One connection to one dqlite node, with one open database.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dqlite_proto::sql::{self, TxControl};
use dqlite_proto::{
    Backoff, Error as CoreError, ExecResult, File, Metadata, NodeInfo, NodeRole, Reply, RequestId,
    RowsBatch, Text, Value,
};

use crate::config::Config;
use crate::convert::FromValue;
use crate::driver::Driver;
use crate::error::{Error, Misuse, Result};
use crate::from_row::{rows_as, FromRow};
use crate::lock::lock;
use crate::params::IntoParams;
use crate::row::{Row, Rows};
use crate::runtime::Runtime;
use crate::session::{unexpected, Effect, Session};
use crate::statement::Statement;
use crate::statement_cache::{SharedCache, StatementCache};
use crate::stream::RowStream;
use crate::transaction::Transaction;
use crate::transport::{dial, BoxStream};
use crate::tx_state::{may_roll_back, TxState};
use tracing::Instrument;

mod execute;
mod requests;
mod settle;
mod sql_checks;

use requests::{by_id, split_rows_into};
pub(crate) use settle::rollback_sql;
use settle::state_after_failure;
pub(crate) use sql_checks::check_returns_rows;
use sql_checks::{check_returns_no_rows, returns_rows};

/// First pause before retrying a BUSY statement; it doubles up to [`BUSY_PAUSE_CAP`].
const BUSY_PAUSE_START: Duration = Duration::from_millis(1);

/// Longest pause between two BUSY retries.
const BUSY_PAUSE_CAP: Duration = Duration::from_millis(100);

/// The query every new connection sends right after OPEN (see [`BARRIER_SQL`]).
pub(crate) use dqlite_proto::BARRIER_SQL;

/// A connection to one dqlite node with its database open.
///
/// Methods take `&mut self`: one request at a time, like a SQLite connection. Use a
/// [`Pool`](crate::Pool) to share connections between tasks.
///
/// If a method's future is dropped before it completes (a timeout elsewhere, a cancelled
/// task), the connection stays usable: its next call first reads and discards the answer
/// owed to the abandoned request. A connection that hit a deadline, a protocol error or a
/// closed socket is *broken* ([`is_broken`](Self::is_broken)) and returns that error from
/// every later call.
pub struct Connection<R: Runtime> {
    /// The node, its stream, and the request plumbing.
    session: Session<R>,
    /// Requests of a pipelined batch not yet answered to their caller.
    batch: Vec<RequestId>,
    /// Nesting depth of [`Transaction`] guards (0: none).
    tx_depth: u32,
    /// The server's transaction state, as far as the client knows it.
    tx: TxState,
    /// A dropped transaction guard left this savepoint depth (0 = the whole transaction) to
    /// roll back before the next use.
    pending_rollback: Option<u32>,
    /// A script's savepoint (`execute` of several statements) whose future was dropped
    /// before the script ended: rolled back before the next use. `true` when the savepoint
    /// began the transaction.
    script_cleanup: Option<bool>,
    /// Statements whose handles were dropped, to FINALIZE before the next request.
    finalize_queue: Arc<Mutex<Vec<dqlite_proto::Stmt>>>,
    /// Statements prepared for SQL sent with parameters ([`Config::statement_cache`]).
    cache: SharedCache,
    /// Pauses between BUSY retries.
    busy_backoff: Backoff,
}

impl<R: Runtime> std::fmt::Debug for Connection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.session.address())
            .field("database", &self.session.config().database)
            .field("broken", &self.is_broken())
            .field("tx_depth", &self.tx_depth)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Connection<R> {
    /// Dials `address`, sends the handshake and opens the configured database on that node,
    /// then sends one query that names no table and waits for its answer: a dqlite 1.11
    /// leader answers it only once it has applied the log it inherited from the previous
    /// leader, so the connection's statements see every table created before the leader
    /// changed. A server failure answering that query is ignored; a lost connection or a
    /// deadline fails the connect.
    ///
    /// This talks to exactly that node. If it is a follower, servers since dqlite 1.18.2
    /// refuse the OPEN: the error is then [`Error::NotLeader`], naming the leader when the
    /// node knows it. Older servers (1.11 and up to 1.18.1) accept it, and the queries fail
    /// with a "not leader" server error instead ([`Error::is_not_leader`] is true for both).
    /// To find the leader among several nodes use [`connect_cluster`](crate::connect_cluster)
    /// or a [`Pool`](crate::Pool); for cluster requests to a chosen node (a follower
    /// included) use a [`NodeClient`](crate::NodeClient).
    pub async fn connect(rt: R, address: &str, config: Config) -> Result<Connection<R>> {
        // A connection made on its own is a busy-polling group of its own.
        let config = Arc::new(config.own_group());
        let span = tracing::debug_span!("dqlite.connect", address);
        async move {
            let (wire, _) = dial(&rt, address, &config).await?;
            Self::open(rt, wire, address.to_owned(), config).await
        }
        .instrument(span)
        .await
    }

    /// Opens the database on a wire that completed the handshake.
    pub(crate) async fn open(
        rt: R,
        wire: Driver<BoxStream>,
        address: String,
        config: Arc<Config>,
    ) -> Result<Connection<R>> {
        let seed = RandomState::new().build_hasher().finish() | 1;
        let capacity = config.statement_cache;
        let mut conn = Connection {
            session: Session::new(rt, wire, address, config),
            batch: Vec::new(),
            tx_depth: 0,
            tx: TxState::Autocommit,
            pending_rollback: None,
            script_cleanup: None,
            finalize_queue: Arc::new(Mutex::new(Vec::new())),
            cache: Arc::new(Mutex::new(StatementCache::new(capacity))),
            busy_backoff: Backoff::new(BUSY_PAUSE_START, BUSY_PAUSE_CAP, seed),
        };
        let name = conn.session.config().database.clone();
        if let Err(e) = conn.call(Effect::None, |c| c.open(&name)).await {
            return Err(conn.session.explain_open_failure(e).await);
        }
        conn.barrier().await?;
        Ok(conn)
    }

    /// Sends [`BARRIER_SQL`] and discards its rows. A server failure is left to the
    /// application's first statement, which meets the same cause (a follower of a server
    /// before 1.18.2 refuses both as "not leader"): the connection is returned as OPEN left
    /// it. A deadline, a protocol error or a closed stream fails the open, as it would have
    /// failed the OPEN.
    async fn barrier(&mut self) -> Result<()> {
        self.ready().await?;
        let id = self.queue(|p| p.query_sql(BARRIER_SQL, &[]))?;
        match self.collect_rows(id).await {
            Ok(_) => Ok(()),
            Err(Error::Server(failure)) => {
                tracing::debug!(address = %self.session.address(), %failure,
                    "the barrier query after OPEN failed; the connection is kept");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The node address this connection talks to.
    pub fn address(&self) -> &str {
        self.session.address()
    }

    /// True once a deadline, protocol error or closed socket made this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.session.is_broken()
    }

    /// Checks, without waiting, that the server has not closed this idle connection.
    pub(crate) fn still_open(&mut self) -> bool {
        self.session.still_open()
    }

    /// True after the node answered "not leader" on this connection.
    pub fn saw_not_leader(&self) -> bool {
        self.session.saw_not_leader()
    }

    /// True when a transaction may be open on the server: one begun with
    /// [`begin`](Self::begin), or with SQL (`BEGIN`, `SAVEPOINT` outside a transaction) through
    /// any method, and not yet ended; also when the client cannot know (a script that
    /// controls transactions failed part-way, a transaction-control statement whose future
    /// was dropped). False means no transaction is open, for certain.
    ///
    /// A transaction whose guard was dropped counts as ended (its rollback goes out first
    /// thing on the next call). A [`Pool`](crate::Pool) never hands out a connection for
    /// which this is true: it rolls the transaction back first, or discards the connection.
    pub fn in_transaction(&self) -> bool {
        if matches!(self.pending_rollback, Some(d) if d <= 1) || self.script_cleanup == Some(true) {
            return false;
        }
        !self.tx.is_autocommit()
    }

    /// Runs one SQL statement (or a script of several, without parameters) and returns the
    /// last insert id and rows affected.
    ///
    /// The parameters must match the statement's placeholders exactly (`?`, `?NNN`,
    /// `:name`, `@name`, `$name`), or nothing is sent ([`Misuse::Request`]). A statement
    /// that returns rows (`SELECT`, `VALUES`, `EXPLAIN`) is refused: use
    /// [`fetch`](Self::fetch).
    ///
    /// A script of several statements is atomic: it runs inside a savepoint, and if one of
    /// its statements fails, the ones before it are rolled back and the error returned (a
    /// clean failure). A script that controls transactions itself (`BEGIN`, `COMMIT`, ...)
    /// cannot be wrapped: its statements run one by one, and a failure after the first is
    /// [`Error::PartlyApplied`], saying how many ran.
    ///
    /// A failure whose outcome is unknown is [`Error::Ambiguous`]; `SQLITE_BUSY` is retried
    /// per [`Config::busy_timeout`](crate::Config::busy_timeout).
    pub async fn execute(&mut self, sql: &str, params: impl IntoParams) -> Result<ExecResult> {
        let params = params.into_params()?;
        let summary = sql::summarize(sql);
        if summary.statements > 1 && params.is_empty() && summary.params == 0 {
            return if summary.tx_control {
                self.execute_split(sql).await
            } else {
                self.execute_atomic(sql).await
            };
        }
        let control = summary.tx_control.then(|| sql::tx_control(sql)).flatten();
        self.execute_one(sql, &params, control).await
    }

    /// Runs a script of several statements separated by `;`, without parameters, as
    /// [`execute`](Self::execute) does: atomically unless it controls transactions itself.
    pub async fn execute_batch(&mut self, script: &str) -> Result<()> {
        self.execute(script, ()).await.map(|_| ())
    }

    /// Prepares `sql` into the statement cache now, so that its first execution with
    /// parameters does not pay for the PREPARE (a no-op when caching is off or it is
    /// cached already).
    pub async fn prepare_cached(&mut self, sql: &str) -> Result<()> {
        let count = sql::summarize(sql).params;
        if count == 0 {
            return Ok(());
        }
        self.ensure_cached(sql, count).await.map(|_| ())
    }

    /// Statements in this connection's cache.
    pub fn cached_statements(&self) -> usize {
        lock(&self.cache).len()
    }

    /// Runs the same statement once per parameter set, pipelined: every request is written
    /// back to back and the answers are read afterwards (the server answers in order), so a
    /// batch costs about one round trip instead of one per row.
    ///
    /// Each entry of the result is that execution's own outcome: an error in one does not
    /// stop the others. If the connection fails part-way, executions already sent are
    /// [`Error::Ambiguous`] and those never sent are clean failures. Wrap the batch in a
    /// transaction to make it all-or-nothing.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// let rows = (0..1000i64).map(|i| (i, format!("name {i}")));
    /// let results = conn.execute_pipelined("INSERT INTO t (id, name) VALUES (?, ?)", rows).await?;
    /// assert!(results.iter().all(Result::is_ok));
    /// # Ok(()) }
    /// ```
    pub async fn execute_pipelined<P: IntoParams>(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = P>,
    ) -> Result<Vec<Result<ExecResult>>> {
        let summary = sql::summarize(sql);
        if summary.tx_control {
            return Err(Misuse::TransactionControl("in a pipelined batch").into());
        }
        if summary.statements > 1 {
            return Err(Error::from(dqlite_proto::Misuse::MultipleStatements {
                statements: summary.statements,
            }));
        }
        check_returns_no_rows(sql)?;
        let sets: Vec<Result<Vec<Value>>> =
            params.into_iter().map(IntoParams::into_params).collect();
        // One PREPARE for the whole batch, when the first set fits the statement.
        let cached = match sets.iter().find_map(|s| s.as_ref().ok()) {
            Some(first) => self.ensure_cached(sql, first.len()).await.unwrap_or(false),
            None => false,
        };
        self.ready().await?;
        let cache = self.cache.clone();
        let mut outcomes: Vec<Result<RequestId>> = Vec::new();
        for set in sets {
            outcomes.push(set.and_then(|values| {
                if cached {
                    self.queue(|c| by_id(&cache, sql, |stmt| c.exec(stmt, &values)))
                } else {
                    self.queue(|c| c.exec_sql(sql, &values))
                }
            }));
        }
        self.batch = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().copied())
            .collect();
        self.batch.reverse();
        let mut results = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            let id = match outcome {
                Ok(id) => id,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            self.batch.pop();
            let result = match self.wait(id, self.session.config().request_timeout).await {
                Ok(Reply::Executed(r)) => Ok(r),
                Ok(other) => Err(unexpected(other, "RESULT")),
                Err(e) => Err(self.classify(e, id, Effect::Write)),
            };
            if let Err(e) = &result {
                self.tx = state_after_failure(self.tx.clone(), &[], e);
            }
            results.push(result);
        }
        Ok(results)
    }

    /// Runs a query and returns its rows, addressable by column name or index.
    ///
    /// The result keeps the column names, also when it has no rows
    /// ([`Rows::columns`](crate::Rows::columns)).
    pub async fn fetch(&mut self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        let (columns, values) = self.query_all(sql, params.into_params()?).await?;
        Ok(Rows::from_batches(columns, values))
    }

    /// Runs a query and returns its rows as plain value lists.
    pub async fn fetch_all(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<Vec<Value>>> {
        let (columns, batches) = self.query_all(sql, params.into_params()?).await?;
        let mut rows = Vec::new();
        for values in batches {
            split_rows_into(&mut rows, columns.len(), values);
        }
        Ok(rows)
    }

    /// The first row, or [`Error::NoRows`].
    pub async fn fetch_one(&mut self, sql: &str, params: impl IntoParams) -> Result<Row> {
        self.fetch_optional(sql, params).await?.ok_or(Error::NoRows)
    }

    /// The first row, if any.
    pub async fn fetch_optional(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Option<Row>> {
        Ok(self.fetch(sql, params).await?.into_iter().next())
    }

    /// The first column of the first row, converted to `T`
    /// (`let n: i64 = conn.fetch_val("SELECT count(*) FROM t", ()).await?`).
    pub async fn fetch_val<T: FromValue>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<T> {
        let row = self.fetch_one(sql, params).await?;
        row.get(0)
    }

    /// Runs a query and converts every row to `T` ([`FromRow`]: a derived struct, a tuple,
    /// [`Row`]). The first row that does not convert fails the call, naming the column.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// #[derive(dqlite_client::FromRow)]
    /// struct Item {
    ///     id: i64,
    ///     name: String,
    /// }
    /// let items: Vec<Item> = conn.fetch_as("SELECT id, name FROM items", ()).await?;
    /// let pairs = conn.fetch_as::<(i64, String)>("SELECT id, name FROM items", ()).await?;
    /// # let _ = (items, pairs);
    /// # Ok(()) }
    /// ```
    pub async fn fetch_as<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<T>> {
        rows_as(self.fetch(sql, params).await?)
    }

    /// The first row converted to `T` ([`FromRow`]), or [`Error::NoRows`].
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// let (id, name): (i64, String) =
    ///     conn.fetch_one_as("SELECT id, name FROM items WHERE id = ?", (1,)).await?;
    /// # let _ = (id, name);
    /// # Ok(()) }
    /// ```
    pub async fn fetch_one_as<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<T> {
        T::from_row(&self.fetch_one(sql, params).await?)
    }

    /// The first row converted to `T` ([`FromRow`]), if there is one.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// let name: Option<(String,)> =
    ///     conn.fetch_optional_as("SELECT name FROM items WHERE id = ?", (1,)).await?;
    /// # let _ = name;
    /// # Ok(()) }
    /// ```
    pub async fn fetch_optional_as<T: FromRow>(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Option<T>> {
        self.fetch_optional(sql, params)
            .await?
            .map(|row| T::from_row(&row))
            .transpose()
    }

    /// Starts a query whose rows are read batch by batch: memory stays bounded by one
    /// batch (about a page of rows) plus what the caller keeps. Dropping the stream early
    /// is safe: the rest of the result is drained before the next request.
    pub async fn stream(&mut self, sql: &str, params: impl IntoParams) -> Result<RowStream<'_, R>> {
        let params = params.into_params()?;
        check_returns_rows(sql)?;
        let cached = self.ensure_cached(sql, params.len()).await?;
        self.ready().await?;
        let id = self.queue_query(sql, &params, cached)?;
        Ok(RowStream::new(self, id))
    }

    /// Prepares a statement for repeated use. Drop it or pass it to
    /// [`finalize`](Self::finalize) when done; either way it is finalized on the server.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement> {
        match self.call(Effect::None, |p| p.prepare(sql)).await? {
            Reply::Prepared(stmt) => Ok(Statement::new(
                stmt,
                self.finalize_queue.clone(),
                sql::tx_control(sql),
                returns_rows(sql),
            )),
            other => Err(unexpected(other, "STMT")),
        }
    }

    /// Executes a prepared statement.
    pub async fn execute_prepared(
        &mut self,
        stmt: &Statement,
        params: impl IntoParams,
    ) -> Result<ExecResult> {
        let params = params.into_params()?;
        let handle = stmt.handle()?;
        if let Some(first) = stmt.returns_rows() {
            return Err(Misuse::ReturnsRows(first.to_owned()).into());
        }
        let control = stmt.tx_control();
        if control.is_some() && self.tx_depth > 0 {
            return Err(Misuse::TransactionControl("inside a Transaction guard").into());
        }
        let started = self.session.rt().now();
        let mut attempt = 0;
        loop {
            self.ready().await?;
            let autocommit = self.tx.is_autocommit();
            let result = self
                .exec_tracked(control.as_slice(), Effect::Write, |p| {
                    p.exec(handle, &params)
                })
                .await;
            match result {
                Err(e) if autocommit && self.busy_pause(&e, started, &mut attempt).await => {}
                other => return other,
            }
        }
    }

    /// Runs a prepared query and returns its rows.
    pub async fn fetch_prepared(
        &mut self,
        stmt: &Statement,
        params: impl IntoParams,
    ) -> Result<Rows> {
        let params = params.into_params()?;
        let handle = stmt.handle()?;
        self.ready().await?;
        let id = self.queue(|p| p.query(handle, &params))?;
        let (columns, values) = self.collect_rows(id).await?;
        Ok(Rows::from_batches(columns, values))
    }

    /// Finalizes a prepared statement now.
    pub async fn finalize(&mut self, mut stmt: Statement) -> Result<()> {
        let Some(handle) = stmt.take() else {
            return Ok(());
        };
        match self.call(Effect::None, move |p| p.finalize(handle)).await? {
            Reply::Empty => Ok(()),
            other => Err(unexpected(other, "EMPTY")),
        }
    }

    /// Begins a transaction. The guard commits with
    /// [`commit`](Transaction::commit) or rolls back with [`rollback`](Transaction::rollback);
    /// dropped without either, it is rolled back before the connection is used again.
    ///
    /// Refused with [`Misuse::TransactionOpen`] when a transaction is known to be open
    /// (another guard, or one begun with SQL). If the server refuses the `BEGIN`, an
    /// existing transaction is left as it was.
    pub async fn begin(&mut self) -> Result<Transaction<'_, R>> {
        self.ready().await?;
        if self.tx_depth > 0 || matches!(self.tx, TxState::Open { .. }) {
            return Err(Misuse::TransactionOpen.into());
        }
        self.tx_control("BEGIN", 1, 1).await?;
        Ok(Transaction::new(self, 1))
    }

    /// Runs `f` inside a transaction: committed when it returns `Ok`, rolled back when it
    /// returns `Err` (whose error is then returned). The closure's error type is the
    /// caller's own, anything that a client [`Error`] converts into.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// #[derive(Debug)]
    /// enum AppError {
    ///     Db(dqlite_client::Error),
    ///     Overdrawn,
    /// }
    /// impl From<dqlite_client::Error> for AppError {
    ///     fn from(e: dqlite_client::Error) -> Self {
    ///         AppError::Db(e)
    ///     }
    /// }
    ///
    /// let moved = conn
    ///     .transaction(async |tx| {
    ///         let bal: i64 = tx.fetch_val("SELECT bal FROM acct WHERE id = 1", ()).await?;
    ///         if bal < 10 {
    ///             return Err(AppError::Overdrawn); // rolled back
    ///         }
    ///         tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", ()).await?;
    ///         tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = 2", ()).await?;
    ///         Ok(10)
    ///     })
    ///     .await;
    /// # let _: Result<i64, AppError> = moved;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, E, F>(&mut self, f: F) -> Result<T, E>
    where
        F: for<'t> AsyncFnOnce(&'t mut Transaction<'_, R>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut tx = self.begin().await?;
        match f(&mut tx).await {
            Ok(value) => {
                tx.commit().await?;
                Ok(value)
            }
            Err(e) => {
                // The caller's error matters more than a failed rollback, which is retried
                // before the connection's next use anyway.
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    /// Who this node thinks leads (`None`: no leader known).
    pub async fn leader(&mut self) -> Result<Option<NodeInfo>> {
        self.ready().await?;
        self.session.leader().await
    }

    /// The cluster's nodes, with their roles.
    pub async fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        self.ready().await?;
        self.session.cluster().await
    }

    /// Adds a node to the cluster (as a spare; then [`assign`](Self::assign) a role).
    pub async fn add_node(&mut self, id: u64, address: &str) -> Result<()> {
        self.ready().await?;
        self.session.add_node(id, address).await
    }

    /// Assigns a role to a node.
    pub async fn assign(&mut self, id: u64, role: NodeRole) -> Result<()> {
        self.ready().await?;
        self.session.assign(id, role).await
    }

    /// Removes a node from the cluster.
    pub async fn remove_node(&mut self, id: u64) -> Result<()> {
        self.ready().await?;
        self.session.remove_node(id).await
    }

    /// Hands leadership to node `id`. This connection's node stops being the leader.
    pub async fn transfer_leadership(&mut self, id: u64) -> Result<()> {
        self.ready().await?;
        self.session.transfer_leadership(id).await
    }

    /// This node's failure domain and weight.
    pub async fn describe(&mut self) -> Result<Metadata> {
        self.ready().await?;
        self.session.describe().await
    }

    /// Sets this node's weight.
    pub async fn set_weight(&mut self, weight: u64) -> Result<()> {
        self.ready().await?;
        self.session.set_weight(weight).await
    }

    /// The database files (main file and WAL) of the configured database.
    pub async fn dump(&mut self) -> Result<Vec<File>> {
        self.ready().await?;
        let name = self.session.config().database.clone();
        self.session.dump(&name).await
    }

    /// Sends what is still queued and closes the connection.
    pub async fn close(self) -> Result<()> {
        self.session.close().await;
        Ok(())
    }

    // ----- internals ---------------------------------------------------------------------
}
