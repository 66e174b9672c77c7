//! A hostile server: a corpus of malformed replies, kept as fixtures in
//! `tests/fixtures/hostile/`, each fed to a [`Connection`] whole and one byte at a time.
//!
//! Every fixture must end in a typed, fatal [`Error`] (the exact value is stated by the
//! generator below), with no `Ok` event after the bad frame, a poisoned connection (same error
//! from every later poll and command, nothing more to transmit, never idle again) and an
//! allocation peak bounded by the frame limit.
//!
//! # Fixtures
//! A fixture file holds the exact bytes the "server" sends. Its name is
//! `<prefix>__<what>.bin`; the prefix says which request the client has pending when the
//! bytes arrive (see [`setup`]). Prefixes that need a database open it first and feed the
//! server's DB answer (`01 00 00 00 04 00 00 00 | 00*8`) before the fixture, so that frame is not
//! stored in each file.
//!
//! The files are produced by [`generate`], an ordinary function, and the test fails when a
//! stored file differs from it, when a `.bin` file exists that it does not produce, or when
//! fewer than 200 exist. After changing the generator, rewrite the directory with
//! `HOSTILE_BLESS=1 cargo test -p dqlite-proto --test hostile` and review the diff.
//!
//! # Allocation accounting
//! This binary installs the counting global allocator of `fuzz_checks/alloc.rs` (shared with
//! the fuzz targets). Counts are per thread, so a measurement sees only what its own test
//! allocates, whatever else runs at the same time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use dqlite_proto::{
    Config, Connection, Error, LimitExceeded, Limits, Malformed, NodeRole, Reply, RequestId,
};

// ----- counting allocator ------------------------------------------------------------------

#[path = "fuzz_checks/alloc.rs"]
mod counting;

use counting::{measure_peak, measure_start};

// ----- configuration -----------------------------------------------------------------------

/// The frame limit every fixture runs under.
const MAX_FRAME: u64 = 1 << 20;
/// `MAX_FRAME` in words.
const LIMIT_WORDS: u32 = (MAX_FRAME / 8) as u32;
/// Allocation bound for one stored fixture: the deframer may reserve one frame at the limit
/// as soon as a header claims it; everything else a tiny fixture causes is small change.
const CORPUS_PEAK_BOUND: usize = MAX_FRAME as usize + (64 << 10);
/// Allocation bound for a frame actually at the limit (decoded values take a few times the
/// bytes they came in; see `large_hostile_frames_stay_bounded`).
const LARGE_PEAK_BOUND: usize = 8 << 20;
/// Limits of the `qlimits` prefix.
const QLIMITS: Limits = Limits {
    max_frame_bytes: MAX_FRAME,
    max_rows_per_result: 8,
    max_frames_per_result: 3,
    max_columns: 4,
};

fn config(prefix: &str) -> Config {
    let limits = if prefix == "qlimits" {
        QLIMITS
    } else {
        Limits {
            max_frame_bytes: MAX_FRAME,
            ..Default::default()
        }
    };
    Config {
        limits,
        ..Default::default()
    }
}

/// Every prefix, with the request it leaves pending (documentation for the README and the
/// prefix check).
const PREFIXES: &[(&str, &str)] = &[
    ("none", "nothing (only the handshake was sent)"),
    ("leader", "LEADER"),
    ("client", "CLIENT"),
    ("open", "OPEN"),
    ("prepare", "OPEN answered, then PREPARE"),
    ("exec", "OPEN answered, then EXEC_SQL"),
    ("query", "OPEN answered, then QUERY_SQL"),
    (
        "qlimits",
        "as query, with max_columns 4, max_rows_per_result 8, max_frames_per_result 3",
    ),
    ("interrupt", "OPEN answered, then INTERRUPT"),
    ("cluster", "CLUSTER format 0 (no roles)"),
    ("cluster_roles", "CLUSTER format 1 (with roles)"),
    ("dump", "DUMP"),
    ("describe", "DESCRIBE"),
    (
        "abandoned_query",
        "OPEN answered, QUERY_SQL sent then abandoned (INTERRUPT queued, not yet sent)",
    ),
    (
        "abandoned_prepare",
        "OPEN answered, PREPARE sent then abandoned (its STMT triggers an internal FINALIZE)",
    ),
];

/// The server's answer to OPEN, fed before fixtures whose prefix needs a database.
const DB_FRAME: [u8; 16] = [1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn drain(c: &mut Connection) {
    while let Some(b) = c.poll_transmit() {
        let n = b.len();
        c.advance_transmit(n);
    }
}

/// A connection with the prefix's request pending, everything queued already "sent" (except
/// the INTERRUPT of `abandoned_query`), and the id of the pending request.
fn setup(prefix: &str) -> (Connection, Option<RequestId>) {
    let mut c = Connection::new(config(prefix));
    let direct = match prefix {
        "none" => Some(None),
        "leader" => Some(Some(c.leader())),
        "client" => Some(Some(c.client(7))),
        "open" => Some(Some(c.open("db"))),
        "cluster" => Some(Some(c.cluster(false))),
        "cluster_roles" => Some(Some(c.cluster(true))),
        "dump" => Some(Some(c.dump("db"))),
        "describe" => Some(Some(c.describe())),
        _ => None,
    };
    if let Some(req) = direct {
        let req = req.map(|r| r.expect("command accepted"));
        drain(&mut c);
        return (c, req);
    }
    c.open("db").expect("open");
    drain(&mut c);
    c.handle_input(&DB_FRAME);
    let ev = c.poll_event().expect("DB decodes").expect("an event");
    assert_eq!(ev.reply, Reply::Opened);
    let req = match prefix {
        "prepare" | "abandoned_prepare" => c.prepare("SELECT 1"),
        "exec" => c.exec_sql("INSERT INTO t VALUES (1)", &[]),
        "query" | "qlimits" | "abandoned_query" => c.query_sql("SELECT x FROM t", &[]),
        "interrupt" => c.interrupt(),
        other => panic!("unknown fixture prefix {other:?}"),
    }
    .expect("command accepted");
    drain(&mut c);
    if prefix.starts_with("abandoned_") {
        assert!(c.abandon(req));
        if prefix == "abandoned_query" {
            assert!(c.poll_transmit().is_some(), "INTERRUPT queued");
        }
    }
    (c, Some(req))
}

// ----- fixture model -----------------------------------------------------------------------

/// One hostile reply: the bytes, how many `Ok` events the connection must yield before
/// failing (valid batches ahead of the bad one), and the exact error it must fail with. An
/// [`Error::Closed`] is expected only after the test reports EOF: the bytes left the
/// connection waiting for more.
#[derive(Debug)]
struct Fixture {
    category: &'static str,
    name: String,
    bytes: Vec<u8>,
    ok_events: usize,
    error: Error,
}

impl Fixture {
    fn prefix(&self) -> &str {
        self.name.split("__").next().unwrap_or_default()
    }

    fn file_name(&self) -> String {
        format!("{}.bin", self.name)
    }
}

#[derive(Default)]
struct Corpus {
    category: &'static str,
    fixtures: Vec<Fixture>,
}

impl Corpus {
    fn section(&mut self, category: &'static str) {
        self.category = category;
    }

    fn add(
        &mut self,
        prefix: &str,
        what: impl AsRef<str>,
        bytes: Vec<u8>,
        ok_events: usize,
        error: Error,
    ) {
        self.fixtures.push(Fixture {
            category: self.category,
            name: format!("{prefix}__{}", what.as_ref()),
            bytes,
            ok_events,
            error,
        });
    }
}

// ----- expected errors ---------------------------------------------------------------------

const NOTHING_ASKED: &str = "no message (nothing was asked)";

fn mal(m: Malformed) -> Error {
    Error::Malformed(m)
}

fn truncated(field: &'static str) -> Error {
    mal(Malformed::Truncated { field })
}

fn unterminated(field: &'static str) -> Error {
    mal(Malformed::UnterminatedText { field })
}

fn bad_utf8(field: &'static str) -> Error {
    mal(Malformed::InvalidUtf8 { field })
}

fn trailing(n: usize) -> Error {
    mal(Malformed::TrailingBytes(n))
}

fn bad_count(field: &'static str, count: u64) -> Error {
    mal(Malformed::BadCount { field, count })
}

fn unknown_value(code: u8) -> Error {
    mal(Malformed::UnknownValueType(code))
}

fn unexpected(expected: &'static str, got: &'static str) -> Error {
    Error::Unexpected { expected, got }
}

fn limit(what: &'static str, limit: u64, actual: u64) -> Error {
    Error::Limit(LimitExceeded {
        what,
        limit,
        actual,
    })
}

fn closed(pending: usize) -> Error {
    Error::Closed { pending }
}

// ----- byte builders (independent of the crate's encoders) --------------------------------

const FAILURE: u8 = 0;
const SERVER: u8 = 1;
const WELCOME: u8 = 2;
const SERVERS: u8 = 3;
const DB: u8 = 4;
const STMT: u8 = 5;
const RESULT: u8 = 6;
const ROWS: u8 = 7;
const EMPTY: u8 = 8;
const FILES: u8 = 9;
const METADATA: u8 = 10;

const PART: u64 = 0xeeee_eeee_eeee_eeee;
const DONE: u64 = u64::MAX;
const JUNK: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef];

