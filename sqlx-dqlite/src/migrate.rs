//! Migrations: `sqlx::migrate::Migrator` on a dqlite cluster.
//!
//! # The lock
//! [`Migrate::lock`] begins a write transaction (`BEGIN IMMEDIATE`) on the leader and holds it
//! until [`Migrate::unlock`], which commits it. dqlite has one writer per database, on the
//! leader, so while one runner holds the lock every other runner's `BEGIN IMMEDIATE` is
//! answered BUSY and retried by the client (for the busy timeout, 30 s by default: raise it
//! with [`DqliteConnectOptions::busy_timeout`](crate::DqliteConnectOptions::busy_timeout)
//! for long migrations). The waiting runner then reads the history the first one committed
//! and applies nothing twice.
//!
//! The lock is the transaction itself, so it cannot outlive its holder: when the holder
//! crashes or the leader fails, the uncommitted transaction (and so the lock) is gone with
//! it, no stale lock row is left behind, and nothing of the interrupted run was applied. A
//! new leader starts unlocked; a rerun converges.
//!
//! # Each migration
//! Inside the lock each migration runs in a savepoint together with the insert of its
//! `_sqlx_migrations` row, and the whole run commits at once at `unlock`: a run is
//! all-or-nothing. Before running a migration the history is read again in the same
//! transaction; a version already recorded (with the same checksum) is skipped, one with a
//! different checksum fails with `VersionMismatch`. Without the lock
//! (`Migrator::set_locking(false)`) each migration is its own `BEGIN IMMEDIATE` transaction
//! with the same check, so concurrent runners still apply each migration exactly once.
//!
//! A migration whose SQL controls transactions itself (`BEGIN`, `COMMIT`, ...) is refused,
//! and so is a `-- no-transaction` migration under the lock.
//!
//! # An ambiguous COMMIT
//! If the answer to the run's COMMIT is lost, `unlock` closes the connection, connects to the
//! (new) leader, takes the write lock (so a COMMIT still in flight has landed or is gone) and
//! reads the history: when every migration of the run is recorded with its checksum the run
//! succeeded; otherwise the ambiguous error is returned (and a rerun applies what is
//! missing).
//!
//! # Databases
//! dqlite creates a database when it is first opened and cannot drop one:
//! `create_database` opens it, `database_exists` is true whenever the cluster answers (the
//! check opens, and so creates, the database), and `drop_database` fails.

use std::time::{Duration, Instant};

use futures_core::future::BoxFuture;
use sqlx_core::migrate::{AppliedMigration, Migrate, MigrateDatabase, MigrateError, Migration};
use sqlx_core::Error;

use crate::connection::DqliteConnection;
use crate::database::Dqlite;
use crate::error::from_client;
use crate::options::DqliteConnectOptions;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success INTEGER NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

const SAVEPOINT: &str = "_sqlx_migration";

impl MigrateDatabase for Dqlite {
    fn create_database(url: &str) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let options: DqliteConnectOptions = url.parse()?;
            let conn = DqliteConnection::connect_client(&options).await?;
            conn.close().await.map_err(from_client)
        })
    }

    fn database_exists(url: &str) -> BoxFuture<'_, Result<bool, Error>> {
        Box::pin(async move {
            let options: DqliteConnectOptions = url.parse()?;
            let conn = DqliteConnection::connect_client(&options).await?;
            conn.close().await.map_err(from_client)?;
            Ok(true)
        })
    }

    fn drop_database(_url: &str) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            Err(Error::Configuration(
                "dqlite cannot drop a database; drop its tables instead".into(),
            ))
        })
    }
}

fn client(e: dqlite_client::Error) -> MigrateError {
    MigrateError::Execute(from_client(e))
}

impl DqliteConnection {
    /// Versions and checksums recorded in the history table.
    async fn history(&mut self) -> Result<Vec<AppliedMigration>, MigrateError> {
        let rows = self
            .inner
            .fetch(
                "SELECT version, checksum FROM _sqlx_migrations ORDER BY version",
                (),
            )
            .await
            .map_err(client)?;
        rows.iter()
            .map(|row| {
                Ok(AppliedMigration {
                    version: row.get(0).map_err(client)?,
                    checksum: row.get::<Vec<u8>, _>(1).map_err(client)?.into(),
                })
            })
            .collect()
    }

    /// Begins the step's transaction: a savepoint under the lock, else its own.
    async fn begin_step(&mut self) -> Result<(), MigrateError> {
        let sql = if self.migration_lock {
            format!("SAVEPOINT {SAVEPOINT}")
        } else {
            "BEGIN IMMEDIATE".to_owned()
        };
        self.inner.execute(&sql, ()).await.map_err(client)?;
        Ok(())
    }

