//! The client's one error type.

use std::io;
use std::sync::Arc;

use dqlite_proto::discovery::DiscoveryError;
use dqlite_proto::{NodeInfo, ServerFailure, ValueType};

/// Result with the client's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, by kind. Match on this; use the helpers on [`Error`] for the common
/// questions ("retry?", "did my write happen?").
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connection failed or was closed (dial error, reset, EOF). Nothing is known to
    /// have been applied by the request that saw it, unless it is wrapped in
    /// [`Error::Ambiguous`].
    #[error("connection error: {0}")]
    Connection(Arc<io::Error>),
    /// The server sent something the protocol does not allow; the connection was dropped.
    #[error("protocol error: {0}")]
    Protocol(dqlite_proto::Error),
    /// The server refused the request (SQLite or dqlite error code and message).
    #[error("{0}")]
    Server(ServerFailure),
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(&'static str),
    /// No leader could be found: what each node asked said, or why it could not be asked.
    /// When the connect deadline ended the search ([`DiscoveryError::timed_out`]) it is also
    /// a timeout ([`is_timeout`](Error::is_timeout)).
    #[error("{0}")]
    NoLeader(DiscoveryError),
    /// The pool could not provide a connection.
    #[error("pool: {0}")]
    Pool(&'static str),
    /// The API was used in a way it does not allow; nothing was sent.
    #[error("misuse: {0}")]
    Misuse(Misuse),
    /// A value could not be converted to the requested Rust type.
    #[error("cannot convert {found:?} value{} to {expected}", column.as_ref().map(|c| format!(" of column {c}")).unwrap_or_default())]
    Conversion {
        /// The Rust type asked for.
        expected: &'static str,
        /// The wire type found.
        found: ValueType,
        /// The column, when the value came from a row.
        column: Option<String>,
    },
    /// A row could not be deserialized into a serde type ([`Row::deserialize`](crate::Row::deserialize),
    /// [`De`](crate::De)) for a reason other than a value of the wrong type (which is
    /// [`Error::Conversion`]): a length that does not match, a text that names no variant, ...
    #[cfg(feature = "serde")]
    #[error("cannot deserialize {}: {message}", column.as_ref().map(|c| format!("column {c}")).unwrap_or_else(|| "row".to_owned()))]
    Deserialize {
        /// The column, when the failure concerns one.
        column: Option<String>,
        /// What serde reported.
        message: String,
    },
    /// A column name or index that the result does not have.
    #[error("no such column: {0}")]
    NoSuchColumn(String),
    /// A query expected to return a row returned none.
    #[error("query returned no rows")]
    NoRows,
    /// The object was created in another process (before `fork()`); it must not share the
    /// parent's socket. Create connections and pools in the process that uses them.
    #[error("connection used in a forked child process (created by pid {created_by})")]
    Forked {
        /// The pid that created the object.
        created_by: u32,
    },
    /// A script of several statements that controls transactions itself (`BEGIN`, `COMMIT`,
    /// `SAVEPOINT`, ...) failed part-way: its first `executed` statements ran, the next one
    /// failed with `error` (which says whether that one's outcome is known), and the rest
    /// were not sent. Statements that ran inside a transaction the script left open are not
    /// committed: [`Connection::in_transaction`](crate::Connection::in_transaction) tells.
    /// Scripts without transaction control never fail part-way: they run atomically.
    #[error("script failed at statement {} of {total} ({executed} ran before it): {error}", executed + 1)]
    PartlyApplied {
        /// Statements that ran before the failure.
        executed: usize,
        /// Statements in the script.
        total: usize,
        /// Why the next statement failed.
        error: Box<Error>,
    },
    /// The outcome of a write or COMMIT cannot be known: the request was sent and then the
    /// connection was lost, or the leader lost leadership before the write committed. It may
    /// or may not have been applied; it is never retried automatically. Check the data
    /// (or make the write idempotent) before trying again.
    #[error("ambiguous outcome (the write may or may not have been applied): {0}")]
    Ambiguous(Box<Error>),
    /// The node refused to open a database because it is not the leader (servers since
    /// dqlite 1.18.2 check on OPEN; older ones accept the OPEN and refuse the queries with
    /// an [`Error::Server`] "not leader" failure instead). [`is_not_leader`](Error::is_not_leader)
    /// is true for both.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(rt: R) -> dqlite_client::Result<()> {
    /// use dqlite_client::{Config, Connection, Error};
    /// match Connection::connect(rt.clone(), "127.0.0.1:9002", Config::new()).await {
    ///     Err(Error::NotLeader { leader: Some(leader), .. }) => {
    ///         let conn = Connection::connect(rt, leader.address.as_str(), Config::new()).await?;
    ///         # let _ = conn;
    ///     }
    ///     other => { other?; }
    /// }
    /// # Ok(()) }
    /// ```
    #[error("{address} is not the leader ({})", match leader {
        Some(l) => format!("it names {} (id {}) as leader", l.address, l.id),
        None => "it knows no leader".to_owned(),
    })]
    NotLeader {
        /// The node that refused.
        address: String,
        /// The leader as that node knows it, asked on the same connection.
        leader: Option<NodeInfo>,
        /// The server's failure.
        failure: ServerFailure,
    },
    /// A TLS handshake failed, or the server refused the client's certificate, or the TLS
    /// settings cannot be used (`kind` says which). Never followed by a plaintext attempt.
    #[error("TLS{}: {kind:?}: {message}", if address.is_empty() { String::new() } else { format!(" with {address}") })]
    Tls {
        /// The node's address (empty for settings, and for a refusal seen after the
        /// handshake).
        address: String,
        /// What went wrong.
        kind: TlsErrorKind,
        /// The TLS library's description.
        message: String,
    },
    /// The node store file (see [`PoolOptions::node_store`](crate::PoolOptions::node_store))
    /// could not be read, is not in the node store's layout, or could not be written.
    #[error("node store {path}: {reason}")]
    NodeStore {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A state the client's own logic rules out was reached: a bug in this crate, reported
    /// rather than panicking. The connection it came from is not reused.
    ///
    /// ```
    /// let e = dqlite_client::Error::Internal("example");
    /// assert!(e.to_string().contains("bug"));
    /// ```
    #[error("internal error (a bug in dqlite-client): {0}")]
    Internal(&'static str),
}

impl Error {
    /// The server failure behind this error, if there is one.
    pub fn server_failure(&self) -> Option<&ServerFailure> {
        match self {
            Error::Server(f) | Error::NotLeader { failure: f, .. } => Some(f),
            Error::Ambiguous(e) => e.server_failure(),
            Error::PartlyApplied { error, .. } => error.server_failure(),
            _ => None,
        }
    }

    /// The SQLite / dqlite error code, if the server sent one.
    pub fn code(&self) -> Option<u64> {
        self.server_failure().map(|f| f.code)
    }

    /// The node answered that it is not the leader.
    pub fn is_not_leader(&self) -> bool {
        self.server_failure()
            .is_some_and(ServerFailure::is_not_leader)
    }

    /// The database was busy (`SQLITE_BUSY` and its extended codes).
    pub fn is_busy(&self) -> bool {
        self.server_failure().is_some_and(ServerFailure::is_busy)
    }

    /// The outcome of the write is unknown (see [`Error::Ambiguous`]).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, Error::Ambiguous(_))
    }

    /// The reason for a refusal before anything was sent, if this is one.
    pub fn misuse(&self) -> Option<&Misuse> {
        match self {
            Error::Misuse(m) => Some(m),
            _ => None,
        }
    }

    /// A constraint (UNIQUE, PRIMARY KEY, CHECK, ...) was violated.
    pub fn is_constraint(&self) -> bool {
        self.server_failure()
            .is_some_and(ServerFailure::is_constraint)
    }

    /// A deadline passed.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Timeout(_) => true,
            Error::NoLeader(e) => e.timed_out,
            Error::Ambiguous(e) => e.is_timeout(),
            _ => false,
        }
    }

    /// The connection that produced this error cannot be used again.
    pub(crate) fn breaks_connection(&self) -> bool {
        match self {
            Error::Connection(_)
            | Error::Protocol(_)
            | Error::Timeout(_)
            | Error::Internal(_)
            | Error::Tls { .. }
            | Error::NotLeader { .. } => true,
            Error::Ambiguous(e) => e.breaks_connection(),
            Error::PartlyApplied { error, .. } => error.breaks_connection(),
            Error::Server(f) => f.is_not_leader() || f.is_leadership_lost() || f.code == 0,
            _ => false,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::tls::tls_error("", &e) {
            return tls;
        }
        Error::Connection(Arc::new(e))
    }
}

