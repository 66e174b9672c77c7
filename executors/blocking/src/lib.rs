//! A blocking dqlite client: no async runtime, one thread per connection, over the same
//! sans-IO protocol core ([`dqlite_proto`]) as the async clients.
//!
//! Two levels:
//!
//! * [`Client`]: a connection to the leader with its database open. Connect to one node
//!   ([`Client::connect`]) or find the leader among several ([`Client::connect_cluster`]),
//!   then [`execute`](Client::execute), [`query`](Client::query) (all rows) or
//!   [`query_each`](Client::query_each) (row by row, bounded memory),
//!   [`prepare`](Client::prepare) statements, and run [`transaction`](Client::transaction)s
//!   that roll back when dropped. Errors are typed ([`Error`]): a server's refusal leaves
//!   the connection usable, a socket failure or timeout breaks it.
//! * [`BlockingConn`]: the core over a blocking socket, one request per call, replies as
//!   the core's [`Reply`](dqlite_proto::Reply) values. It is also the smallest complete
//!   example of driving the core from an event loop of one's own.
//!
//! Connections are TCP (`HOST:PORT`); with the `tls` feature, over rustls
//! (`Config::tls`, `BlockingConn::connect_tls`).
//!
//! ```no_run
//! use dqlite_blocking::{Client, Config};
//! use dqlite_proto::Value;
//!
//! let config = Config::new("app");
//! let mut client = Client::connect_cluster(&["127.0.0.1:9001", "127.0.0.1:9002"], &config)?;
//! client.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v INTEGER)", &[])?;
//!
//! let mut tx = client.transaction()?;
//! tx.execute("INSERT INTO kv VALUES (?, ?)", &[Value::Text("a".into()), Value::Integer(1)])?;
//! tx.commit()?;
//!
//! let upsert = client.prepare("INSERT OR REPLACE INTO kv VALUES (?, ?)")?;
//! client.execute_prepared(&upsert, &[Value::Text("b".into()), Value::Integer(2)])?;
//! client.finalize(upsert)?;
//!
//! let rows = client.query("SELECT k, v FROM kv ORDER BY k", &[])?;
//! assert_eq!(rows.columns(), ["k", "v"]);
//! # Ok::<(), dqlite_blocking::Error>(())
//! ```
//!
//! `examples/quickstart.rs` runs this against a cluster:
//! `cargo run -p dqlite-blocking --example quickstart -- 127.0.0.1:9001`.
//! `examples/event_loop.rs` drives the core itself on non-blocking sockets in a `poll(2)`
//! loop, several connections on one thread:
//! `cargo run -p dqlite-blocking --example event_loop -- 127.0.0.1:9001 4`.

#![warn(missing_docs)]

mod client;
mod conn;

pub use client::{
    Client, Config, Error, Result, Rows, Statement, Transaction, DEFAULT_CONNECT_TIMEOUT,
};
pub use conn::{BlockingConn, CallError, DEFAULT_TIMEOUT};
pub use dqlite_proto;
