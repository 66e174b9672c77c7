//! The fuzz targets' check functions, shared by two builds:
//!
//! * the cargo-fuzz targets in `fuzz/fuzz_targets/*.rs`, which include this file with
//!   `#[path = "../../proto/tests/fuzz_checks/mod.rs"] mod checks;` and call one function;
//! * the stable replay test `proto/tests/fuzz_corpus.rs`, which runs every file of
//!   `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through the same function.
//!
//! Each check takes the raw fuzz input and panics when an invariant is broken; it never
//! rejects an input. Inputs are decoded with `arbitrary` (connection, leader) or with the
//! small hand-written layout of [`split_input`] (deframer, rows_stream, responses), so that seed
//! files can be written by hand (see `seeds.rs`).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use dqlite_proto::discovery::{Action, Discovery, DiscoveryConfig, Node, ProbeId, RedirectPolicy};
use dqlite_proto::server::Request;
use dqlite_proto::server::{decode_response, Deframer, Frame, Header, Response, WORD};
use dqlite_proto::{
    Config, Connection, Error, Event, File, Limits, Metadata, NodeInfo, NodeRole, Reply, RequestId,
    RowsBatch, SendState, ServerFailure, Stmt, StmtInfo, Text, Value, CODE_LEADERSHIP_LOST,
    CODE_LEADERSHIP_LOST_LEGACY, CODE_NOT_LEADER, CODE_NOT_LEADER_LEGACY, PROTOCOL_VERSION,
};

/// True when `FUZZ_TRACE` is set: the checks then print what each input does (to stderr).
pub fn tracing() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($t:tt)*) => {
        if tracing() {
            eprintln!($($t)*);
        }
    };
}

mod alloc;
mod requests;
mod sql;

pub use requests::requests;
pub use sql::sql;

/// A check: panics when the input breaks an invariant.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("deframer", deframer),
    ("responses", responses),
    ("rows_stream", rows_stream),
    ("connection", connection),
    ("leader", leader),
    ("requests", requests),
    ("sql", sql),
];

/// Fixed part of the allocation budget per input: the checks' own models and tables.
pub const ALLOC_BASE: usize = 4 << 20;
/// Bytes a check may hold per input byte: decoded values, the bytes a model keeps of what
/// was sent, `Debug` texts compared by the round trips.
pub const ALLOC_PER_INPUT_BYTE: usize = 512;

/// The most a check may hold at once for an input of `len` bytes. Inputs are at most a few
/// KiB, so a peak above this is a buffer sized from a length the input wrote.
pub fn alloc_budget(len: usize) -> usize {
    ALLOC_BASE.saturating_add(len.saturating_mul(ALLOC_PER_INPUT_BYTE))
}

/// Runs target `name`'s check on `data` and fails if it held more than [`alloc_budget`] bytes
/// at any moment (counted by [`alloc`]): what every cargo-fuzz target and the stable replay
/// call.
pub fn run(name: &str, data: &[u8]) {
    let Some(&(_, check)) = TARGETS.iter().find(|(t, _)| *t == name) else {
        panic!("no fuzz target {name}");
    };
    let base = alloc::measure_start();
    check(data);
    let peak = alloc::measure_peak(base);
    let limit = alloc_budget(data.len());
    trace!(
        "{name}: held at most {peak} bytes for a {}-byte input",
        data.len()
    );
    assert!(
        peak <= limit,
        "{name}: {peak} bytes held at once for a {}-byte input (budget {limit})",
        data.len()
    );
}

// ----- byte-layout inputs ------------------------------------------------------------------

/// Splits an input laid out as `[sel] [k] [k chunk sizes] [stream...]` into the selector
/// byte, the stream, and the stream cut into chunks whose sizes cycle through the `k` size
/// bytes (each size byte `b` is a chunk of `b + 1` bytes; `k == 0` is one chunk).
pub fn split_input(data: &[u8]) -> (u8, &[u8], Vec<&[u8]>) {
    let sel = data.first().copied().unwrap_or(0);
    let k = usize::from(data.get(1).copied().unwrap_or(0));
    let rest = data.get(2..).unwrap_or_default();
    let (ctrl, stream) = rest.split_at(k.min(rest.len()));
    let mut chunks = Vec::new();
    if ctrl.is_empty() {
        chunks.push(stream);
    } else {
        let mut s = stream;
        let mut i = 0;
        while !s.is_empty() {
            let n = (usize::from(ctrl[i % ctrl.len()]) + 1).min(s.len());
            let (head, tail) = s.split_at(n);
            chunks.push(head);
            s = tail;
            i += 1;
        }
    }
    (sel, stream, chunks)
}

/// Builds a [`split_input`] layout (for seeds).
pub fn join_input(sel: u8, sizes: &[u8], stream: &[u8]) -> Vec<u8> {
    let mut v = vec![sel, u8::try_from(sizes.len()).expect("at most 255 sizes")];
    v.extend_from_slice(sizes);
    v.extend_from_slice(stream);
    v
}

/// One response as a complete frame.
pub fn frame_bytes(r: &Response) -> Vec<u8> {
    let mut b = Vec::new();
    r.encode(&mut b).expect("a reply fits in a frame");
    b
}

// ----- target 1: deframer ------------------------------------------------------------------

fn deframer_limit(sel: u8) -> u64 {
    match sel % 4 {
        0 => Limits::default().max_frame_bytes,
        1 => 0,
        2 => 64,
        _ => u64::from(sel) * 8,
    }
}

/// What [`Deframer::next_frame`] must return for the unconsumed bytes `avail`.
fn expected_frame(avail: &[u8], limit: u64) -> Result<Option<Frame>, (Header, bool)> {
    let Some(head) = avail.get(..WORD) else {
        return Ok(None);
    };
    let header = Header::decode(head.try_into().expect("8 bytes"));
    if header.words == 0 {
        return Err((header, true));
    }
    if header.body_len() > limit {
        return Err((header, false));
    }
    let len = usize::try_from(header.body_len()).expect("within limit");
    match avail.get(WORD..WORD + len) {
        Some(body) => Ok(Some(Frame {
            header,
            body: Bytes::copy_from_slice(body),
        })),
        None => Ok(None),
    }
}

/// Arbitrary bytes pushed into a [`Deframer`] in arbitrary chunks: every frame returned has a
/// body of `words * 8` bytes and `words > 0`, and the frames and errors are exactly those of a
/// reference parse of the bytes pushed so far (so chunking never changes the result).
pub fn deframer(data: &[u8]) {
    let (sel, stream, chunks) = split_input(data);
    let limit = deframer_limit(sel);
    let mut d = Deframer::new(limit);
    d.push(&[]);
    assert_eq!(d.next_frame(), Ok(None));
    let mut pushed = 0usize;
    let mut pos = 0usize;
    let mut failed = None;
    for chunk in chunks {
        d.push(chunk);
        pushed += chunk.len();
        if let Some(e) = &failed {
            // The bad header stays at the front: the same error, whatever follows it.
            assert_eq!(d.next_frame().as_ref(), Err(e));
            continue;
        }
        loop {
            let avail = &stream[pos..pushed];
            let got = d.next_frame();
            match (&got, expected_frame(avail, limit)) {
                (Ok(Some(f)), Ok(Some(want))) => {
                    assert!(f.header.words > 0, "zero-word frame returned");
                    assert_eq!(f.body.len() as u64, u64::from(f.header.words) * 8);
                    assert!(f.header.body_len() <= limit);
                    assert_eq!(*f, want);
                    pos += WORD + f.body.len();
                    assert_eq!(d.buffered(), pushed - pos);
                }
                (Ok(None), Ok(None)) => {
                    assert_eq!(d.buffered(), pushed - pos);
                    break;
                }
                (Err(Error::Malformed(dqlite_proto::Malformed::EmptyBody)), Err((_, true))) => {}
                (Err(Error::Limit(l)), Err((h, false))) => {
                    assert_eq!((l.limit, l.actual), (limit, h.body_len()));
                }
                (got, want) => panic!("deframer returned {got:?}, reference says {want:?}"),
            }
            if let Err(e) = got {
                assert_eq!(d.next_frame().as_ref(), Err(&e), "error not repeated");
                failed = Some(e);
                break;
            }
        }
    }
}

