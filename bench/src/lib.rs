//! What `dqlite-bench` and `dqlite-failover` share.

/// Now as Unix time in nanoseconds: the clock that workload g's writers (ours and the Go
/// peer's) and its driver all read, so that their times compare.
pub fn unix_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
