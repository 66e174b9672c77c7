//! A scripted dqlite node inside the test's own process, for driving the async client
//! deterministically: no sockets, no threads, no sleeps.
//!
//! Each dial gets one end of an in-memory duplex pipe (tokio's `duplex`, seen through
//! `tokio-util`'s futures-io compatibility layer, which is what the client reads and
//! writes); the other end is served by a task on the node's own single-threaded executor.
//! A test runs its client code with [`ScriptedNode::run`] (or [`ScriptedNode::serve`] under
//! another runtime's `block_on`), which drives the client and every
//! connection's server task on the calling thread, so the order of events follows from the
//! protocol alone.
//!
//! The server reads the client's frames with the core's own decoder
//! ([`dqlite_proto::server`]) and asks the script what to do with each request: answer as
//! its stub database does ([`Action::Answer`]), answer something else (a FAILURE with a
//! chosen code, say), close the connection without answering (the answer is lost), answer
//! and then close at once (the client's next request cannot be sent), or never answer.
//! Every request is logged ([`ScriptedNode::seen`]) before the script sees it, so a test can
//! assert what reached the server, and what did not.
//!
//! The stub database answers like the TCP fake node of [`crate::fake_server`]: `SELECT ?...`
//! echoes its parameters as one row, `SELECT many` returns 1000 rows (`x` = 0..999) in four
//! batches, the client's barrier query ([`BARRIER_SQL`], sent on every new connection right
//! after OPEN) one NULL, writes answer RESULT with a per-connection counter as the last
//! insert id, LEADER and CLUSTER name this node (id 1 at [`ADDRESS`]).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dqlite_proto::server::{Deframer, Request, Response};
use dqlite_proto::ServerFailure;
use smol::Executor;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt};

use crate::fake_server::StubDb;
pub use crate::fake_server::BARRIER_SQL;

/// The address the scripted node answers to, and names itself by.
pub const ADDRESS: &str = "scripted-node:9001";

/// Bytes each direction of a connection's pipe holds before the writer waits.
const PIPE_CAPACITY: usize = 64 * 1024;

/// The client's end of a connection: a futures-io `AsyncRead + AsyncWrite` stream.
pub type ClientStream = Compat<DuplexStream>;

/// What the node does with one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answers as the stub database does.
    Answer,
    /// Sends these replies instead.
    Reply(Vec<Response>),
    /// Answers as the stub database does, then closes the connection before the client can
    /// send anything more.
    AnswerThenClose,
    /// Sends these replies, then closes the connection before the client can send anything
    /// more: its next request finds the stream closed before a byte of it is written.
    ReplyThenClose(Vec<Response>),
    /// Closes the connection without answering: the answer is lost after the request
    /// arrived.
    Close,
    /// Never answers this request, and goes on reading (and answering) the next ones.
    Ignore,
}

impl Action {
    /// A FAILURE reply with `code` and `message`.
    pub fn fail(code: u64, message: &str) -> Action {
        Action::Reply(vec![failure(code, message)])
    }
}

/// A FAILURE reply with `code` and `message`.
pub fn failure(code: u64, message: &str) -> Response {
    Response::Failure(ServerFailure {
        code,
        message: message.into(),
    })
}

/// One request as the node read it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The connection it came on: 0 for the first one dialled, then 1, 2, ...
    pub conn: usize,
    /// The request.
    pub request: Request<'static>,
    /// Its SQL: the text of PREPARE, EXEC_SQL and QUERY_SQL, and for EXEC and QUERY the
    /// text the statement was prepared from on this connection.
    pub sql: Option<String>,
}

impl Seen {
    /// The SQL of a write (EXEC or EXEC_SQL), trimmed.
    pub fn exec_sql(&self) -> Option<&str> {
        match self.request {
            Request::Exec { .. } | Request::ExecSql { .. } => self.sql.as_deref().map(str::trim),
            _ => None,
        }
    }