// ----- target 2: responses -----------------------------------------------------------------

/// Encodes `r`, decodes it again and checks the value survived (compared by `Debug` text and
/// by re-encoding, so NaN floats and ignored padding do not matter).
fn round_trip(r: &Response, with_roles: bool) {
    let bytes = frame_bytes(r);
    let words = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    assert!(words > 0, "encoded a zero-word response");
    assert_eq!(bytes.len(), WORD + 8 * words as usize);
    let mut d = Deframer::new(u64::MAX);
    d.push(&bytes);
    let frame = d
        .next_frame()
        .expect("re-framing")
        .expect("one whole frame");
    assert_eq!(d.buffered(), 0);
    assert_eq!(frame.header.kind, r.code());
    let again = match decode_response(frame, with_roles) {
        Ok(again) => again,
        Err(e) => panic!("{r:?} encoded to {bytes:02x?}, which does not decode: {e}"),
    };
    assert_eq!(format!("{r:?}"), format!("{again:?}"), "value changed");
    assert_eq!(bytes, frame_bytes(&again), "encoding changed");
}

/// Every frame of the input decoded as every response type (and as an unknown one), with and
/// without roles, under its own schema byte and under schemas 0 and 1: never a panic, a
/// decoded response has the type asked for, and it survives encode + decode.
///
/// Layout: `[flags] [frames...]`; a set bit 0 decodes the frame's own type with roles first.
pub fn responses(data: &[u8]) {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let mut d = Deframer::new(Limits::default().max_frame_bytes);
    d.push(stream);
    while let Ok(Some(frame)) = d.next_frame() {
        let own = frame.header.kind;
        if let Ok(r) = decode_response(frame.clone(), flags & 1 == 1) {
            assert_eq!(r.code(), own);
        }
        let mut schemas = vec![frame.header.schema, 0, 1];
        schemas.sort_unstable();
        schemas.dedup();
        for kind in 0..=11u8 {
            for &schema in &schemas {
                for with_roles in [false, true] {
                    let f = Frame {
                        header: Header {
                            kind,
                            schema,
                            ..frame.header
                        },
                        body: frame.body.clone(),
                    };
                    match decode_response(f, with_roles) {
                        Ok(r) => {
                            assert_eq!(r.code(), kind);
                            if kind != 5 {
                                assert_eq!(schema, 0, "schema {schema} accepted for {kind}");
                            }
                            round_trip(&r, with_roles);
                        }
                        Err(e) => assert!(
                            matches!(e, Error::Malformed(_) | Error::Limit(_)),
                            "decoding failed with {e:?}"
                        ),
                    }
                }
            }
        }
    }
}

// ----- target 3: rows_stream ---------------------------------------------------------------

fn small_limits() -> Limits {
    Limits {
        max_frame_bytes: 512,
        max_rows_per_result: 6,
        max_frames_per_result: 3,
        max_columns: 3,
    }
}

fn rows_limits(sel: u8) -> Limits {
    match sel & 3 {
        0 | 3 => Limits::default(),
        1 => small_limits(),
        _ => Limits {
            max_frame_bytes: 1 << 16,
            max_rows_per_result: 1,
            max_frames_per_result: 1,
            max_columns: 0,
        },
    }
}

/// Sends everything queued and returns those bytes.
fn take_transmit(c: &mut Connection) -> Vec<u8> {
    let out = c.poll_transmit().map(<[u8]>::to_vec).unwrap_or_default();
    c.advance_transmit(out.len());
    assert!(c.poll_transmit().is_none());
    out
}

/// Decodes a run of complete request frames.
fn requests_in(mut bytes: &[u8]) -> Vec<Request<'static>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let h = Header::decode(bytes[..WORD].try_into().expect("8 bytes"));
        let end = WORD + h.body_len() as usize;
        let body = Bytes::copy_from_slice(&bytes[WORD..end]);
        out.push(Request::decode(h.kind, h.schema, body).expect("client sent a bad request"));
        bytes = &bytes[end..];
    }
    out
}

#[derive(Debug, Default)]
struct RowsState {
    columns: Option<Vec<Text>>,
    rows: u64,
    frames: u64,
    events: u32,
    done: bool,
    abandoned: bool,
    error: Option<Error>,
}

