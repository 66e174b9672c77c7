//! What the core accepts from a server before it refuses the connection.

/// Limits on what the server may send, checked before anything is allocated for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message body accepted, in bytes. Default 64 MiB.
    pub max_frame_bytes: u64,
    /// Most rows accepted in one query result. Default 2^32.
    pub max_rows_per_result: u64,
    /// Most ROWS messages accepted for one query result. Default 2^24.
    pub max_frames_per_result: u64,
    /// Most columns accepted in a result. Default 32767 (SQLite's hard ceiling).
    pub max_columns: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 << 20,
            max_rows_per_result: 1 << 32,
            max_frames_per_result: 1 << 24,
            max_columns: 32767,
        }
    }
}
