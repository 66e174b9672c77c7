//! State-machine scenarios against a deterministic in-memory fake server (see
//! `support::FakeServer` and the `support::Pair` stepping helper), and leader discovery against
//! scripted nodes.

mod support;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dqlite_proto::discovery::{
    Action, Discovery, DiscoveryConfig, DiscoveryError, Leader, Node, NodeOutcome, ProbeId,
    RedirectPolicy,
};
use dqlite_proto::server::Request;
use dqlite_proto::server::Response;
use dqlite_proto::{
    Config, Connection, Error, Event, ExecResult, LimitExceeded, Limits, Malformed, Metadata,
    Misuse, NodeInfo, NodeRole, Reply, RequestId, SendState, StmtInfo, Value,
};

use support::{
    as_param, encode_all, every_type, failure, mini_db, norms, rows, text, Handler, MiniDb, Pair,
};

// ----- helpers -------------------------------------------------------------------------------

fn pair() -> Pair {
    Pair::new(
        Connection::new(Config::default()),
        mini_db(MiniDb::default()),
    )
}

fn pair_with(config: Config, handler: Handler) -> Pair {
    Pair::new(Connection::new(config), handler)
}

/// The replies delivered for `id`, in order.
fn replies(evs: &[Event], id: RequestId) -> Vec<&Reply> {
    evs.iter()
        .filter(|e| e.request == id)
        .map(|e| &e.reply)
        .collect()
}

/// The single reply delivered for `id`.
fn only(evs: &[Event], id: RequestId) -> &Reply {
    let r = replies(evs, id);
    assert_eq!(
        r.len(),
        1,
        "expected exactly one reply for {id:?}, got {r:?}"
    );
    r[0]
}

fn executed(last_insert_id: i64, rows_affected: u64) -> Reply {
    Reply::Executed(ExecResult {
        last_insert_id,
        rows_affected,
    })
}

fn int_rows(evs: &[Event], id: RequestId) -> Vec<i64> {
    replies(evs, id)
        .into_iter()
        .flat_map(|r| match r {
            Reply::Rows(b) => b
                .rows()
                .flat_map(|row| {
                    row.iter().map(|v| match v {
                        Value::Integer(i) => *i,
                        other => panic!("not an integer: {other:?}"),
                    })
                })
                .collect::<Vec<_>>(),
            other => panic!("not rows: {other:?}"),
        })
        .collect()
}

/// Opens "db" on the pair and checks the answer.
fn open(p: &mut Pair) {
    let id = p.client.open("db").unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), id), &Reply::Opened);
}

/// Wraps a handler: EXEC_SQL "FAIL <code>" is answered with that FAILURE code.
fn with_failures(mut inner: Handler) -> Handler {
    Box::new(move |req| match req {
        Request::ExecSql { sql, .. } if sql.starts_with("FAIL ") => {
            vec![failure(sql[5..].parse().unwrap(), "scripted failure")]
        }
        other => inner(other),
    })
}

// ----- happy path ----------------------------------------------------------------------------

#[test]
fn happy_path_through_every_request() {
    let mut p = pair();
    assert!(!p.client.is_idle(), "the handshake word is queued");

    // Handshake, LEADER, CLIENT.
    let leader = p.client.leader().unwrap();
    let client = p.client.client(0).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(
        only(&evs, leader),
        &Reply::Leader(NodeInfo {
            id: 1,
            address: text("127.0.0.1:9001"),
            role: None
        })
    );
    assert_eq!(
        only(&evs, client),
        &Reply::Welcome {
            heartbeat_timeout_ms: 15000
        }
    );
    assert!(p.client.is_idle());

    // OPEN, CREATE, INSERT with parameters of every type, SELECT back.
    let open = p.client.open("app").unwrap();
    assert!(p.client.has_database());
    let create = p
        .client
        .exec_sql(
            "CREATE TABLE t (a, b, c, d, e, f DATETIME, g DATETIME, h BOOLEAN)",
            &[],
        )
        .unwrap();
    let insert_sql = "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
    let first = every_type();
    let second = vec![
        Value::Integer(i64::MIN),
        Value::Float(f64::MAX),
        Value::Text(text("")),
        Value::Blob(Bytes::new()),
        Value::Null,
        Value::UnixTime(-1),
        Value::Iso8601(text("")),
        Value::Boolean(false),
    ];
    let ins1 = p.client.exec_sql(insert_sql, &first).unwrap();
    let ins2 = p.client.exec_sql(insert_sql, &second).unwrap();
    let select = p.client.query_sql("SELECT * FROM t", &[]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, open), &Reply::Opened);
    assert_eq!(only(&evs, create), &executed(0, 0));
    assert_eq!(only(&evs, ins1), &executed(1, 1));
    assert_eq!(only(&evs, ins2), &executed(2, 1));
    let Reply::Rows(batch) = only(&evs, select) else {
        panic!()
    };
    assert!(batch.is_last());
    assert_eq!(
        batch.columns(),
        ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7"]
    );
    let got: Vec<_> = batch.rows().map(norms).collect();
    let want: Vec<Vec<_>> = [&first, &second]
        .iter()
        .map(|r| r.iter().map(as_param).collect())
        .collect();
    assert_eq!(got, want, "every type comes back (UNIXTIME as INTEGER)");

    // PREPARE / EXEC / QUERY / FINALIZE.
    let prep_ins = p.client.prepare(insert_sql).unwrap();
    let prep_sel = p.client.prepare("SELECT * FROM t").unwrap();
    p.run();
    let mut evs = p.take_events();
    let Some(Event {
        reply: Reply::Prepared(sel_stmt),
        request,
    }) = evs.pop()
    else {
        panic!("{evs:?}")
    };
    assert_eq!(request, prep_sel);
    let Some(Event {
        reply: Reply::Prepared(ins_stmt),
        request,
    }) = evs.pop()
    else {
        panic!()
    };
    assert_eq!(request, prep_ins);
    assert_eq!(ins_stmt.param_count(), 8);
    assert_eq!(sel_stmt.param_count(), 0);
    assert_eq!(ins_stmt.tail_offset(), None);

    let exec = p.client.exec(&ins_stmt, &first).unwrap();
    let query = p.client.query(&sel_stmt, &[]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, exec), &executed(3, 1));
    let batches = replies(&evs, query);
    assert_eq!(batches.len(), 2, "3 rows in batches of 2");
    let n: usize = batches
        .iter()
        .map(|r| match r {
            Reply::Rows(b) => b.len(),
            _ => panic!(),
        })
        .sum();
    assert_eq!(n, 3);
    let fin1 = p.client.finalize(ins_stmt).unwrap();
    let fin2 = p.client.finalize(sel_stmt).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, fin1), &Reply::Empty);
    assert_eq!(only(&evs, fin2), &Reply::Empty);

    // CLUSTER (both formats), DUMP, WEIGHT + DESCRIBE, TRANSFER, ADD / ASSIGN / REMOVE.
    let cluster = p.client.cluster(true).unwrap();
    let cluster0 = p.client.cluster(false).unwrap();
    let dump = p.client.dump("app").unwrap();
    let weight = p.client.weight(7).unwrap();
    let describe = p.client.describe().unwrap();
    let transfer = p.client.transfer(2).unwrap();
    let add = p.client.add(4, "127.0.0.1:9004").unwrap();
    let assign = p.client.assign(4, NodeRole::Voter).unwrap();
    let remove = p.client.remove(4).unwrap();
    p.run();
    let evs = p.take_events();
    let Reply::Nodes(nodes) = only(&evs, cluster) else {
        panic!()
    };
    assert_eq!(nodes, &MiniDb::default().nodes);
    let Reply::Nodes(nodes0) = only(&evs, cluster0) else {
        panic!()
    };
    assert!(nodes0.iter().all(|n| n.role.is_none()));
    assert_eq!(nodes0.len(), 3);
    let Reply::Files(files) = only(&evs, dump) else {
        panic!()
    };
    assert_eq!(files.len(), 2);
    assert_eq!((&*files[0].name, files[0].data.len()), ("app", 4096));
    assert_eq!((&*files[1].name, files[1].data.len()), ("app-wal", 0));
    assert_eq!(only(&evs, weight), &Reply::Empty);
    assert_eq!(
        only(&evs, describe),
        &Reply::Metadata(Metadata {
            failure_domain: 0,
            weight: 7
        })
    );
    for id in [transfer, add, assign, remove] {
        assert_eq!(only(&evs, id), &Reply::Empty);
    }
    assert!(p.client.is_idle());
    assert!(p.error.is_none());

    // What went over the wire, as the server decoded it.
    let log = p.server.requests();
    assert!(log.iter().all(|r| !matches!(r, Request::Interrupt)));
    let tail = &log[log.len() - 9..];
    assert_eq!(
        tail,
        [
            Request::Cluster { with_roles: true },
            Request::Cluster { with_roles: false },
            Request::Dump { name: "app".into() },
            Request::Weight { weight: 7 },
            Request::Describe,
            Request::Transfer { id: 2 },
            Request::Add {
                id: 4,
                address: "127.0.0.1:9004".into()
            },
            Request::Assign {
                id: 4,
                role: NodeRole::Voter
            },
            Request::Remove { id: 4 },
        ]
    );
    assert!(log.contains(&Request::Open { name: "app".into() }));
    assert!(log.contains(&Request::Finalize { stmt: 0 }));
    assert!(log.contains(&Request::Finalize { stmt: 1 }));
    assert!(
        p.server.log.iter().all(|(h, _)| h.schema == 0),
        "schema 0 everywhere with few parameters"
    );
}

#[test]
fn requests_can_be_pipelined_and_are_answered_in_order() {
    let mut p = pair();
    let open = p.client.open("db").unwrap();
    let ids: Vec<_> = (0..20)
        .map(|i| {
            p.client
                .exec_sql("INSERT INTO t VALUES (?)", &[Value::Integer(i)])
                .unwrap()
        })
        .collect();
    let sel = p.client.query_sql("SELECT * FROM t", &[]).unwrap();
    assert_eq!(p.client.pending_requests(), 22);
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, open), &Reply::Opened);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(only(&evs, *id), &executed(i as i64 + 1, 1));
    }
    assert_eq!(int_rows(&evs, sel), (0..20).collect::<Vec<_>>());
    let order: Vec<RequestId> = evs.iter().map(|e| e.request).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "events come in request order");
}

// ----- multi-part rows -----------------------------------------------------------------------

fn batches_handler(parts: usize, rows_per: usize, tail: Option<Response>) -> Handler {
    let mut inner = mini_db(MiniDb::default());
    Box::new(move |req| match req {
        Request::QuerySql { sql, .. } if sql.starts_with("SELECT n") => {
            let base: i64 = sql[8..].trim().parse().unwrap_or(0);
            let mut out: Vec<Response> = (0..parts)
                .map(|b| {
                    let vals = (0..rows_per)
                        .map(|r| Value::Integer(base + (b * rows_per + r) as i64))
                        .collect();
                    rows(&["n"], vals, false)
                })
                .collect();
            out.push(tail.clone().unwrap_or_else(|| {
                rows(
                    &["n"],
                    vec![Value::Integer(base + (parts * rows_per) as i64)],
                    true,
                )
            }));
            out
        }
        other => inner(other),
    })
}