/// Checks the poisoning contract on `c`, poisoned by `e`.
fn assert_poisoned(c: &mut Connection, e: &Error, q: RequestId) {
    assert!(e.is_fatal(), "non-fatal error from poll_event: {e:?}");
    for _ in 0..3 {
        assert_eq!(c.poll_event().as_ref(), Err(e));
    }
    assert_eq!(c.error(), Some(e));
    assert!(!c.is_idle() && !c.wants_input());
    assert_eq!(c.query_sql("SELECT 1", &[]).as_ref(), Err(e));
    assert_eq!(c.leader().as_ref(), Err(e));
    assert!(!c.abandon(q));
    c.handle_input(&[1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(c.poll_event().as_ref(), Err(e));
    assert_eq!(&c.handle_eof(), e);
}

/// A connection with an open database and one QUERY_SQL pending, fed the input as its
/// multi-part ROWS stream in arbitrary chunks. Events are polled after every chunk until
/// `None` or an error; after an error every call returns that same error (poisoning).
///
/// Layout: [`split_input`]; selector bits 0-1 pick the limits, bits 2-3 abandon the query
/// after that many events (0: never).
pub fn rows_stream(data: &[u8]) {
    let (sel, _, chunks) = split_input(data);
    let limits = rows_limits(sel);
    let abandon_after = u32::from((sel >> 2) & 3);
    let mut c = Connection::new(Config {
        limits,
        ..Config::default()
    });
    let open = c.open("db").expect("open");
    let q = c.query_sql("SELECT x FROM t", &[]).expect("query_sql");
    let sent = take_transmit(&mut c);
    assert_eq!(sent[..WORD], PROTOCOL_VERSION.to_le_bytes());
    assert_eq!(requests_in(&sent[WORD..]).len(), 2);
    c.handle_input(&frame_bytes(&Response::Db { id: 0 }));
    let opened = Event {
        request: open,
        reply: Reply::Opened,
    };
    assert_eq!(c.poll_event(), Ok(Some(opened)));
    assert_eq!(c.poll_event(), Ok(None));

    let mut st = RowsState::default();
    for chunk in chunks {
        c.handle_input(chunk);
        if let Some(e) = &st.error {
            assert_eq!(c.poll_event().as_ref(), Err(e));
            continue;
        }
        loop {
            match c.poll_event() {
                Ok(None) => break,
                Ok(Some(ev)) => on_rows_event(&mut c, &mut st, ev, q, limits, abandon_after),
                Err(e) => {
                    assert!(
                        matches!(
                            e,
                            Error::Malformed(_) | Error::Limit(_) | Error::Unexpected { .. }
                        ),
                        "{e:?}"
                    );
                    trace!("rows_stream poisoned: {e}");
                    assert_poisoned(&mut c, &e, q);
                    st.error = Some(e);
                    break;
                }
            }
        }
    }
    match &st.error {
        Some(e) => assert_eq!(&c.handle_eof(), e),
        None => {
            let owed = usize::from(!st.done && !st.abandoned);
            assert_eq!(c.handle_eof(), Error::Closed { pending: owed });
        }
    }
}

fn on_rows_event(
    c: &mut Connection,
    st: &mut RowsState,
    ev: Event,
    q: RequestId,
    limits: Limits,
    abandon_after: u32,
) {
    trace!("rows_stream event {ev:?}");
    assert!(!st.done, "event after the end of the result: {ev:?}");
    assert!(!st.abandoned, "event for an abandoned query: {ev:?}");
    assert_eq!(ev.request, q);
    st.events += 1;
    match &ev.reply {
        Reply::Rows(b) => {
            let cols = st.columns.get_or_insert_with(|| b.columns().to_vec());
            assert_eq!(cols.as_slice(), b.columns(), "columns changed");
            assert!(b.columns().len() as u64 <= limits.max_columns);
            assert!(b.is_last() || !b.is_empty(), "empty PART batch delivered");
            assert_eq!(b.rows().len(), b.len());
            for row in b.rows() {
                assert_eq!(row.len(), cols.len());
            }
            st.rows += b.len() as u64;
            st.frames += 1;
            assert!(st.rows <= limits.max_rows_per_result);
            assert!(st.frames <= limits.max_frames_per_result);
            st.done = b.is_last();
        }
        Reply::Failure(_) => st.done = true,
        other => panic!("a query answered with {other:?}"),
    }
    assert_eq!(ev.completes_request(), st.done);
    if st.done {
        assert_eq!(c.pending_requests(), 0);
        assert!(c.is_idle());
    }
    if st.events == abandon_after {
        assert_eq!(c.abandon(q), !st.done);
        if !st.done {
            st.abandoned = true;
            // The rest is drained behind an INTERRUPT.
            let sent = take_transmit(c);
            assert_eq!(requests_in(&sent), [Request::Interrupt]);
        }
    }
}

// ----- target 4: connection ----------------------------------------------------------------

const NAMES: [&str; 6] = [
    "db",
    "",
    "main",
    "nul\0inside",
    "ünïcødé",
    "a-database-name-long-enough-to-take-several-words",
];

const SQLS: [&str; 8] = [
    "SELECT 1",
    "INSERT INTO t VALUES (?, ?)",
    "   ",
    "",
    "SELECT ?; SELECT 2",
    "SELECT '\0'",
    "CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d DATETIME, e BOOLEAN)",
    "SELECT * FROM t WHERE a > ? AND b != ?",
];

pub const TEXTS: [&str; 5] = [
    "",
    "hello",
    "with\0nul",
    "2024-01-02 03:04:05",
    "日本語テキスト",
];

/// A database name or address, picked from [`NAMES`].
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Name(pub u8);

impl Name {
    pub fn get(self) -> &'static str {
        NAMES[usize::from(self.0) % NAMES.len()]
    }
}

/// SQL text, picked from [`SQLS`].
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Sql(pub u8);

/// Statements and placeholders of each of [`SQLS`], counted by hand.
const SHAPES: [(usize, usize); 8] = [
    (1, 0),
    (1, 2),
    (0, 0),
    (0, 0),
    (2, 1),
    (1, 0),
    (1, 0),
    (1, 2),
];

impl Sql {
    pub fn get(self) -> &'static str {
        SQLS[usize::from(self.0) % SQLS.len()]
    }

    /// The core must refuse this SQL with `given` parameters: no statement, parameters that
    /// do not match the placeholders, parameters with a script, or (`one`) a script where
    /// one statement runs.
    fn misuse(self, given: Option<usize>, one: bool) -> bool {
        let (statements, params) = SHAPES[usize::from(self.0) % SHAPES.len()];
        statements == 0
            || (one && statements > 1)
            || given.is_some_and(|n| n != params || (statements > 1 && n + params > 0))
    }
}

/// One parameter value: a tag byte, then its payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ArbValue(pub Value);

impl<'a> Arbitrary<'a> for ArbValue {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let tag: u8 = u.arbitrary()?;
        Ok(ArbValue(match tag % 9 {
            0 => Value::Null,
            1 => Value::Integer(u.arbitrary()?),
            2 => Value::Float(f64::from_bits(u.arbitrary()?)),
            3 => Value::Text(Text::from_static(
                TEXTS[usize::from(u.arbitrary::<u8>()?) % TEXTS.len()],
            )),
            4 => {
                let n = usize::from(u.arbitrary::<u8>()? % 32);
                let n = n.min(u.len());
                Value::Blob(Bytes::copy_from_slice(u.bytes(n)?))
            }
            5 => Value::UnixTime(u.arbitrary()?),
            6 => Value::Iso8601(Text::from_static(
                TEXTS[usize::from(u.arbitrary::<u8>()?) % TEXTS.len()],
            )),
            7 => Value::Boolean(u.arbitrary()?),
            _ => {
                let n = usize::from(u.arbitrary::<u8>()? % 16).min(u.len());
                Value::Text(Text::from(
                    String::from_utf8_lossy(u.bytes(n)?).into_owned(),
                ))
            }
        }))
    }
}

/// A parameter list: a count byte `n`, then `n % 6` values; `n >= 0xf0` repeats one value
/// 250-280 times (across the 255 limit of schema 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Params(pub Vec<Value>);

impl<'a> Arbitrary<'a> for Params {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n: u8 = u.arbitrary()?;
        if n >= 0xf0 {
            let v = u.arbitrary::<ArbValue>()?.0;
            return Ok(Params(vec![v; 250 + usize::from(n - 0xf0) * 2]));
        }
        let mut out = Vec::new();
        for _ in 0..n % 6 {
            out.push(u.arbitrary::<ArbValue>()?.0);
        }
        Ok(Params(out))
    }
}

impl Params {
    fn misuse(&self, params32: bool) -> bool {
        (self.0.len() > 255 && !params32)
            || self.0.iter().any(|v| match v {
                Value::Text(t) | Value::Iso8601(t) => t.contains('\0'),
                _ => false,
            })
    }
}

/// Raw server bytes: a length byte, then that many bytes (fewer at the end of the input).
#[derive(Debug, Clone)]
pub struct Chunk(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Chunk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = usize::from(u.arbitrary::<u8>()?).min(u.len());
        Ok(Chunk(u.bytes(n)?.to_vec()))
    }
}

pub const FAILURE_CODES: [u64; 8] = [
    CODE_NOT_LEADER,
    CODE_LEADERSHIP_LOST,
    CODE_NOT_LEADER_LEGACY,
    CODE_LEADERSHIP_LOST_LEGACY,
    5,
    1,
    19,
    0,
];

