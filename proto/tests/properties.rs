//! Property tests of the protocol core: encode/decode round trips for values, parameter tuples
//! (both layouts), ROWS batches and every response; and the split property (a response byte
//! stream yields the same events however it is cut into pieces).

mod support;

use bytes::Bytes;
use dqlite_proto::server::response_code as resp_code;
use dqlite_proto::server::{decode_response, Deframer, Frame, Response};
use dqlite_proto::server::{request_code as req_code, Request};
use dqlite_proto::{
    Config, Connection, Error, Event, ExecResult, File, Metadata, NodeInfo, NodeRole, Reply,
    RequestId, RowsBatch, ServerFailure, StmtInfo, Text, Value,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use support::{as_param, decode_requests, drain_events, drain_transmit, encode_all, norm, norms};

// ----- strategies ----------------------------------------------------------------------------

fn nul_free() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\0', ""))
}

fn arb_text() -> impl Strategy<Value = Text> {
    nul_free().prop_map(Text::from)
}

/// Every variant; floats from arbitrary bit patterns (NaNs with payloads, -0.0, subnormals).
fn arb_value() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::Integer),
        any::<u64>().prop_map(|b| Value::Float(f64::from_bits(b))),
        Just(Value::Float(f64::NAN)),
        Just(Value::Float(-0.0)),
        arb_text().prop_map(Value::Text),
        vec(any::<u8>(), 0..40).prop_map(|b| Value::Blob(Bytes::from(b))),
        any::<i64>().prop_map(Value::UnixTime),
        arb_text().prop_map(Value::Iso8601),
        any::<bool>().prop_map(Value::Boolean),
    ]
    .boxed()
}

/// Like [`arb_value`] but without NaN, so values compare with `==`.
fn arb_value_eq() -> BoxedStrategy<Value> {
    arb_value()
        .prop_filter(
            "NaN never equals itself",
            |v| !matches!(v, Value::Float(f) if f.is_nan()),
        )
        .boxed()
}

fn arb_params() -> impl Strategy<Value = Vec<Value>> {
    prop_oneof![
        3 => vec(arb_value(), 0..=20),
        1 => vec(arb_value(), 240..=270),
        1 => vec(arb_value(), 256..=600),
    ]
}

/// Columns and rows of one batch (`values.len()` a multiple of the column count).
fn arb_table(
    value: impl Strategy<Value = Value> + Clone,
    max_cols: usize,
    max_rows: usize,
) -> impl Strategy<Value = (Vec<Text>, Vec<Value>)> {
    (1..=max_cols, 0..=max_rows).prop_flat_map(move |(ncols, nrows)| {
        (vec(arb_text(), ncols), vec(value.clone(), ncols * nrows))
    })
}

fn arb_node(with_role: bool) -> impl Strategy<Value = NodeInfo> {
    let role = prop_oneof![
        Just(NodeRole::Voter),
        Just(NodeRole::Standby),
        Just(NodeRole::Spare)
    ];
    (any::<u64>(), arb_text(), role).prop_map(move |(id, address, role)| NodeInfo {
        id,
        address,
        role: with_role.then_some(role),
    })
}