#[test]
fn multi_part_rows_arrive_as_separate_events_in_order() {
    let mut p = pair_with(Config::default(), batches_handler(6, 3, None));
    open(&mut p);
    let q = p.client.query_sql("SELECT n", &[]).unwrap();
    p.send(usize::MAX);
    assert_eq!(p.client.send_state(q), SendState::Sent);
    // Deliver the stream a few bytes at a time: each batch surfaces as soon as it is whole.
    let mut seen = Vec::new();
    while p.recv(5) > 0 {
        let evs = p.take_events();
        assert!(evs.len() <= 1, "5 bytes cannot complete two batches");
        for e in &evs {
            assert_eq!(e.request, q);
            assert!(matches!(e.reply, Reply::Rows(_)));
            assert_eq!(
                p.client.pending_requests(),
                usize::from(!e.completes_request()),
                "the query is owed until its DONE batch"
            );
            assert_eq!(p.client.wants_input(), !e.completes_request());
        }
        seen.extend(evs);
    }
    assert_eq!(seen.len(), 7);
    let completes: Vec<bool> = seen.iter().map(Event::completes_request).collect();
    assert_eq!(completes, [false, false, false, false, false, false, true]);
    let last: Vec<bool> = seen
        .iter()
        .map(|e| match &e.reply {
            Reply::Rows(b) => b.is_last(),
            _ => panic!(),
        })
        .collect();
    assert_eq!(last, completes);
    assert_eq!(int_rows(&seen, q), (0..19).collect::<Vec<_>>());
    // The client sent nothing while the stream ran.
    assert_eq!(p.server.log.len(), 2);
    assert!(p.client.is_idle());
}

#[test]
fn pipelined_multi_part_queries_do_not_interleave() {
    let mut p = pair_with(Config::default(), batches_handler(3, 2, None));
    open(&mut p);
    let q1 = p.client.query_sql("SELECT n 0", &[]).unwrap();
    let q2 = p.client.query_sql("SELECT n 100", &[]).unwrap();
    let e = p
        .client
        .exec_sql("INSERT INTO t VALUES (?)", &[Value::Integer(5)])
        .unwrap();
    p.run();
    let evs = p.take_events();
    let order: Vec<RequestId> = evs.iter().map(|e| e.request).collect();
    assert_eq!(order, [q1, q1, q1, q1, q2, q2, q2, q2, e]);
    assert_eq!(int_rows(&evs, q1), (0..7).collect::<Vec<_>>());
    assert_eq!(int_rows(&evs, q2), (100..107).collect::<Vec<_>>());
    assert_eq!(only(&evs, e), &executed(1, 1));
}

#[test]
fn empty_done_batch_and_zero_column_results_are_fine() {
    let handler: Handler = Box::new(|req| match req {
        Request::Open { .. } => vec![Response::Db { id: 0 }],
        Request::QuerySql { sql, .. } if sql == "SELECT x" => vec![
            rows(&["x"], vec![Value::Integer(1)], false),
            rows(&["x"], vec![], true),
        ],
        Request::QuerySql { .. } => vec![rows(&[], vec![], true)],
        other => panic!("{other:?}"),
    });
    let mut p = pair_with(Config::default(), handler);
    open(&mut p);
    let q = p.client.query_sql("SELECT x", &[]).unwrap();
    let z = p.client.query_sql("PRAGMA nothing", &[]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(int_rows(&evs, q), [1]);
    assert_eq!(replies(&evs, q).len(), 2);
    let Reply::Rows(b) = only(&evs, z) else {
        panic!()
    };
    assert!(b.is_last() && b.is_empty() && b.columns().is_empty());
    assert!(p.error.is_none() && p.client.is_idle());
}

// ----- FAILURE mid-stream --------------------------------------------------------------------

#[test]
fn failure_mid_stream_ends_the_request_and_the_next_one_works() {
    let tail = failure(9, "interrupted");
    let mut p = pair_with(Config::default(), batches_handler(2, 4, Some(tail)));
    open(&mut p);
    let q = p.client.query_sql("SELECT n", &[]).unwrap();
    p.run();
    let evs = p.take_events();
    let r = replies(&evs, q);
    assert_eq!(r.len(), 3);
    assert!(matches!(r[0], Reply::Rows(b) if !b.is_last() && b.len() == 4));
    assert!(matches!(r[1], Reply::Rows(b) if !b.is_last() && b.len() == 4));
    let Reply::Failure(f) = r[2] else { panic!() };
    assert_eq!((f.code, f.message.as_str()), (9, "interrupted"));
    assert!(evs[2].completes_request());
    assert!(!p.client.wants_input());
    assert!(p.client.is_idle(), "the failed query is no longer owed");
    assert!(
        p.client.error().is_none(),
        "a server FAILURE does not poison"
    );

    let next = p
        .client
        .exec_sql("INSERT INTO t VALUES (?)", &[Value::Integer(1)])
        .unwrap();
    let again = p.client.query_sql("SELECT n", &[]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, next), &executed(1, 1));
    assert_eq!(replies(&evs, again).len(), 3);
    // No INTERRUPT was needed: the stream ended by itself.
    assert_eq!(p.server.count(|r| matches!(r, Request::Interrupt)), 0);
}

// ----- walking away ---------------------------------------------------------------------------