/// A well-formed response frame, so scripts get past the first message.
#[derive(Debug, Clone, Arbitrary)]
pub enum FakeReply {
    Failure(u8),
    Server {
        id: u64,
        address: Name,
    },
    Welcome(u64),
    Servers {
        n: u8,
        roles: bool,
    },
    Db,
    Stmt {
        id: u8,
        params: u8,
        offset: bool,
    },
    Result {
        last_insert_id: i64,
        rows_affected: u64,
    },
    Rows {
        ncols: u8,
        nrows: u8,
        last: bool,
        seed: u8,
    },
    Empty,
    Files {
        n: u8,
    },
    Metadata {
        failure_domain: u64,
        weight: u64,
    },
}

fn role(i: u8) -> NodeRole {
    match i % 3 {
        0 => NodeRole::Voter,
        1 => NodeRole::Standby,
        _ => NodeRole::Spare,
    }
}

impl FakeReply {
    pub fn response(&self) -> Response {
        match *self {
            FakeReply::Failure(i) => Response::Failure(ServerFailure {
                code: FAILURE_CODES[usize::from(i) % FAILURE_CODES.len()],
                message: "failure".into(),
            }),
            FakeReply::Server { id, address } => Response::Server(NodeInfo {
                id,
                address: Text::from(address.get().replace('\0', "")),
                role: None,
            }),
            FakeReply::Welcome(ms) => Response::Welcome {
                heartbeat_timeout_ms: ms,
            },
            FakeReply::Servers { n, roles } => Response::Servers(
                (0..n % 4)
                    .map(|i| NodeInfo {
                        id: u64::from(i) + 1,
                        address: Text::from(format!("127.0.0.1:{}", 9001 + u32::from(i))),
                        role: roles.then(|| role(i)),
                    })
                    .collect(),
            ),
            FakeReply::Db => Response::Db { id: 0 },
            FakeReply::Stmt { id, params, offset } => Response::Stmt(StmtInfo {
                id: u32::from(id % 4),
                params: u64::from(params),
                tail_offset: offset.then_some(8),
            }),
            FakeReply::Result {
                last_insert_id,
                rows_affected,
            } => Response::Result(dqlite_proto::ExecResult {
                last_insert_id,
                rows_affected,
            }),
            FakeReply::Rows {
                ncols,
                nrows,
                last,
                seed,
            } => {
                let ncols = usize::from(ncols % 4);
                let columns = (0..ncols).map(|i| Text::from(format!("c{i}"))).collect();
                let values = (0..ncols * usize::from(nrows % 5))
                    .map(|i| match (i + usize::from(seed)) % 5 {
                        0 => Value::Integer(i as i64),
                        1 => Value::Text(Text::from_static("text")),
                        2 => Value::Null,
                        3 => Value::Blob(Bytes::from_static(&[1, 2, 3])),
                        _ => Value::Boolean(true),
                    })
                    .collect();
                Response::Rows(RowsBatch::new(columns, values, last))
            }
            FakeReply::Empty => Response::Empty,
            FakeReply::Files { n } => Response::Files(
                (0..n % 3)
                    .map(|i| File {
                        name: Text::from(format!("db{i}")),
                        data: Bytes::from(vec![i; 13]),
                    })
                    .collect(),
            ),
            FakeReply::Metadata {
                failure_domain,
                weight,
            } => Response::Metadata(Metadata {
                failure_domain,
                weight,
            }),
        }
    }
}

/// One step of a connection script.
#[derive(Debug, Clone, Arbitrary)]
pub enum Op {
    Open(Name),
    ExecSql(Sql, Params),
    QuerySql(Sql, Params),
    Prepare(Sql),
    /// EXEC of a held statement handle (by index).
    Exec(u8, Params),
    /// QUERY of a held statement handle (by index).
    Query(u8, Params),
    /// FINALIZE of a held statement handle (by index).
    Finalize(u8),
    /// Abandon a request named by an earlier command (by index from the most recent).
    Abandon(u8),
    Interrupt,
    Leader,
    Client(u64),
    Cluster(bool),
    Describe,
    Weight(u64),
    Add(u64, Name),
    Assign(u64, u8),
    Remove(u64),
    Transfer(u64),
    Dump(Name),
    /// A well-formed response from the server.
    Reply(FakeReply),
    /// Raw bytes from the server.
    ServerBytes(Chunk),
    /// `advance_transmit(n)` after sending that many bytes.
    Transmit(u16),
    /// Send everything queued.
    TransmitAll,
    /// The transport closed.
    Eof,
}

/// The connection's settings, read first.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct ConnSetup {
    pub params32: bool,
    pub small_limits: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Leader,
    Welcome,
    Open,
    Prepare,
    Exec,
    Rows,
    Empty,
    Nodes { with_roles: bool },
    Files,
    Metadata,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqState {
    Live,
    Abandoned,
    Completed,
}

#[derive(Debug)]
struct Req {
    kind: Kind,
    /// The request the command asked for, as `Debug` text: the frame sent must decode to it.
    asked: String,
    start: u64,
    end: u64,
    state: ReqState,
}

struct ConnModel {
    c: Connection,
    params32: bool,
    /// Every byte handed to the transport.
    sent: Vec<u8>,
    /// Offset in `sent` of the first request frame not yet checked.
    checked: usize,
    reqs: BTreeMap<RequestId, Req>,
    order: Vec<RequestId>,
    /// Held statement handles, and whether a visible not-leader failure made them stale.
    handles: Vec<(Stmt, bool)>,
    poison: Option<Error>,
}

impl ConnModel {
    fn unsent(&self) -> usize {
        self.c.poll_transmit().map_or(0, <[u8]>::len)
    }

    fn queued(&self) -> u64 {
        (self.sent.len() + self.unsent()) as u64
    }

    fn live(&self) -> usize {
        self.reqs
            .values()
            .filter(|r| r.state == ReqState::Live)
            .count()
    }

    /// Runs one command. `misuse` says the core must refuse it, `ok` that it must accept it.
    fn command(
        &mut self,
        kind: Kind,
        misuse: bool,
        ok: bool,
        asked: Request<'_>,
        f: impl FnOnce(&mut Connection) -> Result<RequestId, Error>,
    ) {
        let before = self.queued();
        let unsent = self.unsent();
        let r = f(&mut self.c);
        trace!("  -> {r:?}");
        match r {
            Ok(id) => {
                assert!(self.poison.is_none(), "command accepted after poisoning");
                assert!(!misuse, "misuse accepted as {kind:?}");
                if let Some(last) = self.order.last() {
                    assert!(id > *last, "request ids not increasing");
                }
                let end = self.queued();
                assert!(end >= before + 16, "no request queued");
                self.order.push(id);
                self.reqs.insert(
                    id,
                    Req {
                        kind,
                        asked: format!("{asked:?}"),
                        start: before,
                        end,
                        state: ReqState::Live,
                    },
                );
            }
            Err(e) => {
                match &self.poison {
                    Some(p) => assert_eq!(&e, p, "a poisoned connection returned another error"),
                    None => {
                        assert!(matches!(e, Error::Misuse(_)), "command failed with {e:?}");
                        assert!(!ok, "{kind:?} refused: {e:?}");
                        assert!(self.c.error().is_none(), "misuse poisoned the connection");
                    }
                }
                assert_eq!(self.unsent(), unsent, "a refused command queued bytes");
            }
        }
    }