/// Concatenates byte slices, vectors and arrays.
macro_rules! cat {
    ($($e:expr),* $(,)?) => {{
        let parts: &[&[u8]] = &[$(&$e[..]),*];
        parts.concat()
    }};
}

fn w(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Two u32 fields in one word.
fn pair(a: u32, b: u32) -> Vec<u8> {
    cat![a.to_le_bytes(), b.to_le_bytes()]
}

fn pad(mut v: Vec<u8>) -> Vec<u8> {
    v.resize(v.len().div_ceil(8) * 8, 0);
    v
}

/// Text as the server writes it: bytes, NUL, zero padding.
fn text(s: &[u8]) -> Vec<u8> {
    pad(cat![s, [0u8]])
}

/// Whole words of non-NUL bytes: text with no terminator.
fn raw(s: &[u8]) -> Vec<u8> {
    assert!(
        s.len() % 8 == 0 && !s.contains(&0),
        "raw text must be NUL-free words"
    );
    s.to_vec()
}

fn header(words: u32, kind: u8, schema: u8) -> [u8; 8] {
    let b = words.to_le_bytes();
    [b[0], b[1], b[2], b[3], kind, schema, 0, 0]
}

/// A frame whose header tells the truth about the body length.
fn frame(kind: u8, schema: u8, body: &[u8]) -> Vec<u8> {
    assert!(
        !body.is_empty() && body.len() % 8 == 0,
        "whole non-empty body"
    );
    let words = u32::try_from(body.len() / 8).expect("small body");
    cat![header(words, kind, schema), body]
}

/// A frame whose header claims `words` whatever the body.
fn claim(words: u32, kind: u8, schema: u8, body: &[u8]) -> Vec<u8> {
    cat![header(words, kind, schema), body]
}

/// The ncols word and the names.
fn cols(names: &[&str]) -> Vec<u8> {
    let mut v = w(names.len() as u64).to_vec();
    for n in names {
        v.extend(text(n.as_bytes()));
    }
    v
}

/// A row tuple: 4-bit type codes packed two per byte (low nibble first), padded, then the
/// value encodings given.
fn row(codes: &[u8], values: &[&[u8]]) -> Vec<u8> {
    let mut h = vec![0u8; codes.len().div_ceil(2).div_ceil(8) * 8];
    for (i, c) in codes.iter().enumerate() {
        assert!(*c < 16);
        h[i / 2] |= c << (4 * (i % 2));
    }
    cat![h, values.concat()]
}

fn int_row(v: u64) -> Vec<u8> {
    row(&[1], &[&w(v)])
}

fn rows_body(names: &[&str], rows: &[Vec<u8>], marker: u64) -> Vec<u8> {
    cat![cols(names), rows.concat(), w(marker)]
}

fn rows_frame(names: &[&str], rows: &[Vec<u8>], marker: u64) -> Vec<u8> {
    frame(ROWS, 0, &rows_body(names, rows, marker))
}

/// A valid batch of column "x" holding the integers `1..=n`.
fn batch(n: u64, marker: u64) -> Vec<u8> {
    let rows: Vec<Vec<u8>> = (1..=n).map(int_row).collect();
    rows_frame(&["x"], &rows, marker)
}

fn part(n: u64) -> Vec<u8> {
    batch(n, PART)
}

fn done(n: u64) -> Vec<u8> {
    batch(n, DONE)
}

/// A valid body of each response type.
fn valid_body(kind: u8) -> Vec<u8> {
    match kind {
        FAILURE => cat![w(1), text(b"boom")],
        SERVER => cat![w(1), text(b"127.0.0.1:9001")],
        WELCOME => w(15000).to_vec(),
        SERVERS => cat![w(1), w(1), text(b"127.0.0.1:9001")],
        DB => w(0).to_vec(),
        STMT => cat![pair(0, 1), w(0)],
        RESULT => cat![w(1), w(1)],
        ROWS => rows_body(&["x"], &[int_row(7)], DONE),
        EMPTY => w(0).to_vec(),
        FILES => cat![w(2), text(b"db"), w(8), [0x5a; 8], text(b"db-wal"), w(0)],
        METADATA => cat![w(0), w(1)],
        _ => unreachable!(),
    }
}

fn valid(kind: u8) -> Vec<u8> {
    frame(kind, 0, &valid_body(kind))
}

/// Response type names as the errors spell them.
fn type_name(kind: u8) -> &'static str {
    [
        "FAILURE", "SERVER", "WELCOME", "SERVERS", "DB", "STMT", "RESULT", "ROWS", "EMPTY",
        "FILES", "METADATA",
    ]
    .get(usize::from(kind))
    .copied()
    .unwrap_or("unknown")
}

fn lname(kind: u8) -> String {
    type_name(kind).to_lowercase()
}

/// Each prefix with a plain pending request and the response type it expects.
const MATCHED: [(&str, u8); 10] = [
    ("leader", SERVER),
    ("client", WELCOME),
    ("cluster", SERVERS),
    ("open", DB),
    ("prepare", STMT),
    ("exec", RESULT),
    ("query", ROWS),
    ("interrupt", EMPTY),
    ("dump", FILES),
    ("describe", METADATA),
];

const BAD_UTF8: [(&str, &[u8]); 8] = [
    ("lone_continuation", b"a\x80b"),
    ("overlong_slash", b"\xc0\xaf"),
    ("surrogate", b"\xed\xa0\x80"),
    ("byte_ff", b"\xff"),
    ("cut_3_byte", b"\xe2\x82"),
    ("above_u10ffff", b"\xf4\x90\x80\x80"),
    ("five_byte_form", b"\xf8\x88\x80\x80\x80"),
    ("latin1", b"caf\xe9"),
];

const BAD_NIBBLES: [u8; 8] = [0, 6, 7, 8, 12, 13, 14, 15];

// ----- the generator -----------------------------------------------------------------------

/// The whole corpus, deterministically.
fn generate() -> Vec<Fixture> {
    let mut c = Corpus::default();
    framing(&mut c);
    unknown_types(&mut c);
    unknown_schemas(&mut c);
    texts(&mut c);
    blobs(&mut c);
    columns(&mut c);
    nibbles(&mut c);
    part_streams(&mut c);
    end_markers(&mut c);
    servers(&mut c);
    failures(&mut c);
    mismatches(&mut c);
    trailing_garbage(&mut c);
    files(&mut c);
    bodies(&mut c);
    abandoned(&mut c);
    c.fixtures
}

