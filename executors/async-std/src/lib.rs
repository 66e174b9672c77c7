//! # dqlite-async-std: the dqlite client under async-std (deprecated)
//!
//! **Deprecated:** async-std is discontinued upstream; its authors recommend smol. This crate
//! stays for existing async-std applications and shares smol's code path: async-std runs on
//! the same `async-io` reactor, so the [`AsyncStd`] runtime *is* `dqlite_smol::Smol`. New code
//! should depend on `dqlite-smol` directly.

#![warn(missing_docs)]

pub use dqlite_client::*;

/// The runtime used under async-std (the same as smol's: both run on `async-io`).
pub type AsyncStd = dqlite_smol::Smol;

dqlite_client::adapter_api!(AsyncStd);
