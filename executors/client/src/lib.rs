//! # dqlite-client: the async dqlite client, written once for every runtime
//!
//! This crate holds everything the tokio, smol and async-std adapters share: connections,
//! queries, prepared statements, transactions, leader discovery and the pool. It is generic
//! over a small [`Runtime`] trait and `futures-io` streams; use it through an adapter crate
//! (`dqlite-tokio`, `dqlite-smol`, `dqlite-async-std`), which supplies the runtime.
//!
//! ## Failure semantics in brief
//! * Retried automatically: `SQLITE_BUSY` (bounded, jittered); in the [`Pool`]'s own query
//!   methods, requests that provably had no effect ("not leader", never sent, reads).
//! * Never retried: a write or COMMIT whose answer was lost, or that failed with "leadership
//!   lost": it is reported as [`Error::Ambiguous`].
//! * Every wait has a finite default deadline (see [`Config`]).
//!
//! ## Everyday types
//! The features `chrono`, `time`, `uuid` and `json` (off by default; the adapter crates have
//! the same) make those crates' dates and times, `uuid::Uuid` and JSON values parameters and
//! results, with dates and times in go-dqlite's layouts: see [`types`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

// The code `#[derive(FromRow)]` generates names `::dqlite_client`, also inside this crate.
extern crate self as dqlite_client;

mod busy_poll;
mod coalesce;
mod config;
mod connection;
mod convert;
#[cfg(feature = "serde")]
mod de;
mod discovery;
mod driver;
mod error;
mod from_row;
mod lock;
mod node;
mod node_store;
mod params;
mod pool;
mod resolve;
mod row;
mod runtime;
#[cfg(feature = "serde")]
mod ser;
mod session;
mod statement;
mod statement_cache;
mod stream;
#[cfg(feature = "tls")]
mod tls;
mod transaction;
mod transport;
mod tx_state;
pub mod types;

pub use config::Config;
pub use connection::Connection;
pub use convert::FromValue;
#[cfg(feature = "serde")]
pub use de::De;
pub use discovery::connect_cluster;
#[cfg(feature = "derive")]
pub use dqlite_derive::FromRow;
pub use error::{Error, Misuse, Result, TlsErrorKind};
#[doc(hidden)]
pub use from_row::__private;
pub use from_row::FromRow;
pub use node::NodeClient;
pub use node_store::NodeStore;
pub use params::{IntoParams, Param};
pub use pool::{Pool, PoolOptions, PoolStatus, PooledConnection};
pub use row::{ColumnIndex, Row, Rows};
#[cfg(unix)]
pub use runtime::connect_unix_blocking;
pub use runtime::{BoxFuture, NapTimer, Runtime};
#[cfg(feature = "serde")]
pub use ser::params_from;
pub use statement::Statement;
pub use stream::RowStream;
#[cfg(feature = "tls")]
pub use tls::TlsConfig;
pub use transaction::Transaction;
pub use transport::{BoxStream, DialFn, Hooked, NoHooks, NodeStream, Plain, SocketHooks};
#[cfg(feature = "json")]
pub use types::Json;
#[cfg(feature = "uuid")]
pub use types::UuidBlob;

pub use dqlite_proto::discovery::{
    Discovery, DiscoveryConfig, DiscoveryError, NodeOutcome, RedirectPolicy,
};
pub use dqlite_proto::{
    ExecResult, File, Limits, Metadata, NodeInfo, NodeRole, RowsBatch, Text, Value, ValueType,
};

