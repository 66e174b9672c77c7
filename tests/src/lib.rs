//! Test support for the dqlite client crates.
//!
//! * [`harness`] starts and controls real dqlite clusters (processes, ports, data
//!   directories);
//! * [`blocking`] drives the protocol core over a blocking socket (also the example of
//!   embedding the core without a runtime);
//! * `cluster_state` adds to [`harness::Cluster`] what needs the wire protocol: who leads,
//!   membership, and waiting until a cluster is ready.

#![warn(missing_docs)]

pub mod blocking;
mod cluster_state;
pub mod harness;

pub use cluster_state::READY_TIMEOUT;