    fn handle(&self, i: u8) -> Option<usize> {
        (!self.handles.is_empty()).then(|| usize::from(i) % self.handles.len())
    }

    fn apply(&mut self, op: Op) {
        let poisoned = self.poison.is_some();
        let db = self.c.has_database();
        let p32 = self.params32;
        let rows = matches!(op, Op::QuerySql(..) | Op::Query(..));
        match op {
            Op::Open(n) => {
                let misuse = !poisoned && (n.get().contains('\0') || db);
                let asked = Request::Open {
                    name: n.get().into(),
                };
                self.command(Kind::Open, misuse, !poisoned && !misuse, asked, |c| {
                    c.open(n.get())
                });
            }
            Op::ExecSql(s, p) | Op::QuerySql(s, p) => {
                let sql = s.get();
                let misuse = !poisoned
                    && (!db
                        || sql.contains('\0')
                        || s.misuse(Some(p.0.len()), rows)
                        || p.misuse(p32));
                let ok = !poisoned && !misuse;
                let (sql_, params) = (sql.into(), as_sent(&p.0).into());
                if rows {
                    let asked = Request::QuerySql { sql: sql_, params };
                    self.command(Kind::Rows, misuse, ok, asked, |c| c.query_sql(sql, &p.0));
                } else {
                    let asked = Request::ExecSql { sql: sql_, params };
                    self.command(Kind::Exec, misuse, ok, asked, |c| c.exec_sql(sql, &p.0));
                }
            }
            Op::Prepare(s) => {
                let sql = s.get();
                let misuse = !poisoned && (!db || sql.contains('\0') || s.misuse(None, true));
                let asked = Request::Prepare { sql: sql.into() };
                self.command(Kind::Prepare, misuse, !poisoned && !misuse, asked, |c| {
                    c.prepare(sql)
                });
            }
            Op::Exec(i, p) | Op::Query(i, p) => {
                let Some(i) = self.handle(i) else { return };
                let (stmt, stale) = self.handles.remove(i);
                let wrong_count = p.0.len() as u64 != stmt.param_count();
                let misuse = !poisoned && (stale || !db || wrong_count || p.misuse(p32));
                let kind = if rows { Kind::Rows } else { Kind::Exec };
                let (id, params) = (stmt.id(), as_sent(&p.0).into());
                let asked = if rows {
                    Request::Query { stmt: id, params }
                } else {
                    Request::Exec { stmt: id, params }
                };
                self.command(kind, misuse, false, asked, |c| {
                    if rows {
                        c.query(&stmt, &p.0)
                    } else {
                        c.exec(&stmt, &p.0)
                    }
                });
                self.handles.insert(i, (stmt, stale));
            }
            Op::Finalize(i) => {
                let Some(i) = self.handle(i) else { return };
                let (stmt, stale) = self.handles.remove(i);
                let misuse = !poisoned && stale;
                let asked = Request::Finalize { stmt: stmt.id() };
                self.command(Kind::Empty, misuse, false, asked, |c| c.finalize(stmt));
            }
            Op::Abandon(i) => self.abandon(i),
            Op::Interrupt => {
                let misuse = !poisoned && !db;
                let asked = Request::Interrupt;
                self.command(Kind::Empty, misuse, !poisoned && db, asked, |c| {
                    c.interrupt()
                });
            }
            Op::Leader => {
                let asked = Request::Leader;
                self.command(Kind::Leader, false, !poisoned, asked, |c| c.leader());
            }
            Op::Client(id) => {
                let asked = Request::Client { id };
                self.command(Kind::Welcome, false, !poisoned, asked, |c| c.client(id));
            }
            Op::Cluster(with_roles) => {
                let kind = Kind::Nodes { with_roles };
                let asked = Request::Cluster { with_roles };
                self.command(kind, false, !poisoned, asked, |c| c.cluster(with_roles));
            }
            Op::Describe => {
                let asked = Request::Describe;
                self.command(Kind::Metadata, false, !poisoned, asked, |c| c.describe());
            }
            Op::Weight(weight) => {
                let asked = Request::Weight { weight };
                self.command(Kind::Empty, false, !poisoned, asked, |c| c.weight(weight));
            }
            Op::Add(id, n) => {
                let misuse = !poisoned && n.get().contains('\0');
                let asked = Request::Add {
                    id,
                    address: n.get().into(),
                };
                self.command(Kind::Empty, misuse, !poisoned && !misuse, asked, |c| {
                    c.add(id, n.get())
                });
            }
            Op::Assign(id, r) => {
                let asked = Request::Assign { id, role: role(r) };
                self.command(Kind::Empty, false, !poisoned, asked, |c| {
                    c.assign(id, role(r))
                });
            }
            Op::Remove(id) => {
                let asked = Request::Remove { id };
                self.command(Kind::Empty, false, !poisoned, asked, |c| c.remove(id));
            }
            Op::Transfer(id) => {
                let asked = Request::Transfer { id };
                self.command(Kind::Empty, false, !poisoned, asked, |c| c.transfer(id));
            }
            Op::Dump(n) => {
                let misuse = !poisoned && n.get().contains('\0');
                let asked = Request::Dump {
                    name: n.get().into(),
                };
                self.command(Kind::Files, misuse, !poisoned && !misuse, asked, |c| {
                    c.dump(n.get())
                });
            }
            Op::Reply(r) => self.c.handle_input(&frame_bytes(&r.response())),
            Op::ServerBytes(b) => self.c.handle_input(&b.0),
            Op::Transmit(n) => self.transmit(usize::from(n)),
            Op::TransmitAll => self.transmit(usize::MAX),
            Op::Eof => {
                let e = self.c.handle_eof();
                match &self.poison {
                    Some(p) => assert_eq!(&e, p),
                    None => assert_eq!(
                        e,
                        Error::Closed {
                            pending: self.live()
                        }
                    ),
                }
                self.poison = Some(e);
            }
        }
        self.drain();
        self.check_state();
    }

    fn abandon(&mut self, i: u8) {
        if self.order.is_empty() {
            return;
        }
        let id = self.order[self.order.len() - 1 - usize::from(i) % self.order.len()];
        let before = self.queued();
        let sent = self.sent.len() as u64;
        let done = self.c.abandon(id);
        let after = self.queued();
        let req = self.reqs.get_mut(&id).expect("known request");
        if self.poison.is_some() {
            assert!(!done, "abandon on a poisoned connection");
            assert_eq!(before, after);
            return;
        }
        match req.state {
            ReqState::Completed => assert!(!done, "abandoned an answered request"),
            ReqState::Live => {
                assert!(done, "a pending request could not be abandoned");
                req.state = ReqState::Abandoned;
            }
            ReqState::Abandoned => {}
        }
        if after < before {
            // Withdrawn: no byte of it was sent, and exactly its bytes went away; the requests
            // queued behind it move up.
            assert!(done);
            assert!(sent <= req.start, "withdrew bytes already sent");
            let (start, len) = (req.start, req.end - req.start);
            assert_eq!(before - after, len, "withdrew the wrong number of bytes");
            assert_eq!(self.c.send_state(id), SendState::NotPending);
            for r in self.reqs.values_mut() {
                if r.start > start {
                    r.start -= len;
                    r.end -= len;
                }
            }
            // It owns no bytes any more: no frame sent can be its.
            let req = self.reqs.get_mut(&id).expect("known request");
            (req.start, req.end) = (u64::MAX, u64::MAX);
        } else if after > before {
            // The INTERRUPT behind an abandoned row stream.
            assert_eq!(req.kind, Kind::Rows);
            assert_eq!(after - before, 16);
        }
    }

