//! `timeinterop` (`tests/nodes/timeinterop`), a go-dqlite database/sql program that writes
//! dates and times for the Rust client to read and reads back what the Rust client wrote, so
//! tests can check both directions against go-dqlite's driver (see the program's own doc
//! comment for its output).
//!
//! It is built like `tlsnode`, offline from Debian's Go packages, by
//! `bash tests/nodes/build.sh timeinterop` into `target/nodes/timeinterop`, once per test
//! process, on first use. `DQLITE_TIMEINTEROP`, if set and not empty, names a prebuilt
//! binary instead.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::nodes::{build_go_program, run_bounded, ShellOutput};

/// The `timeinterop` binary, built (or found up to date) once per process. Panics with the
/// build script's output if the build fails.
pub fn timeinterop_program() -> PathBuf {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PROGRAM.get_or_init(|| {
        if let Some(path) = std::env::var_os("DQLITE_TIMEINTEROP").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        build_go_program("timeinterop")
    });
    match found {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Runs `timeinterop -cluster NODES -db DATABASE ARGS..` (`ARGS` is `write` or
/// `read TABLE`), killed after `timeout`. Panics if it cannot be built or started.
pub fn timeinterop(nodes: &str, database: &str, args: &[&str], timeout: Duration) -> ShellOutput {
    let program = timeinterop_program();
    let mut cmd = Command::new(&program);
    cmd.args(["-cluster", nodes, "-db", database]).args(args);
    run_bounded(cmd, timeout).unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}
