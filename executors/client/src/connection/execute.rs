//! `execute` underneath: one statement with BUSY retries, scripts made atomic in a
//! savepoint or run statement by statement, and the transaction bookkeeping of each write.

use super::*;

/// The savepoint that makes a script of several statements atomic.
pub(super) const SCRIPT_SAVEPOINT: &str = "dqlite_script";

impl<R: Runtime> Connection<R> {
    /// One statement (or what the core refuses), BUSY retried while nothing can have applied.
    pub(super) async fn execute_one(
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
        let started = self.session.rt().now();
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

    /// A script without transaction control, made atomic by a savepoint: on a failure the
    /// statements that ran are rolled back before the error is returned. In autocommit, a
    /// script refused with BUSY is undone and tried again within the busy budget.
    ///
    /// Its steps are sent without settling in between (they are one operation); if the
    /// future is dropped part-way, `script_cleanup` has the savepoint rolled back before
    /// the connection's next use.
    pub(super) async fn execute_atomic(&mut self, script: &str) -> Result<ExecResult> {
        let savepoint = TxControl::Savepoint(SCRIPT_SAVEPOINT.to_owned());
        let release = TxControl::Release(SCRIPT_SAVEPOINT.to_owned());
        let started = self.session.rt().now();
        let mut attempt = 0;
        loop {
            self.ready().await?;
            // Releasing the savepoint commits only when it began the transaction.
            let before = self.tx.clone();
            let outer = before.is_autocommit();
            let commit = if outer { Effect::Write } else { Effect::None };
            self.script_cleanup = Some(outer);
            if let Err(e) = self
                .exec_tracked_now(std::slice::from_ref(&savepoint), Effect::None, |p| {
                    p.exec_sql(&format!("SAVEPOINT {SCRIPT_SAVEPOINT}"), &[])
                })
                .await
            {
                // Refused: no savepoint was opened (or the connection is gone).
                self.script_cleanup = None;
                return Err(e);
            }
            // Nothing the script does is committed before the RELEASE: if its answer is
            // lost, the uncommitted work dies with the connection.
            let result = match self
                .exec_tracked_now(&[], Effect::None, |p| p.exec_sql(script, &[]))
                .await
            {
                Ok(r) => match self
                    .exec_tracked_now(std::slice::from_ref(&release), commit, |p| {
                        p.exec_sql(&format!("RELEASE {SCRIPT_SAVEPOINT}"), &[])
                    })
                    .await
                {
                    Ok(_) => {
                        self.script_cleanup = None;
                        return Ok(r);
                    }
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if result.is_ambiguous() || self.is_broken() {
                // What the server holds is unknown; an ambiguous failure that left the
                // connection usable is rolled back (if anything is left) before its next use.
                return Err(result);
            }
            self.undo_script(before).await?;
            if outer && self.busy_pause(&result, started, &mut attempt).await {
                continue;
            }
            return Err(result);
        }
    }

    /// Rolls a failed script back to its savepoint and releases it, which restores the
    /// transaction state from `before` the script; if that fails, rolls back the
    /// transaction the savepoint began, and if that fails too the connection is broken: it
    /// must not be used inside a transaction nobody knows of.
    pub(super) async fn undo_script(&mut self, before: TxState) -> Result<()> {
        let outer = before.is_autocommit();
        let controls = [
            TxControl::RollbackTo(SCRIPT_SAVEPOINT.to_owned()),
            TxControl::Release(SCRIPT_SAVEPOINT.to_owned()),
        ];
        let undone = async {
            self.exec_tracked_now(&controls[..1], Effect::None, |p| {
                p.exec_sql(&format!("ROLLBACK TO {SCRIPT_SAVEPOINT}"), &[])
            })
            .await?;
            self.exec_tracked_now(&controls[1..], Effect::None, |p| {
                p.exec_sql(&format!("RELEASE {SCRIPT_SAVEPOINT}"), &[])
            })
            .await
        }
        .await;
        let Err(first) = undone else {
            // The savepoint was still there to roll back to (an error SQLite answers by
            // rolling back the whole transaction would have removed it), so the server is
            // where it was before the script, whatever the failure made the tracker assume.
            self.tx = before;
            self.script_cleanup = None;
            return Ok(());
        };
        if outer {
            let rollback = [TxControl::Rollback];
            let _ = self
                .exec_tracked_now(&rollback, Effect::None, |p| p.exec_sql("ROLLBACK", &[]))
                .await;
            if self.tx.is_autocommit() {
                self.script_cleanup = None;
                return Ok(());
            }
        }
        self.session.break_with(first.clone());
        Err(first)
    }

    /// A script that controls transactions itself, one statement at a time.
    pub(super) async fn execute_split(&mut self, script: &str) -> Result<ExecResult> {
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
    pub(super) async fn exec_tracked(
        &mut self,
        controls: &[TxControl],
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<ExecResult> {
        self.ready().await?;
        self.exec_tracked_now(controls, effect, f).await
    }

    /// [`exec_tracked`](Self::exec_tracked) without settling what earlier callers left
    /// behind first: for the later steps of one operation (a script's savepoint, body and
    /// release), whose own cleanup must not run between them.
    pub(super) async fn exec_tracked_now(
        &mut self,
        controls: &[TxControl],
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<ExecResult> {
        let before = self.tx.clone();
        if !controls.is_empty() {
            // Until the answer says otherwise: a dropped future leaves it unknown.
            self.tx = TxState::Unknown;
        }
        let span = tracing::debug_span!("dqlite.request", address = %self.session.address());
        // Checked by `exec_tracked`'s settling, or at the top of the operation this is a
        // later step of.
        let result = match self.session.request(effect, f).instrument(span).await {
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
}