/// Answers: QUERY_SQL "SELECT <tag>" with 3 PART batches and a DONE batch of two rows each,
/// valued `tag*100 + 0..8`; EXEC_SQL with RESULT whose last_insert_id is the first parameter;
/// PREPARE with statement 5; everything else as a server would.
fn walkaway_handler() -> Handler {
    let mut prepared = Vec::new();
    Box::new(move |req| match req {
        Request::Open { .. } => vec![Response::Db { id: 0 }],
        Request::QuerySql { sql, .. } => {
            let tag: i64 = sql[7..].parse().unwrap();
            (0..4)
                .map(|b| {
                    let v = tag * 100 + 2 * b;
                    rows(
                        &["v"],
                        vec![Value::Integer(v), Value::Integer(v + 1)],
                        b == 3,
                    )
                })
                .collect()
        }
        Request::ExecSql { params, .. } => {
            let Some(Value::Integer(i)) = params.first() else {
                panic!("{params:?}")
            };
            vec![Response::Result(ExecResult {
                last_insert_id: *i,
                rows_affected: 1,
            })]
        }
        Request::Prepare { .. } => {
            prepared.push(5);
            vec![Response::Stmt(StmtInfo {
                id: 5,
                params: 0,
                tail_offset: None,
            })]
        }
        Request::Finalize { stmt } => {
            assert_eq!(
                prepared.pop(),
                Some(*stmt),
                "FINALIZE of a live statement only"
            );
            vec![Response::Empty]
        }
        Request::Interrupt | Request::Weight { .. } => vec![Response::Empty],
        Request::Leader => vec![Response::Server(NodeInfo {
            id: 1,
            address: text("a"),
            role: None,
        })],
        Request::Client { .. } => vec![Response::Welcome {
            heartbeat_timeout_ms: 1,
        }],
        other => panic!("{other:?}"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    /// Queued, not a byte sent.
    BeforeTransmit,
    /// The first k bytes of the request sent.
    Partial(usize),
    /// The whole request sent, nothing received.
    FullTransmit,
    /// The first k bytes of the response received.
    MidResponse(usize),
    /// The first n events of the answer received.
    AfterEvents(usize),
    /// The whole answer received.
    AfterEnd,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Query,
    Exec,
}

fn walk_away(kind: Kind, point: Point) {
    let ctx = format!("{kind:?} abandoned at {point:?}");
    let mut p = pair_with(Config::default(), walkaway_handler());
    open(&mut p);
    let old = match kind {
        Kind::Query => p.client.query_sql("SELECT 1", &[]),
        Kind::Exec => p.client.exec_sql("INS ?", &[Value::Integer(1)]),
    }
    .unwrap();
    assert_eq!(p.client.send_state(old), SendState::Unsent, "{ctx}");
    let len = p.client.poll_transmit().unwrap().len();
    match point {
        Point::BeforeTransmit => {}
        Point::Partial(k) => {
            assert!(k > 0 && k < len);
            assert_eq!(p.send(k), k);
            assert_eq!(p.client.send_state(old), SendState::PartlySent, "{ctx}");
        }
        Point::FullTransmit => {
            p.send(usize::MAX);
            assert_eq!(p.client.send_state(old), SendState::Sent, "{ctx}");
        }
        Point::MidResponse(k) => {
            p.send(usize::MAX);
            assert_eq!(p.recv(k), k, "{ctx}");
        }
        Point::AfterEvents(n) => {
            p.send(usize::MAX);
            while p.events.len() < n {
                assert_eq!(p.recv(1), 1, "{ctx}");
            }
        }
        Point::AfterEnd => p.run(),
    }
    let before = p.take_events();
    assert!(before.iter().all(|e| e.request == old), "{ctx}");
    let was_pending = p.client.send_state(old) != SendState::NotPending;
    assert_eq!(p.client.abandon(old), was_pending, "{ctx}");
    let withdrawn = point == Point::BeforeTransmit;
    // Abandoning twice is harmless (and queues no second INTERRUPT, see the wire check).
    assert_eq!(
        p.client.abandon(old),
        was_pending && !withdrawn,
        "{ctx}: again"
    );
    if withdrawn {
        assert_eq!(p.client.send_state(old), SendState::NotPending, "{ctx}");
        assert!(p.client.poll_transmit().is_none(), "{ctx}: withdrawn");
        assert!(p.client.is_idle(), "{ctx}");
    }

    // A new user of the connection queues at once.
    let new_exec = p.client.exec_sql("INS ?", &[Value::Integer(99)]).unwrap();
    let new_query = p.client.query_sql("SELECT 2", &[]).unwrap();
    assert_eq!(p.client.send_state(new_exec), SendState::Unsent, "{ctx}");
    p.run();
    assert!(p.error.is_none(), "{ctx}: {:?}", p.error);
    let evs = p.take_events();
    assert!(
        evs.iter().all(|e| e.request != old),
        "{ctx}: stale answer surfaced: {evs:?}"
    );
    assert!(
        evs.iter().all(|e| e.reply != Reply::Empty),
        "{ctx}: the INTERRUPT's EMPTY surfaced"
    );
    assert_eq!(only(&evs, new_exec), &executed(99, 1), "{ctx}");
    assert_eq!(
        int_rows(&evs, new_query),
        (200..208).collect::<Vec<_>>(),
        "{ctx}"
    );
    assert_eq!(evs.len(), 5, "{ctx}");
    assert!(p.client.is_idle(), "{ctx}");

    // The wire, as the server saw it after OPEN.
    let log = p.server.requests();
    let mut expect = Vec::new();
    if !withdrawn {
        expect.push(match kind {
            Kind::Query => Request::QuerySql {
                sql: "SELECT 1".into(),
                params: Vec::new().into(),
            },
            Kind::Exec => Request::ExecSql {
                sql: "INS ?".into(),
                params: vec![Value::Integer(1)].into(),
            },
        });
    }
    let unfinished_query = kind == Kind::Query && was_pending && !withdrawn;
    if unfinished_query {
        expect.push(Request::Interrupt);
    }
    expect.push(Request::ExecSql {
        sql: "INS ?".into(),
        params: vec![Value::Integer(99)].into(),
    });
    expect.push(Request::QuerySql {
        sql: "SELECT 2".into(),
        params: Vec::new().into(),
    });
    assert_eq!(&log[1..], &expect[..], "{ctx}");
}

#[test]
fn abandoning_a_query_at_every_step_never_leaks_its_answer() {
    // QUERY_SQL "SELECT 1": 8-byte header + db id word + "SELECT 1\0" padded = 32 bytes.
    // Each answer batch: header + ncols + "v" + 2 * (row header + value) + marker = 64 bytes.
    let mut points = vec![Point::BeforeTransmit, Point::FullTransmit, Point::AfterEnd];
    points.extend([1, 5, 7, 8, 9, 16, 17, 31].map(Point::Partial));
    points.extend([1, 7, 8, 9, 63, 64, 65, 100, 127, 128, 200, 255].map(Point::MidResponse));
    points.extend([1, 2, 3].map(Point::AfterEvents));
    for point in points {
        walk_away(Kind::Query, point);
    }
}

#[test]
fn abandoning_an_exec_at_every_step_never_leaks_its_answer() {
    // EXEC_SQL "INS ?" [1]: header + db id + "INS ?\0" + tuple header + value = 40 bytes.
    // RESULT: 24 bytes.
    let mut points = vec![Point::BeforeTransmit, Point::FullTransmit, Point::AfterEnd];
    points.extend((1..40).map(Point::Partial));
    points.extend((1..24).map(Point::MidResponse));
    for point in points {
        walk_away(Kind::Exec, point);
    }
}

#[test]
fn send_state_tracks_the_handshake_and_unsent_requests_are_withdrawn() {
    // The first request on a fresh connection starts after the 8-byte handshake word: until a
    // byte of the request itself is out, it is Unsent and withdrawable.
    for k in 0..=24 {
        let mut p = pair_with(Config::default(), walkaway_handler());
        let leader = p.client.leader().unwrap();
        assert_eq!(p.client.send_state(leader), SendState::Unsent);
        if k > 0 {
            assert_eq!(p.send(k), k);
        }
        let want = match k {
            0..=8 => SendState::Unsent,
            9..=23 => SendState::PartlySent,
            _ => SendState::Sent,
        };
        assert_eq!(p.client.send_state(leader), want, "after {k} bytes");
        assert!(p.client.abandon(leader));
        let client = p.client.client(7).unwrap();
        p.run();
        let evs = p.take_events();
        assert_eq!(evs.len(), 1, "k={k}: {evs:?}");
        assert_eq!(
            only(&evs, client),
            &Reply::Welcome {
                heartbeat_timeout_ms: 1
            }
        );
        let log = p.server.requests();
        let leader_sent = usize::from(k > 8);
        assert_eq!(
            p.server.count(|r| *r == Request::Leader),
            leader_sent,
            "k={k}"
        );
        assert_eq!(log.last(), Some(&Request::Client { id: 7 }));
        assert_eq!(p.client.send_state(client), SendState::NotPending);
    }
}

#[test]
fn withdrawing_an_unsent_tail_keeps_the_partly_sent_request_before_it() {
    let mut p = pair_with(Config::default(), walkaway_handler());
    open(&mut p);
    let first = p.client.exec_sql("INSERT ?", &[Value::Integer(1)]).unwrap();
    p.send(13);
    let q = p.client.query_sql("SELECT 1", &[]).unwrap();
    assert_eq!(p.client.send_state(first), SendState::PartlySent);
    assert_eq!(p.client.send_state(q), SendState::Unsent);
    assert!(p.client.abandon(q));
    assert_eq!(p.client.send_state(q), SendState::NotPending);
    let next = p.client.exec_sql("INSERT ?", &[Value::Integer(3)]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, first), &executed(1, 1));
    assert_eq!(only(&evs, next), &executed(3, 1));
    assert_eq!(evs.len(), 2);
    assert_eq!(
        p.server
            .count(|r| matches!(r, Request::QuerySql { .. } | Request::Interrupt)),
        0
    );
}

#[test]
fn abandoned_unsent_request_in_the_middle_of_a_pipeline_is_withdrawn() {
    // connection.rs documents "A request not yet sent is withdrawn" and abandon() "Unsent
    // requests are withdrawn (except FINALIZE and OPEN)", but only an unsent *tail* is.
    let mut p = pair_with(Config::default(), walkaway_handler());
    open(&mut p);
    let a = p.client.exec_sql("INSERT ?", &[Value::Integer(1)]).unwrap();
    let b = p.client.exec_sql("INSERT ?", &[Value::Integer(2)]).unwrap();
    assert_eq!(p.client.send_state(a), SendState::Unsent);
    assert!(p.client.abandon(a));
    p.run();
    let evs = p.take_events();
    assert_eq!(only(&evs, b), &executed(2, 1));
    assert_eq!(
        p.server.count(
            |r| matches!(r, Request::ExecSql { params, .. } if params[0] == Value::Integer(1))
        ),
        0,
        "an abandoned request that was never sent must not reach the server"
    );
}

#[test]
fn abandoning_an_open_or_finalize_still_sends_it() {
    let mut p = pair_with(Config::default(), walkaway_handler());
    let o = p.client.open("db").unwrap();
    assert!(p.client.abandon(o), "accepted, but not withdrawn");
    assert!(p.client.has_database());
    let prep = p.client.prepare("SELECT 1").unwrap();
    p.run();
    let mut evs = p.take_events();
    assert_eq!(evs.len(), 1, "no event for the abandoned OPEN");
    let Event {
        request,
        reply: Reply::Prepared(stmt),
    } = evs.remove(0)
    else {
        panic!()
    };
    assert_eq!(request, prep);
    let f = p.client.finalize(stmt).unwrap();
    assert!(p.client.abandon(f));
    let e = p.client.exec_sql("INSERT ?", &[Value::Integer(4)]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(evs.len(), 1);
    assert_eq!(only(&evs, e), &executed(4, 1));
    assert_eq!(p.server.count(|r| matches!(r, Request::Open { .. })), 1);
    assert_eq!(p.server.count(|r| *r == Request::Finalize { stmt: 5 }), 1);
}

#[test]
fn abandoned_prepare_is_finalized_behind_the_callers_back() {
    let mut p = pair_with(Config::default(), walkaway_handler());
    open(&mut p);
    let prep = p.client.prepare("SELECT 1").unwrap();
    p.send(usize::MAX);
    assert!(p.client.abandon(prep));
    let e = p.client.exec_sql("INSERT ?", &[Value::Integer(8)]).unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(only(&evs, e), &executed(8, 1));
    assert_eq!(p.server.count(|r| *r == Request::Finalize { stmt: 5 }), 1);
    assert!(p.client.is_idle());

    // Withdrawn before sending: nothing to finalize.
    let prep = p.client.prepare("SELECT 1").unwrap();
    assert!(p.client.abandon(prep));
    assert!(p.client.is_idle());
    assert_eq!(p.server.count(|r| matches!(r, Request::Prepare { .. })), 1);
}

#[test]
fn abandoned_query_whose_stream_fails_is_still_drained() {
    let tail = failure(1, "step failed");
    let mut p = pair_with(Config::default(), batches_handler(2, 2, Some(tail)));
    open(&mut p);
    let q = p.client.query_sql("SELECT n", &[]).unwrap();
    p.send(usize::MAX);
    p.recv(1);
    assert!(p.client.abandon(q));
    let e = p
        .client
        .exec_sql("INSERT INTO t VALUES (?)", &[Value::Integer(1)])
        .unwrap();
    p.run();
    let evs = p.take_events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(only(&evs, e), &executed(1, 1));
    assert_eq!(p.server.count(|r| *r == Request::Interrupt), 1);
    assert!(p.client.is_idle());
}

// ----- prepared statements -------------------------------------------------------------------

fn prepared(p: &mut Pair, sql: &str) -> dqlite_proto::Stmt {
    let id = p.client.prepare(sql).unwrap();
    p.run();
    let mut evs = p.take_events();
    assert_eq!(evs.len(), 1);
    let Event {
        request,
        reply: Reply::Prepared(stmt),
    } = evs.remove(0)
    else {
        panic!("{evs:?}")
    };
    assert_eq!(request, id);
    stmt
}

#[test]
fn statement_used_after_finalize_is_stale_and_nothing_is_sent() {
    let mut p = pair();
    open(&mut p);
    let stmt = prepared(&mut p, "INSERT INTO t VALUES (?)");
    // `finalize` consumes the handle, so safe code cannot use it afterwards. Forge a copy to
    // check the runtime guard as well: `Stmt` holds only plain integers, so a bitwise copy is
    // sound.
    #[allow(unsafe_code)]
    // SAFETY: `Stmt` owns no resources and has no `Drop`; the copy is a plain value.
    let ghost: dqlite_proto::Stmt = unsafe { std::ptr::read(&stmt) };
    let f = p.client.finalize(stmt).unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), f), &Reply::Empty);

    // The server reuses slot 0 for the next statement, like a real one.
    let fresh = prepared(&mut p, "INSERT INTO t VALUES (?)");
    let before = p.server.log.len();
    let stale = Err(Error::Misuse(Misuse::StaleStatement));
    assert_eq!(p.client.exec(&ghost, &[Value::Integer(1)]), stale);
    assert_eq!(p.client.query(&ghost, &[]), stale);
    assert_eq!(p.client.finalize(ghost), stale);
    assert!(p.client.poll_transmit().is_none(), "nothing queued");
    assert!(p.client.is_idle());
    assert!(p.client.error().is_none(), "misuse does not poison");

    let e = p.client.exec(&fresh, &[Value::Integer(1)]).unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), e), &executed(1, 1));
    assert_eq!(p.server.log.len(), before + 1);
}

#[test]
fn not_leader_and_leadership_lost_make_every_handle_stale() {
    for code in [10250, 10506, 8202, 8458] {
        let mut p = pair_with(Config::default(), with_failures(mini_db(MiniDb::default())));
        open(&mut p);
        let a = prepared(&mut p, "SELECT 1");
        let b = prepared(&mut p, "SELECT 2");
        let f = p.client.exec_sql(&format!("FAIL {code}"), &[]).unwrap();
        p.run();
        let evs = p.take_events();
        let Reply::Failure(fail) = only(&evs, f) else {
            panic!()
        };
        assert_eq!(fail.code, code);
        assert!(fail.is_not_leader() || fail.is_leadership_lost());
        let before = p.server.log.len();
        let stale = Err(Error::Misuse(Misuse::StaleStatement));
        assert_eq!(p.client.exec(&a, &[]), stale, "code {code}");
        assert_eq!(p.client.query(&b, &[]), stale, "code {code}");
        assert_eq!(
            p.client.finalize(a),
            stale,
            "code {code}: the server dropped it"
        );
        assert_eq!(p.client.finalize(b), stale);
        assert!(p.client.poll_transmit().is_none());
        assert_eq!(p.server.log.len(), before);
        assert!(p.client.error().is_none());
    }
}