fn arb_response() -> impl Strategy<Value = (Response, bool)> {
    let plain = prop_oneof![
        (any::<u64>(), nul_free())
            .prop_map(|(code, message)| { Response::Failure(ServerFailure { code, message }) }),
        arb_node(false).prop_map(Response::Server),
        any::<u64>().prop_map(|h| Response::Welcome {
            heartbeat_timeout_ms: h
        }),
        any::<u32>().prop_map(|id| Response::Db { id }),
        (
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(|(id, params, tail_offset)| Response::Stmt(StmtInfo {
                id,
                params,
                tail_offset
            })),
        (any::<i64>(), any::<u64>()).prop_map(|(last_insert_id, rows_affected)| {
            Response::Result(ExecResult {
                last_insert_id,
                rows_affected,
            })
        }),
        Just(Response::Empty),
        vec((arb_text(), vec(any::<u8>(), 0..100)), 0..4).prop_map(|fs| Response::Files(
            fs.into_iter()
                .map(|(name, data)| File {
                    name,
                    data: Bytes::from(data),
                })
                .collect()
        )),
        (any::<u64>(), any::<u64>()).prop_map(|(failure_domain, weight)| {
            Response::Metadata(Metadata {
                failure_domain,
                weight,
            })
        }),
        (arb_table(arb_value(), 5, 5), any::<bool>()).prop_map(|((cols, vals), last)| {
            let b = RowsBatch::new(cols, vals, last);
            // A PART batch must carry rows; an empty one is always refused.
            let last = last || b.is_empty();
            let (cols, vals) = b.into_parts();
            Response::Rows(RowsBatch::new(cols, vals, last))
        }),
    ]
    .prop_map(|r| (r, false));
    let servers = any::<bool>().prop_flat_map(|roles| {
        vec(arb_node(roles), 0..5).prop_map(move |n| (Response::Servers(n), roles))
    });
    prop_oneof![4 => plain, 1 => servers]
}

// ----- helpers -------------------------------------------------------------------------------

fn one_frame(bytes: &[u8]) -> Frame {
    let mut d = Deframer::new(u64::MAX);
    d.push(bytes);
    let f = d.next_frame().unwrap().expect("a complete frame");
    assert_eq!(d.buffered(), 0, "exactly one frame");
    f
}

fn same_batch(a: &RowsBatch, b: &RowsBatch) -> bool {
    a.columns() == b.columns()
        && a.len() == b.len()
        && a.is_last() == b.is_last()
        && a.rows().map(norms).eq(b.rows().map(norms))
}

/// `==`, except that rows compare floats by bits.
fn same_response(a: &Response, b: &Response) -> bool {
    match (a, b) {
        (Response::Rows(x), Response::Rows(y)) => same_batch(x, y),
        _ => a == b,
    }
}

fn params32() -> Config {
    Config {
        server_accepts_params32: true,
        ..Config::default()
    }
}

/// A connection with its handshake and OPEN sent and answered.
fn opened(config: Config) -> Connection {
    let mut c = Connection::new(config);
    c.open("db").unwrap();
    drain_transmit(&mut c);
    c.handle_input(&encode_all(&[Response::Db { id: 0 }]));
    let evs = drain_events(&mut c).unwrap();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].reply, Reply::Opened);
    c
}

