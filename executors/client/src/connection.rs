//! One connection to one dqlite node, with one open database.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dqlite_proto::sql::{self, TxControl};
use dqlite_proto::{
    Backoff, Error as CoreError, ExecResult, File, Metadata, NodeInfo, NodeRole, Reply, RequestId,
    RowsBatch, SendState, Text, Value,
};

use crate::config::Config;
use crate::convert::FromValue;
use crate::error::{Error, Misuse, Result};
use crate::from_row::{rows_as, FromRow};
use crate::lock::lock;
use crate::params::IntoParams;
use crate::row::{Row, Rows};
use crate::runtime::{timeout, Runtime};
use crate::statement::Statement;
use crate::statement_cache::{SharedCache, StatementCache};
use crate::stream::RowStream;
use crate::transaction::Transaction;
use crate::transport::{dial, BoxStream};
use crate::tx_state::{may_roll_back, TxState};
use crate::wire::Wire;
use tracing::Instrument;

/// First pause before retrying a BUSY statement; it doubles up to [`BUSY_PAUSE_CAP`].
const BUSY_PAUSE_START: Duration = Duration::from_millis(1);

/// Longest pause between two BUSY retries.
const BUSY_PAUSE_CAP: Duration = Duration::from_millis(100);

/// The savepoint that makes a script of several statements atomic.
const SCRIPT_SAVEPOINT: &str = "dqlite_script";

/// Whether a failed request may have taken effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Reads and requests without effect on data: never ambiguous.
    None,
    /// Writes (EXEC, EXEC_SQL, COMMIT): ambiguous once sent, if the answer is lost.
    Write,
}

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
    pub(crate) rt: R,
    pub(crate) wire: Wire<BoxStream>,
    address: String,
    pub(crate) config: Arc<Config>,
    pid: u32,
    broken: Option<Error>,
    /// A request whose caller went away before its answer arrived.
    pub(crate) inflight: Option<RequestId>,
    /// Requests of a pipelined batch not yet answered to their caller.
    batch: Vec<RequestId>,
    /// Nesting depth of [`Transaction`] guards (0: none).
    pub(crate) tx_depth: u32,
    /// The server's transaction state, as far as the client knows it.
    tx: TxState,
    /// A dropped transaction guard left this savepoint depth (0 = the whole transaction) to
    /// roll back before the next use.
    pub(crate) pending_rollback: Option<u32>,
    pub(crate) finalize_queue: Arc<Mutex<Vec<dqlite_proto::Stmt>>>,
    /// Statements prepared for SQL sent with parameters ([`Config::statement_cache`]).
    cache: SharedCache,
    saw_not_leader: bool,
    /// Pauses between BUSY retries.
    busy_backoff: Backoff,
}

