//! Shared test support: a deterministic in-memory fake dqlite server, a str0m-style stepping
//! helper that moves bytes between it and a [`Connection`], and value helpers.
//!
//! The fake server is strict: it panics on anything a real server would choke on (a bad
//! handshake word, a zero-word body, an undecodable request, a statement id it does not hold),
//! so a scenario that makes the client misbehave fails loudly.

#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use dqlite_proto::server::Request;
use dqlite_proto::server::{Deframer, Header, Response};
use dqlite_proto::{
    Connection, Error, Event, ExecResult, File, Metadata, NodeInfo, NodeRole, RowsBatch,
    ServerFailure, StmtInfo, Text, Value, PROTOCOL_VERSION,
};

/// A value with floats compared by bit pattern (so NaN equals itself and -0.0 differs from
/// 0.0). `Value` itself compares floats with `==`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Norm {
    Null,
    Integer(i64),
    FloatBits(u64),
    Text(String),
    Blob(Vec<u8>),
    UnixTime(i64),
    Iso8601(String),
    Boolean(bool),
}

pub fn norm(v: &Value) -> Norm {
    match v {
        Value::Null => Norm::Null,
        Value::Integer(i) => Norm::Integer(*i),
        Value::Float(f) => Norm::FloatBits(f.to_bits()),
        Value::Text(t) => Norm::Text(t.to_string()),
        Value::Blob(b) => Norm::Blob(b.to_vec()),
        Value::UnixTime(t) => Norm::UnixTime(*t),
        Value::Iso8601(t) => Norm::Iso8601(t.to_string()),
        Value::Boolean(b) => Norm::Boolean(*b),
    }
}

pub fn norms(vs: &[Value]) -> Vec<Norm> {
    vs.iter().map(norm).collect()
}

/// What a value becomes after travelling as a request parameter: UNIXTIME goes as INTEGER.
pub fn as_param(v: &Value) -> Norm {
    match v {
        Value::UnixTime(t) => Norm::Integer(*t),
        v => norm(v),
    }
}

pub fn text(s: &str) -> Text {
    Text::from(s)
}

/// One value of every type.
pub fn every_type() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Integer(-42),
        Value::Float(-1.5),
        Value::Text(text("héllo wörld")),
        Value::Blob(Bytes::from_static(&[0, 1, 2, 0xff, 0])),
        Value::UnixTime(1_700_000_000),
        Value::Iso8601(text("2024-01-02 03:04:05+00:00")),
        Value::Boolean(true),
    ]
}

pub fn failure(code: u64, message: &str) -> Response {
    Response::Failure(ServerFailure {
        code,
        message: message.to_owned(),
    })
}

pub fn rows(columns: &[&str], values: Vec<Value>, last: bool) -> Response {
    Response::Rows(RowsBatch::new(
        columns.iter().map(|c| text(c)).collect(),
        values,
        last,
    ))
}

pub fn encode_all(responses: &[Response]) -> Vec<u8> {
    let mut b = Vec::new();
    for r in responses {
        r.encode(&mut b).expect("a reply fits in a frame");
    }
    b
}

/// Splits a client's byte stream (after the handshake word) into decoded requests.
pub fn decode_requests(bytes: &[u8]) -> Vec<(Header, Request<'static>)> {
    let mut d = Deframer::new(u64::MAX);
    d.push(bytes);
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().expect("client sent a bad frame") {
        let req = Request::decode(f.header.kind, f.header.schema, f.body)
            .expect("client sent an undecodable request");
        out.push((f.header, req));
    }
    assert_eq!(d.buffered(), 0, "client stream ends mid-frame");
    out
}

/// Everything the client queued for transmission, marked as sent.
pub fn drain_transmit(c: &mut Connection) -> Vec<u8> {
    let mut all = Vec::new();
    while let Some(b) = c.poll_transmit() {
        let b = b.to_vec();
        c.advance_transmit(b.len());
        all.extend_from_slice(&b);
    }
    all
}

/// Drains events until `Ok(None)` or an error.
pub fn drain_events(c: &mut Connection) -> Result<Vec<Event>, (Vec<Event>, Error)> {
    let mut evs = Vec::new();
    loop {
        match c.poll_event() {
            Ok(Some(e)) => evs.push(e),
            Ok(None) => return Ok(evs),
            Err(e) => return Err((evs, e)),
        }
    }
}

