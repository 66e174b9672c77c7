//! cargo-fuzz target `deframer`: see `checks::deframer` for what it asserts (run under the allocation
//! bound of `checks::run`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../proto/tests/fuzz_checks/mod.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::run("deframer", data));