/// Defines an adapter crate's entry points for its runtime type `$rt` (which must implement
/// [`Runtime`] and `Default`): the `Connection`, `Pool`, `Transaction`, `RowStream` and
/// `PooledConnection` and `NodeClient` aliases, and `connect`, `connect_with`,
/// `connect_cluster`, `connect_node`, `connect_node_with`, `create_pool` and
/// `create_pool_with`. Adapters stay a few lines long and identical in
/// shape.
#[doc(hidden)]
#[macro_export]
macro_rules! adapter_api {
    ($rt:ty) => {
        /// A connection on this runtime: [`dqlite_client::Connection`](::dqlite_client::Connection)
        /// documents its methods (`execute`, `fetch`, `begin`, ...).
        pub type Connection = $crate::Connection<$rt>;
        /// A pool on this runtime: [`dqlite_client::Pool`](::dqlite_client::Pool) documents
        /// its methods (`acquire`, `execute`, `fetch`, ...).
        pub type Pool = $crate::Pool<$rt>;
        /// A pooled connection on this runtime (derefs to [`Connection`]); see
        /// [`dqlite_client::PooledConnection`](::dqlite_client::PooledConnection).
        pub type PooledConnection = $crate::PooledConnection<$rt>;
        /// A transaction on this runtime: [`dqlite_client::Transaction`](::dqlite_client::Transaction)
        /// documents `commit`, `rollback` and savepoints.
        pub type Transaction<'c> = $crate::Transaction<'c, $rt>;
        /// A row stream on this runtime: see [`dqlite_client::RowStream`](::dqlite_client::RowStream).
        pub type RowStream<'c> = $crate::RowStream<'c, $rt>;
        /// A node-level handle on this runtime, for cluster requests to any node (no
        /// database opened): see [`dqlite_client::NodeClient`](::dqlite_client::NodeClient).
        pub type NodeClient = $crate::NodeClient<$rt>;

        /// Connects to the node at `address` and opens the `"default"` database there.
        pub async fn connect(address: &str) -> $crate::Result<Connection> {
            connect_with(address, $crate::Config::default()).await
        }

        /// Connects to the node at `address` with `config`.
        pub async fn connect_with(
            address: &str,
            config: $crate::Config,
        ) -> $crate::Result<Connection> {
            $crate::Connection::connect(<$rt>::default(), address, config).await
        }

        /// Finds the leader among `addresses` and connects to it.
        pub async fn connect_cluster(
            addresses: &[&str],
            config: $crate::Config,
        ) -> $crate::Result<Connection> {
            $crate::connect_cluster(<$rt>::default(), addresses, config).await
        }

        /// Connects to the node at `address` for cluster requests (leader, cluster,
        /// describe, weight, transfer, add, assign, remove, dump), without opening a
        /// database: works on followers too.
        ///
        /// ```no_run
        /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
        #[doc = concat!("let mut node = ", module_path!(), "::connect_node(\"127.0.0.1:9002\").await?;")]
        /// println!("leader: {:?}", node.leader().await?);
        /// # Ok(()) }
        /// ```
        pub async fn connect_node(address: &str) -> $crate::Result<NodeClient> {
            connect_node_with(address, $crate::Config::default()).await
        }

        /// Connects to the node at `address` for cluster requests, with `config`'s
        /// deadlines.
        ///
        /// ```no_run
        /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
        /// let config = dqlite_client::Config::new().request_timeout(std::time::Duration::from_secs(5));
        #[doc = concat!("let mut node = ", module_path!(), "::connect_node_with(\"127.0.0.1:9002\", config).await?;")]
        /// node.set_weight(2).await?;
        /// # Ok(()) }
        /// ```
        pub async fn connect_node_with(
            address: &str,
            config: $crate::Config,
        ) -> $crate::Result<NodeClient> {
            $crate::NodeClient::connect(<$rt>::default(), address, config).await
        }

        /// Creates a pool over the cluster at `addresses`, with default settings.
        pub async fn create_pool(addresses: &[&str]) -> $crate::Result<Pool> {
            create_pool_with(
                addresses,
                $crate::Config::default(),
                $crate::PoolOptions::default(),
            )
            .await
        }

        /// Creates a pool with explicit connection settings and pool options.
        pub async fn create_pool_with(
            addresses: &[&str],
            config: $crate::Config,
            options: $crate::PoolOptions,
        ) -> $crate::Result<Pool> {
            $crate::Pool::new(<$rt>::default(), addresses, config, options).await
        }
    };
}
