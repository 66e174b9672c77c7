//! The connection state machine: handshake, requests matched to responses, row streams,
//! abandonment and poisoning.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::encoding::{find_nul, BodyTooLarge};
use crate::error::{Error, Misuse, ServerFailure};
use crate::frame::{Deframer, Frame};
use crate::limits::Limits;
use crate::request::{NodeRole, Request};
use crate::response::{
    code, type_name, DecodeOptions, ExecResult, File, Metadata, NodeInfo, Response, StmtInfo,
};
use crate::rows::RowsBatch;
use crate::value::{Text, Value};

/// The protocol version word sent first on every connection.
pub const PROTOCOL_VERSION: u64 = 1;

/// Most parameters a schema-0 tuple can carry.
const MAX_PARAMS_SCHEMA0: usize = u8::MAX as usize;

/// Settings of one [`Connection`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// Limits on what the server may send.
    pub limits: Limits,
    /// The server is known to accept 4-byte parameter counts (dqlite >= 1.12). Only then may
    /// a statement take more than 255 parameters; dqlite 1.11 misreads such tuples silently.
    pub server_accepts_params32: bool,
    /// The server is known to survive statements with `RETURNING`. dqlite 1.11 asserts and
    /// dies on the request after one, losing the write, so such SQL is refused by default.
    pub server_handles_returning: bool,
}

/// Names one request queued on a [`Connection`]; events carry it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

/// How far a request's bytes have gone out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendState {
    /// No byte of it was handed to the transport: it provably had no effect.
    Unsent,
    /// Part of it was handed to the transport.
    PartlySent,
    /// All of it was handed to the transport.
    Sent,
    /// Not pending on this connection (answered, withdrawn, or never queued here).
    NotPending,
}

/// A prepared statement, valid only on the connection that prepared it and only until it is
/// finalized or the server drops it (leadership change). It cannot be copied, so it cannot
/// outlive its [`Connection::finalize`].
#[derive(Debug, PartialEq, Eq)]
pub struct Stmt {
    conn: u64,
    id: u32,
    generation: u64,
    params: u64,
    tail_offset: Option<u64>,
}

impl Stmt {
    /// The server's id for the statement (what EXEC, QUERY and FINALIZE carry).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Number of parameters the statement takes.
    pub fn param_count(&self) -> u64 {
        self.params
    }

    /// Byte offset in the SQL where an unparsed tail starts, if the server reported it.
    pub fn tail_offset(&self) -> Option<u64> {
        self.tail_offset
    }
}

/// A response, matched to the request it answers and typed by it.
#[derive(Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// LEADER: the leader as this node knows it (`id == 0` and empty address: none known).
    Leader(NodeInfo),
    /// CLIENT accepted.
    Welcome {
        /// Heartbeat timeout in milliseconds (meaningless on current servers).
        heartbeat_timeout_ms: u64,
    },
    /// OPEN succeeded.
    Opened,
    /// PREPARE succeeded.
    Prepared(Stmt),
    /// EXEC or EXEC_SQL succeeded.
    Executed(ExecResult),
    /// One batch of a query's rows; [`RowsBatch::is_last`] ends the result.
    Rows(RowsBatch),
    /// A request with no content in its answer succeeded (FINALIZE, INTERRUPT, ADD, ASSIGN,
    /// REMOVE, TRANSFER, WEIGHT).
    Empty,
    /// CLUSTER: the nodes.
    Nodes(Vec<NodeInfo>),
    /// DUMP: the database files.
    Files(Vec<File>),
    /// DESCRIBE: the node's metadata.
    Metadata(Metadata),
    /// The server refused the request. For a query this may end a stream part-way.
    Failure(ServerFailure),
}

/// One event out of the connection.
#[derive(Debug, PartialEq)]
pub struct Event {
    /// The request answered.
    pub request: RequestId,
    /// The answer.
    pub reply: Reply,
}