// ----- value and parameter round trips -------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Parameters of every type survive EXEC_SQL, QUERY_SQL, EXEC and QUERY, in the 1-byte
    /// count layout up to 255 parameters and the 4-byte layout beyond.
    #[test]
    fn params_round_trip_through_every_sql_request(params in arb_params()) {
        let mut c = opened(params32());
        let sql = taking("INSERT INTO t VALUES", params.len());
        let sql_text = sql.clone();
        c.prepare(&sql).unwrap();
        drain_transmit(&mut c);
        let count = params.len() as u64;
        c.handle_input(&encode_all(&[Response::Stmt(StmtInfo { id: 7, params: count, tail_offset: None })]));
        let mut evs = drain_events(&mut c).unwrap();
        let Some(Event { reply: Reply::Prepared(stmt), .. }) = evs.pop() else {
            panic!("no statement")
        };

        c.exec_sql(&sql, &params).unwrap();
        c.query_sql(&taking("SELECT", params.len()), &params).unwrap();
        c.exec(&stmt, &params).unwrap();
        c.query(&stmt, &params).unwrap();
        let sent = decode_requests(&drain_transmit(&mut c));
        prop_assert_eq!(sent.len(), 4);

        let want: Vec<_> = params.iter().map(as_param).collect();
        let schema = u8::from(params.len() > 255);
        for (header, req) in &sent {
            prop_assert_eq!(header.schema, schema);
            let got = match req {
                Request::ExecSql { sql, params } => {
                    prop_assert_eq!(header.kind, req_code::EXEC_SQL);
                    prop_assert_eq!(&**sql, sql_text.as_str());
                    params
                }
                Request::QuerySql { sql, params } => {
                    prop_assert_eq!(&**sql, taking("SELECT", params.len()));
                    params
                }
                Request::Exec { stmt, params } | Request::Query { stmt, params } => {
                    prop_assert_eq!(*stmt, 7);
                    params
                }
                other => panic!("unexpected request {other:?}"),
            };
            prop_assert_eq!(got.iter().map(norm).collect::<Vec<_>>(), want.clone());
        }
    }

    /// ROWS batches built with `RowsBatch::new` and encoded by the fake-server encoder come
    /// out of a connection with a pending query unchanged (floats by bits, UNIXTIME kept).
    #[test]
    fn rows_batch_round_trips_through_a_connection(
        (cols, vals) in arb_table(arb_value(), 20, 12),
        last in any::<bool>(),
    ) {
        let batch = RowsBatch::new(cols.clone(), vals.clone(), last || vals.is_empty());
        prop_assert_eq!(batch.len(), vals.len() / cols.len());
        let mut c = opened(Config::default());
        let q = c.query_sql("SELECT *", &[]).unwrap();
        drain_transmit(&mut c);
        c.handle_input(&encode_all(&[Response::Rows(batch.clone())]));
        let evs = drain_events(&mut c).unwrap();
        prop_assert_eq!(evs.len(), 1);
        prop_assert_eq!(evs[0].request, q);
        prop_assert_eq!(evs[0].completes_request(), batch.is_last());
        let Reply::Rows(got) = &evs[0].reply else { panic!("{:?}", evs[0].reply) };
        prop_assert!(same_batch(got, &batch));
        prop_assert_eq!(got.columns(), &cols[..]);
        let flat: Vec<_> = got.rows().flat_map(norms).collect();
        prop_assert_eq!(flat, norms(&vals));
        prop_assert_eq!(c.pending_requests(), usize::from(!batch.is_last()));
    }

    /// Every response variant: `Response::encode` then `decode_response` is the identity.
    #[test]
    fn every_response_round_trips((resp, with_roles) in arb_response()) {
        let mut bytes = Vec::new();
        resp.encode(&mut bytes).expect("a reply fits in a frame");
        let frame = one_frame(&bytes);
        prop_assert!(frame.header.words > 0);
        prop_assert_eq!(frame.header.kind, resp.code());
        prop_assert_eq!(bytes.len() % 8, 0);
        let decoded = decode_response(frame, with_roles).unwrap();
        prop_assert!(same_response(&decoded, &resp), "{:?} != {:?}", decoded, resp);
    }

    /// Arbitrary bytes from the server never panic the connection; a fatal error sticks.
    #[test]
    fn garbage_from_server_never_panics_and_errors_stick(
        frames in vec((0u8..12, 0u8..3, vec(any::<u8>(), 0..64)), 0..6),
        tail in vec(any::<u8>(), 0..40),
    ) {
        let mut c = opened(Config::default());
        c.query_sql("SELECT 1", &[]).unwrap();
        c.exec_sql("INSERT 1", &[]).unwrap();
        c.cluster(true).unwrap();
        c.dump("db").unwrap();
        drain_transmit(&mut c);
        let mut input = Vec::new();
        for (kind, schema, body) in frames {
            let words = body.len().div_ceil(8) as u32;
            input.extend_from_slice(&words.to_le_bytes());
            input.extend_from_slice(&[kind, schema, 0, 0]);
            input.extend_from_slice(&body);
            input.resize(input.len().next_multiple_of(8), 0);
        }
        input.extend_from_slice(&tail);
        c.handle_input(&input);
        if let Err((_, e)) = drain_events(&mut c) {
            prop_assert!(e.is_fatal());
            prop_assert_eq!(c.poll_event(), Err(e.clone()));
            prop_assert_eq!(c.leader(), Err(e.clone()));
            prop_assert_eq!(c.error(), Some(&e));
            prop_assert_eq!(c.handle_eof(), e);
        }
    }
}