#[test]
fn other_failures_leave_handles_valid() {
    let mut p = pair_with(Config::default(), with_failures(mini_db(MiniDb::default())));
    open(&mut p);
    let a = prepared(&mut p, "SELECT 1");
    for code in [1, 5, 12, 19, 2067] {
        let f = p.client.exec_sql(&format!("FAIL {code}"), &[]).unwrap();
        p.run();
        assert!(matches!(only(&p.take_events(), f), Reply::Failure(x) if x.code == code));
    }
    let q = p.client.query(&a, &[]).unwrap();
    p.run();
    assert!(matches!(only(&p.take_events(), q), Reply::Rows(_)));
    let f = p.client.finalize(a).unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), f), &Reply::Empty);
}

#[test]
fn not_leader_in_the_middle_of_a_stream_also_drops_handles() {
    let tail = failure(10250, "not leader");
    let mut p = pair_with(Config::default(), batches_handler(1, 1, Some(tail)));
    open(&mut p);
    let a = prepared(&mut p, "SELECT 1");
    let q = p.client.query_sql("SELECT n", &[]).unwrap();
    p.run();
    let evs = p.take_events();
    assert!(matches!(replies(&evs, q)[1], Reply::Failure(f) if f.is_not_leader()));
    assert_eq!(
        p.client.exec(&a, &[]),
        Err(Error::Misuse(Misuse::StaleStatement))
    );
}

#[test]
fn a_handle_from_another_connection_is_refused() {
    let mut p1 = pair();
    let mut p2 = pair();
    open(&mut p1);
    open(&mut p2);
    let s1 = prepared(&mut p1, "SELECT 1");
    let s2 = prepared(&mut p2, "SELECT 1");
    assert_ne!(s1, s2, "same slot, different connections");
    let stale = Err(Error::Misuse(Misuse::StaleStatement));
    assert_eq!(p2.client.exec(&s1, &[]), stale);
    assert_eq!(p2.client.query(&s1, &[]), stale);
    assert_eq!(p2.client.finalize(s1), stale);
    assert!(p2.client.poll_transmit().is_none());
    // p2's own handle for the same slot still works.
    let q = p2.client.query(&s2, &[]).unwrap();
    p2.run();
    assert!(matches!(only(&p2.take_events(), q), Reply::Rows(_)));
}

// ----- server-safety misuse ------------------------------------------------------------------

/// Asserts a misuse error left the connection exactly as it was and usable.
fn assert_untouched(p: &mut Pair, pending: usize) {
    assert!(p.client.error().is_none(), "misuse never poisons");
    assert!(p.client.poll_transmit().is_none(), "nothing was queued");
    assert_eq!(p.client.pending_requests(), pending);
}

#[test]
fn parameters_must_match_the_placeholders_exactly() {
    let mut p = pair();
    open(&mut p);
    let stmt = prepared(&mut p, "INSERT INTO t VALUES (?, ?)");
    let count = |expected, given| Err(Error::Misuse(Misuse::ParamCount { expected, given }));
    let one = [Value::Integer(3)];
    let three = [Value::Integer(1), Value::Integer(2), Value::Integer(3)];
    assert_eq!(
        p.client.exec_sql("INSERT INTO t VALUES (?, ?)", &one),
        count(2, 1)
    );
    assert_eq!(
        p.client.exec_sql("INSERT INTO t VALUES (?, ?)", &[]),
        count(2, 0)
    );
    assert_eq!(
        p.client.exec_sql("INSERT INTO t VALUES (?, ?)", &three),
        count(2, 3)
    );
    assert_eq!(p.client.query_sql("SELECT ?, ?", &one), count(2, 1));
    assert_eq!(p.client.query_sql("SELECT '?', :a, :a", &[]), count(1, 0));
    assert_eq!(p.client.query_sql("SELECT ?3", &one), count(3, 1));
    assert_eq!(p.client.exec(&stmt, &one), count(2, 1));
    assert_eq!(p.client.query(&stmt, &three), count(2, 3));
    let script = |statements| Err(Error::Misuse(Misuse::ParamsInScript { statements }));
    assert_eq!(
        p.client
            .exec_sql("INSERT INTO t VALUES (?); SELECT 1", &one),
        script(2)
    );
    assert_eq!(
        p.client.exec_sql("INSERT INTO t VALUES (?); SELECT 1", &[]),
        script(2)
    );
    let several = |statements| Err(Error::Misuse(Misuse::MultipleStatements { statements }));
    assert_eq!(p.client.query_sql("SELECT 1; SELECT 2", &[]), several(2));
    assert_eq!(p.client.prepare("SELECT 1; SELECT 2"), several(2));
    assert_eq!(
        p.client.exec_sql(" ; -- nothing", &[]),
        Err(Error::Misuse(Misuse::EmptySql))
    );
    assert_untouched(&mut p, 0);
    // What matches goes out: scripts without parameters, and a trailing `;`.
    assert!(p
        .client
        .exec_sql("INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);", &[])
        .is_ok());
    assert!(p.client.query_sql("SELECT ?, ':b' -- ?\n;", &one).is_ok());
}

#[test]
fn nul_in_sql_and_text_parameters_is_refused() {
    let mut p = pair();
    open(&mut p);
    let stmt = prepared(&mut p, "SELECT ?, ?");
    let nul = |offset| Err(Error::Misuse(Misuse::NulInText { offset }));
    assert_eq!(p.client.exec_sql("SELECT 'a\0'", &[]), nul(9));
    assert_eq!(p.client.query_sql("\0", &[]), nul(0));
    assert_eq!(p.client.prepare("SELECT 1;\0"), nul(9));
    let bad_text = [Value::Integer(1), Value::Text(text("ab\0c"))];
    let bad_iso = [Value::Iso8601(text("2020\0"))];
    assert_eq!(p.client.exec_sql("SELECT ?, ?", &bad_text), nul(2));
    assert_eq!(p.client.query_sql("SELECT ?", &bad_iso), nul(4));
    assert_eq!(p.client.exec(&stmt, &bad_text), nul(2));
    assert_eq!(
        p.client.query(&stmt, &[bad_iso[0].clone(), Value::Null]),
        nul(4)
    );
    assert_eq!(p.client.dump("x\0y"), nul(1));
    assert_eq!(p.client.add(4, "127.0.0.1\0:1"), nul(9));
    assert_untouched(&mut p, 0);
    // The same bytes as a blob are fine.
    let blob = [Value::Blob(Bytes::from_static(b"ab\0c"))];
    let ok = p
        .client
        .exec_sql("INSERT INTO t VALUES (?)", &blob)
        .unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), ok), &executed(1, 1));

    let mut fresh = pair();
    assert_eq!(fresh.client.open("a\0"), nul(1));
    assert!(!fresh.client.has_database());
}

#[test]
fn empty_sql_is_refused() {
    let mut p = pair();
    open(&mut p);
    for sql in ["", " ", "\n\t  "] {
        let empty = Err(Error::Misuse(Misuse::EmptySql));
        assert_eq!(p.client.exec_sql(sql, &[]), empty);
        assert_eq!(p.client.query_sql(sql, &[]), empty);
        assert_eq!(p.client.prepare(sql), empty);
    }
    assert_untouched(&mut p, 0);
}

#[test]
fn more_than_255_parameters_need_params32() {
    let many = vec![Value::Integer(1); 256];
    let mut p = pair();
    open(&mut p);
    let stmt = prepared(&mut p, "SELECT ?256");
    let too_many = Err(Error::Misuse(Misuse::TooManyParams {
        count: 256,
        limit: 255,
    }));
    assert_eq!(p.client.exec_sql("INSERT ?256", &many), too_many);
    assert_eq!(p.client.query_sql("SELECT ?256", &many), too_many);
    assert_eq!(p.client.exec(&stmt, &many), too_many);
    assert_eq!(p.client.query(&stmt, &many), too_many);
    assert_untouched(&mut p, 0);
    assert!(p.client.exec_sql("INSERT ?255", &many[..255]).is_ok());

    let mut p = pair_with(
        Config {
            server_accepts_params32: true,
            ..Config::default()
        },
        mini_db(MiniDb::default()),
    );
    open(&mut p);
    let ok = p.client.exec_sql("INSERT ?256", &many).unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), ok), &executed(1, 1));
    let (header, _) = p.server.log.last().unwrap();
    assert_eq!(header.schema, 1, "4-byte count layout");
}

#[test]
fn sql_before_open_and_second_open_are_refused() {
    let mut p = pair();
    let none = Err(Error::Misuse(Misuse::NoDatabase));
    assert_eq!(p.client.exec_sql("SELECT 1", &[]), none);
    assert_eq!(p.client.query_sql("SELECT 1", &[]), none);
    assert_eq!(p.client.prepare("SELECT 1"), none);
    assert_eq!(p.client.interrupt(), none);
    // Only the handshake word is queued.
    assert_eq!(p.client.poll_transmit().map(<[u8]>::len), Some(8));
    assert_eq!(p.client.pending_requests(), 0);

    let o = p.client.open("db").unwrap();
    let again = Err(Error::Misuse(Misuse::DatabaseAlreadyOpen));
    assert_eq!(
        p.client.open("db"),
        again,
        "while the first OPEN is pending"
    );
    assert_eq!(p.client.open("other"), again);
    p.run();
    assert_eq!(only(&p.take_events(), o), &Reply::Opened);
    assert_eq!(p.client.open("db"), again, "after it was answered");
    assert_untouched(&mut p, 0);
    assert_eq!(p.server.count(|r| matches!(r, Request::Open { .. })), 1);
    let e = p.client.exec_sql("INSERT ?", &[Value::Integer(1)]).unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), e), &executed(1, 1));
}

#[test]
fn a_failed_open_allows_another() {
    let mut first = true;
    let handler: Handler = Box::new(move |req| match req {
        Request::Open { .. } if std::mem::take(&mut first) => vec![failure(10250, "not leader")],
        Request::Open { .. } => vec![Response::Db { id: 0 }],
        other => panic!("{other:?}"),
    });
    let mut p = pair_with(Config::default(), handler);
    let o = p.client.open("db").unwrap();
    p.run();
    assert!(matches!(only(&p.take_events(), o), Reply::Failure(f) if f.is_not_leader()));
    assert!(!p.client.has_database());
    assert_eq!(
        p.client.exec_sql("SELECT 1", &[]),
        Err(Error::Misuse(Misuse::NoDatabase))
    );
    let o = p.client.open("db").unwrap();
    p.run();
    assert_eq!(only(&p.take_events(), o), &Reply::Opened);
}

// ----- malformed replies ---------------------------------------------------------------------

fn header(words: u32, kind: u8, schema: u8) -> Vec<u8> {
    let mut h = words.to_le_bytes().to_vec();
    h.extend_from_slice(&[kind, schema, 0, 0]);
    h
}

