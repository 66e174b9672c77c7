//! One connection to one dqlite node, with one open database.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dqlite_proto::{
    Error as CoreError, ExecResult, File, Metadata, NodeInfo, NodeRole, Reply, RequestId,
    RowsBatch, SendState, Text, Value,
};

use crate::config::Config;
use crate::convert::FromValue;
use crate::error::{Error, Result};
use crate::params::IntoParams;
use crate::row::Row;
use crate::runtime::{timeout, Runtime};
use crate::statement::Statement;
use crate::stream::RowStream;
use crate::transaction::Transaction;
use crate::wire::{Hooks, Wire};
use tracing::Instrument;

/// Longest pause between two BUSY retries.
const BUSY_PAUSE_CAP: Duration = Duration::from_millis(250);

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
    pub(crate) wire: Wire<R::Stream>,
    address: String,
    pub(crate) config: Arc<Config>,
    pid: u32,
    broken: Option<Error>,
    /// A request whose caller went away before its answer arrived.
    pub(crate) inflight: Option<RequestId>,
    /// Requests of a pipelined batch not yet answered to their caller.
    batch: Vec<RequestId>,
    /// Transaction nesting depth (0: no transaction).
    pub(crate) tx_depth: u32,
    /// A dropped transaction guard left this savepoint depth (0 = the whole transaction) to
    /// roll back before the next use.
    pub(crate) pending_rollback: Option<u32>,
    pub(crate) finalize_queue: Arc<Mutex<Vec<dqlite_proto::Stmt>>>,
    saw_not_leader: bool,
    rng: u64,
}