fn framing(c: &mut Corpus) {
    c.section("truncated_header");
    let server = valid(SERVER);
    let rows = done(1);
    for n in 1..8 {
        let what = format!("header_truncated_{n}_bytes");
        c.add("leader", &what, server[..n].to_vec(), 0, closed(1));
        c.add("query", &what, rows[..n].to_vec(), 0, closed(1));
    }
    c.add(
        "query",
        "part_then_header_truncated_4_bytes",
        cat![part(1), rows[..4]],
        1,
        closed(1),
    );
    c.add(
        "describe",
        "header_truncated_6_bytes",
        valid(METADATA)[..6].to_vec(),
        0,
        closed(1),
    );

    c.section("truncated_body");
    c.add(
        "leader",
        "body_truncated_mid_word",
        server[..8 + 20].to_vec(),
        0,
        closed(1),
    );
    c.add("leader", "body_missing", server[..8].to_vec(), 0, closed(1));
    c.add(
        "query",
        "body_truncated_mid_marker",
        rows[..rows.len() - 4].to_vec(),
        0,
        closed(1),
    );
    c.add(
        "query",
        "body_truncated_3_bytes_short",
        rows[..rows.len() - 3].to_vec(),
        0,
        closed(1),
    );
    c.add(
        "query",
        "part_then_body_truncated",
        cat![part(1), rows[..20]],
        1,
        closed(1),
    );
    c.add(
        "dump",
        "body_missing",
        valid(FILES)[..8].to_vec(),
        0,
        closed(1),
    );
    c.add(
        "leader",
        "reply_then_garbage_3_bytes",
        cat![server, [1, 2, 3]],
        1,
        closed(0),
    );

    c.section("word_count_zero");
    for (prefix, kind) in MATCHED {
        c.add(
            prefix,
            format!("words_0_{}", lname(kind)),
            header(0, kind, 0).to_vec(),
            0,
            mal(Malformed::EmptyBody),
        );
    }
    c.add(
        "leader",
        "words_0_failure",
        header(0, FAILURE, 0).to_vec(),
        0,
        mal(Malformed::EmptyBody),
    );
    c.add(
        "leader",
        "words_0_type_255",
        header(0, 255, 0).to_vec(),
        0,
        mal(Malformed::EmptyBody),
    );
    c.add(
        "leader",
        "words_0_with_body_word",
        cat![header(0, SERVER, 0), valid_body(SERVER)],
        0,
        mal(Malformed::EmptyBody),
    );
    c.add(
        "query",
        "part_then_words_0",
        cat![part(1), header(0, ROWS, 0)],
        1,
        mal(Malformed::EmptyBody),
    );
    c.add(
        "none",
        "words_0",
        header(0, EMPTY, 0).to_vec(),
        0,
        mal(Malformed::EmptyBody),
    );

    c.section("word_count_huge");
    for words in [
        LIMIT_WORDS + 1,
        0x0010_0000,
        0x1fff_ffff,
        0x2000_0000, // 8 * words = 2^32: overflows a u32 byte count
        0x2000_0001,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ] {
        let err = limit("frame size", MAX_FRAME, u64::from(words) * 8);
        c.add(
            "leader",
            format!("words_{words:#x}"),
            cat![header(words, SERVER, 0), w(1)],
            0,
            err,
        );
    }
    let huge = limit("frame size", MAX_FRAME, u64::from(u32::MAX) * 8);
    c.add(
        "query",
        "words_u32_max",
        header(u32::MAX, ROWS, 0).to_vec(),
        0,
        huge.clone(),
    );
    c.add(
        "dump",
        "words_u32_max",
        header(u32::MAX, FILES, 0).to_vec(),
        0,
        huge.clone(),
    );
    c.add(
        "leader",
        "words_u32_max_type_255",
        header(u32::MAX, 255, 0).to_vec(),
        0,
        huge.clone(),
    );
    c.add(
        "query",
        "part_then_words_u32_max",
        cat![part(1), header(u32::MAX, ROWS, 0)],
        1,
        huge.clone(),
    );
    c.add(
        "none",
        "words_u32_max",
        header(u32::MAX, SERVER, 0).to_vec(),
        0,
        huge,
    );
    // Within the limit: the client waits for the body (reserving at most one frame), then EOF.
    c.add(
        "leader",
        "words_at_limit_then_eof",
        cat![header(LIMIT_WORDS, SERVER, 0), w(1)],
        0,
        closed(1),
    );
    c.add(
        "dump",
        "words_at_limit_then_eof",
        cat![header(LIMIT_WORDS, FILES, 0), w(2)],
        0,
        closed(1),
    );
    c.add(
        "query",
        "words_at_limit_then_eof",
        cat![header(LIMIT_WORDS, ROWS, 0), w(1)],
        0,
        closed(1),
    );
    c.add(
        "leader",
        "words_at_limit_type_255_then_eof",
        cat![header(LIMIT_WORDS, 255, 0), w(1)],
        0,
        closed(1),
    );
    c.add(
        "query",
        "part_then_words_at_limit_then_eof",
        cat![part(1), header(LIMIT_WORDS, ROWS, 0)],
        1,
        closed(1),
    );

    c.section("word_count_wrong");
    c.add(
        "leader",
        "words_too_small_cuts_address",
        claim(2, SERVER, 0, &valid_body(SERVER)),
        0,
        unterminated("node address"),
    );
    let rows_body_1 = rows_body(&["x"], &[int_row(1)], DONE);
    c.add(
        "query",
        "words_too_small_cuts_marker",
        claim(4, ROWS, 0, &rows_body_1),
        0,
        mal(Malformed::MissingEndMarker),
    );
    c.add(
        "leader",
        "words_too_large_swallows_next_header",
        cat![
            claim(4, SERVER, 0, &valid_body(SERVER)),
            header(1, EMPTY, 0)
        ],
        0,
        trailing(8),
    );
    c.add(
        "query",
        "words_too_large_then_eof",
        claim(6, ROWS, 0, &rows_body_1),
        0,
        closed(1),
    );
    c.add(
        "exec",
        "words_1_for_result",
        claim(1, RESULT, 0, &valid_body(RESULT)),
        0,
        truncated("rows affected"),
    );
    c.add(
        "describe",
        "words_1_for_metadata",
        claim(1, METADATA, 0, &valid_body(METADATA)),
        0,
        truncated("weight"),
    );
}

fn unknown_types(c: &mut Corpus) {
    c.section("unknown_type");
    for t in [11, 12, 13, 14, 15, 16, 32, 99, 127, 128, 200, 254, 255] {
        c.add(
            "leader",
            format!("type_{t}"),
            frame(t, 0, &w(0)),
            0,
            mal(Malformed::UnknownType(t)),
        );
    }
    c.add(
        "query",
        "type_255_schema_255",
        frame(255, 255, &w(0)),
        0,
        mal(Malformed::UnknownType(255)),
    );
    c.add(
        "query",
        "part_then_type_11",
        cat![part(1), frame(11, 0, &w(0))],
        1,
        mal(Malformed::UnknownType(11)),
    );

    c.section("unsolicited");
    c.add(
        "none",
        "type_11",
        frame(11, 0, &w(0)),
        0,
        unexpected(NOTHING_ASKED, "unknown"),
    );
    for kind in [FAILURE, SERVER, WELCOME, EMPTY, ROWS] {
        c.add(
            "none",
            lname(kind),
            valid(kind),
            0,
            unexpected(NOTHING_ASKED, type_name(kind)),
        );
    }
    c.add(
        "leader",
        "server_then_server",
        cat![valid(SERVER), valid(SERVER)],
        1,
        unexpected(NOTHING_ASKED, "SERVER"),
    );
    c.add(
        "leader",
        "server_then_failure",
        cat![valid(SERVER), valid(FAILURE)],
        1,
        unexpected(NOTHING_ASKED, "FAILURE"),
    );
    c.add(
        "query",
        "done_then_done",
        cat![done(1), done(1)],
        1,
        unexpected(NOTHING_ASKED, "ROWS"),
    );
    c.add(
        "interrupt",
        "empty_then_empty",
        cat![valid(EMPTY), valid(EMPTY)],
        1,
        unexpected(NOTHING_ASKED, "EMPTY"),
    );
}

fn unknown_schemas(c: &mut Corpus) {
    c.section("unknown_schema");
    for (prefix, kind) in MATCHED {
        for schema in [1u8, 2, 255] {
            if kind == STMT && schema == 1 {
                continue; // STMT_WITH_OFFSET
            }
            let err = mal(Malformed::UnknownSchema { kind, schema });
            c.add(
                prefix,
                format!("{}_schema_{schema}", lname(kind)),
                frame(kind, schema, &valid_body(kind)),
                0,
                err,
            );
        }
    }
    for schema in [1u8, 255] {
        let err = mal(Malformed::UnknownSchema {
            kind: FAILURE,
            schema,
        });
        c.add(
            "leader",
            format!("failure_schema_{schema}"),
            frame(FAILURE, schema, &valid_body(FAILURE)),
            0,
            err,
        );
    }
    c.add(
        "query",
        "part_then_schema_1",
        cat![part(1), frame(ROWS, 1, &valid_body(ROWS))],
        1,
        mal(Malformed::UnknownSchema {
            kind: ROWS,
            schema: 1,
        }),
    );
}

