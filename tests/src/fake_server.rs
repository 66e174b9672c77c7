//! A deterministic fake dqlite node on loopback TCP, for the async layer's tests of what real
//! servers cannot be made to do on cue: answer in slow pieces, or not at all.
//!
//! It speaks the protocol with the core's own decoders and encoders, one thread per
//! connection. Its database is a stub: `SELECT ?...` echoes the parameters as one row,
//! `SELECT many` returns 1000 rows (`x` = 0..999) over several PART batches, the
//! clients' barrier query ([`BARRIER_SQL`]) returns one NULL, writes answer RESULT with a
//! per-connection counter, anything else is a FAILURE.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use dqlite_proto::server::Request;
use dqlite_proto::server::{Deframer, Response};
use dqlite_proto::{
    ExecResult, NodeInfo, NodeRole, RowsBatch, ServerFailure, StmtInfo, Text, Value,
};

/// The query the clients (`dqlite-client`, `dqlite-blocking`) send on every new connection
/// right after OPEN, its barrier: it names no table, so a dqlite 1.11 leader answers it only
/// once it has applied the log it inherited. Spelled out here, not taken from
/// `dqlite_proto::BARRIER_SQL`, so that the tests check what goes on the wire.
pub const BARRIER_SQL: &str = "SELECT NULL AS barrier";

/// How the fake node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers every request, each answer written in pieces of at most 512 bytes, 1 ms
    /// apart, so clients see many partial reads.
    Answer,
    /// Accepts connections and reads requests but never answers anything.
    Silent,
    /// Like [`Answer`](Behaviour::Answer), but as a follower of a server since dqlite
    /// 1.18.2: OPEN fails with "not leader" (10250), and LEADER names node 2 at
    /// `127.0.0.1:<leader_port>`.
    FollowerRefusingOpen {
        /// The port of the leader it names.
        leader_port: u16,
    },
}