    async fn end_step(&mut self) -> Result<(), dqlite_client::Error> {
        let sql = if self.migration_lock {
            format!("RELEASE SAVEPOINT {SAVEPOINT}")
        } else {
            "COMMIT".to_owned()
        };
        self.inner.execute(&sql, ()).await.map(|_| ())
    }

    async fn undo_step(&mut self) {
        let result = if self.migration_lock {
            match self
                .inner
                .execute(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"), ())
                .await
            {
                Ok(_) => self
                    .inner
                    .execute(&format!("RELEASE SAVEPOINT {SAVEPOINT}"), ())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        } else if self.inner.in_transaction() {
            self.inner.execute("ROLLBACK", ()).await.map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            self.poisoned = Some(format!("a failed migration could not be rolled back: {e}"));
        }
    }

    /// The checksum recorded for `version`, read in the current transaction.
    async fn recorded(&mut self, version: i64) -> Result<Option<Vec<u8>>, dqlite_client::Error> {
        let row = self
            .inner
            .fetch_optional(
                "SELECT checksum FROM _sqlx_migrations WHERE version = ?",
                (version,),
            )
            .await?;
        row.map(|r| r.get::<Vec<u8>, _>(0)).transpose()
    }

    /// Runs one migration step (`up`: apply, else revert) in a transaction or savepoint.
    async fn step(&mut self, migration: &Migration, up: bool) -> Result<Duration, MigrateError> {
        self.settle().await?;
        if self.depth > 0 {
            return Err(MigrateError::Execute(Error::Configuration(
                "migrations cannot run inside a sqlx transaction".into(),
            )));
        }
        if dqlite_proto::sql::summarize(&migration.sql).tx_control {
            return Err(MigrateError::ExecuteMigration(
                Error::Configuration(
                    "a migration must not begin or end transactions itself".into(),
                ),
                migration.version,
            ));
        }
        if migration.no_tx && self.migration_lock {
            return Err(MigrateError::ExecuteMigration(
                Error::Configuration(
                    "a no-transaction migration cannot run under the migration lock; \
                     use Migrator::set_locking(false)"
                        .into(),
                ),
                migration.version,
            ));
        }
        let started = Instant::now();
        if migration.no_tx {
            // Outside any transaction, as asked: the statement and its row are separate.
            if up
                && self
                    .recorded(migration.version)
                    .await
                    .map_err(client)?
                    .is_some()
            {
                return Ok(Duration::ZERO);
            }
            self.inner
                .execute(&migration.sql, ())
                .await
                .map_err(|e| MigrateError::ExecuteMigration(from_client(e), migration.version))?;
            let elapsed = started.elapsed();
            self.record(migration, up, elapsed)
                .await
                .map_err(|e| MigrateError::ExecuteMigration(from_client(e), migration.version))?;
            return Ok(elapsed);
        }
        self.begin_step().await?;
        match self.step_body(migration, up, started).await {
            Ok(elapsed) => match self.end_step().await {
                Ok(()) => {
                    if up && self.migration_lock {
                        self.applied_in_run
                            .push((migration.version, migration.checksum.to_vec()));
                    }
                    Ok(elapsed)
                }
                Err(e) => {
                    if !e.is_ambiguous() {
                        self.undo_step().await;
                    }
                    Err(MigrateError::ExecuteMigration(
                        from_client(e),
                        migration.version,
                    ))
                }
            },
            Err(e) => {
                self.undo_step().await;
                Err(e)
            }
        }
    }

    async fn step_body(
        &mut self,
        migration: &Migration,
        up: bool,
        started: Instant,
    ) -> Result<Duration, MigrateError> {
        let version = migration.version;
        let recorded = self.recorded(version).await.map_err(client)?;
        match (&recorded, up) {
            // Another runner applied it: nothing to do, if it is the same migration.
            (Some(sum), true) if sum.as_slice() == &*migration.checksum => {
                return Ok(Duration::ZERO)
            }
            (Some(_), true) => return Err(MigrateError::VersionMismatch(version)),
            (None, false) => return Ok(Duration::ZERO),
            _ => {}
        }
        self.inner
            .execute(&migration.sql, ())
            .await
            .map_err(|e| MigrateError::ExecuteMigration(from_client(e), version))?;
        let elapsed = started.elapsed();
        self.record(migration, up, elapsed)
            .await
            .map_err(|e| MigrateError::ExecuteMigration(from_client(e), version))?;
        Ok(elapsed)
    }

    /// Adds (`up`) or removes the history row of `migration`.
    async fn record(
        &mut self,
        migration: &Migration,
        up: bool,
        elapsed: Duration,
    ) -> Result<(), dqlite_client::Error> {
        if up {
            let nanos = i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX);
            self.inner
                .execute(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                     VALUES (?, ?, 1, ?, ?)",
                    (
                        migration.version,
                        &*migration.description,
                        &*migration.checksum,
                        nanos,
                    ),
                )
                .await?;
        } else {
            self.inner
                .execute(
                    "DELETE FROM _sqlx_migrations WHERE version = ?",
                    (migration.version,),
                )
                .await?;
        }
        Ok(())
    }

    /// After an ambiguous COMMIT of a run: connects again and tells whether every migration
    /// of the run is recorded. The check takes the write lock first, so it waits (for the
    /// busy timeout) while the old transaction may still be in flight, and sees its outcome.
    async fn run_was_committed(&mut self) -> Result<bool, MigrateError> {
        self.migration_lock = false;
        let fresh = DqliteConnection::connect_client(&self.options).await?;
        // The old connection is closed here: a COMMIT the server has not received yet is
        // then never applied.
        drop(std::mem::replace(&mut self.inner, fresh));
        self.inner
            .execute("BEGIN IMMEDIATE", ())
            .await
            .map_err(client)?;
        let history = self.history().await;
        let end = self.inner.execute("ROLLBACK", ()).await;
        let history = history?;
        end.map_err(client)?;
        Ok(self.applied_in_run.iter().all(|(version, sum)| {
            history
                .iter()
                .any(|h| h.version == *version && &*h.checksum == sum.as_slice())
        }))
    }
}

impl Migrate for DqliteConnection {
    fn ensure_migrations_table(&mut self) -> BoxFuture<'_, Result<(), MigrateError>> {
        Box::pin(async move {
            self.settle().await?;
            self.inner.execute(CREATE_TABLE, ()).await.map_err(client)?;
            Ok(())
        })
    }