    fn transmit(&mut self, n: usize) {
        let avail = self.c.poll_transmit().unwrap_or_default();
        let take = n.min(avail.len());
        let left = avail.len() - take;
        self.sent.extend_from_slice(&avail[..take]);
        // A driver reports what its socket took, never more than was offered (more poisons
        // the connection with `Error::Invariant`, checked in the core's unit tests).
        self.c.advance_transmit(take);
        assert_eq!(self.unsent(), left);
        self.check_sent();
    }

    /// Every complete frame the client sent is one a server can safely receive.
    fn check_sent(&mut self) {
        if self.checked == 0 {
            let Some(hs) = self.sent.get(..WORD) else {
                return;
            };
            assert_eq!(hs, PROTOCOL_VERSION.to_le_bytes(), "handshake word");
            self.checked = WORD;
        }
        while let Some(head) = self.sent.get(self.checked..self.checked + WORD) {
            let h = Header::decode(head.try_into().expect("8 bytes"));
            let end = self.checked + WORD + h.body_len() as usize;
            let Some(body) = self.sent.get(self.checked + WORD..end) else {
                return;
            };
            assert!(h.words > 0, "zero-word request");
            assert!(
                h.kind != 2 && h.kind != 11 && h.kind <= 19,
                "forbidden request type {}",
                h.kind
            );
            assert_eq!(head[6..], [0, 0], "extra bytes set");
            let req = match Request::decode(h.kind, h.schema, Bytes::copy_from_slice(body)) {
                Ok(r) => r,
                Err(e) => panic!("client sent an undecodable request {h:?} {body:02x?}: {e}"),
            };
            trace!("  sent {req:?} (schema {})", h.schema);
            if h.kind == 18 {
                assert_eq!(body, [0; 8], "DESCRIBE body");
            }
            // The frame carries what its command asked for; a frame of no command is the
            // core's own INTERRUPT (behind an abandoned row stream) or FINALIZE (of a
            // statement whose PREPARE was abandoned).
            let sent = format!("{req:?}");
            match self.reqs.values().find(|r| r.end == end as u64) {
                Some(r) => assert_eq!(sent, r.asked, "frame of {:?}", r.kind),
                None => assert!(
                    matches!(req, Request::Interrupt | Request::Finalize { .. }),
                    "a frame no command asked for: {req:?}"
                ),
            }
            let params = match &req {
                Request::Exec { params, .. }
                | Request::Query { params, .. }
                | Request::ExecSql { params, .. }
                | Request::QuerySql { params, .. } => Some(params.len()),
                _ => None,
            };
            match (h.schema, params) {
                (0, Some(n)) => assert!(n <= 255, "{n} params in schema 0"),
                (0, None) => {}
                (1, Some(n)) => {
                    assert!(self.params32, "schema 1 to a server without params32");
                    assert!(n > 255);
                }
                (s, _) => panic!("schema {s} on {req:?}"),
            }
            for v in request_params(&req) {
                assert!(
                    !matches!(v, Value::Text(t) | Value::Iso8601(t) if t.contains('\0')),
                    "text with NUL sent"
                );
            }
            self.checked = end;
        }
    }

    fn drain(&mut self) {
        for _ in 0..100_000 {
            match self.c.poll_event() {
                Ok(None) => return,
                Ok(Some(ev)) => {
                    trace!("  event {ev:?}");
                    assert!(self.poison.is_none(), "event after poisoning");
                    self.on_event(ev);
                }
                Err(e) => {
                    trace!("  poll_event error {e}");
                    assert!(e.is_fatal(), "non-fatal error from poll_event: {e:?}");
                    if let Some(p) = &self.poison {
                        assert_eq!(&e, p, "poisoned connection returned another error");
                    }
                    assert_eq!(self.c.poll_event().as_ref(), Err(&e));
                    self.poison = Some(e);
                    return;
                }
            }
        }
        panic!("poll_event never returned None");
    }

    fn on_event(&mut self, ev: Event) {
        let Some(req) = self.reqs.get(&ev.request) else {
            panic!("event for a request never queued: {ev:?}");
        };
        assert_eq!(
            req.state,
            ReqState::Live,
            "event for a finished request {ev:?}"
        );
        let earlier = self
            .reqs
            .range(..ev.request)
            .find(|(_, r)| r.state == ReqState::Live);
        assert!(
            earlier.is_none(),
            "answered out of order: {earlier:?} {ev:?}"
        );
        let kind = req.kind;
        match &ev.reply {
            Reply::Failure(f) => {
                if f.is_not_leader() || f.is_leadership_lost() {
                    for h in &mut self.handles {
                        h.1 = true;
                    }
                }
            }
            Reply::Leader(_) => assert_eq!(kind, Kind::Leader),
            Reply::Welcome { .. } => assert_eq!(kind, Kind::Welcome),
            Reply::Opened => assert_eq!(kind, Kind::Open),
            Reply::Prepared(_) => assert_eq!(kind, Kind::Prepare),
            Reply::Executed(_) => assert_eq!(kind, Kind::Exec),
            Reply::Rows(b) => {
                assert_eq!(kind, Kind::Rows);
                assert!(b.is_last() || !b.is_empty());
            }
            Reply::Empty => assert_eq!(kind, Kind::Empty),
            Reply::Nodes(nodes) => {
                let Kind::Nodes { with_roles } = kind else {
                    panic!("{ev:?} for {kind:?}")
                };
                assert!(nodes.iter().all(|n| n.role.is_some() == with_roles));
            }
            Reply::Files(_) => assert_eq!(kind, Kind::Files),
            Reply::Metadata(_) => assert_eq!(kind, Kind::Metadata),
            other => panic!("unknown reply {other:?}"),
        }
        if ev.completes_request() {
            self.reqs.get_mut(&ev.request).expect("known").state = ReqState::Completed;
        }
        if let Reply::Prepared(stmt) = ev.reply {
            self.handles.push((stmt, false));
        }
    }

    fn check_state(&self) {
        assert_eq!(self.c.error(), self.poison.as_ref());
        assert_eq!(
            self.c.wants_input(),
            self.poison.is_none() && self.c.pending_requests() > 0
        );
        assert!(self.c.pending_requests() >= self.live());
        let sent = self.sent.len() as u64;
        for (&id, r) in &self.reqs {
            let want = match r.state {
                ReqState::Abandoned => continue,
                ReqState::Completed => SendState::NotPending,
                ReqState::Live if sent <= r.start => SendState::Unsent,
                ReqState::Live if sent < r.end => SendState::PartlySent,
                ReqState::Live => SendState::Sent,
            };
            assert_eq!(self.c.send_state(id), want, "send state of {id:?} {r:?}");
        }
    }
}

/// Parameters as the client puts them on the wire: a `UnixTime` goes out as an INTEGER, since
/// servers refuse the UNIXTIME code in parameters (`docs/PROTOCOL.md#values`).
pub fn as_sent(params: &[Value]) -> Vec<Value> {
    params
        .iter()
        .map(|v| match v {
            Value::UnixTime(t) => Value::Integer(*t),
            v => v.clone(),
        })
        .collect()
}