#[test]
fn param_layout_switches_at_256_and_is_refused_without_params32() {
    for (n, schema) in [(0, 0u8), (1, 0), (255, 0), (256, 1), (1000, 1)] {
        let params = vec![Value::Integer(3); n];
        let mut c = opened(params32());
        c.exec_sql(&taking("INSERT", n), &params).unwrap();
        let bytes = drain_transmit(&mut c);
        assert_eq!(bytes[5], schema, "schema byte for {n} params");
        let body = &bytes[8..];
        let sql_end = 8 + 16; // db id word + "INSERT ?NNN\0" padded to 16
        match (n, schema) {
            (0, _) => assert_eq!(body.len(), sql_end, "no tuple for no parameters"),
            (_, 0) => assert_eq!(body[sql_end] as usize, n),
            _ => assert_eq!(
                u32::from_le_bytes(body[sql_end..sql_end + 4].try_into().unwrap()) as usize,
                n
            ),
        }
        let (_, req) = &decode_requests(&bytes)[0];
        let Request::ExecSql { params: got, .. } = req else {
            panic!()
        };
        assert_eq!(got.len(), n);

        let mut c = opened(Config::default());
        let r = c.exec_sql(&taking("INSERT", n), &params);
        if n > 255 {
            assert_eq!(
                r,
                Err(Error::Misuse(dqlite_proto::Misuse::TooManyParams {
                    count: n,
                    limit: 255
                }))
            );
        } else {
            assert!(r.is_ok());
        }
    }
}

#[test]
fn nan_and_signed_zero_floats_keep_their_bits() {
    let odd = [
        f64::from_bits(0x7ff8_0000_0000_0001),
        f64::from_bits(0xfff0_0000_dead_beef),
        -0.0,
        f64::INFINITY,
        f64::MIN_POSITIVE / 2.0,
    ];
    let params: Vec<Value> = odd.iter().map(|f| Value::Float(*f)).collect();
    let mut c = opened(Config::default());
    c.exec_sql(&taking("INSERT", params.len()), &params)
        .unwrap();
    let (_, req) = decode_requests(&drain_transmit(&mut c)).remove(0);
    let Request::ExecSql { params: got, .. } = req else {
        panic!()
    };
    let bits: Vec<u64> = got
        .iter()
        .map(|v| match v {
            Value::Float(f) => f.to_bits(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bits, odd.map(f64::to_bits));
}

/// SQL that takes `n` parameters: `"{prefix} ?{n}"` (SQLite counts up to the highest
/// number), or `"{prefix} 0"` for none.
fn taking(prefix: &str, n: usize) -> String {
    if n == 0 {
        format!("{prefix} 0")
    } else {
        format!("{prefix} ?{n}")
    }
}

// ----- the split property --------------------------------------------------------------------

/// The requests whose answers make up [`answer_stream`], queued on a fresh connection.
fn queue_split_requests(c: &mut Connection) -> Vec<RequestId> {
    vec![
        c.open("db").unwrap(),
        c.query_sql("SELECT a", &[]).unwrap(),
        c.exec_sql("INSERT ?", &[Value::Integer(1)]).unwrap(),
        c.exec_sql("INSERT 2", &[]).unwrap(),
        c.weight(3).unwrap(),
        c.query_sql("SELECT b", &[]).unwrap(),
        c.cluster(true).unwrap(),
    ]
}

/// DB; several ROWS PART batches and a DONE; RESULT; FAILURE; EMPTY; a second query cut off
/// by a FAILURE after two PART batches; SERVERS.
fn answer_stream(batches: &[(Vec<Value>, bool)], ncols: usize, more: &[Value]) -> Vec<Response> {
    let cols: Vec<Text> = (0..ncols).map(|i| Text::from(format!("col{i}"))).collect();
    let mut out = vec![Response::Db { id: 0 }];
    for (vals, last) in batches {
        out.push(Response::Rows(RowsBatch::new(
            cols.clone(),
            vals.clone(),
            *last,
        )));
    }
    out.push(Response::Result(ExecResult {
        last_insert_id: -5,
        rows_affected: 1,
    }));
    out.push(Response::Failure(ServerFailure {
        code: 2067,
        message: "UNIQUE constraint failed: t.a".into(),
    }));
    out.push(Response::Empty);
    let one = vec![Text::from("x")];
    for chunk in [&more[..more.len() / 2], &more[more.len() / 2..]] {
        let mut vals = chunk.to_vec();
        if vals.is_empty() {
            vals.push(Value::Null);
        }
        out.push(Response::Rows(RowsBatch::new(one.clone(), vals, false)));
    }
    out.push(Response::Failure(ServerFailure {
        code: 10250,
        message: "not leader".into(),
    }));
    out.push(Response::Servers(vec![NodeInfo {
        id: 1,
        address: "127.0.0.1:9001".into(),
        role: Some(NodeRole::Voter),
    }]));
    out
}

/// Feeds `stream` cut at `cuts` (sorted offsets), draining events after every piece.
fn events_for_pieces(stream: &[u8], cuts: &[usize]) -> (Vec<RequestId>, Vec<Event>) {
    let mut c = Connection::new(Config::default());
    let ids = queue_split_requests(&mut c);
    drain_transmit(&mut c);
    let mut events = Vec::new();
    let mut prev = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        c.handle_input(&stream[prev..cut]);
        prev = cut;
        match drain_events(&mut c) {
            Ok(evs) => events.extend(evs),
            Err((_, e)) => panic!("stream cut at {cuts:?} failed: {e}"),
        }
    }
    assert!(c.is_idle(), "everything answered");
    (ids, events)
}

/// Checks the one-piece events against the responses themselves.
fn check_reference(ids: &[RequestId], events: &[Event], responses: &[Response]) {
    assert_eq!(events.len(), responses.len());
    let rows_events: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.reply, Reply::Rows(_)))
        .collect();
    assert!(rows_events
        .iter()
        .all(|e| e.request == ids[1] || e.request == ids[5]));
    let completes: Vec<RequestId> = events
        .iter()
        .filter(|e| e.completes_request())
        .map(|e| e.request)
        .collect();
    assert_eq!(completes, ids, "each request completed once, in order");
    for (ev, resp) in events.iter().zip(responses) {
        match (&ev.reply, resp) {
            (Reply::Rows(a), Response::Rows(b)) => assert_eq!(a, b),
            (Reply::Executed(a), Response::Result(b)) => assert_eq!(a, b),
            (Reply::Failure(a), Response::Failure(b)) => assert_eq!(a, b),
            (Reply::Opened, Response::Db { .. }) | (Reply::Empty, Response::Empty) => {}
            (Reply::Nodes(a), Response::Servers(b)) => assert_eq!(a, b),
            (r, s) => panic!("{r:?} does not match {s:?}"),
        }
    }
}

