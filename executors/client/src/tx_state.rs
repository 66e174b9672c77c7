//! What the client knows of its connection's transaction on the server, kept up to date from
//! the transaction-control statements that succeeded (`BEGIN`, `COMMIT`, `SAVEPOINT`, ...),
//! whoever sent them: a [`Transaction`](crate::Transaction) guard or the caller's own SQL.

use dqlite_proto::sql::TxControl;

/// The server-side transaction state of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum TxState {
    /// No transaction is open: every statement commits on its own.
    #[default]
    Autocommit,
    /// A transaction is open.
    Open {
        /// It was started by `SAVEPOINT` (so releasing its outermost savepoint commits it),
        /// not by `BEGIN`.
        by_savepoint: bool,
        /// Open savepoints, outermost first (names folded to lower case).
        savepoints: Vec<String>,
    },
    /// Not known: a request that could have changed it failed part-way or was abandoned.
    Unknown,
}

impl TxState {
    /// True when no transaction is open, for certain.
    pub(crate) fn is_autocommit(&self) -> bool {
        *self == TxState::Autocommit
    }

    /// The state after `control` succeeded on the server, or [`TxState::Unknown`] when
    /// SQLite would have refused it in this state (the two disagree).
    pub(crate) fn after(self, control: &TxControl) -> TxState {
        use TxControl::*;
        match (self, control) {
            // Whatever came before, these leave no doubt.
            (TxState::Unknown | TxState::Open { .. }, Commit | Rollback) => TxState::Autocommit,
            (TxState::Unknown | TxState::Autocommit, Begin) => TxState::Open {
                by_savepoint: false,
                savepoints: Vec::new(),
            },
            (TxState::Autocommit, Savepoint(name)) => TxState::Open {
                by_savepoint: true,
                savepoints: vec![name.clone()],
            },
            (
                TxState::Open {
                    by_savepoint,
                    mut savepoints,
                },
                Savepoint(name),
            ) => {
                savepoints.push(name.clone());
                TxState::Open {
                    by_savepoint,
                    savepoints,
                }
            }
            (
                TxState::Open {
                    by_savepoint,
                    mut savepoints,
                },
                Release(name) | RollbackTo(name),
            ) => {
                let Some(at) = savepoints.iter().rposition(|s| s == name) else {
                    return TxState::Unknown;
                };
                let releases = matches!(control, Release(_));
                savepoints.truncate(if releases { at } else { at + 1 });
                if releases && by_savepoint && savepoints.is_empty() {
                    TxState::Autocommit
                } else {
                    TxState::Open {
                        by_savepoint,
                        savepoints,
                    }
                }
            }
            _ => TxState::Unknown,
        }
    }

    /// The state after every statement of `controls` succeeded, in order.
    pub(crate) fn after_all<'a>(
        self,
        controls: impl IntoIterator<Item = &'a TxControl>,
    ) -> TxState {
        controls.into_iter().fold(self, TxState::after)
    }
}

/// Primary SQLite result codes after which SQLite may have rolled back the whole transaction
/// by itself (FULL, IOERR, BUSY, NOMEM, INTERRUPT).
pub(crate) fn may_roll_back(code: u64) -> bool {
    matches!(code & 0xff, 5 | 7 | 9 | 10 | 13)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dqlite_proto::sql::tx_control;

    fn run(state: TxState, sql: &[&str]) -> TxState {
        let controls: Vec<TxControl> = sql.iter().filter_map(|s| tx_control(s)).collect();
        state.after_all(&controls)
    }

    #[test]
    fn follows_sqlite_transaction_rules() {
        let auto = TxState::Autocommit;
        assert!(run(auto.clone(), &["BEGIN", "COMMIT"]).is_autocommit());
        assert!(run(auto.clone(), &["BEGIN IMMEDIATE", "ROLLBACK"]).is_autocommit());
        assert!(!run(auto.clone(), &["BEGIN"]).is_autocommit());
        // A savepoint outside a transaction starts one; releasing it commits.
        assert!(run(auto.clone(), &["SAVEPOINT a", "RELEASE a"]).is_autocommit());
        assert!(!run(auto.clone(), &["SAVEPOINT a", "ROLLBACK TO a"]).is_autocommit());
        assert!(run(auto.clone(), &["SAVEPOINT a", "SAVEPOINT b", "RELEASE A"]).is_autocommit());
        assert!(!run(auto.clone(), &["SAVEPOINT a", "SAVEPOINT b", "RELEASE b"]).is_autocommit());
        // Inside BEGIN, releasing every savepoint leaves the transaction open.
        assert!(!run(auto.clone(), &["BEGIN", "SAVEPOINT a", "RELEASE a"]).is_autocommit());
        assert!(run(auto.clone(), &["BEGIN", "SAVEPOINT a", "COMMIT"]).is_autocommit());
        // What SQLite would refuse means the bookkeeping is off.
        assert_eq!(run(auto.clone(), &["COMMIT"]), TxState::Unknown);
        assert_eq!(run(auto.clone(), &["BEGIN", "BEGIN"]), TxState::Unknown);
        assert_eq!(run(auto.clone(), &["BEGIN", "RELEASE x"]), TxState::Unknown);
        assert_eq!(run(TxState::Unknown, &["SAVEPOINT a"]), TxState::Unknown);
        // A successful COMMIT or ROLLBACK, or BEGIN, settles an unknown state.
        assert!(run(TxState::Unknown, &["COMMIT"]).is_autocommit());
        assert!(run(TxState::Unknown, &["ROLLBACK"]).is_autocommit());
        assert!(!run(TxState::Unknown, &["BEGIN"]).is_autocommit());
    }

    #[test]
    fn rollback_codes() {
        assert!(may_roll_back(5));
        assert!(may_roll_back(261));
        assert!(may_roll_back(10250));
        assert!(!may_roll_back(19));
        assert!(!may_roll_back(1));
    }
}