/// A connection with OPEN answered and `queue` applied and sent; the raw server bytes are
/// then delivered and the first error is returned (with the events before it).
fn feed_raw(
    config: Config,
    queue: impl FnOnce(&mut Connection) -> Vec<RequestId>,
    raw: &[u8],
) -> (Connection, Vec<RequestId>, Vec<Event>, Error) {
    let mut c = Connection::new(config);
    c.open("db").unwrap();
    let ids = queue(&mut c);
    support::drain_transmit(&mut c);
    let mut input = encode_all(&[Response::Db { id: 0 }]);
    input.extend_from_slice(raw);
    c.handle_input(&input);
    match support::drain_events(&mut c) {
        Ok(evs) => panic!("no error; events {evs:?}"),
        Err((evs, e)) => (c, ids, evs, e),
    }
}

fn query(c: &mut Connection) -> Vec<RequestId> {
    vec![c.query_sql("SELECT x", &[]).unwrap()]
}

/// Every later call and poll returns the same error.
fn assert_poisoned(c: &mut Connection, ids: &[RequestId], e: &Error) {
    assert!(e.is_fatal(), "{e:?}");
    assert_eq!(c.error(), Some(e));
    assert_eq!(c.poll_event(), Err(e.clone()));
    c.handle_input(&encode_all(&[Response::Empty]));
    assert_eq!(
        c.poll_event(),
        Err(e.clone()),
        "input after poisoning is ignored"
    );
    let err = Err(e.clone());
    assert_eq!(c.leader(), err);
    assert_eq!(c.client(1), err);
    assert_eq!(c.open("db"), err);
    assert_eq!(c.exec_sql("SELECT 1", &[]), err);
    assert_eq!(c.query_sql("SELECT 1", &[]), err);
    assert_eq!(c.prepare("SELECT 1"), err);
    assert_eq!(c.interrupt(), err);
    assert_eq!(c.add(1, "a"), err);
    assert_eq!(c.assign(1, NodeRole::Spare), err);
    assert_eq!(c.remove(1), err);
    assert_eq!(c.dump("db"), err);
    assert_eq!(c.cluster(true), err);
    assert_eq!(c.transfer(1), err);
    assert_eq!(c.describe(), err);
    assert_eq!(c.weight(1), err);
    for id in ids {
        assert!(!c.abandon(*id));
    }
    assert!(!c.is_idle());
    assert!(!c.wants_input());
    assert_eq!(
        c.handle_eof(),
        e.clone(),
        "EOF after poisoning keeps the first error"
    );
    assert_eq!(c.poll_event(), Err(e.clone()));
}

#[test]
fn zero_word_header_poisons() {
    let (mut c, ids, evs, e) = feed_raw(Config::default(), query, &header(0, 7, 0));
    assert_eq!(e, Error::Malformed(Malformed::EmptyBody));
    assert_eq!(evs.len(), 1, "the OPEN before it was answered");
    assert_poisoned(&mut c, &ids, &e);
}

#[test]
fn oversized_frame_poisons_as_soon_as_its_header_arrives() {
    let limits = Limits {
        max_frame_bytes: 1024,
        ..Limits::default()
    };
    let config = Config {
        limits,
        ..Config::default()
    };
    // Only the header: the body is refused before it is buffered.
    let (mut c, ids, _, e) = feed_raw(config, query, &header(129, 7, 0));
    assert_eq!(
        e,
        Error::Limit(LimitExceeded {
            what: "frame size",
            limit: 1024,
            actual: 1032
        })
    );
    assert_poisoned(&mut c, &ids, &e);
    // A header announcing ~32 GiB with the default limit.
    let (_, _, _, e) = feed_raw(Config::default(), query, &header(u32::MAX, 7, 0));
    assert!(matches!(
        e,
        Error::Limit(LimitExceeded {
            what: "frame size",
            ..
        })
    ));

    // Exactly at the limit is accepted.
    let mut c = Connection::new(config);
    c.open("db").unwrap();
    c.dump("db").unwrap();
    support::drain_transmit(&mut c);
    let files = Response::Files(vec![dqlite_proto::File {
        name: text("db"),
        data: Bytes::from(vec![1; 1024 - 8 - 8 - 8]),
    }]);
    let bytes = encode_all(&[Response::Db { id: 0 }, files]);
    assert_eq!(bytes.len(), 16 + 8 + 1024);
    c.handle_input(&bytes);
    assert_eq!(support::drain_events(&mut c).unwrap().len(), 2);
}

#[test]
fn unknown_response_type_poisons() {
    let mut raw = header(1, 42, 0);
    raw.extend_from_slice(&[0; 8]);
    let (mut c, ids, _, e) = feed_raw(Config::default(), query, &raw);
    assert!(e.is_fatal());
    assert_poisoned(&mut c, &ids, &e);
}

#[test]
fn unknown_response_type_is_malformed_and_names_the_code() {
    let mut raw = header(1, 42, 0);
    raw.extend_from_slice(&[0; 8]);
    let (_, _, _, e) = feed_raw(Config::default(), query, &raw);
    assert_eq!(e, Error::Malformed(Malformed::UnknownType(42)));
}

#[test]
fn wrong_response_type_for_the_request_poisons() {
    let raw = encode_all(&[Response::Result(ExecResult {
        last_insert_id: 1,
        rows_affected: 1,
    })]);
    let (mut c, ids, _, e) = feed_raw(Config::default(), query, &raw);
    assert_eq!(
        e,
        Error::Unexpected {
            expected: "ROWS",
            got: "RESULT"
        }
    );
    assert_poisoned(&mut c, &ids, &e);

    // An answer nobody asked for.
    let mut c = Connection::new(Config::default());
    support::drain_transmit(&mut c);
    c.handle_input(&encode_all(&[Response::Empty]));
    let e = c.poll_event().unwrap_err();
    assert!(matches!(e, Error::Unexpected { got: "EMPTY", .. }), "{e:?}");
    assert_poisoned(&mut c, &[], &e);

    // Rows after the DONE of the only query.
    let raw = encode_all(&[
        rows(&["x"], vec![Value::Integer(1)], true),
        rows(&["x"], vec![Value::Integer(2)], true),
    ]);
    let (_, _, evs, e) = feed_raw(Config::default(), query, &raw);
    assert_eq!(evs.len(), 2);
    assert!(matches!(e, Error::Unexpected { got: "ROWS", .. }));
}

#[test]
fn trailing_bytes_and_bad_schema_poison() {
    let mut raw = header(2, 8, 0);
    raw.extend_from_slice(&[0; 16]);
    let weight = |c: &mut Connection| vec![c.weight(1).unwrap()];
    let (mut c, ids, _, e) = feed_raw(Config::default(), weight, &raw);
    assert_eq!(e, Error::Malformed(Malformed::TrailingBytes(8)));
    assert_poisoned(&mut c, &ids, &e);

    let mut raw = header(1, 8, 1);
    raw.extend_from_slice(&[0; 8]);
    let (mut c, ids, _, e) = feed_raw(Config::default(), weight, &raw);
    assert_eq!(
        e,
        Error::Malformed(Malformed::UnknownSchema { kind: 8, schema: 1 })
    );
    assert_poisoned(&mut c, &ids, &e);

    // FAILURE without its message.
    let mut raw = header(1, 0, 0);
    raw.extend_from_slice(&10250u64.to_le_bytes());
    let (_, _, _, e) = feed_raw(Config::default(), weight, &raw);
    assert!(matches!(
        e,
        Error::Malformed(Malformed::UnterminatedText { .. })
    ));
}

#[test]
fn zero_row_part_poisons() {
    let raw = encode_all(&[
        rows(&["x"], vec![Value::Integer(1)], false),
        rows(&["x"], vec![], false),
    ]);
    let (mut c, ids, evs, e) = feed_raw(Config::default(), query, &raw);
    assert_eq!(e, Error::Malformed(Malformed::EmptyPart));
    assert_eq!(evs.len(), 2, "OPEN and the first batch");
    assert_poisoned(&mut c, &ids, &e);
}

#[test]
fn column_layout_changing_between_batches_poisons() {
    let count = encode_all(&[
        rows(&["x"], vec![Value::Integer(1)], false),
        rows(
            &["x", "y"],
            vec![Value::Integer(1), Value::Integer(2)],
            true,
        ),
    ]);
    let names = encode_all(&[
        rows(&["x"], vec![Value::Integer(1)], false),
        rows(&["z"], vec![Value::Integer(2)], true),
    ]);
    for raw in [count, names] {
        let (mut c, ids, evs, e) = feed_raw(Config::default(), query, &raw);
        assert_eq!(e, Error::Malformed(Malformed::ColumnsChanged));
        assert_eq!(evs.len(), 2);
        assert_poisoned(&mut c, &ids, &e);
    }
}

#[test]
fn result_limits_poison_when_exceeded_and_not_before() {
    let batch = |last| rows(&["x"], vec![Value::Integer(1); 3], last);
    let cfg = |limits| Config {
        limits,
        ..Config::default()
    };

    let rows_limit = cfg(Limits {
        max_rows_per_result: 5,
        ..Limits::default()
    });
    let (mut c, ids, evs, e) =
        feed_raw(rows_limit, query, &encode_all(&[batch(false), batch(true)]));
    assert_eq!(
        e,
        Error::Limit(LimitExceeded {
            what: "rows per result",
            limit: 5,
            actual: 6
        })
    );
    assert_eq!(evs.len(), 2);
    assert_poisoned(&mut c, &ids, &e);

    let frames_limit = cfg(Limits {
        max_frames_per_result: 2,
        ..Limits::default()
    });
    let three = encode_all(&[batch(false), batch(false), batch(true)]);
    let (mut c, ids, evs, e) = feed_raw(frames_limit, query, &three);
    assert_eq!(
        e,
        Error::Limit(LimitExceeded {
            what: "frames per result",
            limit: 2,
            actual: 3
        })
    );
    assert_eq!(evs.len(), 3);
    assert_poisoned(&mut c, &ids, &e);

    let cols_limit = cfg(Limits {
        max_columns: 2,
        ..Limits::default()
    });
    let wide = encode_all(&[rows(&["a", "b", "c"], vec![Value::Null; 3], true)]);
    let (mut c, ids, _, e) = feed_raw(cols_limit, query, &wide);
    assert_eq!(
        e,
        Error::Limit(LimitExceeded {
            what: "columns",
            limit: 2,
            actual: 3
        })
    );
    assert_poisoned(&mut c, &ids, &e);

    // The limits count per result: at the limit, and across two results, all is well.
    let both = cfg(Limits {
        max_rows_per_result: 6,
        max_frames_per_result: 2,
        max_columns: 1,
        ..Limits::default()
    });
    let mut c = Connection::new(both);
    c.open("db").unwrap();
    query(&mut c);
    query(&mut c);
    support::drain_transmit(&mut c);
    let mut raw = encode_all(&[Response::Db { id: 0 }]);
    raw.extend(encode_all(&[
        batch(false),
        batch(true),
        batch(false),
        batch(true),
    ]));
    c.handle_input(&raw);
    assert_eq!(support::drain_events(&mut c).unwrap().len(), 5);
    assert!(c.is_idle());
}

#[test]
fn unknown_value_type_in_a_row_poisons() {
    let mut body = Vec::new();
    body.extend_from_slice(&1u64.to_le_bytes());
    body.extend_from_slice(b"x\0\0\0\0\0\0\0");
    body.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&[0; 8]);
    body.extend_from_slice(&[0xff; 8]);
    let mut raw = header(5, 7, 0);
    raw.extend_from_slice(&body);
    let (mut c, ids, _, e) = feed_raw(Config::default(), query, &raw);
    assert_eq!(e, Error::Malformed(Malformed::UnknownValueType(7)));
    assert_poisoned(&mut c, &ids, &e);
}

