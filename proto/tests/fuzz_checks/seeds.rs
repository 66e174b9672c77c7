//! The hand-written seed corpus of the fuzz targets, as code: the worked examples of
//! `docs/PROTOCOL.md#worked-examples`, multi-part ROWS streams, and connection / discovery
//! scripts. The scripts are turned into the exact bytes `arbitrary` decodes back into them
//! (checked by [`check_scripts`]). `fuzz_corpus.rs` compares these with the files in
//! `fuzz/corpus/` and can rewrite them (`--ignored write_seed_corpus`).

use bytes::Bytes;
use dqlite_proto::server::{Request, Response};
use dqlite_proto::{RowsBatch, ServerFailure, Text, Value, CODE_NOT_LEADER};

use super::fuzz_checks::{
    frame_bytes, join_input, ArbValue, Chunk, ConnSetup, FakeReply, LeaderOp, LeaderSetup, Name,
    Op, Params, Sql, FAILURE_CODES, TEXTS,
};

/// Bytes from hex text (whitespace and `|` ignored).
pub fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

// Replies, byte for byte as in docs/PROTOCOL.md#worked-examples.
const LEADER_REPLY: &str = "03 00 00 00 01 00 00 00 a5 bd e3 a2 c8 c3 d6 e5 \
    31 32 37 2e 30 2e 30 2e 31 3a 39 30 30 32 00 00";
const NO_LEADER_REPLY: &str =
    "02 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00";
const WELCOME_REPLY: &str = "01 00 00 00 02 00 00 00 98 3a 00 00 00 00 00 00";
const DB_REPLY: &str = "01 00 00 00 04 00 00 00 00 00 00 00 00 00 00 00";
const RESULT_REPLY: &str = "02 00 00 00 06 00 00 00 01 00 00 00 00 00 00 00 \
    01 00 00 00 00 00 00 00";
const ROWS_SELECT_1_NULL: &str = "07 00 00 00 07 00 00 00 02 00 00 00 00 00 00 00 \
    31 00 00 00 00 00 00 00 4e 55 4c 4c 00 00 00 00 51 00 00 00 00 00 00 00 \
    01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff";
const NOT_LEADER_FAILURE: &str = "03 00 00 00 00 00 00 00 0a 28 00 00 00 00 00 00 \
    6e 6f 74 20 6c 65 61 64 65 72 00 00 00 00 00 00";
const STMT_WITH_OFFSET: &str = "03 00 00 00 05 01 00 00 00 00 00 00 00 00 00 00 \
    00 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00";
const ROWS_EMPTY_DONE: &str = "03 00 00 00 07 00 00 00 01 00 00 00 00 00 00 00 \
    78 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff";
/// A blob row whose padding the server did not clear
/// (docs/PROTOCOL.md#primitive-encodings).
const ROWS_BLOB_GARBAGE: &str = "05 00 00 00 07 00 00 00 01 00 00 00 00 00 00 00 \
                                 62 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 \
                                 03 00 00 00 00 00 00 00 01 02 03 6c 00 00 00 00 \
                                 ff ff ff ff ff ff ff ff";
// Requests: the LEADER, CLIENT, OPEN and EXEC_SQL examples of
// docs/PROTOCOL.md#worked-examples.
const EXAMPLE_REQUESTS: &str = "01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
    01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 \
    04 00 00 00 03 00 00 00 64 65 6d 6f 00 00 00 00 00 00 00 00 00 00 00 00 \
    76 6f 6c 61 74 69 6c 65 00 00 00 00 00 00 00 00 \
    08 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00 \
    49 4e 53 45 52 54 20 49 4e 54 4f 20 6b 76 20 56 \
    41 4c 55 45 53 20 28 3f 2c 20 3f 29 00 00 00 00 \
    02 01 03 00 00 00 00 00 2a 00 00 00 00 00 00 00 68 65 6c 6c 6f 00 00 00";

fn cat(parts: &[&str]) -> Vec<u8> {
    parts.iter().flat_map(|p| hex(p)).collect()
}