/// Why TLS failed (see [`Error::Tls`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// The server's certificate is not signed by a trusted CA.
    UnknownIssuer,
    /// The server's certificate has expired (or is not valid yet).
    Expired,
    /// The server's certificate is not valid for the name checked (the address's host, or
    /// the configured server name).
    NameMismatch,
    /// The server refused the client (no client certificate, or one it does not trust).
    Refused,
    /// The server does not speak TLS (it closed the connection or sent something else).
    NotTls,
    /// The TLS settings are unusable (unreadable PEM, a key that does not fit, no name to
    /// check a unix-socket node's certificate against).
    Settings,
    /// Another TLS failure; the message says which.
    Other,
}

impl From<dqlite_proto::Error> for Error {
    fn from(e: dqlite_proto::Error) -> Self {
        match e {
            dqlite_proto::Error::Server(f) => Error::Server(f),
            dqlite_proto::Error::Misuse(m) => Error::Misuse(Misuse::Request(m)),
            dqlite_proto::Error::Closed { .. } => {
                Error::Connection(Arc::new(io::Error::new(io::ErrorKind::UnexpectedEof, e)))
            }
            dqlite_proto::Error::Invariant(what) => Error::Internal(what),
            other => Error::Protocol(other),
        }
    }
}

impl From<Misuse> for Error {
    fn from(m: Misuse) -> Self {
        Error::Misuse(m)
    }
}