impl<R: Runtime> std::fmt::Debug for Connection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.address)
            .field("database", &self.config.database)
            .field("broken", &self.broken)
            .field("tx_depth", &self.tx_depth)
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
        let config = Arc::new(config);
        let span = tracing::debug_span!("dqlite.connect", address);
        async move {
            let wire = dial(&rt, address, &config).await?;
            Self::open(rt, wire, address.to_owned(), config).await
        }
        .instrument(span)
        .await
    }

    /// Opens the database on a wire that completed the handshake.
    pub(crate) async fn open(
        rt: R,
        wire: Wire<R::Stream>,
        address: String,
        config: Arc<Config>,
    ) -> Result<Connection<R>> {
        let seed = RandomState::new().build_hasher().finish() | 1;
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
            pending_rollback: None,
            finalize_queue: Arc::new(Mutex::new(Vec::new())),
            saw_not_leader: false,
            rng: seed,
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

    /// True inside a transaction begun with [`begin`](Self::begin).
    ///
    /// A transaction whose guard was dropped counts as ended (its rollback goes out first
    /// thing on the next call).
    pub fn in_transaction(&self) -> bool {
        let depth = self
            .pending_rollback
            .map_or(self.tx_depth, |d| d.saturating_sub(1));
        depth > 0
    }

    /// Runs one SQL statement (or several without parameters) and returns the last insert
    /// id and rows affected.
    ///
    /// A failure whose outcome is unknown is [`Error::Ambiguous`]; `SQLITE_BUSY` is retried
    /// per [`Config::busy_retries`].
    pub async fn execute(&mut self, sql: &str, params: impl IntoParams) -> Result<ExecResult> {
        let params = params.into_params();
        let mut attempt = 0;
        loop {
            let result = match self.call(Effect::Write, |p| p.exec_sql(sql, &params)).await {
                Ok(Reply::Executed(r)) => return Ok(r),
                Ok(other) => Err(unexpected(other)),
                Err(e) => Err(e),
            };
            self.busy_retry(result, &mut attempt).await?;
        }
    }

    /// Runs a script of several statements separated by `;`, without parameters.
    pub async fn execute_batch(&mut self, script: &str) -> Result<()> {
        self.execute(script, ()).await.map(|_| ())
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
        self.ready().await?;
        let mut outcomes: Vec<Result<RequestId>> = Vec::new();
        for p in params {
            let values = p.into_params();
            outcomes.push(self.queue(|c| c.exec_sql(sql, &values)));
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
                Ok(other) => Err(unexpected(other)),
                Err(e) => Err(self.classify(e, id, Effect::Write)),
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Runs a query and returns its rows, addressable by column name or index.
    pub async fn fetch(&mut self, sql: &str, params: impl IntoParams) -> Result<Vec<Row>> {
        let (columns, values) = self.query_all(sql, params.into_params()).await?;
        Ok(into_rows(columns, values))
    }

    /// Runs a query and returns its rows as plain value lists.
    pub async fn fetch_all(
        &mut self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Vec<Vec<Value>>> {
        let (columns, batches) = self.query_all(sql, params.into_params()).await?;
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

    /// Starts a query whose rows are read batch by batch: memory stays bounded by one
    /// batch (about a page of rows) plus what the caller keeps. Dropping the stream early
    /// is safe: the rest of the result is drained before the next request.
    pub async fn stream(&mut self, sql: &str, params: impl IntoParams) -> Result<RowStream<'_, R>> {
        let params = params.into_params();
        check_returns_rows(sql)?;
        self.ready().await?;
        let id = self.queue(|p| p.query_sql(sql, &params))?;
        Ok(RowStream::new(self, id))
    }

    /// Prepares a statement for repeated use. Drop it or pass it to
    /// [`finalize`](Self::finalize) when done; either way it is finalized on the server.
    pub async fn prepare(&mut self, sql: &str) -> Result<Statement> {
        match self.call(Effect::None, |p| p.prepare(sql)).await? {
            Reply::Prepared(stmt) => Ok(Statement::new(stmt, self.finalize_queue.clone())),
            other => Err(unexpected(other)),
        }
    }

    /// Executes a prepared statement.
    pub async fn execute_prepared(
        &mut self,
        stmt: &Statement,
        params: impl IntoParams,
    ) -> Result<ExecResult> {
        let params = params.into_params();
        let handle = stmt.handle_for(&params)?;
        let mut attempt = 0;
        loop {
            let result = match self.call(Effect::Write, |p| p.exec(handle, &params)).await {
                Ok(Reply::Executed(r)) => return Ok(r),
                Ok(other) => Err(unexpected(other)),
                Err(e) => Err(e),
            };
            self.busy_retry(result, &mut attempt).await?;
        }
    }

    /// Runs a prepared query and returns its rows.
    pub async fn fetch_prepared(
        &mut self,
        stmt: &Statement,
        params: impl IntoParams,
    ) -> Result<Vec<Row>> {
        let params = params.into_params();
        let handle = stmt.handle_for(&params)?;
        self.ready().await?;
        let id = self.queue(|p| p.query(handle, &params))?;
        let (columns, values) = self.collect_rows(id).await?;
        Ok(into_rows(columns, values))
    }

    /// Finalizes a prepared statement now.
    pub async fn finalize(&mut self, mut stmt: Statement) -> Result<()> {
        let Some(handle) = stmt.take() else {
            return Ok(());
        };
        match self.call(Effect::None, move |p| p.finalize(handle)).await? {
            Reply::Empty => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Begins a transaction. The guard commits with
    /// [`commit`](Transaction::commit) or rolls back with [`rollback`](Transaction::rollback);
    /// dropped without either, it is rolled back before the connection is used again.
    pub async fn begin(&mut self) -> Result<Transaction<'_, R>> {
        self.ready().await?;
        if self.tx_depth > 0 {
            return Err(Error::Misuse(
                "a transaction is already open; use Transaction::begin for a savepoint".into(),
            ));
        }
        self.tx_control("BEGIN", 1, 1).await?;
        Ok(Transaction::new(self, 1))
    }

    /// Runs `f` inside a transaction: committed when it returns `Ok`, rolled back when it
    /// returns `Err` (whose error is then returned).
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// let id = conn
    ///     .transaction(async |tx| {
    ///         tx.execute("UPDATE acct SET bal = bal - 10 WHERE id = 1", ()).await?;
    ///         tx.execute("UPDATE acct SET bal = bal + 10 WHERE id = 2", ()).await?;
    ///         Ok(2)
    ///     })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<T, F>(&mut self, f: F) -> Result<T>
    where
        F: for<'t> AsyncFnOnce(&'t mut Transaction<'_, R>) -> Result<T>,
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
            other => Err(unexpected(other)),
        }
    }

    /// The cluster's nodes, with their roles.
    pub async fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        match self.call(Effect::None, |p| p.cluster(true)).await? {
            Reply::Nodes(n) => Ok(n),
            other => Err(unexpected(other)),
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
            other => Err(unexpected(other)),
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
            other => Err(unexpected(other)),
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
        let dropped: Vec<_> = match self.finalize_queue.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for stmt in dropped {
            // Stale handles (leadership change) have nothing left to finalize.
            if let Ok(id) = self.wire.core.finalize(stmt) {
                self.wire.core.abandon(id);
            }
        }
        if let Some(depth) = self.pending_rollback.take() {
            let id = self.queue(|p| p.exec_sql(&rollback_sql(depth), &[]))?;
            // Settled from here on, even if this caller walks away before the answer.
            self.tx_depth = depth.saturating_sub(1);
            // A server failure here means the server had already ended the transaction.
            match self.wait(id, self.config.request_timeout).await {
                Err(e) if e.breaks_connection() => return Err(e),
                _ => {}
            }
        }
        Ok(())
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
    pub(crate) async fn tx_control(
        &mut self,
        sql: &str,
        cleanup: u32,
        depth_after: u32,
    ) -> Result<()> {
        self.ready().await?;
        let id = self.queue(|p| p.exec_sql(sql, &[]))?;
        self.mark_rollback(cleanup);
        let result = self.wait(id, self.config.request_timeout).await;
        match result {
            Ok(_) => {
                self.pending_rollback = None;
                self.tx_depth = depth_after;
                Ok(())
            }
            Err(e) => Err(self.classify(e, id, Effect::Write)),
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
            other => Err(unexpected(other)),
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
        let mut attempt = 0;
        loop {
            self.ready().await?;
            let id = self.queue(|p| p.query_sql(sql, &params))?;
            let result = self.collect_rows(id).await;
            if result.is_ok() {
                return result;
            }
            self.busy_retry(result.map(|_| ()), &mut attempt).await?;
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
                other => return Err(unexpected(other)),
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

    /// Passes an error through unless it is BUSY and retries remain, in which case it
    /// pauses (jittered, exponential) and returns `Ok` so the caller tries again.
    async fn busy_retry(&mut self, result: Result<()>, attempt: &mut u32) -> Result<()> {
        match result {
            Err(e) if e.is_busy() && *attempt < self.config.busy_retries => {
                *attempt += 1;
                tracing::debug!(attempt = *attempt, "database busy, retrying");
                self.rng ^= self.rng << 13;
                self.rng ^= self.rng >> 7;
                self.rng ^= self.rng << 17;
                let base = self
                    .config
                    .busy_backoff
                    .saturating_mul(1 << (*attempt).min(10))
                    .min(BUSY_PAUSE_CAP);
                let frac = 0.5 + (self.rng >> 11) as f64 / (1u64 << 53) as f64 / 2.0;
                self.rt.sleep(base.mul_f64(frac)).await;
                Ok(())
            }
            other => other,
        }
    }
}

/// First words of the statements [`Connection::fetch`] and friends accept.
const ROW_STATEMENTS: [&str; 5] = ["SELECT", "VALUES", "WITH", "PRAGMA", "EXPLAIN"];

/// Refuses statements that return no rows on the query paths: servers answer them with a
/// confusing "not an error" without running them.
fn check_returns_rows(sql: &str) -> Result<()> {
    let first = dqlite_proto::sql::first_word(sql).unwrap_or("");
    if ROW_STATEMENTS.iter().any(|k| first.eq_ignore_ascii_case(k)) {
        return Ok(());
    }
    Err(Error::Misuse(format!(
        "fetch and stream run statements that return rows (SELECT, VALUES, WITH, PRAGMA, \
         EXPLAIN); use execute for `{first}`"
    )))
}

/// The SQL that rolls back savepoint `depth` (1 and below: the whole transaction).
pub(crate) fn rollback_sql(depth: u32) -> String {
    if depth <= 1 {
        "ROLLBACK".to_owned()
    } else {
        format!("ROLLBACK TO SAVEPOINT dqlite_sp{depth}; RELEASE SAVEPOINT dqlite_sp{depth}")
    }
}

/// Dials `address` within the dial timeout and queues the handshake.
pub(crate) async fn dial<R: Runtime>(
    rt: &R,
    address: &str,
    config: &Config,
) -> Result<Wire<R::Stream>> {
    match timeout(rt, config.dial_timeout, rt.connect(address)).await {
        None => Err(Error::Timeout("dialing")),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(stream)) => Ok(Wire::new(
            stream,
            config.core(),
            Hooks {
                after_read: R::after_read,
                read_now: R::read_now,
                nap: rt.nap_timer(),
            },
            config.busy_poll,
            config.stream_coalesce,
        )),
    }
}

pub(crate) fn unexpected(reply: Reply) -> Error {
    Error::Misuse(format!("unexpected reply {reply:?}"))
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

fn into_rows(columns: Vec<Text>, batches: Vec<Vec<Value>>) -> Vec<Row> {
    let columns: Arc<[Text]> = columns.into();
    batches
        .into_iter()
        .flat_map(|values| Row::from_batch(&columns, values))
        .collect()
}