fn fixed_split_stream() -> (Vec<Response>, Vec<u8>) {
    let batches = vec![
        (
            vec![
                Value::Integer(1),
                Value::Text("one".into()),
                Value::Integer(2),
                Value::Blob(Bytes::from_static(&[9; 13])),
            ],
            false,
        ),
        (vec![Value::Float(2.5), Value::Null], false),
        (vec![Value::Boolean(true), Value::UnixTime(-1)], false),
        (vec![Value::Iso8601("2020-01-01".into()), Value::Null], true),
    ];
    let more = [Value::Integer(7), Value::Text("seven".into()), Value::Null];
    let responses = answer_stream(&batches, 2, &more);
    let bytes = encode_all(&responses);
    (responses, bytes)
}

#[test]
fn split_at_every_byte_boundary_yields_the_same_events() {
    let (responses, stream) = fixed_split_stream();
    let (ids, whole) = events_for_pieces(&stream, &[]);
    check_reference(&ids, &whole, &responses);
    for cut in 0..=stream.len() {
        let (_, split) = events_for_pieces(&stream, &[cut]);
        assert_eq!(split, whole, "split at byte {cut}");
    }
}

#[test]
fn byte_at_a_time_yields_the_same_events() {
    let (_, stream) = fixed_split_stream();
    let (_, whole) = events_for_pieces(&stream, &[]);
    let cuts: Vec<usize> = (1..stream.len()).collect();
    let (_, split) = events_for_pieces(&stream, &cuts);
    assert_eq!(split, whole);
}