impl<R: Runtime> std::fmt::Debug for Connection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("database", &self.config.database)
            .field("broken", &self.broken)
            .field("tx_depth", &self.tx_depth)
            .field("tx", &self.tx)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Connection<R> {
    /// Dials `address`, sends the handshake and opens the configured database on that node.
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
        wire: Wire<BoxStream>,
        address: String,
        config: Arc<Config>,
    ) -> Result<Connection<R>> {
        let seed = RandomState::new().build_hasher().finish() | 1;
        let capacity = config.statement_cache;
        let mut conn = Connection {
            rt,
            wire,
            address,
            config,
            pid: std::process::id(),
            broken: None,
            inflight: None,
            batch: Vec::new(),
            tx_depth: 0,
            tx: TxState::Autocommit,
            pending_rollback: None,
            finalize_queue: Arc::new(Mutex::new(Vec::new())),
            cache: Arc::new(Mutex::new(StatementCache::new(capacity))),
            saw_not_leader: false,
            busy_backoff: Backoff::new(BUSY_PAUSE_START, BUSY_PAUSE_CAP, seed),
        };
        let name = conn.config.database.clone();
        if let Err(e) = conn.call(Effect::None, |c| c.open(&name)).await {
            return Err(crate::node::explain_open_failure(&mut conn, e).await);
        }
        Ok(conn)
    }

    /// The node address this connection talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True once a deadline, protocol error or closed socket made this connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some() || self.wire.core.error().is_some()
    }

    /// Checks, without waiting, that the server has not closed this idle connection.
    pub(crate) fn still_open(&mut self) -> bool {
        !self.is_broken() && self.wire.still_open()
    }

    /// True after the node answered "not leader" on this connection.
    pub fn saw_not_leader(&self) -> bool {
        self.saw_not_leader
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
        if matches!(self.pending_rollback, Some(d) if d <= 1) {
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

    /// One statement (or what the core refuses), BUSY retried while nothing can have applied.
    async fn execute_one(
        &mut self,
        sql: &str,
        params: &[Value],
        control: Option<TxControl>,
    ) -> Result<ExecResult> {
        check_returns_no_rows(sql)?;
        if control.is_some() && self.tx_depth > 0 {
            return Err(Misuse::TransactionControl("inside a Transaction guard").into());
        }
        let cached = control.is_none() && self.ensure_cached(sql, params.len()).await?;
        let started = self.rt.now();
        let mut attempt = 0;
        loop {
            self.ready().await?;
            let autocommit = self.tx.is_autocommit();
            let controls = control.as_slice();
            let result = if cached {
                let cache = self.cache.clone();
                self.exec_tracked(controls, Effect::Write, |p| {
                    by_id(&cache, sql, |stmt| p.exec(stmt, params))
                })
                .await
            } else {
                self.exec_tracked(controls, Effect::Write, |p| p.exec_sql(sql, params))
                    .await
            };
            match result {
                Err(e) if autocommit && self.busy_pause(&e, started, &mut attempt).await => {}
                other => return other,
            }
        }
    }

    /// Makes sure the statement cache holds `sql`, preparing it now if needed; false when
    /// it is not to be cached (no parameters, caching off, not a single statement). A
    /// parameter count that does not match is refused before the PREPARE goes out.
    async fn ensure_cached(&mut self, sql: &str, given: usize) -> Result<bool> {
        if given == 0 {
            return Ok(false);
        }
        {
            let c = lock(&self.cache);
            if !c.enabled() {
                return Ok(false);
            }
            if c.contains(sql) {
                return Ok(true);
            }
        }
        let summary = sql::summarize(sql);
        if summary.statements != 1 {
            // Sent as text: the core refuses it with the reason.
            return Ok(false);
        }
        if summary.params != given {
            return Err(Error::from(dqlite_proto::Misuse::ParamCount {
                expected: summary.params,
                given,
            }));
        }
        let stmt = match self.call(Effect::None, |p| p.prepare(sql)).await? {
            Reply::Prepared(stmt) => stmt,
            other => return Err(unexpected(other, "STMT")),
        };
        let evicted = lock(&self.cache).insert(sql, stmt);
        lock(&self.finalize_queue).extend(evicted);
        Ok(true)
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

    /// A script without transaction control, made atomic by a savepoint: on a failure the
    /// statements that ran are rolled back before the error is returned.
    async fn execute_atomic(&mut self, script: &str) -> Result<ExecResult> {
        let savepoint = TxControl::Savepoint(SCRIPT_SAVEPOINT.to_owned());
        let release = TxControl::Release(SCRIPT_SAVEPOINT.to_owned());
        let undo = TxControl::RollbackTo(SCRIPT_SAVEPOINT.to_owned());
        let started = self.rt.now();
        let mut attempt = 0;
        loop {
            self.ready().await?;
            // Releasing the savepoint commits only when it began the transaction.
            let outer = self.tx.is_autocommit();
            let commit = if outer { Effect::Write } else { Effect::None };
            self.exec_tracked(std::slice::from_ref(&savepoint), Effect::None, |p| {
                p.exec_sql(&format!("SAVEPOINT {SCRIPT_SAVEPOINT}"), &[])
            })
            .await?;
            // Nothing the script does is committed before the RELEASE: if its answer is
            // lost, the uncommitted work dies with the connection.
            let result = match self
                .exec_tracked(&[], Effect::None, |p| p.exec_sql(script, &[]))
                .await
            {
                Ok(r) => match self
                    .exec_tracked(std::slice::from_ref(&release), commit, |p| {
                        p.exec_sql(&format!("RELEASE {SCRIPT_SAVEPOINT}"), &[])
                    })
                    .await
                {
                    Ok(_) => return Ok(r),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if result.is_ambiguous() || self.is_broken() {
                return Err(result);
            }
            self.undo_script(&undo, &release, outer).await?;
            if outer && self.busy_pause(&result, started, &mut attempt).await {
                continue;
            }
            return Err(result);
        }
    }

    /// Rolls a failed script back to its savepoint and releases it; if that fails, rolls
    /// back the transaction the savepoint began, and if that fails too the connection is
    /// broken: it must not be used inside a transaction nobody knows of.
    async fn undo_script(
        &mut self,
        undo: &TxControl,
        release: &TxControl,
        outer: bool,
    ) -> Result<()> {
        let undone = async {
            self.exec_tracked(std::slice::from_ref(undo), Effect::None, |p| {
                p.exec_sql(&format!("ROLLBACK TO {SCRIPT_SAVEPOINT}"), &[])
            })
            .await?;
            self.exec_tracked(std::slice::from_ref(release), Effect::None, |p| {
                p.exec_sql(&format!("RELEASE {SCRIPT_SAVEPOINT}"), &[])
            })
            .await
        }
        .await;
        let Err(first) = undone else {
            return Ok(());
        };
        if outer {
            let rollback = [TxControl::Rollback];
            let _ = self
                .exec_tracked(&rollback, Effect::None, |p| p.exec_sql("ROLLBACK", &[]))
                .await;
            if self.tx.is_autocommit() {
                return Ok(());
            }
        }
        self.broken = Some(first.clone());
        Err(first)
    }

    /// A script that controls transactions itself, one statement at a time.
    async fn execute_split(&mut self, script: &str) -> Result<ExecResult> {
        let statements: Vec<sql::Statement<'_>> = sql::statements(script).collect();
        let total = statements.len();
        let mut last = None;
        for (executed, statement) in statements.into_iter().enumerate() {
            match self
                .execute_one(statement.sql, &[], statement.tx_control)
                .await
            {
                Ok(r) => last = Some(r),
                Err(e) if executed == 0 => return Err(e),
                Err(e) => {
                    return Err(Error::PartlyApplied {
                        executed,
                        total,
                        error: Box::new(e),
                    })
                }
            }
        }
        last.ok_or(Error::Internal("a script of several statements had none"))
    }

    /// Sends one write-like request and keeps [`TxState`] in step with the server: `controls`
    /// are the transaction-control statements the request holds, in order.
    async fn exec_tracked(
        &mut self,
        controls: &[TxControl],
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<ExecResult> {
        self.ready().await?;
        let before = self.tx.clone();
        if !controls.is_empty() {
            // Until the answer says otherwise: a dropped future leaves it unknown.
            self.tx = TxState::Unknown;
        }
        let result = match self.call(effect, f).await {
            Ok(Reply::Executed(r)) => Ok(r),
            Ok(other) => Err(unexpected(other, "RESULT")),
            Err(e) => Err(e),
        };
        self.tx = match &result {
            Ok(_) => before.after_all(controls),
            Err(e) => state_after_failure(before, controls, e),
        };
        result
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
            let result = match self.wait(id, self.config.request_timeout).await {
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
        let started = self.rt.now();
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
        match self.call(Effect::None, |p| p.leader()).await? {
            Reply::Leader(n) if n.id == 0 && n.address.is_empty() => Ok(None),
            Reply::Leader(n) => Ok(Some(n)),
            other => Err(unexpected(other, "SERVER")),
        }
    }

    /// The cluster's nodes, with their roles.
    pub async fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        match self.call(Effect::None, |p| p.cluster(true)).await? {
            Reply::Nodes(n) => Ok(n),
            other => Err(unexpected(other, "SERVERS")),
        }
    }

    /// Adds a node to the cluster (as a spare; then [`assign`](Self::assign) a role).
    pub async fn add_node(&mut self, id: u64, address: &str) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.add(id, address)).await
    }

    /// Assigns a role to a node.
    pub async fn assign(&mut self, id: u64, role: NodeRole) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.assign(id, role)).await
    }

    /// Removes a node from the cluster.
    pub async fn remove_node(&mut self, id: u64) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.remove(id)).await
    }

    /// Hands leadership to node `id`. This connection's node stops being the leader.
    pub async fn transfer_leadership(&mut self, id: u64) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.transfer(id)).await
    }

    /// This node's failure domain and weight.
    pub async fn describe(&mut self) -> Result<Metadata> {
        match self.call(Effect::None, |p| p.describe()).await? {
            Reply::Metadata(m) => Ok(m),
            other => Err(unexpected(other, "METADATA")),
        }
    }

    /// Sets this node's weight.
    pub async fn set_weight(&mut self, weight: u64) -> Result<()> {
        self.call_empty(Effect::None, |p| p.weight(weight)).await
    }

    /// The database files (main file and WAL) of the configured database.
    pub async fn dump(&mut self) -> Result<Vec<File>> {
        let name = self.config.database.clone();
        match self.call(Effect::None, |p| p.dump(&name)).await? {
            Reply::Files(f) => Ok(f),
            other => Err(unexpected(other, "FILES")),
        }
    }

    /// Sends what is still queued and closes the connection.
    pub async fn close(mut self) -> Result<()> {
        if self.broken.is_none() {
            let limit = self.config.request_timeout;
            let _ = timeout(&self.rt, limit, self.wire.flush()).await;
        }
        Ok(())
    }

    // ----- internals ---------------------------------------------------------------------

    /// Checks the connection can be used and settles what earlier callers left behind: an
    /// abandoned request, a dropped transaction, dropped statements.
    pub(crate) async fn ready(&mut self) -> Result<()> {
        if std::process::id() != self.pid {
            return Err(Error::Forked {
                created_by: self.pid,
            });
        }
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        if let Some(e) = self.wire.core.error() {
            return Err(Error::from(e.clone()));
        }
        if let Some(old) = self.inflight.take() {
            self.wire.core.abandon(old);
        }
        for old in std::mem::take(&mut self.batch) {
            self.wire.core.abandon(old);
        }
        let dropped: Vec<_> = lock(&self.finalize_queue).drain(..).collect();
        for stmt in dropped {
            // Stale handles (leadership change) have nothing left to finalize.
            if let Ok(id) = self.wire.core.finalize(stmt) {
                self.wire.core.abandon(id);
            }
        }
        if let Some(depth) = self.pending_rollback.take() {
            let sql = rollback_sql(depth);
            let id = self.queue(|p| p.exec_sql(&sql, &[]))?;
            // Settled from here on, even if this caller walks away before the answer.
            self.tx_depth = depth.saturating_sub(1);
            let before = std::mem::replace(&mut self.tx, TxState::Unknown);
            let controls = controls_of(&sql);
            match self.wait(id, self.config.request_timeout).await {
                Ok(_) => self.tx = before.after_all(&controls),
                Err(e) => {
                    self.tx = state_after_failure(before, &controls, &e);
                    if e.breaks_connection() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Brings the connection back to autocommit before a pool hands it out again: settles
    /// what earlier users left behind, and rolls back any transaction that is open, or may
    /// be. Succeeds only when the server confirmed that no transaction is open (its
    /// ROLLBACK succeeded, or it answered that none was active).
    pub(crate) async fn reset(&mut self) -> Result<()> {
        self.ready().await?;
        if !self.tx.is_autocommit() {
            tracing::debug!(address = %self.address, "rolling back a transaction left open");
            let rollback = [TxControl::Rollback];
            let result = self
                .exec_tracked(&rollback, Effect::None, |p| p.exec_sql("ROLLBACK", &[]))
                .await;
            if !self.tx.is_autocommit() {
                return Err(result.err().unwrap_or(Error::Internal(
                    "a successful ROLLBACK left a transaction open",
                )));
            }
        }
        self.tx_depth = 0;
        Ok(())
    }

    /// True when the server is known to have no transaction open.
    pub(crate) fn knows_autocommit(&self) -> bool {
        self.tx.is_autocommit()
    }

    /// Forgets a marked rollback and the guards' depth: the server has no transaction.
    pub(crate) fn settle_rollback(&mut self) {
        self.pending_rollback = None;
        self.tx_depth = 0;
    }

    /// Marks savepoint `depth` (1: the whole transaction) to be rolled back before the next
    /// use, keeping the outermost mark.
    pub(crate) fn mark_rollback(&mut self, depth: u32) {
        self.pending_rollback = Some(self.pending_rollback.map_or(depth, |d| d.min(depth)));
    }

    /// Runs a transaction-control statement so that, whatever happens to the caller, the
    /// connection's idea of the transaction matches the server's: until the statement has
    /// succeeded, savepoint `cleanup` is marked for rollback before the next use. On success
    /// the nesting depth becomes `depth_after`.
    ///
    /// A statement that opens (`BEGIN`, `SAVEPOINT`: `depth_after == cleanup`) and that the
    /// server refuses changes nothing: no rollback is marked, so a transaction the caller
    /// did not start is left alone.
    pub(crate) async fn tx_control(
        &mut self,
        sql: &str,
        cleanup: u32,
        depth_after: u32,
    ) -> Result<()> {
        self.ready().await?;
        let mark = self.pending_rollback;
        let before = self.tx.clone();
        let controls = controls_of(sql);
        let id = self.queue(|p| p.exec_sql(sql, &[]))?;
        self.mark_rollback(cleanup);
        self.tx = TxState::Unknown;
        let result = self.wait(id, self.config.request_timeout).await;
        match result {
            Ok(_) => {
                self.pending_rollback = None;
                self.tx_depth = depth_after;
                self.tx = before.after_all(&controls);
                Ok(())
            }
            Err(e) => {
                let opening = depth_after == cleanup;
                if opening && matches!(e, Error::Server(_)) {
                    self.pending_rollback = mark;
                }
                self.tx = state_after_failure(before, &controls, &e);
                Err(self.classify(e, id, Effect::Write))
            }
        }
    }

    /// Queues a query, by id when `cached`.
    fn queue_query(&mut self, sql: &str, params: &[Value], cached: bool) -> Result<RequestId> {
        if cached {
            let cache = self.cache.clone();
            self.queue(|p| by_id(&cache, sql, |stmt| p.query(stmt, params)))
        } else {
            self.queue(|p| p.query_sql(sql, params))
        }
    }

    pub(crate) fn queue(
        &mut self,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<RequestId> {
        f(&mut self.wire.core).map_err(Error::from)
    }

    /// Waits for the next event of `id` within `limit`, classifying failures.
    pub(crate) async fn wait(&mut self, id: RequestId, limit: Duration) -> Result<Reply> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        self.inflight = Some(id);
        let result = match timeout(&self.rt, limit, self.wire.next_event(id)).await {
            None => {
                let e = Error::Timeout("waiting for the server's answer");
                self.broken = Some(e.clone());
                Err(e)
            }
            Some(Err(e)) => {
                if e.breaks_connection() {
                    self.broken = Some(e.clone());
                }
                Err(e)
            }
            Some(Ok(ev)) => {
                let completes = ev.completes_request();
                match ev.reply {
                    Reply::Failure(f) => {
                        if f.is_not_leader() || f.is_leadership_lost() {
                            self.saw_not_leader = true;
                        }
                        Err(Error::Server(f))
                    }
                    reply if completes => Ok(reply),
                    reply => {
                        // More batches follow: still owed.
                        return Ok(reply);
                    }
                }
            }
        };
        self.inflight = None;
        result
    }

    /// One request, one reply.
    pub(crate) async fn call(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<Reply> {
        let span = tracing::debug_span!("dqlite.request", address = %self.address);
        async move {
            self.ready().await?;
            let id = self.queue(f)?;
            let result = self.wait(id, self.config.request_timeout).await;
            result.map_err(|e| self.classify(e, id, effect))
        }
        .instrument(span)
        .await
    }

    async fn call_empty(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<()> {
        match self.call(effect, f).await? {
            Reply::Empty => Ok(()),
            other => Err(unexpected(other, "EMPTY")),
        }
    }

    /// Marks write failures whose outcome cannot be known as ambiguous.
    fn classify(&self, e: Error, id: RequestId, effect: Effect) -> Error {
        if effect != Effect::Write {
            return e;
        }
        let lost_after_send = matches!(
            e,
            Error::Connection(_) | Error::Protocol(_) | Error::Timeout(_)
        ) && self.wire.core.send_state(id) != SendState::Unsent;
        let leadership_lost = e
            .server_failure()
            .is_some_and(dqlite_proto::ServerFailure::is_leadership_lost);
        if lost_after_send || leadership_lost {
            Error::Ambiguous(Box::new(e))
        } else {
            e
        }
    }

    async fn query_all(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<(Vec<Text>, Vec<Vec<Value>>)> {
        check_returns_rows(sql)?;
        let cached = self.ensure_cached(sql, params.len()).await?;
        let started = self.rt.now();
        let mut attempt = 0;
        loop {
            self.ready().await?;
            let autocommit = self.tx.is_autocommit();
            let id = self.queue_query(sql, &params, cached)?;
            match self.collect_rows(id).await {
                Err(e) if autocommit && self.busy_pause(&e, started, &mut attempt).await => {}
                Err(e) => {
                    self.tx = state_after_failure(self.tx.clone(), &[], &e);
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }

    /// Reads every batch of a query result: the column names and each batch's values.
    async fn collect_rows(&mut self, id: RequestId) -> Result<(Vec<Text>, Vec<Vec<Value>>)> {
        let span = tracing::debug_span!("dqlite.query", address = %self.address);
        self.collect_batches(id).instrument(span).await
    }

    async fn collect_batches(&mut self, id: RequestId) -> Result<(Vec<Text>, Vec<Vec<Value>>)> {
        let mut columns = Vec::new();
        let mut batches: Vec<Vec<Value>> = Vec::new();
        // The first batch may wait for the query to run; later ones only for streaming.
        let mut limit = self.config.request_timeout;
        loop {
            let reply = self.wait(id, limit).await?;
            limit = self.config.frame_timeout;
            let batch: RowsBatch = match reply {
                Reply::Rows(b) => b,
                other => return Err(unexpected(other, "ROWS")),
            };
            let last = batch.is_last();
            let (cols, vals) = batch.into_parts();
            if columns.is_empty() {
                columns = cols;
            }
            // Batches are kept as they came: no copy of the whole result.
            batches.push(vals);
            if last {
                return Ok((columns, batches));
            }
        }
    }

    /// After a BUSY failure of a request that provably did not apply, begun at `started`:
    /// pauses (jittered, exponential) and returns true when the busy budget allows another
    /// try. Any other error, or a spent budget, returns false at once.
    async fn busy_pause(&mut self, e: &Error, started: Instant, attempt: &mut u32) -> bool {
        if !e.is_busy() || e.is_ambiguous() || self.is_broken() {
            return false;
        }
        let elapsed = self.rt.now().saturating_duration_since(started);
        let Some(left) = self.config.busy_timeout.checked_sub(elapsed) else {
            return false;
        };
        if left.is_zero() {
            return false;
        }
        *attempt += 1;
        tracing::debug!(attempt = *attempt, "database busy, retrying");
        let pause = self.busy_backoff.pause(*attempt);
        self.rt.sleep(pause.min(left)).await;
        true
    }
}

/// First words of the statements [`Connection::fetch`] and friends accept.
const ROW_STATEMENTS: [&str; 5] = ["SELECT", "VALUES", "WITH", "PRAGMA", "EXPLAIN"];

/// First words of statements that always return rows (`WITH` and `PRAGMA` may not).
const ALWAYS_ROWS: [&str; 3] = ["SELECT", "VALUES", "EXPLAIN"];

/// Refuses statements that return no rows on the query paths: servers answer them with a
/// confusing "not an error" without running them.
pub(crate) fn check_returns_rows(sql: &str) -> Result<()> {
    let first = sql::first_word(sql).unwrap_or("");
    if ROW_STATEMENTS.iter().any(|k| first.eq_ignore_ascii_case(k)) {
        return Ok(());
    }
    Err(Misuse::ReturnsNoRows(first.to_owned()).into())
}

/// The first word of `sql` when it always returns rows.
fn returns_rows(sql: &str) -> Option<String> {
    let first = sql::first_word(sql)?;
    ALWAYS_ROWS
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
        .then(|| first.to_owned())
}

/// Refuses statements that always return rows on the execute paths: servers fail them
/// (dqlite 1.11 with code 100, newer ones with "rows yielded when none expected").
fn check_returns_no_rows(sql: &str) -> Result<()> {
    match returns_rows(sql) {
        Some(first) => Err(Misuse::ReturnsRows(first).into()),
        None => Ok(()),
    }
}

/// The transaction-control statements of `sql`, in order.
fn controls_of(sql: &str) -> Vec<TxControl> {
    sql::statements(sql).filter_map(|s| s.tx_control).collect()
}

/// What the client can still say of the transaction after a request holding `controls`
/// failed with `e`, starting from `before`.
fn state_after_failure(before: TxState, controls: &[TxControl], e: &Error) -> TxState {
    if e.misuse().is_some() {
        // Nothing was sent.
        return before;
    }
    let Some(failure) = e.server_failure().filter(|_| !e.is_ambiguous()) else {
        // The connection failed: it is broken, and its transaction dies with it.
        return TxState::Unknown;
    };
    if !controls.is_empty() && failure.message.contains("no transaction is active") {
        // SQLite refuses COMMIT and ROLLBACK outside a transaction with these words.
        return TxState::Autocommit;
    }
    if controls.len() > 1 || (!before.is_autocommit() && may_roll_back(failure.code)) {
        // Part of the request may have run, or SQLite may have rolled back by itself.
        return TxState::Unknown;
    }
    before
}

/// The SQL that rolls back savepoint `depth` (1 and below: the whole transaction).
pub(crate) fn rollback_sql(depth: u32) -> String {
    if depth <= 1 {
        "ROLLBACK".to_owned()
    } else {
        format!("ROLLBACK TO SAVEPOINT dqlite_sp{depth}; RELEASE SAVEPOINT dqlite_sp{depth}")
    }
}

/// Encodes a request for the cached statement of `sql` (refused as stale if it is gone).
fn by_id(
    cache: &SharedCache,
    sql: &str,
    f: impl FnOnce(&dqlite_proto::Stmt) -> Result<RequestId, CoreError>,
) -> Result<RequestId, CoreError> {
    let mut cache = lock(cache);
    match cache.get(sql) {
        Some(stmt) => f(stmt),
        None => Err(dqlite_proto::Misuse::StaleStatement.into()),
    }
}

/// A reply of the wrong kind for its request: the server broke the protocol.
pub(crate) fn unexpected(reply: Reply, expected: &'static str) -> Error {
    let got = match reply {
        Reply::Leader(_) => "SERVER",
        Reply::Welcome { .. } => "WELCOME",
        Reply::Opened => "DB",
        Reply::Prepared(_) => "STMT",
        Reply::Executed(_) => "RESULT",
        Reply::Rows(_) => "ROWS",
        Reply::Empty => "EMPTY",
        Reply::Nodes(_) => "SERVERS",
        Reply::Files(_) => "FILES",
        Reply::Metadata(_) => "METADATA",
        Reply::Failure(_) => "FAILURE",
        _ => "unknown",
    };
    Error::Protocol(CoreError::Unexpected { expected, got })
}

/// Appends the rows of `ncols` values stored row after row in `values`.
fn split_rows_into(rows: &mut Vec<Vec<Value>>, ncols: usize, values: Vec<Value>) {
    if ncols == 0 {
        return;
    }
    rows.reserve(values.len() / ncols);
    let mut it = values.into_iter();
    while it.len() >= ncols {
        rows.push(it.by_ref().take(ncols).collect());
    }
}