fn texts(c: &mut Corpus) {
    c.section("text_invalid_utf8");
    for (label, bad) in BAD_UTF8 {
        let t = text(bad);
        c.add(
            "leader",
            format!("failure_message_utf8_{label}"),
            frame(FAILURE, 0, &cat![w(1), t]),
            0,
            bad_utf8("failure message"),
        );
        c.add(
            "leader",
            format!("server_address_utf8_{label}"),
            frame(SERVER, 0, &cat![w(1), t]),
            0,
            bad_utf8("node address"),
        );
        c.add(
            "cluster",
            format!("servers_address_utf8_{label}"),
            frame(SERVERS, 0, &cat![w(1), w(1), t]),
            0,
            bad_utf8("node address"),
        );
        c.add(
            "query",
            format!("column_name_utf8_{label}"),
            frame(ROWS, 0, &cat![w(1), t, w(DONE)]),
            0,
            bad_utf8("column name"),
        );
        c.add(
            "query",
            format!("text_cell_utf8_{label}"),
            frame(ROWS, 0, &cat![cols(&["t"]), row(&[3], &[&t]), w(DONE)]),
            0,
            bad_utf8("text"),
        );
        c.add(
            "query",
            format!("iso8601_cell_utf8_{label}"),
            frame(ROWS, 0, &cat![cols(&["d"]), row(&[10], &[&t]), w(DONE)]),
            0,
            bad_utf8("iso8601"),
        );
        c.add(
            "dump",
            format!("file_name_utf8_{label}"),
            frame(FILES, 0, &cat![w(2), t, w(0), text(b"db-wal"), w(0)]),
            0,
            bad_utf8("file name"),
        );
    }

    c.section("text_no_nul");
    c.add(
        "leader",
        "failure_message_no_nul",
        frame(FAILURE, 0, &cat![w(1), raw(b"abcdefgh")]),
        0,
        unterminated("failure message"),
    );
    c.add(
        "leader",
        "failure_message_no_nul_long",
        frame(
            FAILURE,
            0,
            &cat![w(10250), raw(b"not leader, no terminator here..")],
        ),
        0,
        unterminated("failure message"),
    );
    c.add(
        "leader",
        "server_no_nul",
        frame(SERVER, 0, &cat![w(1), raw(b"10.0.0.1:9001xyz")]),
        0,
        unterminated("node address"),
    );
    c.add(
        "cluster",
        "servers_address_no_nul",
        frame(SERVERS, 0, &cat![w(1), w(1), raw(b"abcdefgh")]),
        0,
        unterminated("node address"),
    );
    c.add(
        "cluster_roles",
        "servers_address_no_nul",
        frame(
            SERVERS,
            0,
            &cat![w(1), w(1), raw(b"abcdefgh"), w(0x0101_0101_0101_0101)],
        ),
        0,
        unterminated("node address"),
    );
    // The address's NUL is found in the role word, which the text then swallows.
    c.add(
        "cluster_roles",
        "servers_address_no_nul_eats_role",
        frame(SERVERS, 0, &cat![w(1), w(1), raw(b"abcdefgh"), w(0)]),
        0,
        truncated("node role"),
    );
    c.add(
        "query",
        "column_name_no_nul",
        frame(ROWS, 0, &cat![w(1), raw(b"abcdefgh"), w(DONE)]),
        0,
        unterminated("column name"),
    );
    // The name ends inside the row header; the next word is read as a header (NULL) and the
    // DONE marker as its value.
    c.add(
        "query",
        "column_name_no_nul_eats_row_header",
        frame(ROWS, 0, &cat![w(1), raw(b"abcdefgh"), int_row(5), w(DONE)]),
        0,
        mal(Malformed::MissingEndMarker),
    );
    c.add(
        "query",
        "text_cell_no_nul",
        frame(
            ROWS,
            0,
            &cat![cols(&["t"]), row(&[3], &[&raw(b"abcdefgh")]), w(DONE)],
        ),
        0,
        unterminated("text"),
    );
    c.add(
        "query",
        "iso8601_cell_no_nul",
        frame(
            ROWS,
            0,
            &cat![
                cols(&["d"]),
                row(&[10], &[&raw(b"2024-01-01 00:00:00+00:0")]),
                w(DONE)
            ],
        ),
        0,
        unterminated("iso8601"),
    );
    c.add(
        "dump",
        "file_name_no_nul",
        frame(FILES, 0, &cat![w(1), raw(b"abcdefgh"), raw(b"ijklmnop")]),
        0,
        unterminated("file name"),
    );
    // The name's NUL is in the size word, which the name swallows; the next name is read as
    // the size.
    c.add(
        "dump",
        "file_name_no_nul_eats_size",
        frame(
            FILES,
            0,
            &cat![w(2), raw(b"db-file!"), w(0), text(b"db-wal"), w(0)],
        ),
        0,
        truncated("file data"),
    );
}

fn blobs(c: &mut Corpus) {
    c.section("blob");
    let blob_batch = |len: u64| {
        frame(
            ROWS,
            0,
            &cat![cols(&["b"]), row(&[4], &[&w(len), &[0xab; 8]]), w(DONE)],
        )
    };
    c.add(
        "query",
        "blob_len_swallows_marker",
        blob_batch(9),
        0,
        mal(Malformed::MissingEndMarker),
    );
    for (label, len) in [
        ("past_end_17", 17),
        ("1000", 1000),
        ("frame_limit", MAX_FRAME),
        ("4gib", 1 << 32),
        ("i64_max", i64::MAX as u64),
        ("2pow63", 1 << 63),
        ("u64_max_minus_8", u64::MAX - 8),
        ("u64_max_minus_7", u64::MAX - 7),
        ("u64_max_minus_6", u64::MAX - 6),
        ("u64_max", u64::MAX),
    ] {
        c.add(
            "query",
            format!("blob_len_{label}"),
            blob_batch(len),
            0,
            truncated("blob"),
        );
    }
    c.add(
        "query",
        "blob_len_u64_max_second_row",
        frame(
            ROWS,
            0,
            &cat![
                cols(&["b"]),
                row(&[4], &[&w(1), &[7; 8]]),
                row(&[4], &[&w(u64::MAX)]),
                w(DONE)
            ],
        ),
        0,
        truncated("blob"),
    );
    c.add(
        "query",
        "blob_len_u64_max_second_column",
        frame(
            ROWS,
            0,
            &cat![
                cols(&["i", "b"]),
                row(&[1, 4], &[&w(1), &w(u64::MAX)]),
                w(DONE)
            ],
        ),
        0,
        truncated("blob"),
    );
    c.add(
        "query",
        "part_then_blob_len_u64_max",
        cat![part(1), blob_batch(u64::MAX)],
        1,
        truncated("blob"),
    );
}

fn columns(c: &mut Corpus) {
    c.section("column_count");
    c.add(
        "query",
        "ncols_0_with_row",
        frame(ROWS, 0, &cat![w(0), int_row(1), w(DONE)]),
        0,
        mal(Malformed::MissingEndMarker),
    );
    c.add(
        "query",
        "ncols_0_no_marker",
        frame(ROWS, 0, &w(0)),
        0,
        mal(Malformed::MissingEndMarker),
    );
    for (label, n) in [
        ("32768", 32768),
        ("65536", 65536),
        ("4g", 1 << 32),
        ("2pow63", 1 << 63),
        ("u64_max", u64::MAX),
    ] {
        c.add(
            "query",
            format!("ncols_{label}"),
            frame(ROWS, 0, &cat![w(n), text(b"x"), w(DONE)]),
            0,
            limit("columns", 32767, n),
        );
    }
    c.add(
        "query",
        "ncols_32767_short_body",
        frame(ROWS, 0, &cat![w(32767), text(b"x"), w(DONE)]),
        0,
        bad_count("column", 32767),
    );
    c.add(
        "query",
        "ncols_3_one_name",
        frame(ROWS, 0, &cat![w(3), text(b"x"), w(DONE)]),
        0,
        bad_count("column", 3),
    );
    c.add(
        "query",
        "ncols_2_one_name",
        frame(ROWS, 0, &cat![w(2), text(b"x"), w(DONE)]),
        0,
        unterminated("column name"),
    );

    c.section("columns_changed");
    let two = |names: &[&str], marker| rows_frame(names, &[row(&[1, 1], &[&w(1), &w(2)])], marker);
    let changed = mal(Malformed::ColumnsChanged);
    c.add(
        "query",
        "columns_1_to_2",
        cat![part(1), two(&["x", "y"], DONE)],
        1,
        changed.clone(),
    );
    c.add(
        "query",
        "columns_2_to_1",
        cat![two(&["x", "y"], PART), done(1)],
        1,
        changed.clone(),
    );
    c.add(
        "query",
        "columns_1_to_0",
        cat![part(1), frame(ROWS, 0, &cat![w(0), w(DONE)])],
        1,
        changed.clone(),
    );
    c.add(
        "query",
        "columns_renamed",
        cat![part(1), rows_frame(&["y"], &[int_row(2)], DONE)],
        1,
        changed.clone(),
    );
    c.add(
        "query",
        "columns_case_changed",
        cat![part(1), rows_frame(&["X"], &[int_row(2)], DONE)],
        1,
        changed.clone(),
    );
    c.add(
        "query",
        "columns_reordered",
        cat![two(&["a", "b"], PART), two(&["b", "a"], DONE)],
        1,
        changed.clone(),
    );
    c.add(
        "query",
        "columns_change_in_third_batch",
        cat![part(1), part(2), two(&["x", "y"], DONE)],
        2,
        changed,
    );
}

