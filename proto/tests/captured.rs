//! Replies captured from a real dqlite-demo node (dqlite 1.11.1), decoded by the connection
//! state machine. Re-capture with `dqlite-bench --capture proto/tests/fixtures/captured`.

use dqlite_proto::server::Response;
use dqlite_proto::{Config, Connection, NodeRole, Reply, RequestId, Value, ValueType};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/captured/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A connection with a database open (its DB reply already fed).
fn opened() -> Connection {
    let mut c = Connection::new(Config::default());
    c.open("bench").unwrap();
    let mut db = Vec::new();
    Response::Db { id: 0 }
        .encode(&mut db)
        .expect("a reply fits in a frame");
    c.handle_input(&db);
    assert_eq!(c.poll_event().unwrap().unwrap().reply, Reply::Opened);
    c
}

/// Feeds a captured reply and returns every reply event of `id`, checking the connection
/// ends idle (the capture holds exactly the answer).
fn replies(c: &mut Connection, id: RequestId, bytes: &[u8]) -> Vec<Reply> {
    let queued = c.poll_transmit().map_or(0, <[u8]>::len);
    c.advance_transmit(queued);
    c.handle_input(bytes);
    let mut out = Vec::new();
    while let Some(ev) = c.poll_event().unwrap() {
        assert_eq!(ev.request, id);
        out.push(ev.reply);
    }
    assert!(c.is_idle(), "the capture should hold exactly one answer");
    out
}

#[test]
fn cluster_and_node_replies() {
    let mut c = Connection::new(Config::default());
    let id = c.leader().unwrap();
    let [Reply::Leader(leader)] = &replies(&mut c, id, &fixture("leader.bin"))[..] else {
        panic!()
    };
    assert_ne!(leader.id, 0);
    assert!(leader.address.starts_with("127.0.0.1:"));

    let id = c.client(0).unwrap();
    assert_eq!(
        replies(&mut c, id, &fixture("welcome.bin")),
        [Reply::Welcome {
            heartbeat_timeout_ms: 15000
        }]
    );

    let id = c.cluster(true).unwrap();
    let [Reply::Nodes(nodes)] = &replies(&mut c, id, &fixture("servers.bin"))[..] else {
        panic!()
    };
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n.role == Some(NodeRole::Voter)));
    assert!(nodes
        .iter()
        .any(|n| n.id == leader.id && n.address == leader.address));

    let id = c.describe().unwrap();
    let [Reply::Metadata(_)] = &replies(&mut c, id, &fixture("metadata.bin"))[..] else {
        panic!()
    };
}

#[test]
fn statement_replies() {
    let mut c = opened();
    let id = c
        .exec_sql("INSERT INTO nulls VALUES (1, 1, 1)", &[])
        .unwrap();
    let [Reply::Executed(r)] = &replies(&mut c, id, &fixture("result.bin"))[..] else {
        panic!()
    };
    assert_eq!(r.rows_affected, 3);

    let id = c.prepare("SELECT ?, ?").unwrap();
    let [Reply::Prepared(stmt)] = &replies(&mut c, id, &fixture("stmt.bin"))[..] else {
        panic!()
    };
    assert_eq!(stmt.param_count(), 2);
    assert_eq!(stmt.tail_offset(), None);

    let id = c.exec_sql("NOT SQL", &[]).unwrap();
    let [Reply::Failure(f)] = &replies(&mut c, id, &fixture("failure_syntax.bin"))[..] else {
        panic!()
    };
    assert_eq!(f.code, 1);
    assert!(f.message.contains("syntax error"), "{f:?}");

    let id = c.query_sql("SELECT 1", &[]).unwrap();
    let [Reply::Failure(f)] = &replies(&mut c, id, &fixture("failure_not_leader.bin"))[..] else {
        panic!()
    };
    assert!(f.is_not_leader());
}

#[test]
fn multi_batch_rows() {
    let mut c = opened();
    let id = c
        .query_sql("SELECT id, a, b, c FROM big WHERE id <= 4000", &[])
        .unwrap();
    let batches = replies(&mut c, id, &fixture("rows_4000x4.bin"));
    assert!(
        batches.len() > 10,
        "expected many PART batches, got {}",
        batches.len()
    );
    let mut next_id = 1;
    for (i, r) in batches.iter().enumerate() {
        let Reply::Rows(b) = r else { panic!("{r:?}") };
        assert_eq!(b.is_last(), i + 1 == batches.len());
        assert_eq!(b.columns(), ["id", "a", "b", "c"]);
        for row in b.rows() {
            assert_eq!(row[0], Value::Integer(next_id));
            assert_eq!(row[1], Value::from(format!("text value {next_id:010}")));
            assert_eq!(row[2], Value::Float(next_id as f64 * 0.5));
            let Value::Blob(blob) = &row[3] else {
                panic!("{:?}", row[3])
            };
            assert_eq!(blob.len(), 16);
            next_id += 1;
        }
    }
    assert_eq!(next_id, 4001);
}

#[test]
fn null_cells_of_a_released_server() {
    let mut c = opened();
    let id = c
        .query_sql("SELECT i, flag, d FROM nulls ORDER BY rowid", &[])
        .unwrap();
    let [Reply::Rows(b)] = &replies(&mut c, id, &fixture("rows_nulls.bin"))[..] else {
        panic!()
    };
    let rows: Vec<&[Value]> = b.rows().collect();
    // dqlite 1.11 sends NULL in BOOLEAN as false and in DATETIME as "" (the legacy coercion).
    assert_eq!(
        rows[0],
        [
            Value::Null,
            Value::Boolean(false),
            Value::Iso8601("".into())
        ]
    );
    assert_eq!(
        rows[1],
        [
            Value::Integer(1),
            Value::Boolean(true),
            Value::UnixTime(1_700_000_000)
        ]
    );
    assert_eq!(rows[2][1], Value::Boolean(false));
    assert_eq!(rows[2][2].value_type(), ValueType::Iso8601);
}
