//! # dqlite-proto: the sans-IO core of a dqlite client
//!
//! [dqlite](https://canonical.com/dqlite) replicates SQLite over Raft; clients talk to the
//! leader over a small binary protocol. This crate is that protocol and nothing else: it turns
//! commands into bytes and received bytes into events. It owns no socket, reads no clock and
//! spawns nothing, so it runs under any async runtime, a blocking socket, or a custom event
//! loop, and it can be fuzzed byte by byte.
//!
//! * [`Connection`]: one client connection: handshake, OPEN, SQL, prepared statements, cluster
//!   requests, row streams in batches, abandonment, poisoning.
//! * [`discovery::Discovery`]: finding the leader among a list of nodes.
//! * [`Value`], [`RowsBatch`], [`Reply`]: the data model, with zero-copy text and blobs.
//! * [`Error`]: typed by who is at fault.
//!
//! The other side of the wire (decoding requests, encoding replies and frames, as fake servers,
//! fuzz targets and tests need) is in the `server` module, behind the `server` feature. It is
//! not part of the client API and may change in any release.
//!
//! Requests that crash or wedge real servers (a zero-word body, DESCRIBE with a format other
//! than 0, CONNECT, HEARTBEAT, unknown types, finalized statement ids, 4-byte parameter counts
//! to servers that misread them, text with NUL bytes) cannot be produced through this API.
//!
//! See [`Connection`] for the drain rule and a complete example.

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

mod backoff;
mod connection;
pub mod discovery;
mod encoding;
mod error;
mod frame;
mod limits;
mod request;
mod response;
mod rows;
#[cfg(feature = "server")]
pub mod server;
pub mod sql;
mod value;

pub use backoff::Backoff;
pub use connection::{
    Config, Connection, Event, Reply, RequestId, SendState, Stmt, PROTOCOL_VERSION,
};
pub use error::{
    Error, LimitExceeded, Malformed, Misuse, ServerFailure, CODE_LEADERSHIP_LOST,
    CODE_LEADERSHIP_LOST_LEGACY, CODE_NOT_LEADER, CODE_NOT_LEADER_LEGACY, CODE_RAFT_NOT_LEADER,
};
pub use limits::Limits;
pub use request::NodeRole;
pub use response::{ExecResult, File, Metadata, NodeInfo, StmtInfo};
pub use rows::{RowsBatch, DONE, PART};
pub use value::{Text, Value, ValueType};

/// A query for a client to send right after OPEN on each new connection, its rows discarded:
/// a barrier.
///
/// A dqlite 1.11 node that has just become leader can compile a statement before it has
/// applied the log it inherited, so a statement naming a table created just before the
/// leader change can fail with "no such table". A query that names no table waits for the
/// node's raft barrier before it is answered, so once it is answered the node is up to date.
/// Later servers wait on their own; the handshake does not tell the generation, so clients
/// send it to every one. Its text is not `SELECT 1` so that a scripted test server can tell
/// it from an application's query.
pub const BARRIER_SQL: &str = "SELECT NULL AS barrier";
