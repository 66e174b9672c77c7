//! Requests under the query API: the statement cache, queueing and waiting through the
//! session, collecting a result's batches, and pauses between BUSY retries.

use super::*;

impl<R: Runtime> Connection<R> {
    /// Makes sure the statement cache holds `sql`, preparing it now if needed; false when
    /// it is not to be cached (no parameters, caching off, not a single statement). A
    /// parameter count that does not match is refused before the PREPARE goes out.
    pub(super) async fn ensure_cached(&mut self, sql: &str, given: usize) -> Result<bool> {
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

    /// Queues a query, by id when `cached`.
    pub(super) fn queue_query(
        &mut self,
        sql: &str,
        params: &[Value],
        cached: bool,
    ) -> Result<RequestId> {
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
        self.session.queue(f)
    }

    /// Waits for the next event of `id` within `limit` (see [`Session::wait`]).
    pub(crate) async fn wait(&mut self, id: RequestId, limit: Duration) -> Result<Reply> {
        self.session.wait(id, limit).await
    }

    /// Gives up on request `id` (a dropped row stream): its answer is discarded when it
    /// comes.
    pub(crate) fn abandon(&mut self, id: RequestId) {
        self.session.abandon(id);
    }

    /// The deadline for a query's first answer, and the one for each later batch.
    pub(crate) fn timeouts(&self) -> (Duration, Duration) {
        let config = self.session.config();
        (config.request_timeout, config.frame_timeout)
    }

    /// One request, one reply, after settling what earlier callers left behind.
    pub(crate) async fn call(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<Reply> {
        let span = tracing::debug_span!("dqlite.request", address = %self.session.address());
        async move {
            self.ready().await?;
            self.session.request(effect, f).await
        }
        .instrument(span)
        .await
    }

    pub(super) fn classify(&self, e: Error, id: RequestId, effect: Effect) -> Error {
        self.session.classify(e, id, effect)
    }

    pub(super) async fn query_all(
        &mut self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<(Vec<Text>, Vec<Vec<Value>>)> {
        check_returns_rows(sql)?;
        let cached = self.ensure_cached(sql, params.len()).await?;
        let started = self.session.rt().now();
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
    pub(super) async fn collect_rows(
        &mut self,
        id: RequestId,
    ) -> Result<(Vec<Text>, Vec<Vec<Value>>)> {
        let span = tracing::debug_span!("dqlite.query", address = %self.session.address());
        self.collect_batches(id).instrument(span).await
    }

    pub(super) async fn collect_batches(
        &mut self,
        id: RequestId,
    ) -> Result<(Vec<Text>, Vec<Vec<Value>>)> {
        let mut columns = Vec::new();
        let mut batches: Vec<Vec<Value>> = Vec::new();
        // The first batch may wait for the query to run; later ones only for streaming.
        let mut limit = self.session.config().request_timeout;
        loop {
            let reply = self.wait(id, limit).await?;
            limit = self.session.config().frame_timeout;
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
    pub(super) async fn busy_pause(
        &mut self,
        e: &Error,
        started: Instant,
        attempt: &mut u32,
    ) -> bool {
        if !e.is_busy() || e.is_ambiguous() || self.is_broken() {
            return false;
        }
        let elapsed = self.session.rt().now().saturating_duration_since(started);
        let Some(left) = self.session.config().busy_timeout.checked_sub(elapsed) else {
            return false;
        };
        if left.is_zero() {
            return false;
        }
        *attempt += 1;
        tracing::debug!(attempt = *attempt, "database busy, retrying");
        let pause = self.busy_backoff.pause(*attempt);
        self.session.rt().sleep(pause.min(left)).await;
        true
    }
}

/// Encodes a request for the cached statement of `sql` (refused as stale if it is gone).
pub(super) fn by_id(
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

/// Appends the rows of `ncols` values stored row after row in `values`.
pub(super) fn split_rows_into(rows: &mut Vec<Vec<Value>>, ncols: usize, values: Vec<Value>) {
    if ncols == 0 {
        return;
    }
    rows.reserve(values.len() / ncols);
    let mut it = values.into_iter();
    while it.len() >= ncols {
        rows.push(it.by_ref().take(ncols).collect());
    }
}