/// The scripted part of a fake server: decides the responses to one request.
pub type Handler = Box<dyn FnMut(&Request<'static>) -> Vec<Response>>;

/// A deterministic in-memory dqlite server.
pub struct FakeServer {
    handshake: Vec<u8>,
    deframer: Deframer,
    /// Every request received, in order, with its header.
    pub log: Vec<(Header, Request<'static>)>,
    /// Bytes written by the server and not yet delivered to the client.
    out: Vec<u8>,
    handler: Handler,
}

impl FakeServer {
    pub fn new(handler: Handler) -> FakeServer {
        FakeServer {
            handshake: Vec::new(),
            deframer: Deframer::new(u64::MAX),
            log: Vec::new(),
            out: Vec::new(),
            handler,
        }
    }

    /// Bytes arriving from the client.
    pub fn receive(&mut self, mut data: &[u8]) {
        if self.handshake.len() < 8 {
            let take = (8 - self.handshake.len()).min(data.len());
            self.handshake.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.handshake.len() == 8 {
                let word = u64::from_le_bytes(self.handshake[..].try_into().unwrap());
                assert_eq!(word, PROTOCOL_VERSION, "bad handshake word");
            }
        }
        self.deframer.push(data);
        loop {
            let frame = match self.deframer.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => panic!("fake server: client sent a bad frame: {e}"),
            };
            assert!(
                frame.header.words > 0,
                "zero-word body would crash a server"
            );
            let req = Request::decode(frame.header.kind, frame.header.schema, frame.body)
                .unwrap_or_else(|e| panic!("fake server: undecodable request: {e}"));
            let responses = (self.handler)(&req);
            for r in &responses {
                r.encode(&mut self.out).expect("a reply fits in a frame");
            }
            self.log.push((frame.header, req));
        }
    }

    /// Queues raw bytes as if the server wrote them (malformed replies).
    pub fn inject(&mut self, raw: &[u8]) {
        self.out.extend_from_slice(raw);
    }

    /// Bytes written and not yet delivered.
    pub fn pending_output(&self) -> usize {
        self.out.len()
    }

    fn take_output(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.out.len());
        self.out.drain(..n).collect()
    }

    /// Received requests (without headers).
    pub fn requests(&self) -> Vec<Request<'static>> {
        self.log.iter().map(|(_, r)| r.clone()).collect()
    }

    pub fn count(&self, pred: impl Fn(&Request<'static>) -> bool) -> usize {
        self.log.iter().filter(|(_, r)| pred(r)).count()
    }
}

/// A client connection wired to a fake server (str0m-style stepping helper).
pub struct Pair {
    pub client: Connection,
    pub server: FakeServer,
    /// Events collected so far.
    pub events: Vec<Event>,
    /// The error that stopped event draining, if any.
    pub error: Option<Error>,
}

impl Pair {
    pub fn new(client: Connection, handler: Handler) -> Pair {
        Pair {
            client,
            server: FakeServer::new(handler),
            events: Vec::new(),
            error: None,
        }
    }

    /// Moves up to `n` bytes from the client to the server. Returns how many moved.
    pub fn send(&mut self, n: usize) -> usize {
        let Some(b) = self.client.poll_transmit() else {
            return 0;
        };
        let chunk = b[..n.min(b.len())].to_vec();
        self.client.advance_transmit(chunk.len());
        self.server.receive(&chunk);
        chunk.len()
    }

    /// Moves up to `n` bytes from the server to the client and drains events.
    pub fn recv(&mut self, n: usize) -> usize {
        let chunk = self.server.take_output(n);
        if !chunk.is_empty() {
            self.client.handle_input(&chunk);
        }
        self.drain();
        chunk.len()
    }

    /// Drains the client's events into `events` (stopping at an error).
    pub fn drain(&mut self) {
        loop {
            match self.client.poll_event() {
                Ok(Some(e)) => self.events.push(e),
                Ok(None) => break,
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            }
        }
    }

    /// One step: everything queued on either side moves across. True if anything moved.
    pub fn step(&mut self) -> bool {
        let sent = self.send(usize::MAX);
        let received = self.recv(usize::MAX);
        sent + received > 0
    }

    /// Steps until nothing moves.
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("pair did not settle");
    }

    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// Configuration of the [`mini_db`] handler.
#[derive(Debug, Clone)]
pub struct MiniDb {
    /// Rows per ROWS batch.
    pub batch_rows: usize,
    pub leader: NodeInfo,
    pub nodes: Vec<NodeInfo>,
}

