//! Errors, grouped by who is at fault.
//!
//! * [`Malformed`]: the server sent bytes that do not decode.
//! * [`Error::Unexpected`]: a well-formed message that does not answer the request it should.
//! * [`ServerFailure`]: the server answered with FAILURE (code and message).
//! * [`LimitExceeded`]: a configured [`Limits`](crate::Limits) value was crossed.
//! * [`Misuse`]: the caller asked for something the core refuses to send.
//!
//! Malformed bytes, unexpected messages, exceeded limits and a closed transport are *fatal*:
//! they poison the [`Connection`](crate::Connection), and every later call returns the same
//! error. Misuse errors are not fatal: nothing was queued, the connection is untouched.

use std::fmt;

/// Every error the protocol core returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server sent bytes that do not decode as the protocol says.
    #[error("malformed message from server: {0}")]
    Malformed(#[from] Malformed),
    /// A well-formed message arrived that does not answer the request it should.
    #[error("unexpected {got} message from server while waiting for {expected}")]
    Unexpected {
        /// What the pending request allows.
        expected: &'static str,
        /// The message type that arrived, by name.
        got: &'static str,
    },
    /// The server answered a request with FAILURE.
    #[error(transparent)]
    Server(#[from] ServerFailure),
    /// A configured limit was crossed by what the server sent.
    #[error(transparent)]
    Limit(#[from] LimitExceeded),
    /// The caller asked for something the core refuses to do; nothing was sent.
    #[error(transparent)]
    Misuse(#[from] Misuse),
    /// The transport was closed while a response was still owed.
    #[error("connection closed by the server with {pending} response(s) still owed")]
    Closed {
        /// How many requests were waiting for an answer.
        pending: usize,
    },
    /// An invariant the connection relies on does not hold: a bug in this crate, or in the
    /// driver feeding it (for example one reporting more bytes sent than were offered). The
    /// connection's state can no longer be trusted, so it is poisoned.
    #[error("internal invariant broken: {0}; the connection is closed (please report this)")]
    Invariant(&'static str),
}

impl Error {
    /// True when this error poisons a connection (everything but [`Error::Misuse`] and
    /// [`Error::Server`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, Error::Misuse(_) | Error::Server(_))
    }

    /// The server failure behind this error, if it is one.
    pub fn server_failure(&self) -> Option<&ServerFailure> {
        match self {
            Error::Server(f) => Some(f),
            _ => None,
        }
    }

    /// True for a FAILURE saying the node is not the leader (see [`ServerFailure::is_not_leader`]).
    pub fn is_not_leader(&self) -> bool {
        self.server_failure()
            .is_some_and(ServerFailure::is_not_leader)
    }

    /// True for a FAILURE saying the database is busy (see [`ServerFailure::is_busy`]).
    pub fn is_busy(&self) -> bool {
        self.server_failure().is_some_and(ServerFailure::is_busy)
    }
}

/// What exactly was wrong with bytes received from the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// A field ran past the end of the message body.
    #[error("{field} runs past the end of the message")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Text without its terminating NUL inside the body.
    #[error("text field {field} has no terminating NUL")]
    UnterminatedText {
        /// The field being read.
        field: &'static str,
    },
    /// Text that is not UTF-8.
    #[error("text field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A header announcing a body of zero words.
    #[error("message header announces an empty body")]
    EmptyBody,
    /// A response type code the protocol does not define.
    #[error("unknown response type {0}")]
    UnknownType(u8),
    /// A schema (revision) byte not defined for this response type.
    #[error("unknown schema {schema} for response type {kind}")]
    UnknownSchema {
        /// The response type code.
        kind: u8,
        /// The schema byte.
        schema: u8,
    },
    /// A value type code that is not one of the protocol's.
    #[error("unknown value type code {0}")]
    UnknownValueType(u8),
    /// Bytes left over after the last field of a message.
    #[error("{0} unexpected byte(s) after the end of the message")]
    TrailingBytes(usize),
    /// A count field that cannot fit in the message that carries it.
    #[error("{field} count {count} does not fit in the message")]
    BadCount {
        /// The field being read.
        field: &'static str,
        /// The count announced.
        count: u64,
    },
    /// A ROWS batch whose end marker is neither PART nor DONE.
    #[error("rows batch does not end with a PART or DONE marker")]
    MissingEndMarker,
    /// A later ROWS batch of one result with a different column count or names.
    #[error("column layout changed between batches of one result")]
    ColumnsChanged,
    /// A PART batch with no rows: the server would send such batches forever.
    #[error("PART batch with zero rows (the server would loop forever)")]
    EmptyPart,
}

/// A FAILURE response: the server's error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFailure {
    /// The code, usually an SQLite extended result code.
    pub code: u64,
    /// The server's message, free text that differs between versions.
    pub message: String,
}

/// Extended code for "not leader" (`SQLITE_IOERR_NOT_LEADER`).
pub const CODE_NOT_LEADER: u64 = 10250;
/// Extended code for "leadership lost" (`SQLITE_IOERR_LEADERSHIP_LOST`).
pub const CODE_LEADERSHIP_LOST: u64 = 10506;
/// Raft's `RAFT_NOTLEADER`, passed through raw by dqlite 1.11 when a write's replication
/// cannot start (it collides with `SQLITE_NOMEM`, which a dqlite node does not report).
pub const CODE_RAFT_NOT_LEADER: u64 = 7;
/// Legacy form of [`CODE_NOT_LEADER`] used by older replication patches.
pub const CODE_NOT_LEADER_LEGACY: u64 = 8202;
/// Legacy form of [`CODE_LEADERSHIP_LOST`] used by older replication patches.
pub const CODE_LEADERSHIP_LOST_LEGACY: u64 = 8458;

impl ServerFailure {
    /// The primary SQLite result code (`code & 0xff`).
    pub fn primary_code(&self) -> u8 {
        (self.code & 0xff) as u8
    }

    /// The node is not the leader: find the leader and try again there. The request had
    /// no effect.
    ///
    /// Besides the `SQLITE_IOERR_NOT_LEADER` codes this includes [`CODE_RAFT_NOT_LEADER`]:
    /// dqlite 1.11 passes raft's own "not leader" code (7) through unchanged when leadership
    /// moves between the execution of a write and its replication (the message is then a
    /// stale SQLite one such as "no more rows available"). The write was rolled back.
    pub fn is_not_leader(&self) -> bool {
        matches!(
            self.code,
            CODE_NOT_LEADER | CODE_NOT_LEADER_LEGACY | CODE_RAFT_NOT_LEADER
        )
    }

    /// A write failed because the node lost leadership: its outcome is unknown.
    pub fn is_leadership_lost(&self) -> bool {
        matches!(
            self.code,
            CODE_LEADERSHIP_LOST | CODE_LEADERSHIP_LOST_LEGACY
        )
    }

    /// `SQLITE_BUSY` or one of its extended codes: worth retrying after a pause.
    pub fn is_busy(&self) -> bool {
        matches!(self.code, 5 | 261 | 517 | 773)
    }

    /// An SQLite constraint violation (`SQLITE_CONSTRAINT` and its extended codes).
    pub fn is_constraint(&self) -> bool {
        self.primary_code() == 19 && self.code < 1 << 16
    }
}

impl fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "server failure {}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServerFailure {}

/// A limit crossed by what the server sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} limit exceeded: {actual} > {limit}")]
pub struct LimitExceeded {
    /// Which limit.
    pub what: &'static str,
    /// The configured limit.
    pub limit: u64,
    /// What the server announced or sent.
    pub actual: u64,
}

/// A request the core refuses to queue. Nothing was sent; the connection is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    /// SQL or parameters need an open database: call `open` first.
    #[error("no database is open on this connection")]
    NoDatabase,
    /// A connection serves one database; `open` was already called.
    #[error("a database is already open (or opening) on this connection")]
    DatabaseAlreadyOpen,
    /// Text containing a NUL byte cannot be sent as text; send it as a blob.
    #[error("text contains a NUL byte at offset {offset}; send it as a blob instead")]
    NulInText {
        /// Byte offset of the first NUL.
        offset: usize,
    },
    /// Empty SQL (the server answers a confusing failure with code 0).
    #[error("empty SQL statement")]
    EmptySql,
    /// SQL with `RETURNING`: dqlite 1.11 servers crash on the request after a write that
    /// returned rows. Refused unless `Config::server_handles_returning` is set.
    #[error(
        "SQL with RETURNING is refused: it crashes dqlite 1.11 servers; use the result's \
         last_insert_id, or enable it for servers known to handle it"
    )]
    Returning,
    /// More parameters than the server is known to accept.
    #[error("{count} parameters exceed the limit of {limit} for this server")]
    TooManyParams {
        /// Parameters given.
        count: usize,
        /// What the server is known to accept.
        limit: usize,
    },
    /// The number of parameters given differs from the number the statement takes (its
    /// placeholders, or the server's count for a prepared statement). Servers would bind
    /// missing ones as NULL, and ignore or refuse extra ones depending on their version.
    #[error("the statement takes {expected} parameter(s), {given} given")]
    ParamCount {
        /// Parameters the statement takes.
        expected: usize,
        /// Parameters given.
        given: usize,
    },
    /// Parameters with SQL of several statements: servers bind them differently (dqlite
    /// 1.11 all to the first statement, newer ones across the statements).
    #[error(
        "parameters cannot be bound to SQL of {statements} statements; run one statement \
         per call"
    )]
    ParamsInScript {
        /// Statements found in the SQL.
        statements: usize,
    },
    /// SQL of several statements where a single one runs (a query, PREPARE): dqlite 1.11
    /// silently ignores the rest, newer servers refuse it.
    #[error("only one statement can run here, the SQL holds {statements}")]
    MultipleStatements {
        /// Statements found in the SQL.
        statements: usize,
    },
    /// The statement handle was finalized, or belongs to another connection, or the
    /// server dropped it when leadership changed.
    #[error("statement handle is no longer valid on this connection")]
    StaleStatement,
    /// The request handle does not name a request still pending on this connection.
    #[error("no such pending request")]
    UnknownRequest,
    /// The request would not fit in one message: a body's length is a 32-bit count of
    /// 8-byte words, so at most 32 GiB.
    #[error("the request's body of {bytes} bytes exceeds the protocol's limit of 32 GiB")]
    RequestTooLarge {
        /// The body's length in bytes.
        bytes: u64,
    },
}