#[test]
fn poisoned_connection_offers_nothing_to_transmit() {
    let mut c = Connection::new(Config::default());
    c.open("db").unwrap();
    support::drain_transmit(&mut c);
    let w = c.exec_sql("INSERT", &[]).unwrap(); // queued, not sent
    c.handle_input(&header(0, 4, 0));
    assert!(c.poll_event().is_err());
    assert!(
        c.poll_transmit().is_none(),
        "a poisoned connection must not send more requests"
    );
    assert_eq!(c.send_state(w), SendState::Unsent);
}

#[test]
fn eof_while_a_response_is_owed_is_closed() {
    let mut p = pair_with(Config::default(), batches_handler(2, 2, None));
    open(&mut p);
    let q = p.client.query_sql("SELECT n", &[]).unwrap();
    let w = p.client.weight(2).unwrap();
    let gone = p.client.weight(3).unwrap();
    p.send(usize::MAX);
    p.recv(70); // the first batch and a bit
    assert_eq!(replies(&p.take_events(), q).len(), 1);
    assert!(p.client.abandon(gone));
    let e = p.client.handle_eof();
    assert_eq!(
        e,
        Error::Closed { pending: 2 },
        "abandoned requests are not counted"
    );
    assert_poisoned(&mut p.client, &[q, w], &e);

    // EOF with nothing owed still poisons: the transport is gone.
    let mut c = Connection::new(Config::default());
    assert_eq!(c.handle_eof(), Error::Closed { pending: 0 });
    assert_eq!(c.leader(), Err(Error::Closed { pending: 0 }));
}

// ----- leader discovery ----------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Behaviour {
    Dead(&'static str),
    Says(u64, &'static str),
}

/// Drives a discovery against scripted nodes, answering probes oldest first and advancing the
/// simulated clock only to the discovery's own timeout.
struct Sim {
    script: HashMap<String, Behaviour>,
    now: Instant,
    probes: Vec<(ProbeId, String)>,
    pauses: Vec<(Instant, Duration)>,
    max_in_flight: usize,
    answer_newest_first: bool,
}

impl Sim {
    fn new(script: &[(&str, Behaviour)]) -> Sim {
        Sim {
            script: script
                .iter()
                .map(|(a, b)| (a.to_string(), b.clone()))
                .collect(),
            now: Instant::now(),
            probes: Vec::new(),
            pauses: Vec::new(),
            max_in_flight: 0,
            answer_newest_first: false,
        }
    }

    fn run(&mut self, d: &mut Discovery) -> Result<Leader, DiscoveryError> {
        let mut in_flight: VecDeque<(ProbeId, String)> = VecDeque::new();
        for _ in 0..10_000 {
            while let Some(a) = d.poll_action(self.now) {
                match a {
                    Action::Probe { probe, address } => {
                        self.probes.push((probe, address.clone()));
                        in_flight.push_back((probe, address));
                        assert_eq!(d.in_flight(), in_flight.len());
                        self.max_in_flight = self.max_in_flight.max(d.in_flight());
                    }
                    Action::Done(r) => {
                        assert!(d.poll_action(self.now).is_none(), "done is final");
                        return r;
                    }
                }
            }
            let next = if self.answer_newest_first {
                in_flight.pop_back()
            } else {
                in_flight.pop_front()
            };
            if let Some((probe, address)) = next {
                match self.script.get(&address) {
                    Some(Behaviour::Says(id, addr)) => d.handle_reply(
                        probe,
                        &NodeInfo {
                            id: *id,
                            address: text(addr),
                            role: None,
                        },
                    ),
                    Some(Behaviour::Dead(why)) => d.handle_failure(probe, *why),
                    None => d.handle_failure(probe, "no such host"),
                }
            } else {
                let until = d
                    .poll_timeout()
                    .expect("stuck: nothing in flight, no timeout");
                assert!(until > self.now);
                self.pauses.push((self.now, until - self.now));
                self.now = until;
            }
        }
        panic!("discovery did not finish");
    }

    fn addresses(&self) -> Vec<&str> {
        self.probes.iter().map(|(_, a)| a.as_str()).collect()
    }
}

fn nodes(addrs: &[&str]) -> Vec<Node> {
    addrs.iter().map(|a| Node::new(*a)).collect()
}

fn config(max_in_flight: usize, max_rounds: u32) -> DiscoveryConfig {
    DiscoveryConfig {
        max_in_flight,
        max_rounds,
        ..DiscoveryConfig::default()
    }
}

#[test]
fn discovery_with_only_dead_nodes_reports_no_node_reachable() {
    let mut sim = Sim::new(&[
        ("a", Behaviour::Dead("connection refused")),
        ("b", Behaviour::Dead("timed out")),
        ("c", Behaviour::Dead("reset")),
    ]);
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(4, 3));
    let err = sim.run(&mut d).unwrap_err();
    assert_eq!(err.rounds, 3);
    assert!(err.no_node_reachable());
    assert!(!err.no_leader_elected());
    assert_eq!(
        err.nodes,
        [
            (
                "a".to_string(),
                NodeOutcome::Unreachable("connection refused".into())
            ),
            (
                "b".to_string(),
                NodeOutcome::Unreachable("timed out".into())
            ),
            ("c".to_string(), NodeOutcome::Unreachable("reset".into())),
        ]
    );
    assert_eq!(sim.probes.len(), 9, "every node asked in every round");
    assert_eq!(
        sim.pauses.len(),
        2,
        "a pause between rounds, none after the last"
    );
    let msg = err.to_string();
    for part in ["3 round", "a unreachable (connection refused)", "b ", "c "] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}

#[test]
fn discovery_with_followers_that_know_no_leader_reports_no_leader_elected() {
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(0, "")),
        ("b", Behaviour::Says(0, "")),
        ("c", Behaviour::Dead("refused")),
    ]);
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(2, 2));
    let err = sim.run(&mut d).unwrap_err();
    assert!(err.no_leader_elected());
    assert!(!err.no_node_reachable());
    assert_eq!(err.nodes[0], ("a".into(), NodeOutcome::NoLeader));
    assert_eq!(err.nodes[1], ("b".into(), NodeOutcome::NoLeader));
    assert!(err.to_string().contains("a knows no leader"));

    // Nobody given at all.
    let mut d = Discovery::new(Vec::new(), None, DiscoveryConfig::default());
    let err = Sim::new(&[]).run(&mut d).unwrap_err();
    assert!(err.nodes.is_empty());
    assert!(err.no_node_reachable() && !err.no_leader_elected());
}

#[test]
fn a_redirect_is_trusted_only_once_the_named_node_confirms() {
    let script = [
        ("a", Behaviour::Says(3, "c")),
        ("b", Behaviour::Says(3, "c")),
        ("c", Behaviour::Says(3, "c")),
    ];
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(1, 1));
    let now = Instant::now();
    let Some(Action::Probe { probe: pa, address }) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!(address, "a");
    d.handle_reply(
        pa,
        &NodeInfo {
            id: 3,
            address: text("c"),
            role: None,
        },
    );
    // Not done yet: "c" must confirm first, and it jumps ahead of "b".
    let Some(Action::Probe { probe: pc, address }) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!(address, "c");
    d.handle_reply(
        pc,
        &NodeInfo {
            id: 3,
            address: text("c"),
            role: None,
        },
    );
    assert_eq!(
        d.poll_action(now),
        Some(Action::Done(Ok(Leader {
            probe: pc,
            address: "c".into(),
            id: 3
        })))
    );
    assert_eq!(d.poll_action(now), None);

    // The same through the simulator: "b" is never asked.
    let mut sim = Sim::new(&script);
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(1, 1));
    let leader = sim.run(&mut d).unwrap();
    assert_eq!(sim.addresses(), ["a", "c"]);
    assert_eq!((leader.address.as_str(), leader.id), ("c", 3));
    assert_eq!(leader.probe, sim.probes[1].0);

    // A named leader that is dead is not trusted.
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(3, "c")),
        ("b", Behaviour::Says(0, "")),
        ("c", Behaviour::Dead("refused")),
    ]);
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(1, 1));
    let err = sim.run(&mut d).unwrap_err();
    assert_eq!(
        err.nodes,
        [
            (
                "a".to_string(),
                NodeOutcome::Redirected {
                    to: "c".into(),
                    followed: true
                }
            ),
            ("c".to_string(), NodeOutcome::Unreachable("refused".into())),
            ("b".to_string(), NodeOutcome::NoLeader),
        ]
    );
    assert!(!err.no_leader_elected() && !err.no_node_reachable());
}

#[test]
fn only_one_redirect_hop_is_followed() {
    // "a" names "x" (outside the list; followed under RedirectPolicy::Any), "x" names "y":
    // "y" is never asked.
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(9, "x")),
        ("x", Behaviour::Says(10, "y")),
        ("y", Behaviour::Says(10, "y")),
    ]);
    let cfg = DiscoveryConfig {
        redirects: RedirectPolicy::Any,
        ..config(4, 1)
    };
    let mut d = Discovery::new(nodes(&["a"]), None, cfg);
    let err = sim.run(&mut d).unwrap_err();
    assert_eq!(sim.addresses(), ["a", "x"]);
    assert_eq!(
        err.nodes,
        [
            (
                "a".to_string(),
                NodeOutcome::Redirected {
                    to: "x".into(),
                    followed: true
                }
            ),
            (
                "x".to_string(),
                NodeOutcome::NotConfirmed { names: "y".into() }
            ),
        ]
    );
    assert!(err
        .to_string()
        .contains("x named as leader by another node but names y"));

    // A redirect target that knows no leader.
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(9, "x")),
        ("x", Behaviour::Says(0, "")),
    ]);
    let mut d = Discovery::new(nodes(&["a"]), None, cfg);
    let err = sim.run(&mut d).unwrap_err();
    assert_eq!(
        err.nodes[1],
        (
            "x".into(),
            NodeOutcome::NotConfirmed {
                names: String::new()
            }
        )
    );
    assert!(!err.no_leader_elected());

    // The default policy follows only known nodes; Never follows none.
    for (policy, known) in [
        (RedirectPolicy::KnownNodes, false),
        (RedirectPolicy::Never, true),
    ] {
        let mut sim = Sim::new(&[
            ("a", Behaviour::Says(9, "x")),
            ("b", Behaviour::Says(0, "")),
            ("x", Behaviour::Says(9, "x")),
        ]);
        let list: &[&str] = if known { &["a", "b"] } else { &["a"] };
        let cfg = DiscoveryConfig {
            redirects: policy,
            ..config(1, 1)
        };
        let mut d = Discovery::new(nodes(list), None, cfg);
        let err = sim.run(&mut d).unwrap_err();
        assert!(!sim.addresses().contains(&"x"), "{policy:?}");
        assert_eq!(
            err.nodes[0].1,
            NodeOutcome::Redirected {
                to: "x".into(),
                followed: false
            }
        );
    }
}