impl Default for MiniDb {
    fn default() -> Self {
        MiniDb {
            batch_rows: 2,
            leader: NodeInfo {
                id: 1,
                address: text("127.0.0.1:9001"),
                role: None,
            },
            nodes: vec![
                NodeInfo {
                    id: 1,
                    address: text("127.0.0.1:9001"),
                    role: Some(NodeRole::Voter),
                },
                NodeInfo {
                    id: 2,
                    address: text("127.0.0.1:9002"),
                    role: Some(NodeRole::Standby),
                },
                NodeInfo {
                    id: 3,
                    address: text("127.0.0.1:9003"),
                    role: Some(NodeRole::Spare),
                },
            ],
        }
    }
}

/// A scripted "database": INSERTs store their parameters as a row of table `t`, SELECTs return
/// every stored row in batches; prepared statements live in slots (lowest free first, like the
/// real server); using a slot that is not live panics (a real node would crash).
pub fn mini_db(cfg: MiniDb) -> Handler {
    let mut open = false;
    let mut table: Vec<Vec<Value>> = Vec::new();
    let mut stmts: BTreeMap<u32, String> = BTreeMap::new();
    let mut weight = 0u64;
    let run_sql = move |sql: &str,
                        params: &[Value],
                        table: &mut Vec<Vec<Value>>,
                        open: bool|
          -> Vec<Response> {
        if !open {
            return vec![failure(12, "no database opened")];
        }
        let upper = sql.trim_start().to_ascii_uppercase();
        if upper.starts_with("INSERT") {
            table.push(params.to_vec());
            vec![Response::Result(ExecResult {
                last_insert_id: table.len() as i64,
                rows_affected: 1,
            })]
        } else if upper.starts_with("SELECT") {
            let ncols = table.first().map_or(1, Vec::len);
            let cols: Vec<String> = (0..ncols).map(|i| format!("c{i}")).collect();
            let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
            let chunks: Vec<&[Vec<Value>]> = table.chunks(cfg.batch_rows.max(1)).collect();
            if chunks.is_empty() {
                return vec![rows(&cols, Vec::new(), true)];
            }
            let n = chunks.len();
            chunks
                .into_iter()
                .enumerate()
                .map(|(i, ch)| rows(&cols, ch.concat(), i + 1 == n))
                .collect()
        } else {
            vec![Response::Result(ExecResult {
                last_insert_id: table.len() as i64,
                rows_affected: 0,
            })]
        }
    };
    let leader = cfg.leader.clone();
    let nodes = cfg.nodes.clone();
    Box::new(move |req| match req {
        Request::Leader => vec![Response::Server(leader.clone())],
        Request::Client { .. } => vec![Response::Welcome {
            heartbeat_timeout_ms: 15000,
        }],
        Request::Open { .. } => {
            if open {
                return vec![failure(5, "a database for this connection is already open")];
            }
            open = true;
            vec![Response::Db { id: 0 }]
        }
        Request::Prepare { sql } => {
            let id = (0..).find(|i| !stmts.contains_key(i)).unwrap();
            stmts.insert(id, sql.to_string());
            vec![Response::Stmt(StmtInfo {
                id,
                params: dqlite_proto::sql::summarize(sql).params as u64,
                tail_offset: None,
            })]
        }
        Request::Exec { stmt, params } | Request::Query { stmt, params } => {
            let sql = stmts
                .get(stmt)
                .unwrap_or_else(|| panic!("stale statement id {stmt} would crash the node"))
                .clone();
            run_sql(&sql, params, &mut table, open)
        }
        Request::Finalize { stmt } => {
            assert!(
                stmts.remove(stmt).is_some(),
                "FINALIZE of dead statement {stmt} would crash the node"
            );
            vec![Response::Empty]
        }
        Request::ExecSql { sql, params } | Request::QuerySql { sql, params } => {
            run_sql(sql, params, &mut table, open)
        }
        Request::Interrupt => vec![Response::Empty],
        Request::Cluster { with_roles } => vec![Response::Servers(
            nodes
                .iter()
                .map(|n| NodeInfo {
                    role: if *with_roles { n.role } else { None },
                    ..n.clone()
                })
                .collect(),
        )],
        Request::Dump { name } => vec![Response::Files(vec![
            File {
                name: text(name),
                data: Bytes::from(vec![0x53; 4096]),
            },
            File {
                name: Text::from(format!("{name}-wal")),
                data: Bytes::new(),
            },
        ])],
        Request::Describe => vec![Response::Metadata(Metadata {
            failure_domain: 0,
            weight,
        })],
        Request::Weight { weight: w } => {
            weight = *w;
            vec![Response::Empty]
        }
        Request::Transfer { .. }
        | Request::Add { .. }
        | Request::Assign { .. }
        | Request::Remove { .. } => vec![Response::Empty],
        other => panic!("fake server: unexpected request {other:?}"),
    })
}
