//! Test support for the dqlite client crates.
//!
//! * [`harness`] starts and controls real dqlite clusters (processes, ports, data
//!   directories);
//! * [`cancel`] drops futures after a chosen number of polls;
//! * [`fake_server`] is a scripted fake node on loopback TCP (slow answers, silence);
//! * [`scripted`] is a node played by a script inside the test's process, over in-memory
//!   pipes, for deterministic tests of the async client's logic;
//! * [`nodes`] builds and runs the repository's own node program, `tlsnode`: clusters over
//!   mutual TLS ([`nodes::TlsCluster`]) or plaintext, readiness from the nodes' status lines,
//!   and Debian's `dqlite` shell;
//! * [`links`] runs `tlsnode` clusters whose node-to-node links pass through fault proxies,
//!   one per direction, for partitions between nodes ([`links::LinkedCluster`],
//!   [`links::Nemesis`]);
//! * [`register`] records a register workload's history and checks it for linearizability;
//! * [`tls`] makes the certificates for TLS clusters, good and bad;
//! * [`interop`] builds and runs `timeinterop`, a go-dqlite database/sql program that
//!   exchanges dates and times with the Rust client;
//! * `cluster_state` adds to [`harness::Cluster`] what needs the wire protocol: who leads,
//!   membership, and waiting until a cluster is ready.

#![warn(missing_docs)]

pub mod cancel;
mod cluster_state;
pub mod fake_server;
pub mod harness;
pub mod interop;
pub mod links;
pub mod nodes;
pub mod proxy;
pub mod register;
pub mod scripted;
pub mod tls;

pub use cluster_state::READY_TIMEOUT;