fn arb_split_stream() -> impl Strategy<Value = (Vec<Response>, Vec<u8>)> {
    (1usize..4)
        .prop_flat_map(|ncols| {
            let batch = (0usize..5).prop_flat_map(move |rows| vec(arb_value_eq(), ncols * rows));
            (
                Just(ncols),
                vec(
                    batch
                        .clone()
                        .prop_filter("PART needs rows", |v| !v.is_empty()),
                    0..5,
                ),
                batch,
                vec(arb_value_eq(), 0..6),
            )
        })
        .prop_map(|(ncols, parts, done, more)| {
            let mut batches: Vec<(Vec<Value>, bool)> =
                parts.into_iter().map(|v| (v, false)).collect();
            batches.push((done, true));
            let responses = answer_stream(&batches, ncols, &more);
            let bytes = encode_all(&responses);
            (responses, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same stream cut at every single byte boundary gives the same events.
    #[test]
    fn split_in_two_anywhere_yields_the_same_events((responses, stream) in arb_split_stream()) {
        let (ids, whole) = events_for_pieces(&stream, &[]);
        check_reference(&ids, &whole, &responses);
        for cut in 0..=stream.len() {
            let (_, split) = events_for_pieces(&stream, &[cut]);
            prop_assert_eq!(&split, &whole, "split at byte {}", cut);
        }
    }

    /// ... and cut into arbitrarily many pieces.
    #[test]
    fn split_in_many_pieces_yields_the_same_events(
        (responses, stream) in arb_split_stream(),
        cuts in vec(any::<Index>(), 0..40),
    ) {
        let (ids, whole) = events_for_pieces(&stream, &[]);
        check_reference(&ids, &whole, &responses);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let (_, split) = events_for_pieces(&stream, &cuts);
        prop_assert_eq!(split, whole);
    }
}

#[test]
fn response_codes_are_the_documented_ones() {
    // Guards the fake server encoder against silently drifting from the response codes in
    // docs/PROTOCOL.md#responses.
    let cases: [(Response, u8); 5] = [
        (Response::Empty, resp_code::EMPTY),
        (Response::Db { id: 0 }, resp_code::DB),
        (
            Response::Welcome {
                heartbeat_timeout_ms: 1,
            },
            resp_code::WELCOME,
        ),
        (
            Response::Failure(ServerFailure {
                code: 1,
                message: String::new(),
            }),
            resp_code::FAILURE,
        ),
        (
            Response::Stmt(StmtInfo {
                id: 0,
                params: 0,
                tail_offset: Some(9),
            }),
            resp_code::STMT,
        ),
    ];
    for (resp, code) in cases {
        let mut b = Vec::new();
        resp.encode(&mut b).expect("a reply fits in a frame");
        assert_eq!(b[4], code);
        let schema = u8::from(matches!(
            resp,
            Response::Stmt(StmtInfo {
                tail_offset: Some(_),
                ..
            })
        ));
        assert_eq!(b[5], schema);
    }
}

// ----- the SQL lexer -------------------------------------------------------------------------

/// SQL-ish text: the characters the lexer treats specially, mixed with words and spaces.
fn sqlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("`".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("--".to_owned()),
        Just("/*".to_owned()),
        Just("*/".to_owned()),
        Just("\n".to_owned()),
        Just(";".to_owned()),
        Just("?".to_owned()),
        Just(":a".to_owned()),
        Just("@b".to_owned()),
        Just("$c".to_owned()),
        Just("::".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(" BEGIN ".to_owned()),
        Just(" END ".to_owned()),
        Just(" CASE ".to_owned()),
        Just("CREATE TRIGGER ".to_owned()),
        Just("SAVEPOINT ".to_owned()),
        Just("ROLLBACK TO ".to_owned()),
        "[a-zA-Z0-9_ é.+-]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    vec(piece, 0..24).prop_map(|p| p.concat())
}

proptest! {
    /// Any text lexes without panicking; statements are non-overlapping, ordered slices of
    /// the text; the summary agrees with them.
    #[test]
    fn sql_lexer_is_total_and_consistent(sql in sqlish()) {
        let summary = dqlite_proto::sql::summarize(&sql);
        let parts: Vec<_> = dqlite_proto::sql::statements(&sql).collect();
        prop_assert_eq!(parts.len(), summary.statements);
        prop_assert_eq!(parts.iter().map(|s| s.params).sum::<usize>(), summary.params);
        prop_assert_eq!(parts.iter().any(|s| s.tx_control.is_some()), summary.tx_control);
        let base = sql.as_ptr() as usize;
        let mut end = 0;
        for part in &parts {
            let start = part.sql.as_ptr() as usize - base;
            prop_assert!(start >= end, "statements overlap");
            prop_assert!(!part.sql.is_empty());
            prop_assert_eq!(&sql[start..start + part.sql.len()], part.sql);
            end = start + part.sql.len();
        }
        let marks = sql.matches(['?', ':', '@', '$']).count();
        prop_assert!(summary.params <= marks || sql.contains(|c: char| c.is_ascii_digit()));
    }
}
