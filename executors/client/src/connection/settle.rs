//! Keeping the connection's idea of the server's transaction true: what earlier callers
//! left behind is settled before each request, transaction control is tracked whoever
//! sends it, and a pooled connection is reset to autocommit.

use super::execute::SCRIPT_SAVEPOINT;
use super::*;

impl<R: Runtime> Connection<R> {
    /// Checks the connection can be used and settles what earlier callers left behind: an
    /// abandoned request, a dropped transaction, dropped statements.
    pub(crate) async fn ready(&mut self) -> Result<()> {
        self.session.check()?;
        for old in std::mem::take(&mut self.batch) {
            self.session.abandon(old);
        }
        let dropped: Vec<_> = lock(&self.finalize_queue).drain(..).collect();
        for stmt in dropped {
            // Stale handles (leadership change) have nothing left to finalize.
            if let Ok(id) = self.session.queue(|p| p.finalize(stmt)) {
                self.session.abandon(id);
            }
        }
        if let Some(outer) = self.script_cleanup.take() {
            // Innermost first: a script's savepoint sits inside any guard's.
            let sql = if outer {
                "ROLLBACK".to_owned()
            } else {
                format!("ROLLBACK TO {SCRIPT_SAVEPOINT}; RELEASE {SCRIPT_SAVEPOINT}")
            };
            self.settle_with(&sql).await?;
        }
        if let Some(depth) = self.pending_rollback.take() {
            // Settled from here on, even if this caller walks away before the answer.
            self.tx_depth = depth.saturating_sub(1);
            self.settle_with(&rollback_sql(depth)).await?;
        }
        Ok(())
    }

    /// Sends `sql`, a rollback of what an earlier caller left open, and tracks its effect on
    /// the transaction state. The state is settled even if this caller walks away before
    /// the answer; only a failure that breaks the connection is returned.
    async fn settle_with(&mut self, sql: &str) -> Result<()> {
        let id = self.queue(|p| p.exec_sql(sql, &[]))?;
        let before = std::mem::replace(&mut self.tx, TxState::Unknown);
        let controls = controls_of(sql);
        match self.wait(id, self.session.config().request_timeout).await {
            Ok(_) => self.tx = before.after_all(&controls),
            Err(e) => {
                self.tx = state_after_failure(before, &controls, &e);
                if e.breaks_connection() {
                    return Err(e);
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
            tracing::debug!(address = %self.session.address(), "rolling back a transaction left open");
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
        let result = self.wait(id, self.session.config().request_timeout).await;
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
}

/// The transaction-control statements of `sql`, in order.
pub(super) fn controls_of(sql: &str) -> Vec<TxControl> {
    sql::statements(sql).filter_map(|s| s.tx_control).collect()
}

/// What the client can still say of the transaction after a request holding `controls`
/// failed with `e`, starting from `before`.
pub(super) fn state_after_failure(before: TxState, controls: &[TxControl], e: &Error) -> TxState {
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