fn nibbles(c: &mut Corpus) {
    c.section("bad_type_nibble");
    let names17: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
    let names17: Vec<&str> = names17.iter().map(String::as_str).collect();
    for code in BAD_NIBBLES {
        c.add(
            "query",
            format!("rows_bad_nibble_{code}"),
            rows_frame(&["x"], &[row(&[code], &[&w(0)])], DONE),
            0,
            unknown_value(code),
        );
        c.add(
            "query",
            format!("rows_bad_high_nibble_{code}"),
            rows_frame(&["a", "b"], &[row(&[1, code], &[&w(1), &w(0)])], DONE),
            0,
            unknown_value(code),
        );
        let mut codes = [1u8; 17];
        codes[16] = code;
        let values = [w(1); 17];
        let values: Vec<&[u8]> = values.iter().map(|v| &v[..]).collect();
        c.add(
            "query",
            format!("rows_bad_nibble_col16_{code}"),
            rows_frame(&names17, &[row(&codes, &values)], DONE),
            0,
            unknown_value(code),
        );
    }
    for code in [7, 14] {
        c.add(
            "query",
            format!("rows_bad_nibble_{code}_second_row"),
            rows_frame(&["x"], &[int_row(1), row(&[code], &[&w(0)])], DONE),
            0,
            unknown_value(code),
        );
    }
    for code in [6, 12] {
        c.add(
            "query",
            format!("part_then_bad_nibble_{code}"),
            cat![part(1), rows_frame(&["x"], &[row(&[code], &[&w(0)])], DONE)],
            1,
            unknown_value(code),
        );
    }
}