#[test]
fn a_leader_confirming_by_id_under_another_spelling_is_accepted() {
    let mut list = nodes(&["127.0.0.1:9001", "127.0.0.1:9002"]);
    list[1].id = 2;
    let mut sim = Sim::new(&[
        ("127.0.0.1:9001", Behaviour::Says(2, "127.0.0.1:9002")),
        ("127.0.0.1:9002", Behaviour::Says(2, "localhost:9002")),
    ]);
    let mut d = Discovery::new(list, None, config(1, 1));
    let leader = sim.run(&mut d).unwrap();
    assert_eq!((leader.address.as_str(), leader.id), ("127.0.0.1:9002", 2));
}

fn info(id: u64, address: &str) -> NodeInfo {
    NodeInfo {
        id,
        address: text(address),
        role: None,
    }
}

fn next_probe(d: &mut Discovery, now: Instant) -> (ProbeId, String) {
    match d.poll_action(now) {
        Some(Action::Probe { probe, address }) => (probe, address),
        other => panic!("expected a probe, got {other:?}"),
    }
}

#[test]
fn the_cluster_policy_follows_aliases_of_listed_nodes_and_the_strict_one_does_not() {
    let now = Instant::now();
    for policy in [RedirectPolicy::Cluster, RedirectPolicy::KnownNodes] {
        let cfg = DiscoveryConfig {
            redirects: policy,
            ..config(1, 1)
        };
        let mut d = Discovery::new(nodes(&["localhost:1", "localhost:2"]), None, cfg);
        let (p1, a1) = next_probe(&mut d, now);
        assert_eq!(a1, "localhost:1");
        // The follower names the leader by its own spelling; the driver resolved both names.
        d.same_node("127.0.0.1:2", "localhost:2");
        d.handle_reply(p1, &info(2, "127.0.0.1:2"));
        let (p2, a2) = next_probe(&mut d, now);
        match policy {
            RedirectPolicy::Cluster => {
                // Followed under the leader's own name, and confirmed there.
                assert_eq!(a2, "127.0.0.1:2");
                d.handle_reply(p2, &info(2, "127.0.0.1:2"));
                let Some(Action::Done(Ok(leader))) = d.poll_action(now) else {
                    panic!()
                };
                assert_eq!((leader.probe, leader.address.as_str()), (p2, "127.0.0.1:2"));
            }
            _ => {
                // Strict: only listed spellings are dialled; the listed node confirms itself
                // under its alias.
                assert_eq!(a2, "localhost:2");
                d.handle_reply(p2, &info(2, "127.0.0.1:2"));
                let Some(Action::Done(Ok(leader))) = d.poll_action(now) else {
                    panic!()
                };
                assert_eq!((leader.probe, leader.address.as_str()), (p2, "localhost:2"));
            }
        }
    }

    // An alias of some other node does not make a node confirm itself.
    let mut d = Discovery::new(nodes(&["localhost:1"]), None, config(1, 1));
    let (p, _) = next_probe(&mut d, now);
    d.same_node("127.0.0.1:2", "localhost:2");
    d.same_node("localhost:1", "localhost:1");
    d.handle_reply(p, &info(2, "127.0.0.1:2"));
    let Some(Action::Done(Err(e))) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!(
        e.nodes,
        [(
            "localhost:1".to_string(),
            NodeOutcome::Redirected {
                to: "127.0.0.1:2".into(),
                followed: false
            }
        )]
    );
}

#[test]
fn the_cluster_policy_follows_members_a_node_reported() {
    let now = Instant::now();
    let members = [info(1, "127.0.0.1:1"), info(2, "127.0.0.1:2")];
    for policy in [
        RedirectPolicy::Cluster,
        RedirectPolicy::KnownNodes,
        RedirectPolicy::Never,
    ] {
        // Seeded with a follower only.
        let cfg = DiscoveryConfig {
            redirects: policy,
            ..config(4, 1)
        };
        let mut d = Discovery::new(nodes(&["127.0.0.1:1"]), None, cfg);
        let (p1, _) = next_probe(&mut d, now);
        d.handle_members(p1, &members);
        d.handle_reply(p1, &info(2, "127.0.0.1:2"));
        if policy == RedirectPolicy::Cluster {
            let (p2, a2) = next_probe(&mut d, now);
            assert_eq!(a2, "127.0.0.1:2");
            d.handle_reply(p2, &info(2, "127.0.0.1:2"));
            let Some(Action::Done(Ok(leader))) = d.poll_action(now) else {
                panic!()
            };
            assert_eq!((leader.probe, leader.id), (p2, 2));
        } else {
            let Some(Action::Done(Err(e))) = d.poll_action(now) else {
                panic!("{policy:?}")
            };
            assert_eq!(
                e.nodes[0].1,
                NodeOutcome::Redirected {
                    to: "127.0.0.1:2".into(),
                    followed: false
                },
                "{policy:?}"
            );
        }
    }

    // A membership reported on a probe that is not running counts for nothing, and a node
    // outside the membership is not followed.
    let mut d = Discovery::new(nodes(&["127.0.0.1:1"]), None, config(4, 1));
    let (p1, _) = next_probe(&mut d, now);
    d.handle_reply(p1, &info(3, "127.0.0.1:3"));
    d.handle_members(p1, &[info(3, "127.0.0.1:3")]);
    let Some(Action::Done(Err(e))) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!(
        e.nodes[0].1,
        NodeOutcome::Redirected {
            to: "127.0.0.1:3".into(),
            followed: false
        }
    );
    assert!(!e.timed_out);
}

#[test]
fn an_expired_discovery_reports_what_each_node_said_so_far() {
    let now = Instant::now();
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(4, 8));
    let (pa, _) = next_probe(&mut d, now);
    let (pb, _) = next_probe(&mut d, now);
    let (pc, _) = next_probe(&mut d, now);
    d.handle_failure(pa, "connection refused");
    d.handle_reply(pb, &info(0, ""));
    let e = d.expire();
    assert!(e.timed_out);
    assert_eq!(e.rounds, 1);
    assert_eq!(
        e.nodes,
        [
            (
                "a".to_string(),
                NodeOutcome::Unreachable("connection refused".into())
            ),
            ("b".to_string(), NodeOutcome::NoLeader),
            ("c".to_string(), NodeOutcome::Unanswered),
        ]
    );
    let msg = e.to_string();
    for part in [
        "deadline passed",
        "a unreachable (connection refused)",
        "c had not answered",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    // Over: later inputs change nothing.
    d.handle_reply(pc, &info(3, "c"));
    assert_eq!(d.poll_action(now), None);
    assert_eq!(d.in_flight(), 0);

    // During a pause, a node in flight again keeps its earlier outcome.
    let mut d = Discovery::new(nodes(&["a"]), None, config(1, 3));
    let (p, _) = next_probe(&mut d, now);
    d.handle_failure(p, "refused");
    assert_eq!(d.poll_action(now), None, "pausing before round 2");
    let until = d.poll_timeout().unwrap();
    let (_, a) = next_probe(&mut d, until);
    assert_eq!(a, "a");
    let e = d.expire();
    assert_eq!(e.rounds, 2);
    assert_eq!(
        e.nodes,
        [("a".to_string(), NodeOutcome::Unreachable("refused".into()))]
    );
}

#[test]
fn the_last_known_leader_is_asked_alone_first() {
    let list = || nodes(&["a", "b", "c"]);
    // Confirmed: nobody else is asked.
    let mut d = Discovery::new(list(), Some("b".into()), config(4, 3));
    let now = Instant::now();
    let Some(Action::Probe { probe, address }) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!(address, "b");
    assert_eq!(
        d.poll_action(now),
        None,
        "the fast path probes one node alone"
    );
    d.handle_reply(
        probe,
        &NodeInfo {
            id: 2,
            address: text("b"),
            role: None,
        },
    );
    assert!(matches!(d.poll_action(now), Some(Action::Done(Ok(l))) if l.probe == probe));

    // Dead: the full round follows at once, with no pause, and asks it again.
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(3, "c")),
        ("b", Behaviour::Dead("refused")),
        ("c", Behaviour::Says(3, "c")),
    ]);
    let mut d = Discovery::new(list(), Some("b".into()), config(4, 3));
    let leader = sim.run(&mut d).unwrap();
    assert_eq!(&sim.addresses()[..4], ["b", "a", "b", "c"]);
    assert!(sim.pauses.is_empty());
    assert_eq!(leader.address, "c");

    // Now a follower: its redirect is followed within the fast path.
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(0, "")),
        ("b", Behaviour::Says(3, "c")),
        ("c", Behaviour::Says(3, "c")),
    ]);
    let mut d = Discovery::new(list(), Some("b".into()), config(4, 3));
    let leader = sim.run(&mut d).unwrap();
    assert_eq!(sim.addresses(), ["b", "c"]);
    assert_eq!(leader.address, "c");
}

#[test]
fn voters_are_probed_before_standbys_and_spares() {
    let role = |a: &str, r: Option<NodeRole>| Node {
        address: a.into(),
        id: 0,
        role: r,
    };
    let list = vec![
        role("spare", Some(NodeRole::Spare)),
        role("standby", Some(NodeRole::Standby)),
        role("voter1", Some(NodeRole::Voter)),
        role("unknown", None),
        role("voter2", Some(NodeRole::Voter)),
    ];
    let mut d = Discovery::new(list, None, config(10, 1));
    let now = Instant::now();
    let mut order = Vec::new();
    while let Some(Action::Probe { address, .. }) = d.poll_action(now) {
        order.push(address);
    }
    assert_eq!(order, ["voter1", "unknown", "voter2", "standby", "spare"]);
}

#[test]
fn max_in_flight_is_respected() {
    let addrs = ["n1", "n2", "n3", "n4", "n5", "n6", "n7"];
    let mut d = Discovery::new(nodes(&addrs), None, config(3, 1));
    let now = Instant::now();
    let mut running = Vec::new();
    while let Some(Action::Probe { probe, .. }) = d.poll_action(now) {
        running.push(probe);
    }
    assert_eq!(running.len(), 3);
    assert_eq!(d.in_flight(), 3);
    d.handle_failure(running.remove(0), "refused");
    let Some(Action::Probe { probe, address }) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!(address, "n4");
    assert_eq!(d.poll_action(now), None);
    running.push(probe);
    assert_eq!(d.in_flight(), 3);

    // Through the simulator, with every node dead over several rounds.
    let script: Vec<_> = addrs.iter().map(|a| (*a, Behaviour::Dead("x"))).collect();
    for max in [1, 2, 5, 100] {
        let mut sim = Sim::new(&script);
        let mut d = Discovery::new(nodes(&addrs), None, config(max, 2));
        sim.run(&mut d).unwrap_err();
        assert_eq!(sim.max_in_flight, max.min(addrs.len()));
        assert_eq!(sim.probes.len(), 14);
    }
    // Zero means one.
    let mut sim = Sim::new(&script);
    let mut d = Discovery::new(nodes(&addrs), None, config(0, 1));
    sim.run(&mut d).unwrap_err();
    assert_eq!(sim.max_in_flight, 1);
}