impl Reply {
    /// The name of the message type the server answered with (`SERVER`, `DB`, `ROWS`, ...),
    /// for error messages about replies of the wrong kind.
    pub fn message_type(&self) -> &'static str {
        match self {
            Reply::Leader(_) => "SERVER",
            Reply::Welcome { .. } => "WELCOME",
            Reply::Opened => "DB",
            Reply::Prepared(_) => "STMT",
            Reply::Executed(_) => "RESULT",
            Reply::Rows(_) => "ROWS",
            Reply::Empty => "EMPTY",
            Reply::Nodes(_) => "SERVERS",
            Reply::Files(_) => "FILES",
            Reply::Metadata(_) => "METADATA",
            Reply::Failure(_) => "FAILURE",
        }
    }
}

impl Event {
    /// True when this event is the last for its request (everything but a non-final rows
    /// batch).
    pub fn completes_request(&self) -> bool {
        !matches!(&self.reply, Reply::Rows(b) if !b.is_last())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Leader,
    Welcome,
    Db,
    Stmt,
    Result,
    Rows,
    Empty,
    Servers { with_roles: bool },
    Files,
    Metadata,
}

impl Expect {
    fn for_request(req: &Request<'_>) -> Expect {
        match req {
            Request::Leader => Expect::Leader,
            Request::Client { .. } => Expect::Welcome,
            Request::Open { .. } => Expect::Db,
            Request::Prepare { .. } => Expect::Stmt,
            Request::Exec { .. } | Request::ExecSql { .. } => Expect::Result,
            Request::Query { .. } | Request::QuerySql { .. } => Expect::Rows,
            Request::Cluster { with_roles } => Expect::Servers {
                with_roles: *with_roles,
            },
            Request::Dump { .. } => Expect::Files,
            Request::Describe => Expect::Metadata,
            _ => Expect::Empty,
        }
    }