    fn dirty_version(&mut self) -> BoxFuture<'_, Result<Option<i64>, MigrateError>> {
        Box::pin(async move {
            self.settle().await?;
            let row = self
                .inner
                .fetch_optional(
                    "SELECT version FROM _sqlx_migrations WHERE success = 0 ORDER BY version LIMIT 1",
                    (),
                )
                .await
                .map_err(client)?;
            row.map(|r| r.get(0)).transpose().map_err(client)
        })
    }

    fn list_applied_migrations(
        &mut self,
    ) -> BoxFuture<'_, Result<Vec<AppliedMigration>, MigrateError>> {
        Box::pin(async move {
            self.settle().await?;
            self.history().await
        })
    }

    fn lock(&mut self) -> BoxFuture<'_, Result<(), MigrateError>> {
        Box::pin(async move {
            self.settle().await?;
            self.release_stale_lock().await?;
            if self.depth > 0 || self.inner.in_transaction() {
                return Err(MigrateError::Execute(Error::Configuration(
                    "the migration lock cannot be taken inside a transaction".into(),
                )));
            }
            // Retried by the client while another runner holds the write lock.
            self.inner
                .execute("BEGIN IMMEDIATE", ())
                .await
                .map_err(client)?;
            self.migration_lock = true;
            self.applied_in_run.clear();
            Ok(())
        })
    }

    fn unlock(&mut self) -> BoxFuture<'_, Result<(), MigrateError>> {
        Box::pin(async move {
            if !self.migration_lock {
                return Ok(());
            }
            match self.inner.execute("COMMIT", ()).await {
                Ok(_) => {
                    self.migration_lock = false;
                    self.applied_in_run.clear();
                    Ok(())
                }
                Err(e) if e.is_ambiguous() => {
                    let committed = self.run_was_committed().await;
                    self.applied_in_run.clear();
                    match committed {
                        Ok(true) => Ok(()),
                        _ => Err(client(e)),
                    }
                }
                Err(e) => {
                    self.migration_lock = false;
                    self.applied_in_run.clear();
                    if self.inner.in_transaction() {
                        let _ = self.inner.execute("ROLLBACK", ()).await;
                    }
                    Err(client(e))
                }
            }
        })
    }

    fn apply<'e: 'm, 'm>(
        &'e mut self,
        migration: &'m Migration,
    ) -> BoxFuture<'m, Result<Duration, MigrateError>> {
        Box::pin(async move { self.step(migration, true).await })
    }

    fn revert<'e: 'm, 'm>(
        &'e mut self,
        migration: &'m Migration,
    ) -> BoxFuture<'m, Result<Duration, MigrateError>> {
        Box::pin(async move { self.step(migration, false).await })
    }
}