    /// The SQL of a query (QUERY or QUERY_SQL), trimmed.
    pub fn query_sql(&self) -> Option<&str> {
        match self.request {
            Request::Query { .. } | Request::QuerySql { .. } => self.sql.as_deref().map(str::trim),
            _ => None,
        }
    }

    /// True for the client's barrier query ([`BARRIER_SQL`]).
    pub fn is_barrier(&self) -> bool {
        matches!(self.request, Request::QuerySql { .. }) && self.sql.as_deref() == Some(BARRIER_SQL)
    }

    /// The SQL of a query (QUERY or QUERY_SQL), trimmed, unless it is the client's barrier
    /// query: the application's queries.
    pub fn app_query_sql(&self) -> Option<&str> {
        if self.is_barrier() {
            return None;
        }
        self.query_sql()
    }
}

/// The script: what to do with each request, given it and what came before.
type Script = Box<dyn FnMut(&Seen) -> Action + Send>;

struct Shared {
    script: Mutex<Script>,
    seen: Mutex<Vec<Seen>>,
    dials: AtomicUsize,
}

/// A dqlite node played by a script, in this process (see the [module](self) docs).
#[derive(Clone)]
pub struct ScriptedNode {
    shared: Arc<Shared>,
    executor: Arc<Executor<'static>>,
}

impl std::fmt::Debug for ScriptedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedNode")
            .field("dials", &self.dials())
            .finish_non_exhaustive()
    }
}

impl ScriptedNode {
    /// A node that asks `script` what to do with every request it reads.
    pub fn new(script: impl FnMut(&Seen) -> Action + Send + 'static) -> ScriptedNode {
        ScriptedNode {
            shared: Arc::new(Shared {
                script: Mutex::new(Box::new(script)),
                seen: Mutex::new(Vec::new()),
                dials: AtomicUsize::new(0),
            }),
            executor: Arc::new(Executor::new()),
        }
    }

    /// A node that answers every request as its stub database does.
    pub fn answering() -> ScriptedNode {
        ScriptedNode::new(|_| Action::Answer)
    }

    /// Runs `fut` (the client side of a test) to completion on this thread, serving the
    /// node's connections meanwhile (on smol's `block_on`, which also drives the smol
    /// runtime's timers).
    pub fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        smol::block_on(self.serve(fut))
    }

    /// `fut`, with the node's connections served while it runs: for running a test on
    /// another runtime's `block_on` (a current-thread tokio runtime, say).
    pub async fn serve<T>(&self, fut: impl Future<Output = T>) -> T {
        self.executor.run(fut).await
    }

    /// Opens a connection to the node at `address`: the client's end of a new pipe, whose
    /// other end the node serves. Any other address is refused.
    pub fn dial(&self, address: &str) -> io::Result<ClientStream> {
        if address != ADDRESS {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("no scripted node at {address}"),
            ));
        }
        let conn = self.shared.dials.fetch_add(1, Ordering::AcqRel);
        let (client, server) = tokio::io::duplex(PIPE_CAPACITY);
        let shared = self.shared.clone();
        self.executor.spawn(serve(server, conn, shared)).detach();
        Ok(client.compat())
    }

    /// Connections dialled so far.
    pub fn dials(&self) -> usize {
        self.shared.dials.load(Ordering::Acquire)
    }

    /// Every request read so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The SQL of every write (EXEC and EXEC_SQL) read so far, in order.
    pub fn writes(&self) -> Vec<String> {
        self.seen()
            .iter()
            .filter_map(|s| s.exec_sql().map(str::to_owned))
            .collect()
    }

    /// The SQL of every query (QUERY and QUERY_SQL) read so far, in order, leaving out the
    /// client's barrier queries ([`Seen::app_query_sql`]; [`seen`](Self::seen) has them).
    pub fn queries(&self) -> Vec<String> {
        self.seen()
            .iter()
            .filter_map(|s| s.app_query_sql().map(str::to_owned))
            .collect()
    }

    /// How many writes with exactly this SQL were read.
    pub fn count_writes(&self, sql: &str) -> usize {
        self.writes().iter().filter(|w| *w == sql).count()
    }
}