    fn response_code(self) -> u8 {
        match self {
            Expect::Leader => code::SERVER,
            Expect::Welcome => code::WELCOME,
            Expect::Db => code::DB,
            Expect::Stmt => code::STMT,
            Expect::Result => code::RESULT,
            Expect::Rows => code::ROWS,
            Expect::Empty => code::EMPTY,
            Expect::Servers { .. } => code::SERVERS,
            Expect::Files => code::FILES,
            Expect::Metadata => code::METADATA,
        }
    }
}

#[derive(Debug)]
struct Pending {
    id: RequestId,
    expect: Expect,
    /// Stream offsets of the request's first byte and one past its last.
    start: u64,
    end: u64,
    /// Nobody waits for the answer: discard it (internal requests are born abandoned).
    abandoned: bool,
    /// This request is a FINALIZE or OPEN (never withdrawn: state was already changed).
    sticky: bool,
    stream: Option<Stream>,
}

#[derive(Debug)]
struct Stream {
    columns: Vec<Text>,
    rows: u64,
    frames: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Closed,
    Open,
}

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// The sans-IO dqlite connection.
///
/// It turns commands into bytes to send and received bytes into [`Event`]s. It owns no
/// socket and reads no clock.
///
/// # The one rule: drain after every input and every command
/// After each command (`open`, `exec_sql`, `query_sql`, ...) and after each
/// [`handle_input`](Connection::handle_input), the driver must:
/// 1. send what [`poll_transmit`](Connection::poll_transmit) returns (then call
///    [`advance_transmit`](Connection::advance_transmit) with the count written), and
/// 2. call [`poll_event`](Connection::poll_event) until it returns `Ok(None)`.
///
/// Requests are answered in the order they were queued, so several may be queued at once
/// (pipelining); each [`Event`] names its [`RequestId`]. The handshake word is queued by
/// [`Connection::new`].
///
/// # Walking away
/// A caller that stops waiting calls [`abandon`](Connection::abandon). A request not yet
/// sent is withdrawn; otherwise its answer is read and dropped when it comes, and an
/// abandoned row stream is drained behind an INTERRUPT. The next request can be queued at
/// once: it goes out after the unsent tail of the abandoned one.
///
/// # Poisoning
/// Malformed or unexpected bytes, a crossed limit, or a closed transport poison the
/// connection: every later call returns that same error. Misuse errors never poison.
///
/// # Example: one query over any transport
/// ```
/// use dqlite_proto::{Config, Connection, Reply, Value};
///
/// let mut conn = Connection::new(Config::default());
/// conn.open("app").unwrap();
/// let q = conn.query_sql("SELECT ?", &[Value::Integer(7)]).unwrap();
/// let to_send = conn.poll_transmit().unwrap().to_vec(); // handshake, OPEN, QUERY_SQL
/// conn.advance_transmit(to_send.len());
///
/// // ... the server answers DB, then ROWS; here are its bytes (8-byte header: body length in
/// // words, type, schema, unused; then the body):
/// let from_server: &[u8] = &[
///     1, 0, 0, 0, 4, 0, 0, 0, // DB, 1 word
///     0, 0, 0, 0, 0, 0, 0, 0, //   database id 0, padding
///     5, 0, 0, 0, 7, 0, 0, 0, // ROWS, 5 words
///     1, 0, 0, 0, 0, 0, 0, 0, //   1 column
///     b'?', 0, 0, 0, 0, 0, 0, 0, //   named "?"
///     1, 0, 0, 0, 0, 0, 0, 0, //   a row: column 0 is an INTEGER (type 1)
///     7, 0, 0, 0, 0, 0, 0, 0, //   7
///     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // DONE: no more rows
/// ];
/// conn.handle_input(from_server);
///
/// assert_eq!(conn.poll_event().unwrap().unwrap().reply, Reply::Opened);
/// let ev = conn.poll_event().unwrap().unwrap();
/// assert_eq!(ev.request, q);
/// let Reply::Rows(rows) = ev.reply else { panic!() };
/// assert_eq!(rows.row(0).unwrap(), [Value::Integer(7)]);
/// assert!(conn.poll_event().unwrap().is_none());
/// ```
#[derive(Debug)]
pub struct Connection {
    config: Config,
    token: u64,
    out: Vec<u8>,
    out_pos: usize,
    /// Stream offset of `out[0]`.
    out_base: u64,
    deframer: Deframer,
    pending: VecDeque<Pending>,
    next_request: u64,
    db: Db,
    stmts: HashMap<u32, u64>,
    next_generation: u64,
    poisoned: Option<Error>,
}

impl Connection {
    /// A new connection with the handshake (protocol version word) queued.
    pub fn new(config: Config) -> Connection {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        Connection {
            config,
            token: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            out,
            out_pos: 0,
            out_base: 0,
            deframer: Deframer::new(config.limits.max_frame_bytes),
            pending: VecDeque::new(),
            next_request: 0,
            db: Db::Closed,
            stmts: HashMap::new(),
            next_generation: 1,
            poisoned: None,
        }
    }

    /// This connection's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- outputs -------------------------------------------------------------------------

    /// Bytes waiting to be sent, or `None` when everything queued has gone out.
    pub fn poll_transmit(&self) -> Option<&[u8]> {
        if self.poisoned.is_some() {
            return None;
        }
        self.out.get(self.out_pos..).filter(|s| !s.is_empty())
    }