fn part_streams(c: &mut Corpus) {
    c.section("empty_part_stream");
    let empty_part = rows_frame(&["x"], &[], PART);
    let e = mal(Malformed::EmptyPart);
    c.add("query", "part_zero_rows", empty_part.clone(), 0, e.clone());
    c.add(
        "query",
        "part_then_zero_row_part",
        cat![part(1), empty_part],
        1,
        e.clone(),
    );
    c.add(
        "query",
        "three_parts_then_zero_row_part",
        cat![part(1), part(2), part(3), empty_part],
        3,
        e.clone(),
    );
    c.add(
        "query",
        "zero_row_parts_x8",
        [&empty_part[..]; 8].concat(),
        0,
        e.clone(),
    );
    let names: Vec<String> = (0..64).map(|i| format!("c{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    c.add(
        "query",
        "zero_row_part_64_columns",
        rows_frame(&names, &[], PART),
        0,
        e.clone(),
    );
    c.add(
        "query",
        "zero_column_part",
        frame(ROWS, 0, &cat![w(0), w(PART)]),
        0,
        e.clone(),
    );
    c.add(
        "query",
        "part_then_zero_column_part",
        cat![part(1), frame(ROWS, 0, &cat![w(0), w(PART)])],
        1,
        e,
    );

    c.section("result_limits");
    let frames = limit("frames per result", 3, 4);
    c.add(
        "qlimits",
        "parts_exceed_frame_limit",
        [&part(1)[..]; 4].concat(),
        3,
        frames.clone(),
    );
    c.add(
        "qlimits",
        "done_as_fourth_frame",
        cat![part(1), part(1), part(1), done(1)],
        3,
        frames.clone(),
    );
    c.add(
        "qlimits",
        "endless_one_row_parts_x10",
        [&part(1)[..]; 10].concat(),
        3,
        frames,
    );
    c.add(
        "qlimits",
        "rows_exceed_in_one_batch",
        done(9),
        0,
        limit("rows per result", 8, 9),
    );
    c.add(
        "qlimits",
        "rows_exceed_across_batches",
        cat![part(5), done(4)],
        1,
        limit("rows per result", 8, 9),
    );
    c.add(
        "qlimits",
        "columns_over_limit",
        rows_frame(&["a", "b", "c", "d", "e"], &[], DONE),
        0,
        limit("columns", 4, 5),
    );
    c.add(
        "qlimits",
        "columns_u64_max",
        frame(ROWS, 0, &cat![w(u64::MAX), w(DONE)]),
        0,
        limit("columns", 4, u64::MAX),
    );
}

fn end_markers(c: &mut Corpus) {
    c.section("end_marker");
    for (label, word, code) in [
        ("ff_x4_then_zeros", [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], 15),
        (
            "ee_x7_then_00",
            [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0],
            14,
        ),
        (
            "ff_x7_then_fe",
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            15,
        ),
        (
            "fe_then_ff_x7",
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            14,
        ),
        (
            "ef_then_ee_x7",
            [0xef, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee],
            15,
        ),
        (
            "ee_x7_then_ef",
            [0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xef],
            14,
        ),
        ("zeros_then_ff_x4", [0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff], 0),
        (
            "ee_x4_then_ff_x4",
            [0xee, 0xee, 0xee, 0xee, 0xff, 0xff, 0xff, 0xff],
            14,
        ),
        ("dd_x8", [0xdd; 8], 13),
    ] {
        c.add(
            "query",
            format!("end_marker_{label}"),
            frame(ROWS, 0, &cat![cols(&["x"]), int_row(7), word]),
            0,
            unknown_value(code),
        );
    }
    c.add(
        "query",
        "part_then_end_marker_ff_x4_then_zeros",
        cat![
            part(1),
            frame(
                ROWS,
                0,
                &cat![
                    cols(&["x"]),
                    int_row(7),
                    [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
                ]
            )
        ],
        1,
        unknown_value(15),
    );
    c.add(
        "query",
        "end_marker_missing_after_row",
        frame(ROWS, 0, &cat![cols(&["x"]), int_row(7)]),
        0,
        mal(Malformed::MissingEndMarker),
    );
    c.add(
        "query",
        "end_marker_missing_no_rows",
        frame(ROWS, 0, &cols(&["x"])),
        0,
        mal(Malformed::MissingEndMarker),
    );
    c.add(
        "query",
        "end_marker_is_row_header",
        frame(
            ROWS,
            0,
            &cat![cols(&["x"]), int_row(7), [1, 0, 0, 0, 0, 0, 0, 0]],
        ),
        0,
        truncated("integer"),
    );
    c.add(
        "query",
        "end_marker_part_twice",
        frame(ROWS, 0, &cat![cols(&["x"]), int_row(7), w(PART), w(PART)]),
        0,
        trailing(8),
    );
    c.add(
        "query",
        "end_marker_done_then_part",
        frame(ROWS, 0, &cat![cols(&["x"]), int_row(7), w(DONE), w(PART)]),
        0,
        trailing(8),
    );

    c.section("value_truncated");
    for (code, err) in [
        (1, truncated("integer")),
        (2, truncated("float")),
        (3, unterminated("text")),
        (4, truncated("blob")),
        (5, truncated("null")),
        (9, truncated("unixtime")),
        (10, unterminated("iso8601")),
        (11, truncated("boolean")),
    ] {
        c.add(
            "query",
            format!("value_missing_type_{code}"),
            frame(ROWS, 0, &cat![cols(&["x"]), row(&[code], &[])]),
            0,
            err,
        );
    }
}

fn servers(c: &mut Corpus) {
    c.section("servers");
    for (label, n) in [
        ("u64_max", u64::MAX),
        ("u64_max_minus_1", u64::MAX - 1),
        ("2pow63", 1 << 63),
        ("times_16_overflows", 1 << 60),
        ("4g", 1 << 32),
        ("4g_plus_1", (1 << 32) + 1),
        ("1m", 1 << 20),
    ] {
        c.add(
            "cluster",
            format!("servers_count_{label}"),
            frame(SERVERS, 0, &cat![w(n), w(1), text(b"a")]),
            0,
            bad_count("node", n),
        );
    }
    c.add(
        "cluster",
        "servers_count_2_one_entry",
        frame(SERVERS, 0, &cat![w(2), w(1), text(b"a")]),
        0,
        bad_count("node", 2),
    );
    c.add(
        "cluster",
        "servers_count_1_no_entries",
        frame(SERVERS, 0, &w(1)),
        0,
        bad_count("node", 1),
    );
    c.add(
        "cluster",
        "servers_second_address_missing",
        frame(SERVERS, 0, &cat![w(2), w(1), text(b"0123456789"), w(2)]),
        0,
        unterminated("node address"),
    );
    c.add(
        "cluster",
        "servers_count_1_two_entries",
        frame(SERVERS, 0, &cat![w(1), w(1), text(b"a"), w(2), text(b"b")]),
        0,
        trailing(16),
    );
    c.add(
        "cluster",
        "servers_count_0_one_entry",
        frame(SERVERS, 0, &cat![w(0), w(1), text(b"a")]),
        0,
        trailing(16),
    );
    c.add(
        "cluster_roles",
        "servers_count_u64_max",
        frame(SERVERS, 0, &cat![w(u64::MAX), w(1), text(b"a"), w(0)]),
        0,
        bad_count("node", u64::MAX),
    );
    c.add(
        "cluster_roles",
        "servers_count_1_without_role",
        frame(SERVERS, 0, &cat![w(1), w(1), text(b"a")]),
        0,
        bad_count("node", 1),
    );
    c.add(
        "cluster_roles",
        "servers_count_3_two_entries",
        frame(
            SERVERS,
            0,
            &cat![w(3), w(1), text(b"a"), w(0), w(2), text(b"b"), w(1)],
        ),
        0,
        bad_count("node", 3),
    );
    for (label, role) in [("3", 3), ("u64_max", u64::MAX)] {
        c.add(
            "cluster_roles",
            format!("servers_role_{label}"),
            frame(SERVERS, 0, &cat![w(1), w(1), text(b"a"), w(role)]),
            0,
            bad_count("node role", role),
        );
    }
}

fn failures(c: &mut Corpus) {
    c.section("failure_without_message");
    let no_message = unterminated("failure message");
    for prefix in [
        "leader",
        "client",
        "open",
        "prepare",
        "exec",
        "query",
        "interrupt",
        "cluster",
        "cluster_roles",
        "dump",
        "describe",
    ] {
        c.add(
            prefix,
            "failure_without_message",
            frame(FAILURE, 0, &w(1)),
            0,
            no_message.clone(),
        );
    }
    c.add(
        "leader",
        "failure_not_leader_without_message",
        frame(FAILURE, 0, &w(10250)),
        0,
        no_message.clone(),
    );
    c.add(
        "query",
        "part_then_failure_without_message",
        cat![part(1), frame(FAILURE, 0, &w(1))],
        1,
        no_message.clone(),
    );
    c.add(
        "leader",
        "failure_message_cut_by_word_count",
        claim(2, FAILURE, 0, &cat![w(1), text(b"abcdefghijklmno")]),
        0,
        no_message,
    );
}

fn mismatches(c: &mut Corpus) {
    c.section("type_mismatch");
    for (prefix, expected) in MATCHED {
        for (_, got) in MATCHED {
            if got != expected {
                c.add(
                    prefix,
                    format!("{}_instead_of_{}", lname(got), lname(expected)),
                    valid(got),
                    0,
                    unexpected(type_name(expected), type_name(got)),
                );
            }
        }
    }
    for got in [EMPTY, RESULT, SERVER] {
        c.add(
            "query",
            format!("part_then_{}", lname(got)),
            cat![part(1), valid(got)],
            1,
            unexpected("ROWS", type_name(got)),
        );
    }
}

fn trailing_garbage(c: &mut Corpus) {
    c.section("trailing_garbage");
    for (prefix, kind) in MATCHED.into_iter().chain([("leader", FAILURE)]) {
        c.add(
            prefix,
            format!("{}_trailing_word", lname(kind)),
            frame(kind, 0, &cat![valid_body(kind), JUNK]),
            0,
            trailing(8),
        );
    }
    c.add(
        "prepare",
        "stmt_schema_1_trailing_word",
        frame(STMT, 1, &cat![pair(0, 1), w(0), w(9), JUNK]),
        0,
        trailing(8),
    );
    c.add(
        "leader",
        "server_trailing_16_words",
        frame(SERVER, 0, &cat![valid_body(SERVER), [0u8; 128]]),
        0,
        trailing(128),
    );
    c.add(
        "exec",
        "result_trailing_ff_word",
        frame(RESULT, 0, &cat![valid_body(RESULT), w(DONE)]),
        0,
        trailing(8),
    );
}

fn files(c: &mut Corpus) {
    c.section("files");
    for (label, size) in [
        ("u64_max", u64::MAX),
        ("u64_max_minus_7", u64::MAX - 7),
        ("2pow63", 1 << 63),
        ("4g", 1 << 32),
        ("frame_limit", MAX_FRAME),
        ("4096_with_8_bytes", 4096),
        ("9_with_8_bytes", 9),
    ] {
        c.add(
            "dump",
            format!("files_size_{label}"),
            frame(FILES, 0, &cat![w(1), text(b"db"), w(size), [0x5a; 8]]),
            0,
            truncated("file data"),
        );
    }
    c.add(
        "dump",
        "files_wal_size_u64_max",
        frame(
            FILES,
            0,
            &cat![
                w(2),
                text(b"db"),
                w(8),
                [0x5a; 8],
                text(b"db-wal"),
                w(u64::MAX)
            ],
        ),
        0,
        truncated("file data"),
    );
    // The main file's size swallows the WAL's name; the WAL's size word is then read as its
    // (empty) name and its size is missing.
    c.add(
        "dump",
        "files_size_swallows_wal_name",
        frame(
            FILES,
            0,
            &cat![w(2), text(b"db"), w(16), [0x5a; 8], text(b"db-wal"), w(0)],
        ),
        0,
        truncated("file size"),
    );
    c.add(
        "dump",
        "files_size_missing",
        frame(FILES, 0, &cat![w(1), text(b"abcdefghijklmno")]),
        0,
        truncated("file size"),
    );
    for (label, n) in [("u64_max", u64::MAX), ("2pow60", 1 << 60)] {
        c.add(
            "dump",
            format!("files_count_{label}"),
            frame(FILES, 0, &cat![w(n), text(b"db"), w(0)]),
            0,
            bad_count("file", n),
        );
    }
    c.add(
        "dump",
        "files_count_3_two_files",
        frame(
            FILES,
            0,
            &cat![w(3), text(b"db"), w(0), text(b"db-wal"), w(0)],
        ),
        0,
        bad_count("file", 3),
    );
    c.add(
        "dump",
        "files_count_2_one_file",
        frame(FILES, 0, &cat![w(2), text(b"db"), w(0)]),
        0,
        bad_count("file", 2),
    );
    c.add(
        "dump",
        "files_count_1_two_files",
        frame(
            FILES,
            0,
            &cat![w(1), text(b"db"), w(0), text(b"db-wal"), w(0)],
        ),
        0,
        trailing(16),
    );
    c.add(
        "dump",
        "files_count_only",
        frame(FILES, 0, &w(2)),
        0,
        bad_count("file", 2),
    );
}

fn bodies(c: &mut Corpus) {
    c.section("body_size");
    c.add(
        "prepare",
        "stmt_1_word",
        frame(STMT, 0, &pair(0, 1)),
        0,
        truncated("param count"),
    );
    c.add(
        "prepare",
        "stmt_schema_1_1_word",
        frame(STMT, 1, &pair(0, 1)),
        0,
        truncated("param count"),
    );
    c.add(
        "prepare",
        "stmt_schema_1_2_words",
        frame(STMT, 1, &cat![pair(0, 1), w(0)]),
        0,
        truncated("tail offset"),
    );
    c.add(
        "prepare",
        "stmt_4_words",
        frame(STMT, 0, &cat![pair(0, 1), w(0), w(0), w(0)]),
        0,
        trailing(16),
    );
    c.add(
        "prepare",
        "stmt_schema_1_5_words",
        frame(STMT, 1, &cat![pair(0, 1), w(0), w(9), w(0), w(0)]),
        0,
        trailing(16),
    );
    c.add(
        "exec",
        "result_1_word",
        frame(RESULT, 0, &w(1)),
        0,
        truncated("rows affected"),
    );
    c.add(
        "exec",
        "result_5_words",
        frame(RESULT, 0, &cat![w(1), w(1), w(0), w(0), w(0)]),
        0,
        trailing(24),
    );
    c.add(
        "describe",
        "metadata_1_word",
        frame(METADATA, 0, &w(0)),
        0,
        truncated("weight"),
    );
    c.add(
        "describe",
        "metadata_4_words",
        frame(METADATA, 0, &cat![w(0), w(1), w(0), w(0)]),
        0,
        trailing(16),
    );
    c.add(
        "client",
        "welcome_3_words",
        frame(WELCOME, 0, &cat![w(15000), w(0), w(0)]),
        0,
        trailing(16),
    );
    c.add(
        "open",
        "db_4_words",
        frame(DB, 0, &cat![w(0), w(0), w(0), w(0)]),
        0,
        trailing(24),
    );
    c.add(
        "interrupt",
        "empty_3_words",
        frame(EMPTY, 0, &cat![w(0), w(0), w(0)]),
        0,
        trailing(16),
    );
    c.add(
        "leader",
        "server_1_word",
        frame(SERVER, 0, &w(1)),
        0,
        unterminated("node address"),
    );
}

fn abandoned(c: &mut Corpus) {
    c.section("abandoned");
    let p = "abandoned_query";
    c.add(
        p,
        "rows_bad_nibble_7",
        rows_frame(&["x"], &[row(&[7], &[&w(0)])], DONE),
        0,
        unknown_value(7),
    );
    c.add(
        p,
        "part_then_zero_row_part",
        cat![part(1), rows_frame(&["x"], &[], PART)],
        0,
        mal(Malformed::EmptyPart),
    );
    c.add(
        p,
        "done_then_rows_for_interrupt",
        cat![done(1), done(1)],
        0,
        unexpected("EMPTY", "ROWS"),
    );
    c.add(
        p,
        "done_then_empty_2_words",
        cat![done(1), frame(EMPTY, 0, &[0; 16])],
        0,
        trailing(8),
    );
    c.add(p, "part_then_eof", part(1), 0, closed(0));
    c.add(
        p,
        "failure_without_message",
        frame(FAILURE, 0, &w(1)),
        0,
        unterminated("failure message"),
    );
    let p = "abandoned_prepare";
    c.add(
        p,
        "stmt_then_empty_2_words",
        cat![valid(STMT), frame(EMPTY, 0, &[0; 16])],
        0,
        trailing(8),
    );
    c.add(
        p,
        "stmt_then_result",
        cat![valid(STMT), valid(RESULT)],
        0,
        unexpected("EMPTY", "RESULT"),
    );
    c.add(
        p,
        "stmt_1_word",
        frame(STMT, 0, &pair(0, 1)),
        0,
        truncated("param count"),
    );
    c.add(p, "stmt_then_eof", valid(STMT), 0, closed(0));
}

// ----- running a fixture -------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Split {
    Whole,
    Bytewise,
}

/// Feeds `bytes` per `fixture`'s prefix and checks every promise; returns the allocation peak
/// (bytes above what was live before the connection was created).
fn run(fixture: &Fixture, bytes: &[u8], split: Split) -> Result<usize, String> {
    let base = measure_start();
    let (mut conn, pending) = setup(fixture.prefix());
    let piece = match split {
        Split::Whole => bytes.len().max(1),
        Split::Bytewise => 1,
    };
    let mut oks = 0usize;
    let mut first: Option<Error> = None;
    for chunk in bytes.chunks(piece) {
        conn.handle_input(chunk);
        loop {
            match (conn.poll_event(), &first) {
                (Ok(Some(ev)), None) => {
                    oks += 1;
                    drop(ev);
                }
                (Ok(None), None) => break,
                (Err(e), None) => {
                    first = Some(e);
                    break;
                }
                (Err(e), Some(f)) if &e == f => break,
                (other, Some(f)) => {
                    return Err(format!("after {f:?}, poll_event gave {other:?}"));
                }
            }
        }
    }
    let error = match first {
        Some(e) => {
            let again = conn.handle_eof();
            if again != e {
                return Err(format!("handle_eof after {e:?} gave {again:?}"));
            }
            e
        }
        None => conn.handle_eof(),
    };
    if error != fixture.error {
        return Err(format!("error {error:?}, expected {:?}", fixture.error));
    }
    if oks != fixture.ok_events {
        return Err(format!(
            "{oks} Ok events before the error, expected {}",
            fixture.ok_events
        ));
    }
    if !error.is_fatal() {
        return Err(format!("{error:?} is not fatal"));
    }
    check_poisoned(&mut conn, &error, pending)?;
    drop(conn);
    Ok(measure_peak(base))
}

/// Every output and command of a poisoned connection returns its error or nothing.
fn check_poisoned(
    conn: &mut Connection,
    e: &Error,
    pending: Option<RequestId>,
) -> Result<(), String> {
    let err = Err(e.clone());
    for _ in 0..3 {
        let got = conn.poll_event();
        if got != err {
            return Err(format!("poll_event after poisoning gave {got:?}"));
        }
    }
    // Input after poisoning is ignored, even a valid answer.
    conn.handle_input(&valid(SERVER));
    conn.handle_input(&done(1));
    if conn.poll_event() != err {
        return Err("poll_event after more input did not return the error".into());
    }
    let state = (
        conn.poll_transmit().is_none(),
        conn.is_idle(),
        conn.wants_input(),
        conn.error(),
    );
    if state != (true, false, false, Some(e)) {
        return Err(format!(
            "poisoned state (transmit none, idle, wants input, error) = {state:?}"
        ));
    }
    let commands: [(&str, Result<RequestId, Error>); 15] = [
        ("leader", conn.leader()),
        ("client", conn.client(1)),
        ("open", conn.open("other")),
        ("prepare", conn.prepare("SELECT 1")),
        ("exec_sql", conn.exec_sql("SELECT 1", &[])),
        ("query_sql", conn.query_sql("SELECT 1", &[])),
        ("interrupt", conn.interrupt()),
        ("add", conn.add(9, "127.0.0.1:9009")),
        ("assign", conn.assign(9, NodeRole::Voter)),
        ("remove", conn.remove(9)),
        ("dump", conn.dump("db")),
        ("cluster", conn.cluster(true)),
        ("transfer", conn.transfer(9)),
        ("describe", conn.describe()),
        ("weight", conn.weight(1)),
    ];
    for (name, got) in commands {
        match got {
            Err(g) if &g == e => {}
            other => return Err(format!("{name} on a poisoned connection gave {other:?}")),
        }
    }
    if let Some(req) = pending {
        if conn.abandon(req) {
            return Err("abandon succeeded on a poisoned connection".into());
        }
    }
    if conn.poll_transmit().is_some() || conn.is_idle() {
        return Err("a command made the poisoned connection transmit or idle".into());
    }
    Ok(())
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

/// Checks the generated corpus itself: unique, well-formed names and known prefixes.
fn check_generated(corpus: &[Fixture]) {
    let mut names = BTreeSet::new();
    for f in corpus {
        assert!(
            names.insert(f.name.as_str()),
            "duplicate fixture name {}",
            f.name
        );
        assert!(
            f.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "fixture name {} must be [a-z0-9_]",
            f.name
        );
        assert!(
            PREFIXES.iter().any(|(p, _)| *p == f.prefix()) && f.name.matches("__").count() == 1,
            "fixture {} has no known prefix",
            f.name
        );
        assert!(
            !f.bytes.is_empty() && f.bytes.len() <= 4096,
            "fixture {} size",
            f.name
        );
    }
    assert!(corpus.len() >= 200, "only {} fixtures", corpus.len());
}

/// Writes the corpus (only with `HOSTILE_BLESS=1`), then compares the directory to it.
fn check_stored(corpus: &[Fixture]) {
    let dir = fixture_dir();
    if std::env::var_os("HOSTILE_BLESS").is_some_and(|v| v == "1") {
        fs::create_dir_all(&dir).expect("create fixture directory");
        for entry in fs::read_dir(&dir).expect("read fixture directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "bin") {
                fs::remove_file(&path).expect("remove stale fixture");
            }
        }
        for f in corpus {
            fs::write(dir.join(f.file_name()), &f.bytes).expect("write fixture");
        }
    }
    let mut stored = BTreeMap::new();
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (generate with HOSTILE_BLESS=1)", dir.display()));
    for entry in entries {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "README.md" {
            continue;
        }
        assert!(
            name.ends_with(".bin"),
            "unexpected file {name} in {}",
            dir.display()
        );
        stored.insert(name, fs::read(entry.path()).expect("read fixture"));
    }
    let mut problems = Vec::new();
    for f in corpus {
        match stored.remove(&f.file_name()) {
            None => problems.push(format!("missing {}", f.file_name())),
            Some(b) if b != f.bytes => {
                problems.push(format!("differs from the generator: {}", f.file_name()))
            }
            Some(_) => {}
        }
    }
    problems.extend(
        stored
            .keys()
            .map(|n| format!("not produced by the generator: {n}")),
    );
    assert!(
        problems.is_empty(),
        "fixtures out of date (rewrite with HOSTILE_BLESS=1 and review):\n{}",
        problems.join("\n")
    );
    // The README documents every prefix and category.
    let readme = fs::read_to_string(dir.join("README.md")).expect("fixtures README.md");
    let documented = PREFIXES
        .iter()
        .map(|(p, _)| *p)
        .chain(corpus.iter().map(|f| f.category));
    for word in documented {
        assert!(
            readme.contains(&format!("`{word}`")),
            "README.md does not document `{word}`"
        );
    }
    let total: usize = corpus.iter().map(|f| f.bytes.len()).sum();
    assert!(total < 256 << 10, "corpus is {total} bytes");
}

#[test]
fn hostile_corpus() {
    let corpus = generate();
    check_generated(&corpus);
    check_stored(&corpus);

    let mut failures = Vec::new();
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    let mut worst = (0usize, String::new());
    for f in &corpus {
        *by_category.entry(f.category).or_default() += 1;
        let bytes = fs::read(fixture_dir().join(f.file_name())).expect("stored fixture");
        for split in [Split::Whole, Split::Bytewise] {
            let outcome = catch_unwind(AssertUnwindSafe(|| run(f, &bytes, split)));
            match outcome {
                Ok(Ok(peak)) => {
                    if peak > CORPUS_PEAK_BOUND {
                        failures.push(format!(
                            "{} ({split:?}): peak {peak} B > {CORPUS_PEAK_BOUND} B",
                            f.name
                        ));
                    }
                    if peak > worst.0 {
                        worst = (peak, format!("{} ({split:?})", f.name));
                    }
                }
                Ok(Err(msg)) => failures.push(format!("{} ({split:?}): {msg}", f.name)),
                Err(_) => failures.push(format!("{} ({split:?}): PANIC", f.name)),
            }
        }
    }
    eprintln!("hostile corpus: {} fixtures", corpus.len());
    for (cat, n) in &by_category {
        eprintln!("  {cat:<24} {n}");
    }
    eprintln!("largest allocation peak: {} B in {}", worst.0, worst.1);
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Frames really at the frame limit (generated, not stored: 1 MiB each), built to make the
/// decoder allocate as much as it can before failing. Decoded values take more memory than
/// their wire form (a `Value` is 40 bytes for as little as 8 on the wire); the peak must stay
/// within a small multiple of the limit.
#[test]
fn large_hostile_frames_stay_bounded() {
    let body_len = MAX_FRAME as usize;
    let mut cases: Vec<(&str, &str, Vec<u8>, Error)> = Vec::new();

    // 16 NULL columns per row, rows until the end, then a bad nibble instead of a marker.
    let names: Vec<String> = (0..16).map(|i| format!("c{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let null_row = row(&[5; 16], &[&[0u8; 128]]);
    let mut body = cols(&names);
    while body.len() + null_row.len() + 16 <= body_len {
        body.extend(&null_row);
    }
    body.extend(row(&[7], &[&w(0)]));
    body.resize(body_len, 0);
    cases.push((
        "query",
        "rows_16_null_columns_bad_last_nibble",
        frame(ROWS, 0, &body),
        unknown_value(7),
    ));

    // One integer column, rows to the very end, no end marker.
    let mut body = cols(&["x"]);
    while body.len() + 16 <= body_len {
        body.extend(int_row(1));
    }
    cases.push((
        "query",
        "rows_1_column_no_marker",
        frame(ROWS, 0, &body),
        mal(Malformed::MissingEndMarker),
    ));

    // The most columns allowed, all with empty names, then no marker.
    let mut body = w(32767).to_vec();
    body.resize(8 + 32767 * 8, 0);
    body.resize(body_len, 0);
    cases.push((
        "query",
        "rows_32767_columns_no_marker",
        frame(ROWS, 0, &body),
        unknown_value(0),
    ));

    // As many minimal nodes as fit, the last address unterminated.
    let n = (body_len - 8) / 16;
    let mut body = w(n as u64).to_vec();
    for i in 0..n {
        body.extend(w(i as u64));
        body.extend(if i + 1 == n { [b'x'; 8] } else { [0; 8] });
    }
    cases.push((
        "cluster",
        "servers_max_nodes_last_unterminated",
        frame(SERVERS, 0, &body),
        unterminated("node address"),
    ));

    // As many empty files as fit, the last with a two-word name and no size.
    let n = (body_len - 8) / 16;
    let mut body = w(n as u64).to_vec();
    for _ in 1..n {
        body.extend(text(b""));
        body.extend(w(0));
    }
    body.extend(text(b"123456789abcdef"));
    cases.push((
        "dump",
        "files_max_entries_last_size_missing",
        frame(FILES, 0, &body),
        truncated("file size"),
    ));

    let mut failures = Vec::new();
    for (prefix, what, bytes, error) in cases {
        let f = Fixture {
            category: "large",
            name: format!("{prefix}__{what}"),
            bytes: Vec::new(),
            ok_events: 0,
            error,
        };
        for split in [Split::Whole, Split::Bytewise] {
            match catch_unwind(AssertUnwindSafe(|| run(&f, &bytes, split))) {
                Ok(Ok(peak)) => {
                    eprintln!(
                        "{} ({split:?}): peak {peak} B = {:.2} x frame limit",
                        f.name,
                        peak as f64 / MAX_FRAME as f64
                    );
                    if peak > LARGE_PEAK_BOUND {
                        failures.push(format!(
                            "{} ({split:?}): peak {peak} B > {LARGE_PEAK_BOUND} B",
                            f.name
                        ));
                    }
                }
                Ok(Err(msg)) => failures.push(format!("{} ({split:?}): {msg}", f.name)),
                Err(_) => failures.push(format!("{} ({split:?}): PANIC", f.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A ROWS batch decoded from the server must not let the caller panic the core by asking
/// for an absurd row index.
#[test]
fn row_index_usize_max_is_none() {
    for (what, bytes) in [
        ("one column", done(1)),
        ("no columns", frame(ROWS, 0, &cat![w(0), w(DONE)])),
    ] {
        let (mut conn, _) = setup("query");
        conn.handle_input(&bytes);
        let ev = conn.poll_event().expect("valid batch").expect("an event");
        let Reply::Rows(batch) = ev.reply else {
            panic!("{what}: not rows: {:?}", ev.reply)
        };
        let got = catch_unwind(AssertUnwindSafe(|| batch.row(usize::MAX).map(<[_]>::len)));
        assert_eq!(
            got.ok(),
            Some(None),
            "{what}: row(usize::MAX) must be None, not a panic"
        );
    }
}