fn request_params<'a>(req: &'a Request<'_>) -> &'a [Value] {
    match req {
        Request::Exec { params, .. }
        | Request::Query { params, .. }
        | Request::ExecSql { params, .. }
        | Request::QuerySql { params, .. } => params,
        _ => &[],
    }
}

/// Most ops run per input.
pub const MAX_OPS: usize = 400;

/// An arbitrary script of commands, server bytes (raw or well-formed), partial sends and
/// transport closes, against a model of what the connection owes: no panic; requests answered
/// in order and typed by what they asked; misuse refused without queuing or poisoning; one
/// fatal error poisons everything after it; send states and withdrawals match the bytes sent;
/// and every frame the client sends decodes as a request a server can safely receive (no zero
/// words, no HEARTBEAT / CONNECT / unknown type, DESCRIBE format 0, schema 1 only with params32
/// and more than 255 parameters, no text with NUL).
pub fn connection(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = u.arbitrary::<ConnSetup>() else {
        return;
    };
    let limits = if setup.small_limits {
        small_limits()
    } else {
        Limits::default()
    };
    let mut m = ConnModel {
        c: Connection::new(Config {
            limits,
            server_accepts_params32: setup.params32,
            ..Config::default()
        }),
        params32: setup.params32,
        sent: Vec::new(),
        checked: 0,
        reqs: BTreeMap::new(),
        order: Vec::new(),
        handles: Vec::new(),
        poison: None,
    };
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = u.arbitrary::<Op>() else { break };
        trace!("connection op {op:?}");
        m.apply(op);
    }
    m.transmit(usize::MAX);
}

// ----- target 5: leader --------------------------------------------------------------------

/// The discovery's nodes and settings, read first.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct LeaderSetup {
    /// Number of nodes (`% 7`).
    pub nodes: u8,
    /// Bit i: node i's raft id is known (otherwise 0).
    pub known_ids: u8,
    /// Two bits per node: role unknown, voter, standby, spare.
    pub roles: u16,
    /// Last known leader: `% (nodes + 2)`, node i, none, or an address not in the list.
    pub last: u8,
    pub max_in_flight: u8,
    pub max_rounds: u8,
    pub backoff_base_ms: u16,
    pub backoff_cap_ms: u32,
    pub jitter_seed: u64,
    pub policy: u8,
}

/// One step of a discovery script.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum LeaderOp {
    /// Drain `poll_action`.
    Poll,
    /// The LEADER reply of an in-flight probe (by index): naming the node picked by `name`
    /// (node i, nobody, an unknown address) with the id picked by `id`.
    Reply { probe: u8, name: u8, id: u8 },
    /// A probe failed.
    Fail(u8),
    /// A reply to a probe that already finished.
    Stale(u8),
    /// Time passes.
    Advance(u16),
    /// Time jumps to the discovery's deadline.
    ToTimeout,
}

pub const UNKNOWN_ADDRESS: &str = "192.0.2.1:9001";

fn node_address(i: usize) -> String {
    format!("10.0.0.{}:9001", i + 1)
}

struct LeaderModel {
    d: Discovery,
    start: Instant,
    now: Instant,
    max_in_flight: usize,
    max_rounds: u32,
    policy: RedirectPolicy,
    /// Probes asked for and not reported, in order.
    in_flight: Vec<(ProbeId, String)>,
    finished: Vec<ProbeId>,
    all: HashMap<ProbeId, String>,
    /// Addresses a probe may be sent to.
    allowed: HashSet<String>,
    /// Raft ids a probe of that address may be confirmed by.
    ids: HashMap<String, HashSet<u64>>,
    /// The last reply of each answered probe.
    replies: HashMap<ProbeId, NodeInfo>,
    done: Option<Action>,
    /// The listed nodes' addresses: each round probes every one of them.
    listed: Vec<String>,
    /// Addresses probed since the last pause began (or since the start).
    probed_this_round: HashSet<String>,
    /// Pauses between rounds seen so far, and the end of the current one.
    pauses: u32,
    pause_until: Option<Instant>,
    backoff_base: Duration,
    backoff_cap: Duration,
    /// A probe whose reply named its own address: the leader, which must be reported next.
    confirmed: Option<ProbeId>,
}

impl LeaderModel {
    fn poll(&mut self) {
        self.poll_actions();
        if let Some(p) = self.confirmed {
            assert!(
                matches!(&self.done, Some(Action::Done(Ok(l))) if l.probe == p),
                "probe {p:?} was confirmed as the leader but {:?} was reported",
                self.done
            );
        }
        let pause = self.d.poll_timeout();
        if let Some(until) = pause.filter(|_| pause != self.pause_until) {
            self.round_ended("a pause");
            self.pauses += 1;
            let took = until - self.now;
            // The pause after round k: base * 2^(k-1), capped, scaled to 50-100 %.
            let nominal = self
                .backoff_base
                .saturating_mul(1 << (self.pauses - 1).min(20))
                .min(self.backoff_cap);
            let slack = Duration::from_micros(1);
            assert!(
                took + slack >= nominal / 2 && took <= nominal + slack,
                "pause {} lasts {took:?}, nominal {nominal:?}",
                self.pauses
            );
        }
        self.pause_until = pause;
    }

    /// A round ended (a pause began, or the discovery failed): it probed every listed node.
    fn round_ended(&mut self, how: &str) {
        for a in &self.listed {
            assert!(
                self.probed_this_round.contains(a),
                "round {} ended by {how} without probing {a}",
                self.pauses + 1
            );
        }
        self.probed_this_round.clear();
    }

    fn poll_actions(&mut self) {
        for _ in 0..1000 {
            if let Some(t) = self.d.poll_timeout() {
                assert!(self.done.is_none());
                if self.now < t {
                    assert_eq!(
                        self.d.poll_action(self.now),
                        None,
                        "acted before its deadline"
                    );
                    return;
                }
            }
            let Some(a) = self.d.poll_action(self.now) else {
                return;
            };
            trace!("leader action {a:?} at +{:?}", self.now - self.start);
            assert!(self.done.is_none(), "action after Done: {a:?}");
            match &a {
                Action::Probe { probe, address } => {
                    assert!(!self.all.contains_key(probe), "probe id reused");
                    assert!(self.allowed.contains(address), "probe to {address}");
                    assert!(
                        self.in_flight.iter().all(|(_, a)| a != address),
                        "two probes in flight to {address}"
                    );
                    self.all.insert(*probe, address.clone());
                    self.probed_this_round.insert(address.clone());
                    self.in_flight.push((*probe, address.clone()));
                    assert!(
                        self.in_flight.len() <= self.max_in_flight,
                        "{} probes in flight, limit {}",
                        self.in_flight.len(),
                        self.max_in_flight
                    );
                }
                Action::Done(Ok(l)) => {
                    let addr = self.all.get(&l.probe).expect("leader from a known probe");
                    assert_eq!(&l.address, addr);
                    let r = self
                        .replies
                        .get(&l.probe)
                        .expect("leader probe was answered");
                    assert_eq!(l.id, r.id);
                    let by_address = !r.address.is_empty() && r.address == *addr.as_str();
                    let by_id = r.id != 0 && self.ids.get(addr).is_some_and(|s| s.contains(&r.id));
                    assert!(by_address || by_id, "{l:?} not confirmed by {r:?}");
                    self.done = Some(a.clone());
                }
                Action::Done(Err(e)) => {
                    assert!(
                        self.confirmed.is_none(),
                        "failed after a confirmation: {e:?}"
                    );
                    if self.listed.is_empty() {
                        assert_eq!(e.rounds, 1, "rounds over no nodes");
                    } else {
                        // Gives up only after all its rounds, each one pause apart.
                        assert_eq!(e.rounds, self.max_rounds, "gave up early");
                        if !self.backoff_base.is_zero() && !self.backoff_cap.is_zero() {
                            assert_eq!(self.pauses + 1, e.rounds, "pauses between rounds");
                        }
                    }
                    self.round_ended("failure");
                    for (addr, _) in &e.nodes {
                        assert!(self.all.values().any(|a| a == addr), "{addr} never probed");
                    }
                    self.done = Some(a.clone());
                }
            }
            assert_eq!(self.d.in_flight(), self.in_flight.len());
        }
        panic!("poll_action never returned None");
    }