#[test]
fn backoff_between_rounds_follows_now_and_stays_within_jitter() {
    let nominal = |round: u32| Duration::from_millis((100u64 << (round - 1)).min(1000));
    // Pauses of 100 ms doubling up to 1 s, whatever the defaults.
    let paced = DiscoveryConfig {
        backoff_base: Duration::from_millis(100),
        backoff_cap: Duration::from_secs(1),
        ..config(4, 7)
    };
    let mut seen = Vec::new();
    for seed in 0..16u64 {
        let cfg = DiscoveryConfig {
            jitter_seed: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..paced
        };
        let mut d = Discovery::new(nodes(&["a", "b"]), None, cfg);
        let t0 = Instant::now();
        let mut now = t0;
        let mut pauses = Vec::new();
        for round in 1..=7u32 {
            let mut probes = Vec::new();
            while let Some(a) = d.poll_action(now) {
                let Action::Probe { probe, .. } = a else {
                    panic!("{a:?}")
                };
                probes.push(probe);
            }
            assert_eq!(probes.len(), 2, "round {round}");
            assert_eq!(d.poll_timeout(), None, "no timeout while probing");
            // The round fails later than it started; the pause runs from the `now` passed
            // when the failure is noticed.
            now += Duration::from_secs(3);
            for p in probes {
                d.handle_failure(p, "refused");
            }
            let action = d.poll_action(now);
            if round == 7 {
                let Some(Action::Done(Err(e))) = action else {
                    panic!("{action:?}")
                };
                assert_eq!(e.rounds, 7);
                assert_eq!(d.poll_timeout(), None);
                break;
            }
            assert_eq!(action, None, "pausing");
            let until = d.poll_timeout().expect("a pause between rounds");
            let pause = until - now;
            let n = nominal(round);
            assert!(
                pause >= n / 2 && pause <= n,
                "round {round}: pause {pause:?} outside 50-100% of {n:?}"
            );
            pauses.push(pause);
            // Not a nanosecond early.
            assert_eq!(d.poll_action(until - Duration::from_nanos(1)), None);
            assert_eq!(d.poll_timeout(), Some(until));
            now = until;
        }
        // Same seed, same pauses.
        seen.push(pauses);
    }
    let distinct: std::collections::HashSet<_> = seen.iter().collect();
    assert!(distinct.len() > 8, "jitter varies with the seed");
    // Pauses for a given seed are deterministic.
    let mut again = Sim::new(&[("a", Behaviour::Dead("x")), ("b", Behaviour::Dead("x"))]);
    let cfg = DiscoveryConfig {
        jitter_seed: 0,
        ..paced
    };
    let mut d = Discovery::new(nodes(&["a", "b"]), None, cfg);
    again.run(&mut d).unwrap_err();
    let first: Vec<Duration> = again.pauses.iter().map(|(_, d)| *d).collect();
    assert_eq!(first, seen[0]);
}

#[test]
fn a_leader_found_mid_round_ends_the_discovery_and_late_replies_are_ignored() {
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(3, 2));
    let now = Instant::now();
    let mut probes = Vec::new();
    while let Some(Action::Probe { probe, address }) = d.poll_action(now) {
        probes.push((probe, address));
    }
    assert_eq!(probes.len(), 3);
    d.handle_reply(
        probes[1].0,
        &NodeInfo {
            id: 2,
            address: text("b"),
            role: None,
        },
    );
    let Some(Action::Done(Ok(l))) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!((l.probe, l.address.as_str()), (probes[1].0, "b"));
    d.handle_failure(probes[0].0, "late");
    d.handle_reply(
        probes[2].0,
        &NodeInfo {
            id: 3,
            address: text("c"),
            role: None,
        },
    );
    assert_eq!(d.poll_action(now), None);
    assert_eq!(d.poll_timeout(), None);
}

#[test]
fn the_final_error_lists_every_node_once_with_its_last_outcome() {
    let mut sim = Sim::new(&[
        ("a", Behaviour::Dead("refused")),
        ("b", Behaviour::Says(0, "")),
        ("c", Behaviour::Says(4, "d")),
        ("d", Behaviour::Says(0, "")),
    ]);
    let mut d = Discovery::new(nodes(&["a", "b", "c", "d"]), None, config(1, 2));
    let err = sim.run(&mut d).unwrap_err();
    assert_eq!(err.rounds, 2);
    assert_eq!(
        err.nodes,
        [
            ("a".to_string(), NodeOutcome::Unreachable("refused".into())),
            ("b".to_string(), NodeOutcome::NoLeader),
            (
                "c".to_string(),
                NodeOutcome::Redirected {
                    to: "d".into(),
                    followed: true
                }
            ),
            (
                "d".to_string(),
                NodeOutcome::NotConfirmed {
                    names: String::new()
                }
            ),
        ]
    );
    assert!(!err.no_leader_elected() && !err.no_node_reachable());
    let msg = err.to_string();
    assert!(msg.starts_with("no leader found after 2 round(s): a unreachable (refused); b knows no leader; c named d as leader"), "{msg}");
}

#[test]
fn the_final_error_lists_nodes_in_the_order_first_asked() {
    let mut sim = Sim::new(&[
        ("a", Behaviour::Dead("refused")),
        ("b", Behaviour::Dead("refused")),
        ("c", Behaviour::Dead("refused")),
    ]);
    sim.answer_newest_first = true;
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(3, 1));
    let err = sim.run(&mut d).unwrap_err();
    assert_eq!(sim.addresses(), ["a", "b", "c"]);
    let order: Vec<&str> = err.nodes.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn a_misspelled_redirect_target_equal_to_a_probed_node_is_not_asked_twice() {
    // "a" and "b" both name "c"; with everything in flight at once, "c" is asked once.
    let mut sim = Sim::new(&[
        ("a", Behaviour::Says(3, "c")),
        ("b", Behaviour::Says(3, "c")),
        ("c", Behaviour::Says(3, "c")),
    ]);
    sim.answer_newest_first = false;
    let mut d = Discovery::new(nodes(&["a", "b", "c"]), None, config(3, 1));
    let leader = sim.run(&mut d).unwrap();
    assert_eq!(sim.addresses(), ["a", "b", "c"]);
    assert_eq!(leader.address, "c");
}

#[test]
fn when_two_probes_confirm_the_first_reported_wins() {
    let mut d = Discovery::new(nodes(&["a", "b"]), None, config(2, 1));
    let now = Instant::now();
    let Some(Action::Probe { probe: pa, .. }) = d.poll_action(now) else {
        panic!()
    };
    let Some(Action::Probe { probe: pb, .. }) = d.poll_action(now) else {
        panic!()
    };
    // Both claim leadership (say, across a term change) before the driver polls again.
    let me = |id, a: &str| NodeInfo {
        id,
        address: text(a),
        role: None,
    };
    d.handle_reply(pb, &me(2, "b"));
    d.handle_reply(pa, &me(1, "a"));
    let Some(Action::Done(Ok(l))) = d.poll_action(now) else {
        panic!()
    };
    assert_eq!((l.probe, l.address.as_str(), l.id), (pb, "b", 2));
}

mod discovery_properties {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Says {
        Dead,
        NoLeader,
        /// Names node `j` (an index into the list, or beyond it: an outsider).
        Names(usize),
    }

    fn addr(i: usize) -> String {
        format!("n{i}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the nodes say, in whatever order the driver reports: the discovery ends,
        /// never exceeds its fan-out, follows redirects only as the policy allows, trusts a
        /// leader only when that node itself confirmed, and finds one whenever a listed node
        /// names itself.
        #[test]
        fn discovery_invariants(
            says in proptest::collection::vec(
                prop_oneof![
                    Just(Says::Dead),
                    Just(Says::NoLeader),
                    (0usize..8).prop_map(Says::Names)
                ],
                0..6,
            ),
            outsiders in proptest::collection::vec(
                prop_oneof![Just(Says::Dead), Just(Says::NoLeader), (0usize..8).prop_map(Says::Names)],
                8,
            ),
            max_in_flight in 0usize..4,
            max_rounds in 1u32..4,
            policy in prop_oneof![
                Just(RedirectPolicy::Never),
                Just(RedirectPolicy::KnownNodes),
                Just(RedirectPolicy::Cluster),
                Just(RedirectPolicy::Any)
            ],
            last_leader in proptest::option::of(0usize..8),
            newest_first in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let n = says.len();
            let behaviour = |i: usize| -> &Says { if i < n { &says[i] } else { &outsiders[i] } };
            let script: Vec<(String, Behaviour)> = (0..8)
                .map(|i| {
                    let b = match behaviour(i) {
                        Says::Dead => Behaviour::Dead("refused"),
                        Says::NoLeader => Behaviour::Says(0, ""),
                        Says::Names(j) => {
                            Behaviour::Says(*j as u64 + 1, Box::leak(addr(*j).into_boxed_str()))
                        }
                    };
                    (addr(i), b)
                })
                .collect();
            let script_ref: Vec<(&str, Behaviour)> =
                script.iter().map(|(a, b)| (a.as_str(), b.clone())).collect();
            let mut sim = Sim::new(&script_ref);
            sim.answer_newest_first = newest_first;
            let cfg = DiscoveryConfig {
                max_in_flight,
                max_rounds,
                redirects: policy,
                jitter_seed: seed,
                ..DiscoveryConfig::default()
            };
            let list: Vec<Node> = (0..n).map(|i| Node::new(addr(i))).collect();
            let mut d = Discovery::new(list, last_leader.map(addr), cfg);
            let result = sim.run(&mut d);

            prop_assert!(sim.max_in_flight <= max_in_flight.max(1));
            let listed = |a: &str| (0..n).any(|i| addr(i) == a);
            let last = last_leader.map(addr);
            for (_, a) in &sim.probes {
                let allowed = listed(a)
                    || Some(a) == last.as_ref()
                    || policy == RedirectPolicy::Any;
                prop_assert!(allowed, "probed {} under {:?}", a, policy);
            }
            let names_itself = |i: usize| matches!(behaviour(i), Says::Names(j) if *j == i);
            match &result {
                Ok(leader) => {
                    let i: usize = leader.address[1..].parse().unwrap();
                    prop_assert!(names_itself(i), "{} never confirmed", leader.address);
                    prop_assert_eq!(leader.id, i as u64 + 1);
                    let (_, a) = sim.probes.iter().find(|(p, _)| *p == leader.probe).unwrap();
                    prop_assert_eq!(a, &leader.address);
                }
                Err(e) => {
                    prop_assert!((0..n).all(|i| !names_itself(i)), "a self-confirming node was missed");
                    prop_assert!(!last_leader.is_some_and(names_itself));
                    // An empty list is not worth a second round.
                    prop_assert_eq!(e.rounds, if n == 0 { 1 } else { max_rounds });
                    prop_assert_eq!(sim.pauses.len() as u32, if n == 0 { 0 } else { max_rounds - 1 });
                    let mut seen = std::collections::HashSet::new();
                    prop_assert!(e.nodes.iter().all(|(a, _)| seen.insert(a.clone())), "each node once");
                }
            }
            for (round, (_, pause)) in sim.pauses.iter().enumerate() {
                let nominal = Duration::from_millis((100u64 << round).min(1000));
                prop_assert!(*pause >= nominal / 2 && *pause <= nominal);
            }
        }
    }
}
