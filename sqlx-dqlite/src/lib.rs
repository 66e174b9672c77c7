//! # sqlx-dqlite: a sqlx 0.8 driver for dqlite
//!
//! dqlite is SQLite replicated with Raft. This crate lets sqlx (its `Pool`, `query`,
//! `query_as`, `FromRow`, transactions, `Migrator` and `Any`) run on a dqlite cluster,
//! through the project's async client on tokio. Connecting finds the cluster's leader, so a
//! `sqlx::Pool<Dqlite>` always talks to it, and replaces connections when leadership moves.
//!
//! ```no_run
//! use sqlx_dqlite::{Dqlite, DqlitePoolOptions};
//!
//! #[derive(sqlx::FromRow)]
//! struct Item {
//!     id: i64,
//!     name: String,
//! }
//!
//! # async fn demo() -> Result<(), sqlx::Error> {
//! let pool = DqlitePoolOptions::new()
//!     .max_connections(8)
//!     .connect("dqlite://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003/app")
//!     .await?;
//! sqlx::query("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
//!     .execute(&pool)
//!     .await?;
//! sqlx::query("INSERT INTO items (name) VALUES (?)").bind("apple").execute(&pool).await?;
//! let items: Vec<Item> = sqlx::query_as("SELECT id, name FROM items ORDER BY id")
//!     .fetch_all(&pool)
//!     .await?;
//! # let _ = items;
//! # Ok(()) }
//! ```
//!
//! ## Failure semantics
//! * An ambiguous outcome (a write or COMMIT that may or may not have applied) is
//!   `sqlx::Error::Database` with code [`CODE_AMBIGUOUS`]; [`is_ambiguous`] tells. It is
//!   never retried and never reported as success.
//! * After "not leader", or once the connection broke, `ping` fails: a `sqlx::Pool` closes
//!   the connection (it pings connections when they are returned and before handing out an
//!   idle one) and connects to the new leader.
//! * `SQLITE_BUSY` outside a transaction is retried by the client within the busy timeout.
//!
//! The [`error`] module lists the whole mapping.
//!
//! ## Runtimes
//! The driver runs on tokio (sqlx's `runtime-tokio` feature): connections are the client's
//! tokio connections.
//!
//! ## Not available
//! * Compile-time checked macros (`query!`, `query_as!`): sqlx 0.8 builds them only for its
//!   own drivers. Use `sqlx::query_as` with `#[derive(sqlx::FromRow)]`.
//! * `describe`: the protocol reports no column types before a query runs.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod any;
mod connection;
mod database;
pub mod error;
mod migrate;
mod options;
mod transaction;
pub mod types;

pub use connection::DqliteConnection;
pub use database::{
    Dqlite, DqliteArguments, DqliteColumn, DqliteQueryResult, DqliteRow, DqliteStatement,
    DqliteTypeInfo, DqliteValue, DqliteValueRef,
};
pub use error::{
    dqlite_error, is_ambiguous, DqliteError, CODE_AMBIGUOUS, CODE_MISUSE, CODE_NO_LEADER,
    CODE_PARTLY_APPLIED,
};
pub use options::DqliteConnectOptions;
pub use transaction::DqliteTransactionManager;

/// A pool of dqlite connections (`sqlx::Pool<Dqlite>`).
pub type DqlitePool = sqlx_core::pool::Pool<Dqlite>;

/// Options for a [`DqlitePool`].
pub type DqlitePoolOptions = sqlx_core::pool::PoolOptions<Dqlite>;

/// A transaction on a dqlite connection.
pub type DqliteTransaction<'c> = sqlx_core::transaction::Transaction<'c, Dqlite>;

sqlx_core::impl_into_arguments_for_arguments!(DqliteArguments<'q>);
sqlx_core::impl_column_index_for_row!(DqliteRow);
sqlx_core::impl_column_index_for_statement!(DqliteStatement);
sqlx_core::impl_acquire!(Dqlite, DqliteConnection);
sqlx_core::impl_encode_for_option!(Dqlite);