/// A running fake node; stopped and joined on drop.
pub struct FakeServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    /// Starts a fake node on a free loopback port.
    pub fn start(behaviour: Behaviour) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let address = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (s, a, r) = (stop.clone(), accepted.clone(), requests.clone());
        let thread = thread::spawn(move || {
            let mut conns = Vec::new();
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((sock, _)) => {
                        a.fetch_add(1, Ordering::AcqRel);
                        let (s, r) = (s.clone(), r.clone());
                        conns.push(thread::spawn(move || {
                            serve(sock, address, behaviour, &s, &r)
                        }));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
            for c in conns {
                let _ = c.join();
            }
        });
        FakeServer {
            address,
            stop,
            accepted,
            requests,
            thread: Some(thread),
        }
    }

    /// The node's address.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }

    /// The requests received so far, on every connection, in the order they arrived: the
    /// request's name, and for OPEN, EXEC_SQL and QUERY_SQL its text (`"OPEN db"`,
    /// `"QUERY_SQL SELECT 1"`).
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one connection until the client closes it or the server stops.
fn serve(
    mut sock: TcpStream,
    me: SocketAddr,
    behaviour: Behaviour,
    stop: &AtomicBool,
    seen: &Mutex<Vec<String>>,
) {
    let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
    let _ = sock.set_nodelay(true);
    let mut deframer = Deframer::new(64 << 20);
    let mut handshake = 8usize;
    let mut buf = [0u8; 16 * 1024];
    let mut state = StubDb::default();
    while !stop.load(Ordering::Acquire) {
        let n = match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        };
        let mut data = &buf[..n];
        let skip = handshake.min(data.len());
        handshake -= skip;
        data = &data[skip..];
        deframer.push(data);
        while let Ok(Some(frame)) = deframer.next_frame() {
            let Ok(req) = Request::decode(frame.header.kind, frame.header.schema, frame.body)
            else {
                return;
            };
            let name = match &req {
                Request::Open { name } => format!("OPEN {name}"),
                Request::ExecSql { sql, .. } => format!("EXEC_SQL {sql}"),
                Request::QuerySql { sql, .. } => format!("QUERY_SQL {sql}"),
                other => format!("{other:?}"),
            };
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(name);
            if behaviour == Behaviour::Silent {
                continue;
            }
            let mut out = Vec::new();
            for resp in answer(&mut state, &req, me, behaviour) {
                resp.encode(&mut out).expect("a reply fits in a frame");
            }
            for piece in out.chunks(512) {
                if sock.write_all(piece).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// What the fake node answers, given its behaviour.
fn answer(
    db: &mut StubDb,
    req: &Request<'_>,
    me: SocketAddr,
    behaviour: Behaviour,
) -> Vec<Response> {
    if let Behaviour::FollowerRefusingOpen { leader_port } = behaviour {
        match req {
            Request::Leader => {
                return vec![Response::Server(NodeInfo {
                    id: 2,
                    address: Text::from(format!("127.0.0.1:{leader_port}")),
                    role: None,
                })]
            }
            Request::Open { .. } => {
                return vec![Response::Failure(ServerFailure {
                    code: 10250,
                    message: "not leader".into(),
                })]
            }
            _ => {}
        }
    }
    db.answer(req, &me.to_string())
}

/// The stub database of one connection, shared by this fake node and the in-process
/// scripted one: `SELECT ?...` echoes its parameters as one row (columns `c0`, `c1`, ...),
/// `SELECT many` returns 1000 rows in four batches, [`BARRIER_SQL`] one row with a NULL in
/// column `barrier`, writes answer RESULT with a counter, cluster requests describe a
/// one-node cluster at `address`, anything else is a FAILURE.
#[derive(Debug, Default)]
pub(crate) struct StubDb {
    results: i64,
    next_stmt: u32,
}

impl StubDb {
    /// The answer to `req` from a node at `address`.
    pub(crate) fn answer(&mut self, req: &Request<'_>, address: &str) -> Vec<Response> {
        let node = NodeInfo {
            id: 1,
            address: Text::from(address),
            role: Some(NodeRole::Voter),
        };
        match req {
            Request::Leader => vec![Response::Server(NodeInfo { role: None, ..node })],
            Request::Client { .. } => vec![Response::Welcome {
                heartbeat_timeout_ms: 15000,
            }],
            Request::Open { .. } => vec![Response::Db { id: 0 }],
            Request::Cluster { .. } => vec![Response::Servers(vec![node])],
            Request::Prepare { sql } => {
                let id = self.next_stmt;
                self.next_stmt += 1;
                let params = sql.matches('?').count() as u64;
                vec![Response::Stmt(StmtInfo {
                    id,
                    params,
                    tail_offset: None,
                })]
            }
            Request::ExecSql { .. } | Request::Exec { .. } => {
                self.results += 1;
                vec![Response::Result(ExecResult {
                    last_insert_id: self.results,
                    rows_affected: 1,
                })]
            }
            Request::QuerySql { sql, .. } if sql.trim() == "SELECT many" => many(),
            Request::QuerySql { sql, .. } if *sql == BARRIER_SQL => {
                vec![Response::Rows(RowsBatch::new(
                    vec![Text::from("barrier")],
                    vec![Value::Null],
                    true,
                ))]
            }
            Request::QuerySql { params, .. } | Request::Query { params, .. } => {
                let columns = (0..params.len())
                    .map(|i| Text::from(format!("c{i}")))
                    .collect();
                vec![Response::Rows(RowsBatch::new(
                    columns,
                    params.to_vec(),
                    true,
                ))]
            }
            Request::Finalize { .. } | Request::Interrupt | Request::Weight { .. } => {
                vec![Response::Empty]
            }
            _ => vec![Response::Failure(ServerFailure {
                code: 1,
                message: "unsupported by the stub database".into(),
            })],
        }
    }
}

/// 1000 rows in batches of 250: three PART batches and a DONE.
fn many() -> Vec<Response> {
    (0..4)
        .map(|b| {
            let values = (b * 250..(b + 1) * 250).map(Value::Integer).collect();
            Response::Rows(RowsBatch::new(vec![Text::from("x")], values, b == 3))
        })
        .collect()
}