    fn take(&mut self, i: u8) -> Option<(ProbeId, String)> {
        if self.in_flight.is_empty() {
            return None;
        }
        let (p, a) = self.in_flight.remove(usize::from(i) % self.in_flight.len());
        self.finished.push(p);
        Some((p, a))
    }

    fn reply(&mut self, probe: ProbeId, name: &str, id: u64) {
        let reply = NodeInfo {
            id,
            address: Text::from(name),
            role: None,
        };
        if !name.is_empty() {
            let follow = match self.policy {
                RedirectPolicy::Never => false,
                // No membership or aliases are reported here: Cluster follows listed names only.
                RedirectPolicy::KnownNodes | RedirectPolicy::Cluster => self.allowed.contains(name),
                _ => true,
            };
            if follow {
                self.allowed.insert(name.to_owned());
            }
            self.ids.entry(name.to_owned()).or_default().insert(id);
        }
        let address = self.all.get(&probe).expect("a probe asked for");
        if !name.is_empty() && name == address && self.done.is_none() && self.confirmed.is_none() {
            self.confirmed = Some(probe);
        }
        self.d.handle_reply(probe, &reply);
        self.replies.insert(probe, reply);
    }
}

/// `discovery::Discovery` driven by an arbitrary script of replies, failures and time: no panic;
/// never more probes in flight than `max_in_flight` (nor two to one address); no action
/// before a backoff deadline; probes only to listed, last-known or followed addresses;
/// `Done(Ok)` only for a probe whose own reply confirmed it; and once the script ends,
/// answering every probe and waiting out every pause reaches `Done` within a bounded loop.
pub fn leader(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(s) = u.arbitrary::<LeaderSetup>() else {
        return;
    };
    let n = usize::from(s.nodes % 7);
    let nodes: Vec<Node> = (0..n)
        .map(|i| {
            let mut node = Node::new(node_address(i));
            if s.known_ids & (1 << i) != 0 {
                node.id = i as u64 + 1;
            }
            node.role = match (s.roles >> (2 * i)) & 3 {
                0 => None,
                1 => Some(NodeRole::Voter),
                2 => Some(NodeRole::Standby),
                _ => Some(NodeRole::Spare),
            };
            node
        })
        .collect();
    let last = match usize::from(s.last) % (n + 2) {
        i if i < n => Some(node_address(i)),
        i if i == n => None,
        _ => Some(UNKNOWN_ADDRESS.to_owned()),
    };
    let policy = match s.policy % 4 {
        0 => RedirectPolicy::Never,
        1 => RedirectPolicy::KnownNodes,
        2 => RedirectPolicy::Cluster,
        _ => RedirectPolicy::Any,
    };
    let config = DiscoveryConfig {
        max_in_flight: usize::from(s.max_in_flight % 6),
        max_rounds: u32::from(s.max_rounds % 5),
        backoff_base: Duration::from_millis(u64::from(s.backoff_base_ms)),
        backoff_cap: Duration::from_millis(u64::from(s.backoff_cap_ms)),
        jitter_seed: s.jitter_seed,
        redirects: policy,
    };
    let listed: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let mut allowed: HashSet<String> = listed.iter().cloned().collect();
    allowed.extend(last.clone());
    let mut ids: HashMap<String, HashSet<u64>> = HashMap::new();
    for node in &nodes {
        ids.entry(node.address.clone()).or_default().insert(node.id);
    }
    let now = Instant::now();
    let mut m = LeaderModel {
        d: Discovery::new(nodes, last, config),
        start: now,
        now,
        max_in_flight: config.max_in_flight.max(1),
        max_rounds: config.max_rounds.max(1),
        policy,
        in_flight: Vec::new(),
        finished: Vec::new(),
        all: HashMap::new(),
        allowed,
        ids,
        replies: HashMap::new(),
        done: None,
        listed,
        probed_this_round: HashSet::new(),
        pauses: 0,
        pause_until: None,
        backoff_base: config.backoff_base,
        backoff_cap: config.backoff_cap,
        confirmed: None,
    };
    m.poll();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let Ok(op) = u.arbitrary::<LeaderOp>() else {
            break;
        };
        trace!("leader op {op:?} in flight {:?}", m.in_flight);
        match op {
            LeaderOp::Poll => {}
            LeaderOp::Reply { probe, name, id } => {
                let Some((p, _)) = m.take(probe) else {
                    continue;
                };
                let name = match usize::from(name) % (n + 2) {
                    i if i < n => node_address(i),
                    i if i == n => String::new(),
                    _ => UNKNOWN_ADDRESS.to_owned(),
                };
                let id = match id % 4 {
                    0 => 0,
                    1 => u64::from(id / 4) % (n as u64 + 1) + 1,
                    2 => 0xe5d6_c3c8_a2e3_bda5,
                    _ => u64::from(id),
                };
                m.reply(p, &name, id);
            }
            LeaderOp::Fail(i) => {
                if let Some((p, _)) = m.take(i) {
                    m.d.handle_failure(p, "refused");
                }
            }
            LeaderOp::Stale(i) => {
                if !m.finished.is_empty() {
                    let p = m.finished[usize::from(i) % m.finished.len()];
                    let before = m.d.in_flight();
                    m.d.handle_reply(
                        p,
                        &NodeInfo {
                            id: 1,
                            address: Text::from(node_address(0)),
                            role: None,
                        },
                    );
                    m.d.handle_failure(p, "late");
                    assert_eq!(m.d.in_flight(), before, "a stale report changed the probes");
                }
            }
            LeaderOp::Advance(ms) => m.now += Duration::from_millis(u64::from(ms)),
            LeaderOp::ToTimeout => {
                if let Some(t) = m.d.poll_timeout() {
                    m.now = m.now.max(t);
                }
            }
        }
        m.poll();
    }
    // Answer everything, wait out every pause: Done must come.
    for _ in 0..10_000 {
        m.poll();
        if m.done.is_some() {
            assert_eq!(m.d.poll_action(m.now + Duration::from_secs(3600)), None);
            assert_eq!(m.d.poll_timeout(), None);
            return;
        }
        if let Some((p, _)) = m.take(0) {
            m.d.handle_failure(p, "gone");
        } else if let Some(t) = m.d.poll_timeout() {
            m.now = m.now.max(t);
        } else {
            panic!("stuck: nothing in flight, no deadline, not done");
        }
    }
    panic!("discovery did not finish");
}