/// Serves one connection until either side closes it.
async fn serve(mut stream: DuplexStream, conn: usize, shared: Arc<Shared>) {
    let mut deframer = Deframer::new(64 << 20);
    let mut handshake = 8usize;
    let mut db = Stub::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let skip = handshake.min(n);
        handshake -= skip;
        deframer.push(&buf[skip..n]);
        loop {
            let frame = match deframer.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return,
            };
            let Ok(request) = Request::decode(frame.header.kind, frame.header.schema, frame.body)
            else {
                return;
            };
            let seen = Seen {
                conn,
                sql: db.sql_of(&request),
                request,
            };
            shared
                .seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(seen.clone());
            let action = (shared.script.lock().unwrap_or_else(PoisonError::into_inner))(&seen);
            let (replies, close) = match action {
                Action::Answer => (db.answer(&seen.request), false),
                Action::AnswerThenClose => (db.answer(&seen.request), true),
                Action::Reply(r) => (r, false),
                Action::ReplyThenClose(r) => (r, true),
                Action::Close => return,
                Action::Ignore => continue,
            };
            db.learn(&seen.request, &replies);
            let mut out = Vec::new();
            for reply in &replies {
                reply.encode(&mut out).expect("a reply fits in a frame");
            }
            if stream.write_all(&out).await.is_err() {
                return;
            }
            if close {
                // Dropping the end closes both directions: the client reads what was
                // written, then EOF, and its writes fail.
                return;
            }
        }
    }
}

/// The stub database of one connection.
#[derive(Default)]
struct Stub {
    db: StubDb,
    /// Prepared statements' SQL by id, and the text of the last PREPARE (to learn its id).
    prepared: HashMap<u32, String>,
    preparing: Option<String>,
}

impl Stub {
    /// The SQL a request carries or refers to.
    fn sql_of(&mut self, request: &Request<'_>) -> Option<String> {
        match request {
            Request::Prepare { sql } => {
                self.preparing = Some(sql.to_string());
                Some(sql.to_string())
            }
            Request::ExecSql { sql, .. } | Request::QuerySql { sql, .. } => Some(sql.to_string()),
            Request::Exec { stmt, .. } | Request::Query { stmt, .. } => {
                self.prepared.get(stmt).cloned()
            }
            _ => None,
        }
    }

    /// Remembers the statement a STMT reply prepared, whoever wrote the reply.
    fn learn(&mut self, request: &Request<'_>, replies: &[Response]) {
        if let (Request::Prepare { .. }, [Response::Stmt(info)]) = (request, replies) {
            if let Some(sql) = self.preparing.take() {
                self.prepared.insert(info.id, sql);
            }
        }
    }

    fn answer(&mut self, request: &Request<'_>) -> Vec<Response> {
        self.db.answer(request, ADDRESS)
    }
}

/// A script that does `action` with the first `times` requests for which `matches` holds
/// (`usize::MAX`: all of them) and answers every other request as the stub does.
///
/// ```
/// use dqlite_tests::scripted::{when, Action, ScriptedNode};
///
/// // The first INSERT is refused as busy; everything else is answered.
/// let node = ScriptedNode::new(when(
///     |seen| seen.exec_sql() == Some("INSERT INTO t VALUES (1)"),
///     1,
///     Action::fail(5, "database is locked"),
/// ));
/// # let _ = node;
/// ```
pub fn when(
    matches: impl Fn(&Seen) -> bool + Send + 'static,
    times: usize,
    action: Action,
) -> impl FnMut(&Seen) -> Action + Send + 'static {
    let mut left = times;
    move |seen| {
        if left > 0 && matches(seen) {
            left -= 1;
            action.clone()
        } else {
            Action::Answer
        }
    }
}
