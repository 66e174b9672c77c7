//! How the client's errors become [`sqlx::Error`](sqlx_core::Error)s.
//!
//! | client error | sqlx error |
//! | --- | --- |
//! | `Ambiguous` (a write or COMMIT that may or may not have applied) | `Error::Database`, code [`CODE_AMBIGUOUS`] |
//! | `PartlyApplied` (a script that controls transactions stopped part-way) | `Error::Database`, code [`CODE_PARTLY_APPLIED`] |
//! | `NoLeader` (no leader found while connecting) | `Error::Database`, code [`CODE_NO_LEADER`] |
//! | `NotLeader` and the server's "not leader" | `Error::Database`, code `"10250"` ([`DqliteError::is_not_leader`]) |
//! | any other server failure | `Error::Database`, code: the SQLite extended code in decimal |
//! | a refusal before anything was sent (`Misuse`) | `Error::Database`, code [`CODE_MISUSE`] |
//! | `Connection` (nothing known to have applied) | `Error::Io` |
//! | `Timeout` (nothing known to have applied) | `Error::Io` of kind `TimedOut` |
//! | `Tls` | `Error::Tls` |
//! | `Conversion` | `Error::Decode` |
//! | `NoRows` | `Error::RowNotFound` |
//! | `Protocol`, `Internal` and the rest | `Error::Protocol` |
//!
//! Every `Error::Database` from this driver is a [`DqliteError`]: downcast it
//! (`err.as_database_error().and_then(|e| e.try_downcast_ref::<DqliteError>())`) for the
//! client's error, or use [`is_ambiguous`] on any `sqlx::Error`.

use std::borrow::Cow;
use std::fmt;
use std::io;

use sqlx_core::error::{DatabaseError, Error, ErrorKind};

/// [`DatabaseError::code`] of an ambiguous outcome: a write or COMMIT whose answer was lost,
/// or that failed with "leadership lost". It may or may not have been applied; it is never
/// retried. Read back to find out, or make the write idempotent and repeat it.
pub const CODE_AMBIGUOUS: &str = "DQLITE_AMBIGUOUS";

/// [`DatabaseError::code`] of a script that controls transactions itself and failed after
/// some of its statements ran.
pub const CODE_PARTLY_APPLIED: &str = "DQLITE_PARTLY_APPLIED";

/// [`DatabaseError::code`] when no node of the cluster could be confirmed as leader while
/// connecting. A pool keeps trying until its acquire timeout (the cluster may be electing).
pub const CODE_NO_LEADER: &str = "DQLITE_NO_LEADER";

/// [`DatabaseError::code`] of a request refused by the client before anything was sent
/// (parameters that do not match the placeholders, `RETURNING`, several statements where
/// one runs, ...): a clean failure.
pub const CODE_MISUSE: &str = "DQLITE_MISUSE";

/// A database error from dqlite: the client's [`dqlite_client::Error`], with a code.
#[derive(Debug)]
pub struct DqliteError {
    inner: dqlite_client::Error,
    code: Cow<'static, str>,
    message: String,
}

impl DqliteError {
    pub(crate) fn new(inner: dqlite_client::Error) -> DqliteError {
        let code = match &inner {
            dqlite_client::Error::Ambiguous(_) => Cow::Borrowed(CODE_AMBIGUOUS),
            dqlite_client::Error::PartlyApplied { .. } => Cow::Borrowed(CODE_PARTLY_APPLIED),
            dqlite_client::Error::NoLeader(_) => Cow::Borrowed(CODE_NO_LEADER),
            dqlite_client::Error::Misuse(_) => Cow::Borrowed(CODE_MISUSE),
            other => match other.code() {
                Some(code) => Cow::Owned(code.to_string()),
                None => Cow::Borrowed("DQLITE"),
            },
        };
        let message = inner.to_string();
        DqliteError {
            inner,
            code,
            message,
        }
    }

    /// The client's error.
    pub fn client_error(&self) -> &dqlite_client::Error {
        &self.inner
    }

    /// The outcome of the write or COMMIT is unknown (code [`CODE_AMBIGUOUS`]).
    pub fn is_ambiguous(&self) -> bool {
        self.inner.is_ambiguous()
    }

    /// The node is not (or no longer) the leader; the connection is then invalid, and a
    /// pool replaces it.
    pub fn is_not_leader(&self) -> bool {
        self.inner.is_not_leader()
    }

    /// SQLite was busy and the client's retries (outside transactions) ran out.
    pub fn is_busy(&self) -> bool {
        self.inner.is_busy()
    }

    /// The SQLite or dqlite result code, when the server sent one.
    pub fn sqlite_code(&self) -> Option<u64> {
        self.inner.code()
    }
}

impl fmt::Display for DqliteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.inner)
    }
}

impl DatabaseError for DqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.code))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn is_transient_in_connect_phase(&self) -> bool {
        // A cluster electing a leader: the pool's connect loop tries again.
        matches!(
            self.inner,
            dqlite_client::Error::NoLeader(_) | dqlite_client::Error::NotLeader { .. }
        )
    }

    fn kind(&self) -> ErrorKind {
        if self.inner.is_ambiguous() {
            return ErrorKind::Other;
        }
        // SQLite's extended constraint codes.
        match self.inner.code() {
            Some(2067 | 1555) => ErrorKind::UniqueViolation,
            Some(787) => ErrorKind::ForeignKeyViolation,
            Some(1299) => ErrorKind::NotNullViolation,
            Some(275) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// True when `error` is an ambiguous outcome from this driver: the write or COMMIT may or may
/// not have been applied (code [`CODE_AMBIGUOUS`]).
///
/// ```
/// let e = sqlx_core::Error::RowNotFound;
/// assert!(!sqlx_dqlite::is_ambiguous(&e));
/// ```
pub fn is_ambiguous(error: &Error) -> bool {
    dqlite_error(error).is_some_and(DqliteError::is_ambiguous)
}

/// The [`DqliteError`] inside `error`, if it is one.
pub fn dqlite_error(error: &Error) -> Option<&DqliteError> {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<DqliteError>())
}

/// Converts a client error (see the module table).
pub(crate) fn from_client(e: dqlite_client::Error) -> Error {
    use dqlite_client::Error as C;
    match e {
        C::Connection(io) => Error::Io(io::Error::new(io.kind(), io.to_string())),
        C::Timeout(what) => Error::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("timed out: {what}"),
        )),
        C::Tls { .. } => Error::Tls(Box::new(e)),
        C::Conversion { .. } => Error::Decode(Box::new(e)),
        C::NoRows => Error::RowNotFound,
        C::Protocol(_) | C::Internal(_) | C::Forked { .. } | C::NodeStore { .. } | C::Pool(_) => {
            Error::Protocol(e.to_string())
        }
        other => Error::Database(Box::new(DqliteError::new(other))),
    }
}