    /// Records that the first `n` bytes of [`poll_transmit`](Self::poll_transmit) were sent.
    /// Ignored on a poisoned connection, which offers nothing to send. An `n` larger than
    /// what was offered is a driver bug: the connection is poisoned with
    /// [`Error::Invariant`], since what the server received is no longer known.
    pub fn advance_transmit(&mut self, n: usize) {
        if self.poisoned.is_some() {
            return;
        }
        let offered = self.out.len() - self.out_pos.min(self.out.len());
        if n > offered {
            let _ = self.poison(Error::Invariant(
                "more bytes reported sent than were offered",
            ));
            return;
        }
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            self.out_base += self.out.len() as u64;
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// The next event, `Ok(None)` when more input is needed, or the poisoning error.
    pub fn poll_event(&mut self) -> Result<Option<Event>, Error> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        loop {
            let frame = match self.deframer.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.poison(e)),
            };
            match self.on_frame(frame) {
                Ok(Some(ev)) => return Ok(Some(ev)),
                Ok(None) => continue,
                Err(e) => return Err(self.poison(e)),
            }
        }
    }

    // ----- inputs --------------------------------------------------------------------------

    /// Feeds bytes received from the server. Decoding happens in
    /// [`poll_event`](Self::poll_event).
    pub fn handle_input(&mut self, data: &[u8]) {
        if self.poisoned.is_none() {
            self.deframer.push(data);
        }
    }

    /// The transport was closed (or failed). The connection is poisoned: nothing more can
    /// be sent or received on it. Returns the poisoning error.
    pub fn handle_eof(&mut self) -> Error {
        if let Some(e) = &self.poisoned {
            return e.clone();
        }
        let pending = self.pending.iter().filter(|p| !p.abandoned).count();
        self.poison(Error::Closed { pending })
    }

    // ----- state ---------------------------------------------------------------------------

    /// The error that poisoned this connection, if any.
    pub fn error(&self) -> Option<&Error> {
        self.poisoned.as_ref()
    }

    /// True when nothing is queued, nothing is owed, and the connection is not poisoned:
    /// the state in which it can be handed to a new user.
    pub fn is_idle(&self) -> bool {
        self.poisoned.is_none() && self.pending.is_empty() && self.poll_transmit().is_none()
    }

    /// Requests still owed an answer (abandoned and internal ones included).
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// True when a response is owed, so the driver should be reading.
    pub fn wants_input(&self) -> bool {
        self.poisoned.is_none() && !self.pending.is_empty()
    }

    /// How far the request's bytes went out; [`SendState::Unsent`] proves it had no effect.
    pub fn send_state(&self, request: RequestId) -> SendState {
        let sent = self.out_base + self.out_pos as u64;
        match self.pending.iter().find(|p| p.id == request) {
            None => SendState::NotPending,
            Some(p) if sent <= p.start => SendState::Unsent,
            Some(p) if sent < p.end => SendState::PartlySent,
            Some(_) => SendState::Sent,
        }
    }

    /// True when a database was opened (or its OPEN is queued) on this connection.
    pub fn has_database(&self) -> bool {
        self.db == Db::Open
    }

    // ----- commands ------------------------------------------------------------------------

    /// Queues LEADER: which node does this one think leads?
    pub fn leader(&mut self) -> Result<RequestId, Error> {
        self.queue(&Request::Leader, false)
    }

    /// Queues CLIENT: registers a client id (optional).
    pub fn client(&mut self, id: u64) -> Result<RequestId, Error> {
        self.queue(&Request::Client { id }, false)
    }

    /// Queues OPEN for the database `name` (created if missing). One per connection.
    pub fn open(&mut self, name: &str) -> Result<RequestId, Error> {
        self.usable()?;
        check_text(name)?;
        if self.db == Db::Open {
            return Err(Misuse::DatabaseAlreadyOpen.into());
        }
        let id = self.queue(&Request::Open { name: name.into() }, true)?;
        self.db = Db::Open;
        Ok(id)
    }

    /// Queues PREPARE of one statement.
    pub fn prepare(&mut self, sql: &str) -> Result<RequestId, Error> {
        self.check_sql(sql, &[], true).or_else(|e| match e {
            // The server reports the exact count in its reply.
            Error::Misuse(Misuse::ParamCount { .. }) => Ok(()),
            e => Err(e),
        })?;
        self.queue(&Request::Prepare { sql: sql.into() }, false)
    }

    /// Queues EXEC of a prepared statement with `params`.
    pub fn exec(&mut self, stmt: &Stmt, params: &[Value]) -> Result<RequestId, Error> {
        self.check_stmt(stmt)?;
        check_count(stmt, params)?;
        self.check_params(params)?;
        let req = Request::Exec {
            stmt: stmt.id,
            params: Cow::Borrowed(params),
        };
        self.queue(&req, false)
    }

    /// Queues QUERY of a prepared statement with `params`; rows come as batches.
    pub fn query(&mut self, stmt: &Stmt, params: &[Value]) -> Result<RequestId, Error> {
        self.check_stmt(stmt)?;
        check_count(stmt, params)?;
        self.check_params(params)?;
        let req = Request::Query {
            stmt: stmt.id,
            params: Cow::Borrowed(params),
        };
        self.queue(&req, false)
    }

    /// Queues FINALIZE, consuming the handle. A handle already made stale (by a leadership
    /// change, or from another connection) is refused with [`Misuse::StaleStatement`] and
    /// nothing is sent: the server no longer has that statement.
    pub fn finalize(&mut self, stmt: Stmt) -> Result<RequestId, Error> {
        self.check_stmt(&stmt)?;
        self.stmts.remove(&stmt.id);
        self.queue(&Request::Finalize { stmt: stmt.id }, true)
    }

    /// Queues EXEC_SQL of `sql` with `params`.
    pub fn exec_sql(&mut self, sql: &str, params: &[Value]) -> Result<RequestId, Error> {
        self.check_sql(sql, params, false)?;
        let req = Request::ExecSql {
            sql: sql.into(),
            params: Cow::Borrowed(params),
        };
        self.queue(&req, false)
    }

    /// Queues QUERY_SQL of `sql` with `params`; rows come as batches.
    pub fn query_sql(&mut self, sql: &str, params: &[Value]) -> Result<RequestId, Error> {
        self.check_sql(sql, params, true)?;
        let req = Request::QuerySql {
            sql: sql.into(),
            params: Cow::Borrowed(params),
        };
        self.queue(&req, false)
    }

    /// Queues INTERRUPT (answered once any running row stream has been fully sent).
    pub fn interrupt(&mut self) -> Result<RequestId, Error> {
        self.require_db()?;
        self.queue(&Request::Interrupt, false)
    }

    /// Queues ADD of a node (it joins as a spare).
    pub fn add(&mut self, id: u64, address: &str) -> Result<RequestId, Error> {
        self.usable()?;
        check_text(address)?;
        self.queue(
            &Request::Add {
                id,
                address: address.into(),
            },
            false,
        )
    }

    /// Queues ASSIGN of a role to a node.
    pub fn assign(&mut self, id: u64, role: NodeRole) -> Result<RequestId, Error> {
        self.queue(&Request::Assign { id, role }, false)
    }

    /// Queues REMOVE of a node.
    pub fn remove(&mut self, id: u64) -> Result<RequestId, Error> {
        self.queue(&Request::Remove { id }, false)
    }

    /// Queues DUMP of the database `name`.
    pub fn dump(&mut self, name: &str) -> Result<RequestId, Error> {
        self.usable()?;
        check_text(name)?;
        self.queue(&Request::Dump { name: name.into() }, false)
    }

    /// Queues CLUSTER; `with_roles` asks for format 1 (roles included).
    pub fn cluster(&mut self, with_roles: bool) -> Result<RequestId, Error> {
        self.queue(&Request::Cluster { with_roles }, false)
    }

    /// Queues TRANSFER of leadership to node `id`.
    pub fn transfer(&mut self, id: u64) -> Result<RequestId, Error> {
        self.queue(&Request::Transfer { id }, false)
    }

    /// Queues DESCRIBE (always format 0; other formats crash servers).
    pub fn describe(&mut self) -> Result<RequestId, Error> {
        self.queue(&Request::Describe, false)
    }

    /// Queues WEIGHT, setting this node's weight.
    pub fn weight(&mut self, weight: u64) -> Result<RequestId, Error> {
        self.queue(&Request::Weight { weight }, false)
    }

    /// Stops waiting for `request`. Returns false if it was not pending.
    ///
    /// Requests of which no byte was sent are withdrawn, wherever they are in the queue
    /// (except FINALIZE and OPEN, whose effect on this connection's state was already
    /// recorded). Others are answered and the answer dropped;
    /// an unfinished query is followed by an INTERRUPT and its remaining rows are drained.
    pub fn abandon(&mut self, request: RequestId) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        let Some(idx) = self.pending.iter().position(|p| p.id == request) else {
            return false;
        };
        let sent = self.out_base + self.out_pos as u64;
        let withdrawable = self
            .pending
            .get(idx)
            .is_some_and(|p| sent <= p.start && !p.sticky);
        if withdrawable {
            if let Some(p) = self.pending.remove(idx) {
                // Cut its bytes out of the unsent buffer and shift the requests behind it.
                let len = p.end - p.start;
                let from = (p.start - self.out_base) as usize;
                let to = (p.end - self.out_base) as usize;
                if from > to || to > self.out.len() {
                    // Its bytes are not where the bookkeeping says: shifting the requests
                    // behind it would corrupt the stream.
                    let _ = self.poison(Error::Invariant(
                        "an unsent request lies outside the buffer",
                    ));
                    return false;
                }
                self.out.drain(from..to);
                for later in self.pending.iter_mut().skip(idx) {
                    later.start -= len;
                    later.end -= len;
                }
            }
            return true;
        }
        let Some(p) = self.pending.get_mut(idx) else {
            return false;
        };
        if p.abandoned {
            return true;
        }
        p.abandoned = true;
        if p.expect == Expect::Rows && self.db == Db::Open {
            // The server reads the INTERRUPT only after the stream ends: it marks the end of
            // the drain and its EMPTY is discarded.
            self.queue_internal(&Request::Interrupt);
        }
        true
    }

    // ----- internals -----------------------------------------------------------------------

    fn poison(&mut self, e: Error) -> Error {
        self.poisoned = Some(e.clone());
        e
    }

    fn usable(&self) -> Result<(), Error> {
        match &self.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn require_db(&self) -> Result<(), Error> {
        self.usable()?;
        if self.db != Db::Open {
            return Err(Misuse::NoDatabase.into());
        }
        Ok(())
    }

    /// Checks SQL and its parameters before anything is queued: `one_statement` for
    /// requests that run a single statement (PREPARE, QUERY_SQL: servers drop or refuse a
    /// tail). The parameter count must match the placeholders exactly: servers bind missing
    /// ones as NULL and disagree on extra ones.
    fn check_sql(&self, sql: &str, params: &[Value], one_statement: bool) -> Result<(), Error> {
        self.require_db()?;
        check_text(sql)?;
        let summary = crate::sql::summarize(sql);
        if summary.statements == 0 {
            return Err(Misuse::EmptySql.into());
        }
        if !self.config.server_handles_returning && summary.returning {
            return Err(Misuse::Returning.into());
        }
        if summary.statements > 1 && one_statement {
            return Err(Misuse::MultipleStatements {
                statements: summary.statements,
            }
            .into());
        }
        if summary.statements > 1 && (summary.params > 0 || !params.is_empty()) {
            return Err(Misuse::ParamsInScript {
                statements: summary.statements,
            }
            .into());
        }
        if summary.params != params.len() {
            return Err(Misuse::ParamCount {
                expected: summary.params,
                given: params.len(),
            }
            .into());
        }
        self.check_params(params)
    }

    fn check_params(&self, params: &[Value]) -> Result<(), Error> {
        let limit = if self.config.server_accepts_params32 {
            u32::MAX as usize
        } else {
            MAX_PARAMS_SCHEMA0
        };
        if params.len() > limit {
            return Err(Misuse::TooManyParams {
                count: params.len(),
                limit,
            }
            .into());
        }
        for v in params {
            if let Some(t) = v.text() {
                check_text(t)?;
            }
        }
        Ok(())
    }

    fn check_stmt(&self, stmt: &Stmt) -> Result<(), Error> {
        self.require_db()?;
        if stmt.conn != self.token || self.stmts.get(&stmt.id) != Some(&stmt.generation) {
            return Err(Misuse::StaleStatement.into());
        }
        Ok(())
    }

    fn queue(&mut self, req: &Request<'_>, sticky: bool) -> Result<RequestId, Error> {
        self.usable()?;
        self.push(req, false, sticky)
            .map_err(|e| Misuse::RequestTooLarge { bytes: e.bytes }.into())
    }

    /// Queues a request of the connection's own (INTERRUPT, FINALIZE): a few words long, so
    /// one that does not fit a frame means the connection's state is broken.
    fn queue_internal(&mut self, req: &Request<'_>) {
        if self.push(req, true, true).is_err() {
            let _ = self.poison(Error::Invariant(
                "an internal request does not fit in a frame",
            ));
        }
    }

    fn push(
        &mut self,
        req: &Request<'_>,
        abandoned: bool,
        sticky: bool,
    ) -> Result<RequestId, BodyTooLarge> {
        let start = self.out_base + self.out.len() as u64;
        req.encode(&mut self.out)?;
        let end = self.out_base + self.out.len() as u64;
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.pending.push_back(Pending {
            id,
            expect: Expect::for_request(req),
            start,
            end,
            abandoned,
            sticky,
            stream: None,
        });
        Ok(id)
    }

    fn on_frame(&mut self, frame: Frame) -> Result<Option<Event>, Error> {
        let Frame { header, body } = frame;
        let Some(front) = self.pending.front_mut() else {
            return Err(Error::Unexpected {
                expected: "no message (nothing was asked)",
                got: type_name(header.kind),
            });
        };
        let expect = front.expect;
        if header.kind > code::METADATA {
            return Err(crate::error::Malformed::UnknownType(header.kind).into());
        }
        if header.kind != code::FAILURE && header.kind != expect.response_code() {
            return Err(Error::Unexpected {
                expected: type_name(expect.response_code()),
                got: type_name(header.kind),
            });
        }
        let opts = DecodeOptions {
            servers_with_roles: matches!(expect, Expect::Servers { with_roles: true }),
            max_columns: self.config.limits.max_columns,
        };
        let response = Response::decode(header.kind, header.schema, body, opts)?;
        let request = front.id;
        let abandoned = front.abandoned;
        let reply = match response {
            Response::Rows(batch) => {
                let limits = self.config.limits;
                let stream = front.stream.get_or_insert_with(|| Stream {
                    columns: batch.columns().to_vec(),
                    rows: 0,
                    frames: 0,
                });
                if stream.frames > 0 && stream.columns.as_slice() != batch.columns() {
                    return Err(crate::error::Malformed::ColumnsChanged.into());
                }
                stream.frames += 1;
                stream.rows += batch.len() as u64;
                check_limit("rows per result", limits.max_rows_per_result, stream.rows)?;
                check_limit(
                    "frames per result",
                    limits.max_frames_per_result,
                    stream.frames,
                )?;
                if batch.is_last() {
                    self.pending.pop_front();
                }
                Reply::Rows(batch)
            }
            other => {
                self.pending.pop_front();
                self.complete(expect, abandoned, other)
            }
        };
        Ok((!abandoned).then_some(Event { request, reply }))
    }

    /// Turns a final response into a reply and applies its effect on connection state.
    fn complete(&mut self, expect: Expect, abandoned: bool, response: Response) -> Reply {
        match response {
            Response::Failure(f) => {
                if f.is_not_leader() || f.is_leadership_lost() {
                    // The server drops every prepared statement when leadership moves.
                    self.stmts.clear();
                }
                if expect == Expect::Db {
                    self.db = Db::Closed;
                }
                Reply::Failure(f)
            }
            Response::Server(n) => Reply::Leader(n),
            Response::Welcome {
                heartbeat_timeout_ms,
            } => Reply::Welcome {
                heartbeat_timeout_ms,
            },
            Response::Servers(nodes) => Reply::Nodes(nodes),
            Response::Db { .. } => Reply::Opened,
            Response::Stmt(info) => self.register_stmt(info, abandoned),
            Response::Result(r) => Reply::Executed(r),
            Response::Empty => Reply::Empty,
            Response::Files(f) => Reply::Files(f),
            Response::Metadata(m) => Reply::Metadata(m),
            // Rows are handled by the caller; keep the match total.
            Response::Rows(b) => Reply::Rows(b),
        }
    }

    fn register_stmt(&mut self, info: StmtInfo, abandoned: bool) -> Reply {
        if abandoned {
            // Nobody holds a handle: finalize it so the server's slot is freed.
            self.queue_internal(&Request::Finalize { stmt: info.id });
            return Reply::Empty;
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.stmts.insert(info.id, generation);
        Reply::Prepared(Stmt {
            conn: self.token,
            id: info.id,
            generation,
            params: info.params,
            tail_offset: info.tail_offset,
        })
    }
}

/// A prepared statement takes exactly the number of parameters the server reported.
fn check_count(stmt: &Stmt, params: &[Value]) -> Result<(), Error> {
    if params.len() as u64 != stmt.params {
        return Err(Misuse::ParamCount {
            expected: usize::try_from(stmt.params).unwrap_or(usize::MAX),
            given: params.len(),
        }
        .into());
    }
    Ok(())
}

fn check_text(s: &str) -> Result<(), Error> {
    match find_nul(s) {
        Some(offset) => Err(Misuse::NulInText { offset }.into()),
        None => Ok(()),
    }
}

fn check_limit(what: &'static str, limit: u64, actual: u64) -> Result<(), Error> {
    if actual > limit {
        return Err(crate::error::LimitExceeded {
            what,
            limit,
            actual,
        }
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `connection` fuzz target: `add` and `dump` checked their text for NULs
    /// before the poisoning, so a poisoned connection answered them with a misuse error.
    #[test]
    fn returning_is_refused_unless_the_server_handles_it() {
        let mut c = Connection::new(Config::default());
        c.open("db").unwrap();
        let sql = "INSERT INTO t VALUES (1) RETURNING rowid";
        assert_eq!(c.exec_sql(sql, &[]), Err(Misuse::Returning.into()));
        assert_eq!(c.query_sql(sql, &[]), Err(Misuse::Returning.into()));
        assert_eq!(c.prepare(sql), Err(Misuse::Returning.into()));
        assert!(c.exec_sql("SELECT 'returning'", &[]).is_ok());
        let cfg = Config {
            server_handles_returning: true,
            ..Config::default()
        };
        let mut c = Connection::new(cfg);
        c.open("db").unwrap();
        assert!(c.query_sql(sql, &[]).is_ok());
    }

    #[test]
    fn reporting_more_bytes_sent_than_offered_poisons_with_a_typed_error() {
        let mut c = Connection::new(Config::default());
        let offered = c.poll_transmit().map_or(0, <[u8]>::len);
        c.advance_transmit(offered + 1);
        let broken = Error::Invariant("more bytes reported sent than were offered");
        assert_eq!(c.error(), Some(&broken));
        assert_eq!(c.open("db"), Err(broken));
        assert!(c.poll_transmit().is_none());
    }

    #[test]
    fn poisoned_connection_returns_its_error_before_checking_text() {
        let mut c = Connection::new(Config::default());
        let e = c.handle_eof();
        assert_eq!(c.dump("a\0b"), Err(e.clone()));
        assert_eq!(c.add(1, "a\0b"), Err(e.clone()));
        assert_eq!(c.open("a\0b"), Err(e));
    }

    /// Found by the `connection` fuzz target: after poisoning, `poll_transmit` offers nothing
    /// but `advance_transmit` still consumed the queue, so `send_state` called a request
    /// that never went out `Sent`.
    #[test]
    fn advance_after_poisoning_records_nothing_as_sent() {
        let mut c = Connection::new(Config::default());
        let q = c.leader().unwrap();
        c.handle_eof();
        assert_eq!(c.poll_transmit(), None);
        c.advance_transmit(usize::MAX);
        assert_eq!(c.send_state(q), SendState::Unsent);
    }
}