impl From<dqlite_proto::Misuse> for Error {
    fn from(m: dqlite_proto::Misuse) -> Self {
        Error::Misuse(Misuse::Request(m))
    }
}

/// Why a call was refused before anything was sent. Match on it; the message says what to
/// do instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// The request itself cannot be sent (empty SQL, NUL in text, `RETURNING`, parameters
    /// that do not match the placeholders, several statements where one runs, a stale
    /// statement, ...).
    #[error(transparent)]
    Request(dqlite_proto::Misuse),
    /// A pool or cluster connection needs at least one node address.
    #[error("at least one node address is needed")]
    NoAddresses,
    /// [`begin`](crate::Connection::begin) while a transaction is open (one begun with SQL,
    /// or another guard: use [`Transaction::begin`](crate::Transaction::begin) to nest).
    #[error("a transaction is already open on this connection; nest with Transaction::begin")]
    TransactionOpen,
    /// Transaction-control SQL (`BEGIN`, `COMMIT`, `ROLLBACK`, `SAVEPOINT`, `RELEASE`) where
    /// it would break the client's own bookkeeping: inside a [`Transaction`](crate::Transaction)
    /// guard (use its methods) or in a pipelined batch.
    #[error("transaction-control SQL is not allowed {0}; use begin/commit/rollback instead")]
    TransactionControl(&'static str),
    /// A statement that returns rows sent to `execute`.
    #[error("`{0}` returns rows: use fetch (or stream) instead of execute")]
    ReturnsRows(String),
    /// A statement that returns no rows sent to `fetch` or `stream`.
    #[error(
        "fetch and stream run statements that return rows (SELECT, VALUES, WITH, PRAGMA, \
         EXPLAIN); use execute for `{0}`"
    )]
    ReturnsNoRows(String),
    /// The prepared statement was already finalized.
    #[error("the statement was already finalized")]
    Finalized,
    /// A value given to [`params_from`](crate::params_from) that does not make a list of
    /// parameters (a map, a nested struct or sequence, ...).
    #[cfg(feature = "serde")]
    #[error("cannot make parameters: {0}")]
    Serialize(String),
    /// A parameter value that the wire cannot carry (a `u64` above `i64::MAX`, say).
    #[error("parameter {index} ({value}) does not fit in a 64-bit signed INTEGER")]
    ParamOutOfRange {
        /// Its position, from 1.
        index: usize,
        /// The value, as text.
        value: String,
    },
    /// A parameter value that has no form the servers and other clients read back: a date
    /// outside the years 0000 to 9999, a leap second, a time zone offset with seconds, a
    /// `Json` value that does not serialize.
    #[error("parameter {index} cannot be sent: {reason}")]
    ParamNotRepresentable {
        /// Its position, from 1.
        index: usize,
        /// Why.
        reason: String,
    },
}