fn rows(ncols: usize, nrows: usize, last: bool) -> Response {
    let columns = (0..ncols).map(|i| Text::from(format!("col{i}"))).collect();
    let values = (0..ncols * nrows)
        .map(|i| match i % 4 {
            0 => Value::Integer(i as i64),
            1 => Value::Text(Text::from("row text")),
            2 => Value::Null,
            _ => Value::Blob(Bytes::from_static(b"\x01\x02\x03")),
        })
        .collect();
    Response::Rows(RowsBatch::new(columns, values, last))
}

fn frames(rs: &[Response]) -> Vec<u8> {
    rs.iter().flat_map(frame_bytes).collect()
}

// ----- reverse of `arbitrary` for the script types ----------------------------------------

/// The bytes `arbitrary` (1.x) decodes as a value.
pub trait Seed {
    fn put(&self, out: &mut Vec<u8>);
}

/// Smallest u32 that the derived enum decoder maps to variant `k` of `n`.
fn variant(out: &mut Vec<u8>, k: u32, n: u32) {
    let x = ((u64::from(k) << 32).div_ceil(u64::from(n))) as u32;
    out.extend_from_slice(&x.to_le_bytes());
}

macro_rules! seed_int {
    ($($t:ty),*) => {$(
        impl Seed for $t {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
seed_int!(u8, u16, u32, u64, i64);

impl Seed for bool {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Seed for Name {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
    }
}

impl Seed for Sql {
    fn put(&self, out: &mut Vec<u8>) {
        self.0.put(out);
    }
}

fn text_index(t: &Text) -> u8 {
    TEXTS
        .iter()
        .position(|s| t == s)
        .expect("seed text from TEXTS") as u8
}

impl Seed for ArbValue {
    fn put(&self, out: &mut Vec<u8>) {
        match &self.0 {
            Value::Null => out.push(0),
            Value::Integer(i) => {
                out.push(1);
                i.put(out);
            }
            Value::Float(f) => {
                out.push(2);
                f.to_bits().put(out);
            }
            Value::Text(t) => out.extend([3, text_index(t)]),
            Value::Blob(b) => {
                out.extend([4, b.len() as u8]);
                out.extend_from_slice(b);
            }
            Value::UnixTime(i) => {
                out.push(5);
                i.put(out);
            }
            Value::Iso8601(t) => out.extend([6, text_index(t)]),
            Value::Boolean(b) => {
                out.push(7);
                b.put(out);
            }
        }
    }
}

impl Seed for Params {
    fn put(&self, out: &mut Vec<u8>) {
        let n = self.0.len();
        if n < 6 {
            out.push(n as u8);
            for v in &self.0 {
                ArbValue(v.clone()).put(out);
            }
        } else {
            out.push(0xf0 + ((n - 250) / 2) as u8);
            ArbValue(self.0[0].clone()).put(out);
        }
    }
}

impl Seed for Chunk {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(self.0.len() as u8);
        out.extend_from_slice(&self.0);
    }
}

impl Seed for ConnSetup {
    fn put(&self, out: &mut Vec<u8>) {
        self.params32.put(out);
        self.small_limits.put(out);
    }
}

impl Seed for FakeReply {
    fn put(&self, out: &mut Vec<u8>) {
        const N: u32 = 11;
        match self {
            FakeReply::Failure(c) => {
                variant(out, 0, N);
                c.put(out);
            }
            FakeReply::Server { id, address } => {
                variant(out, 1, N);
                id.put(out);
                address.put(out);
            }
            FakeReply::Welcome(ms) => {
                variant(out, 2, N);
                ms.put(out);
            }
            FakeReply::Servers { n, roles } => {
                variant(out, 3, N);
                n.put(out);
                roles.put(out);
            }
            FakeReply::Db => variant(out, 4, N),
            FakeReply::Stmt { id, params, offset } => {
                variant(out, 5, N);
                id.put(out);
                params.put(out);
                offset.put(out);
            }
            FakeReply::Result {
                last_insert_id,
                rows_affected,
            } => {
                variant(out, 6, N);
                last_insert_id.put(out);
                rows_affected.put(out);
            }
            FakeReply::Rows {
                ncols,
                nrows,
                last,
                seed,
            } => {
                variant(out, 7, N);
                ncols.put(out);
                nrows.put(out);
                last.put(out);
                seed.put(out);
            }
            FakeReply::Empty => variant(out, 8, N),
            FakeReply::Files { n } => {
                variant(out, 9, N);
                n.put(out);
            }
            FakeReply::Metadata {
                failure_domain,
                weight,
            } => {
                variant(out, 10, N);
                failure_domain.put(out);
                weight.put(out);
            }
        }
    }
}

impl Seed for Op {
    fn put(&self, out: &mut Vec<u8>) {
        const N: u32 = 24;
        match self {
            Op::Open(n) => {
                variant(out, 0, N);
                n.put(out);
            }
            Op::ExecSql(s, p) => {
                variant(out, 1, N);
                s.put(out);
                p.put(out);
            }
            Op::QuerySql(s, p) => {
                variant(out, 2, N);
                s.put(out);
                p.put(out);
            }
            Op::Prepare(s) => {
                variant(out, 3, N);
                s.put(out);
            }
            Op::Exec(i, p) => {
                variant(out, 4, N);
                i.put(out);
                p.put(out);
            }
            Op::Query(i, p) => {
                variant(out, 5, N);
                i.put(out);
                p.put(out);
            }
            Op::Finalize(i) => {
                variant(out, 6, N);
                i.put(out);
            }
            Op::Abandon(i) => {
                variant(out, 7, N);
                i.put(out);
            }
            Op::Interrupt => variant(out, 8, N),
            Op::Leader => variant(out, 9, N),
            Op::Client(id) => {
                variant(out, 10, N);
                id.put(out);
            }
            Op::Cluster(r) => {
                variant(out, 11, N);
                r.put(out);
            }
            Op::Describe => variant(out, 12, N),
            Op::Weight(w) => {
                variant(out, 13, N);
                w.put(out);
            }
            Op::Add(id, n) => {
                variant(out, 14, N);
                id.put(out);
                n.put(out);
            }
            Op::Assign(id, r) => {
                variant(out, 15, N);
                id.put(out);
                r.put(out);
            }
            Op::Remove(id) => {
                variant(out, 16, N);
                id.put(out);
            }
            Op::Transfer(id) => {
                variant(out, 17, N);
                id.put(out);
            }
            Op::Dump(n) => {
                variant(out, 18, N);
                n.put(out);
            }
            Op::Reply(r) => {
                variant(out, 19, N);
                r.put(out);
            }
            Op::ServerBytes(c) => {
                variant(out, 20, N);
                c.put(out);
            }
            Op::Transmit(n) => {
                variant(out, 21, N);
                n.put(out);
            }
            Op::TransmitAll => variant(out, 22, N),
            Op::Eof => variant(out, 23, N),
        }
    }
}

impl Seed for LeaderSetup {
    fn put(&self, out: &mut Vec<u8>) {
        self.nodes.put(out);
        self.known_ids.put(out);
        self.roles.put(out);
        self.last.put(out);
        self.max_in_flight.put(out);
        self.max_rounds.put(out);
        self.backoff_base_ms.put(out);
        self.backoff_cap_ms.put(out);
        self.jitter_seed.put(out);
        self.policy.put(out);
    }
}

impl Seed for LeaderOp {
    fn put(&self, out: &mut Vec<u8>) {
        const N: u32 = 6;
        match self {
            LeaderOp::Poll => variant(out, 0, N),
            LeaderOp::Reply { probe, name, id } => {
                variant(out, 1, N);
                probe.put(out);
                name.put(out);
                id.put(out);
            }
            LeaderOp::Fail(i) => {
                variant(out, 2, N);
                i.put(out);
            }
            LeaderOp::Stale(i) => {
                variant(out, 3, N);
                i.put(out);
            }
            LeaderOp::Advance(ms) => {
                variant(out, 4, N);
                ms.put(out);
            }
            LeaderOp::ToTimeout => variant(out, 5, N),
        }
    }
}

fn script<S: Seed, O: Seed>(setup: S, ops: &[O]) -> Vec<u8> {
    let mut out = Vec::new();
    setup.put(&mut out);
    for op in ops {
        op.put(&mut out);
    }
    out
}

// ----- the scripts -------------------------------------------------------------------------

const DB: Name = Name(0);
const SELECT_1: Sql = Sql(0);
const INSERT: Sql = Sql(1);

fn reply(r: FakeReply) -> Op {
    Op::Reply(r)
}

fn rows_reply(nrows: u8, last: bool) -> Op {
    reply(FakeReply::Rows {
        ncols: 2,
        nrows,
        last,
        seed: 1,
    })
}

fn not_leader_index() -> u8 {
    FAILURE_CODES
        .iter()
        .position(|&c| c == CODE_NOT_LEADER)
        .expect("listed") as u8
}

/// The connection scripts: (file name, setup, ops).
pub fn connection_scripts() -> Vec<(&'static str, ConnSetup, Vec<Op>)> {
    let plain = ConnSetup {
        params32: false,
        small_limits: false,
    };
    let two = Params(vec![Value::Integer(42), Value::Text(Text::from("hello"))]);
    vec![
        (
            "open_query_multipart",
            plain,
            vec![
                Op::Open(DB),
                Op::QuerySql(SELECT_1, Params(vec![])),
                Op::TransmitAll,
                reply(FakeReply::Db),
                rows_reply(3, false),
                rows_reply(2, false),
                rows_reply(0, true),
            ],
        ),
        (
            "prepare_exec_finalize",
            plain,
            vec![
                Op::Open(DB),
                Op::Prepare(INSERT),
                Op::Transmit(20),
                Op::TransmitAll,
                reply(FakeReply::Db),
                reply(FakeReply::Stmt {
                    id: 0,
                    params: 2,
                    offset: false,
                }),
                Op::Exec(0, two.clone()),
                Op::Query(0, Params(vec![Value::Boolean(true), Value::Null])),
                Op::Finalize(0),
                Op::TransmitAll,
                reply(FakeReply::Result {
                    last_insert_id: 1,
                    rows_affected: 1,
                }),
                rows_reply(1, true),
                reply(FakeReply::Empty),
            ],
        ),
        (
            "abandon_stream_and_prepare",
            plain,
            vec![
                Op::Open(DB),
                Op::QuerySql(SELECT_1, Params(vec![])),
                Op::Prepare(SELECT_1),
                Op::ExecSql(INSERT, two.clone()),
                Op::TransmitAll,
                reply(FakeReply::Db),
                rows_reply(2, false),
                Op::Abandon(2),
                Op::Abandon(1),
                Op::Abandon(0),
                Op::TransmitAll,
                rows_reply(2, true),
                reply(FakeReply::Stmt {
                    id: 1,
                    params: 0,
                    offset: true,
                }),
                Op::TransmitAll,
                reply(FakeReply::Result {
                    last_insert_id: 0,
                    rows_affected: 0,
                }),
                reply(FakeReply::Empty),
                reply(FakeReply::Empty),
            ],
        ),
        (
            "params32_many_params",
            ConnSetup {
                params32: true,
                small_limits: false,
            },
            vec![
                Op::Open(DB),
                Op::ExecSql(INSERT, Params(vec![Value::Integer(7); 260])),
                Op::QuerySql(SELECT_1, Params(vec![Value::Null; 250])),
                Op::TransmitAll,
                reply(FakeReply::Db),
                reply(FakeReply::Result {
                    last_insert_id: 2,
                    rows_affected: 1,
                }),
                rows_reply(1, true),
            ],
        ),
        (
            "cluster_requests_then_eof",
            ConnSetup {
                params32: false,
                small_limits: true,
            },
            vec![
                Op::Leader,
                Op::Client(0),
                Op::Cluster(true),
                Op::Describe,
                Op::Weight(7),
                Op::Add(2, Name(2)),
                Op::Assign(2, 2),
                Op::Dump(DB),
                Op::Transmit(5),
                reply(FakeReply::Server {
                    id: 1,
                    address: Name(0),
                }),
                reply(FakeReply::Welcome(15000)),
                reply(FakeReply::Servers { n: 3, roles: true }),
                reply(FakeReply::Metadata {
                    failure_domain: 0,
                    weight: 7,
                }),
                Op::TransmitAll,
                Op::Eof,
                Op::Leader,
            ],
        ),
        (
            "not_leader_stales_statements",
            plain,
            vec![
                Op::Open(DB),
                Op::Prepare(SELECT_1),
                Op::TransmitAll,
                reply(FakeReply::Db),
                reply(FakeReply::Stmt {
                    id: 0,
                    params: 0,
                    offset: false,
                }),
                Op::ExecSql(INSERT, two),
                Op::TransmitAll,
                reply(FakeReply::Failure(not_leader_index())),
                Op::Exec(0, Params(vec![])),
                Op::Finalize(0),
                Op::ServerBytes(Chunk(hex(WELCOME_REPLY))),
            ],
        ),
    ]
}

/// The discovery scripts: (file name, setup, ops).
pub fn leader_scripts() -> Vec<(&'static str, LeaderSetup, Vec<LeaderOp>)> {
    let three = LeaderSetup {
        nodes: 3,
        known_ids: 0b111,
        roles: 0,
        last: 3, // none
        max_in_flight: 4,
        max_rounds: 3,
        backoff_base_ms: 100,
        backoff_cap_ms: 1000,
        jitter_seed: 42,
        policy: 1, // known nodes
    };
    vec![
        (
            "redirect_then_confirm",
            three,
            vec![
                // The first node names the second (id 2, index 1 * 4 + 1 -> id 2).
                LeaderOp::Reply {
                    probe: 0,
                    name: 1,
                    id: 5,
                },
                LeaderOp::Fail(1),
                // The second confirms itself by address.
                LeaderOp::Reply {
                    probe: 0,
                    name: 1,
                    id: 5,
                },
            ],
        ),
        (
            "all_fail_then_backoff",
            LeaderSetup {
                max_in_flight: 1,
                ..three
            },
            vec![
                LeaderOp::Fail(0),
                LeaderOp::Reply {
                    probe: 0,
                    name: 3,
                    id: 0,
                },
                LeaderOp::Fail(0),
                LeaderOp::Advance(30),
                LeaderOp::Poll,
                LeaderOp::ToTimeout,
                LeaderOp::Stale(0),
                LeaderOp::Fail(0),
            ],
        ),
        (
            "fast_path_last_leader",
            LeaderSetup {
                last: 0,
                policy: 2, // any
                ..three
            },
            vec![LeaderOp::Reply {
                probe: 0,
                name: 0,
                id: 1,
            }],
        ),
        (
            "redirect_to_unknown_address",
            LeaderSetup {
                nodes: 2,
                last: 3, // not in the list
                policy: 2,
                ..three
            },
            vec![
                LeaderOp::Fail(0),
                LeaderOp::Reply {
                    probe: 0,
                    name: 3,
                    id: 2,
                },
                // The unknown node confirms itself.
                LeaderOp::Reply {
                    probe: 1,
                    name: 3,
                    id: 2,
                },
            ],
        ),
    ]
}

/// One request of each type, as the client encodes them.
fn request_seeds() -> Vec<(&'static str, Request<'static>)> {
    let params = vec![
        Value::Integer(-7),
        Value::Float(0.5),
        Value::Text(Text::from("hello")),
        Value::Blob(Bytes::from_static(&[1, 2, 3])),
        Value::Null,
        Value::Boolean(true),
        Value::Iso8601(Text::from("2024-01-02 03:04:05")),
        Value::UnixTime(1_700_000_000),
    ];
    vec![
        ("leader", Request::Leader),
        ("client", Request::Client { id: 1 }),
        (
            "open",
            Request::Open {
                name: "demo".into(),
            },
        ),
        (
            "prepare",
            Request::Prepare {
                sql: "SELECT ?".into(),
            },
        ),
        (
            "exec_all_types",
            Request::Exec {
                stmt: 3,
                params: params.clone().into(),
            },
        ),
        (
            "query_sql_300_params",
            Request::QuerySql {
                sql: "SELECT 1".into(),
                params: vec![Value::Integer(1); 300].into(),
            },
        ),
        (
            "exec_sql",
            Request::ExecSql {
                sql: "INSERT INTO kv VALUES (?, ?)".into(),
                params: params.into(),
            },
        ),
        ("finalize", Request::Finalize { stmt: 3 }),
        ("interrupt", Request::Interrupt),
        (
            "add",
            Request::Add {
                id: 4,
                address: "127.0.0.1:9004".into(),
            },
        ),
        (
            "assign",
            Request::Assign {
                id: 4,
                role: dqlite_proto::NodeRole::Standby,
            },
        ),
        ("remove", Request::Remove { id: 4 }),
        ("dump", Request::Dump { name: "db".into() }),
        ("cluster", Request::Cluster { with_roles: true }),
        ("transfer", Request::Transfer { id: 2 }),
        ("describe", Request::Describe),
        ("weight", Request::Weight { weight: 9 }),
    ]
}

/// SQL the scanner must read as SQLite does (target `sql`).
const SQL_SEEDS: &[(&str, &str)] = &[
    (
        "insert_returning",
        "INSERT INTO t (b) VALUES (?) RETURNING a",
    ),
    ("update_returning", "UPDATE t SET b = ? WHERE a = ?1 RETURNING *"),
    (
        "with_insert_returning",
        "WITH c AS (SELECT 1) INSERT INTO u SELECT 1, 2, 3 FROM c RETURNING x",
    ),
    ("delete_returning", "DELETE FROM t WHERE d > 1.5e3 RETURNING a, b"),
    (
        "named_parameters",
        "SELECT :a, :a, ?5, @b, $c, $d::e(f), ? FROM t WHERE b = :a",
    ),
    (
        "trigger_script",
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET x = CASE WHEN new.a THEN 2 END; \
         DELETE FROM u WHERE y = new.b; END; SELECT 1",
    ),
    (
        "quotes_and_comments",
        "SELECT 'it''s ? ;' -- a ? comment ;\n, \"a\"\"b\", `e;f`, [d ?] FROM w /* ? ; */; SELECT ?",
    ),
    (
        "numbers",
        "SELECT x'00ff', 1e5, 0x1F, .5, 1_000, 3. FROM t WHERE a IN (?, ?)",
    ),
    (
        "transaction_control",
        "BEGIN IMMEDIATE; SAVEPOINT s; INSERT INTO u VALUES (?, ?, ?); RELEASE s; COMMIT",
    ),
    (
        "returning_as_a_name",
        "SELECT [returning] FROM \"returning\" WHERE `returning` = ?",
    ),
    ("empty_statements", " ; ;; SELECT 1;; -- end"),
];

/// Every seed: (target, file name, bytes).
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |t: &'static str, name: &str, bytes: Vec<u8>| out.push((t, name.into(), bytes));

    let replies = cat(&[
        LEADER_REPLY,
        NO_LEADER_REPLY,
        WELCOME_REPLY,
        DB_REPLY,
        RESULT_REPLY,
        ROWS_SELECT_1_NULL,
        NOT_LEADER_FAILURE,
        STMT_WITH_OFFSET,
        ROWS_EMPTY_DONE,
    ]);
    add(
        "deframer",
        "example_replies",
        join_input(0, &[0, 6, 2, 40], &replies),
    );
    add(
        "deframer",
        "example_requests",
        join_input(0, &[], &hex(EXAMPLE_REQUESTS)),
    );
    let mut zero = hex(DB_REPLY);
    zero.extend(hex("00 00 00 00 08 00 00 00 00 00 00 00 00 00 00 00"));
    add("deframer", "zero_words", join_input(0, &[3], &zero));
    add(
        "deframer",
        "over_limit",
        join_input(2, &[7], &hex(ROWS_SELECT_1_NULL)),
    );

    for (name, frame, flags) in [
        ("leader_reply", LEADER_REPLY, 0),
        ("rows_select_1_null", ROWS_SELECT_1_NULL, 0),
        ("not_leader_failure", NOT_LEADER_FAILURE, 0),
        ("stmt_with_offset", STMT_WITH_OFFSET, 0),
        ("rows_blob_garbage", ROWS_BLOB_GARBAGE, 0),
    ] {
        let mut b = vec![flags];
        b.extend(hex(frame));
        add("responses", name, b);
    }
    let mut b = vec![1];
    b.extend(frames(&[
        Response::Servers(vec![dqlite_proto::NodeInfo {
            id: 1,
            address: Text::from("127.0.0.1:9001"),
            role: Some(dqlite_proto::NodeRole::Voter),
        }]),
        Response::Files(vec![dqlite_proto::File {
            name: Text::from("db"),
            data: Bytes::from_static(b"SQLite format 3\0"),
        }]),
    ]));
    add("responses", "servers_roles_and_files", b);

    let multipart = frames(&[rows(2, 3, false), rows(2, 2, false), rows(2, 0, true)]);
    add(
        "rows_stream",
        "multipart_done",
        join_input(0, &[7, 0, 100], &multipart),
    );
    let failure = Response::Failure(ServerFailure {
        code: 19,
        message: "constraint failed".into(),
    });
    add(
        "rows_stream",
        "part_then_failure",
        join_input(0, &[], &frames(&[rows(3, 2, false), failure])),
    );
    add(
        "rows_stream",
        "rows_select_1_null",
        join_input(0, &[3], &hex(ROWS_SELECT_1_NULL)),
    );
    let mut drained = frames(&[rows(1, 2, false), rows(1, 2, false), rows(1, 1, true)]);
    drained.extend(frame_bytes(&Response::Empty));
    add(
        "rows_stream",
        "abandon_then_drain",
        join_input(4, &[], &drained),
    );
    add(
        "rows_stream",
        "over_small_limits",
        join_input(1, &[], &frames(&[rows(2, 2, false), rows(2, 2, false)])),
    );
    add(
        "rows_stream",
        "columns_changed",
        join_input(0, &[], &frames(&[rows(2, 1, false), rows(3, 1, true)])),
    );
    let mut zero_part = hex(ROWS_EMPTY_DONE);
    let marker = zero_part.len() - 8;
    zero_part[marker..].fill(0xee);
    add(
        "rows_stream",
        "zero_row_part",
        join_input(0, &[], &zero_part),
    );

    for (name, req) in request_seeds() {
        let mut frame = Vec::new();
        req.encode_frame(&mut frame).expect("seed request encodes");
        // [kind] [schema] [body]: the header's type and schema, then the body.
        let mut b = vec![frame[4], frame[5]];
        b.extend_from_slice(&frame[8..]);
        add("requests", name, b);
    }
    for (name, text) in SQL_SEEDS {
        add("sql", name, text.as_bytes().to_vec());
    }

    for (name, setup, ops) in connection_scripts() {
        add("connection", name, script(setup, &ops));
    }
    for (name, setup, ops) in leader_scripts() {
        add("leader", name, script(setup, &ops));
    }
    out
}

/// Decodes every script's bytes the way the targets do and checks it is the script.
pub fn check_scripts() {
    use arbitrary::Unstructured;
    for (name, setup, ops) in connection_scripts() {
        let bytes = script(setup, &ops);
        let mut u = Unstructured::new(&bytes);
        let got: ConnSetup = u.arbitrary().expect("setup");
        assert_eq!(format!("{got:?}"), format!("{setup:?}"), "{name}");
        for op in &ops {
            let got: Op = u.arbitrary().expect("op");
            assert_eq!(format!("{got:?}"), format!("{op:?}"), "{name}");
        }
        assert!(u.is_empty(), "{name}: bytes left over");
    }
    for (name, setup, ops) in leader_scripts() {
        let bytes = script(setup, &ops);
        let mut u = Unstructured::new(&bytes);
        let got: LeaderSetup = u.arbitrary().expect("setup");
        assert_eq!(format!("{got:?}"), format!("{setup:?}"), "{name}");
        for op in &ops {
            let got: LeaderOp = u.arbitrary().expect("op");
            assert_eq!(format!("{got:?}"), format!("{op:?}"), "{name}");
        }
        assert!(u.is_empty(), "{name}: bytes left over");
    }
}
