//! The protocol core alone, over a blocking socket, against a real dqlite cluster: handshake,
//! LEADER, CLIENT, OPEN, CREATE, INSERT with parameters of every type, SELECT back, NULL
//! cells, multi-part results, prepared statements, FAILURE codes and cluster requests.
//!
//! Where server generations document different answers (a follower's OPEN, a second statement
//! in QUERY_SQL, surplus parameters, DUMP), each generation is held to its own; see
//! `dqlite_tests::harness`, "Server generations".

use bytes::Bytes;
use dqlite_blocking::{BlockingConn, CallError};
use dqlite_proto::{Error, Misuse, Reply, Value, ValueType};
use dqlite_tests::harness::{self, Cluster};

fn rows_of(replies: Vec<Reply>) -> (Vec<String>, Vec<Vec<Value>>, usize) {
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    let mut batches = 0;
    for r in replies {
        let Reply::Rows(b) = r else {
            panic!("expected rows, got {r:?}")
        };
        batches += 1;
        columns = b.columns().iter().map(|c| c.to_string()).collect();
        rows.extend(b.rows().map(<[Value]>::to_vec));
    }
    (columns, rows, batches)
}

fn server_failure(e: CallError) -> (u64, String) {
    match e {
        CallError::Proto(Error::Server(f)) => (f.code, f.message),
        other => panic!("expected a server failure, got {other:?}"),
    }
}

fn server_code(e: CallError) -> u64 {
    server_failure(e).0
}

#[test]
fn core_over_blocking_socket_against_real_cluster() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let leader_addr = cluster.db_address(leader).to_string();

    // A follower names the leader; the leader names itself.
    let follower = (leader + 1) % 3;
    let mut f = BlockingConn::connect(&cluster.db_address(follower).to_string()).unwrap();
    assert_eq!(f.leader().unwrap().address, leader_addr.as_str());
    let members = f.cluster().unwrap();
    assert_eq!(members.len(), 3);

    let mut c = BlockingConn::connect(&leader_addr).unwrap();
    let me = c.leader().unwrap();
    assert_eq!(me.address, leader_addr.as_str());
    assert_ne!(me.id, 0);
    assert!(matches!(
        c.call(|p| p.client(0)).unwrap()[..],
        [Reply::Welcome { .. }]
    ));
    assert_eq!(c.call(|p| p.open("core-test")).unwrap(), [Reply::Opened]);

    c.call(|p| {
        p.exec_sql(
            "CREATE TABLE t (i INTEGER, f REAL, s TEXT, b BLOB, n INTEGER, d DATETIME, \
             flag BOOLEAN, u INTEGER)",
            &[],
        )
    })
    .unwrap();
    let params = [
        Value::Integer(-42),
        Value::Float(1.5),
        Value::from("héllo"),
        Value::Blob(Bytes::from_static(&[0, 1, 2, 255])),
        Value::Null,
        Value::Iso8601("2024-01-02 03:04:05".into()),
        Value::Boolean(true),
        Value::UnixTime(1_700_000_000),
    ];
    let r = c
        .call(|p| p.exec_sql("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", &params))
        .unwrap();
    let [Reply::Executed(res)] = &r[..] else {
        panic!("{r:?}")
    };
    assert_eq!((res.last_insert_id, res.rows_affected), (1, 1));
    // A row of NULLs in every column.
    c.call(|p| {
        p.exec_sql(
            "INSERT INTO t VALUES (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
            &[],
        )
    })
    .unwrap();

    let (cols, rows, _) = rows_of(
        c.call(|p| p.query_sql("SELECT * FROM t ORDER BY rowid", &[]))
            .unwrap(),
    );
    assert_eq!(cols, ["i", "f", "s", "b", "n", "d", "flag", "u"]);
    assert_eq!(
        rows[0],
        [
            Value::Integer(-42),
            Value::Float(1.5),
            Value::from("héllo"),
            Value::Blob(Bytes::from_static(&[0, 1, 2, 255])),
            Value::Null,
            Value::Iso8601("2024-01-02 03:04:05".into()),
            Value::Boolean(true),
            Value::Integer(1_700_000_000),
        ]
    );
    // NULL cells: plain columns give NULL on every server; BOOLEAN and DATETIME columns give
    // NULL on patched servers and the legacy coercions on released ones.
    let nulls = &rows[1];
    for v in [
        &nulls[0], &nulls[1], &nulls[2], &nulls[3], &nulls[4], &nulls[7],
    ] {
        assert_eq!(*v, Value::Null);
    }
    assert!(
        matches!(&nulls[5], Value::Null) || nulls[5] == Value::Iso8601("".into()),
        "{:?}",
        nulls[5]
    );
    assert!(
        matches!(nulls[6], Value::Null | Value::Boolean(false)),
        "{:?}",
        nulls[6]
    );
    // The `+col` workaround yields the stored NULL on every server.
    let (_, plus, _) = rows_of(
        c.call(|p| p.query_sql("SELECT +d, +flag FROM t WHERE rowid = 2", &[]))
            .unwrap(),
    );
    assert_eq!(plus[0], [Value::Null, Value::Null]);
    // An INTEGER stored in a DATETIME column comes back as UNIXTIME.
    c.call(|p| {
        p.exec_sql(
            "INSERT INTO t (d) VALUES (?)",
            &[Value::Integer(1_700_000_000)],
        )
    })
    .unwrap();
    let (_, ts, _) = rows_of(
        c.call(|p| p.query_sql("SELECT d FROM t WHERE rowid = 3", &[]))
            .unwrap(),
    );
    assert_eq!(ts[0], [Value::UnixTime(1_700_000_000)]);
    assert_eq!(ts[0][0].value_type(), ValueType::UnixTime);

    // Multi-part results: 2000 rows arrive in several PART batches then DONE.
    c.call(|p| p.exec_sql("CREATE TABLE big (x INTEGER)", &[]))
        .unwrap();
    c.call(|p| {
        p.exec_sql(
            "WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 2000) \
             INSERT INTO big SELECT x FROM s",
            &[],
        )
    })
    .unwrap();
    let (_, big, batches) = rows_of(
        c.call(|p| p.query_sql("SELECT x FROM big ORDER BY x", &[]))
            .unwrap(),
    );
    assert_eq!(big.len(), 2000);
    assert!(batches > 1, "expected several batches, got {batches}");
    assert_eq!(big[1999], [Value::Integer(2000)]);

    // Prepared statements: execute twice, query, finalize; the handle is then refused.
    let r_insert = c.call(|p| p.prepare("INSERT INTO big VALUES (?)")).unwrap();
    let [Reply::Prepared(stmt)] = &r_insert[..] else {
        panic!("{r_insert:?}")
    };
    assert_eq!(stmt.param_count(), 1);
    for v in [5000, 5001] {
        c.call(|p| p.exec(stmt, &[Value::Integer(v)])).unwrap();
    }
    let r = c
        .call(|p| p.prepare("SELECT count(*) FROM big WHERE x >= ?"))
        .unwrap();
    let [Reply::Prepared(q)] = &r[..] else {
        panic!("{r:?}")
    };
    let (_, n, _) = rows_of(c.call(|p| p.query(q, &[Value::Integer(5000)])).unwrap());
    assert_eq!(n[0], [Value::Integer(2)]);
    let Some(Reply::Prepared(q)) = r.into_iter().next() else {
        panic!()
    };
    c.call(|p| p.finalize(q)).unwrap();
    // Finalizing one statement leaves the other usable.
    c.call(|p| p.exec(stmt, &[Value::Integer(5002)])).unwrap();
    let Some(Reply::Prepared(stmt)) = r_insert.into_iter().next() else {
        panic!()
    };
    c.call(|p| p.finalize(stmt)).unwrap();

    // Server failures keep their codes: constraint (extended 2067 UNIQUE), syntax error (1).
    c.call(|p| p.exec_sql("CREATE TABLE u (k TEXT UNIQUE)", &[]))
        .unwrap();
    c.call(|p| p.exec_sql("INSERT INTO u VALUES ('a')", &[]))
        .unwrap();
    let code = server_code(
        c.call(|p| p.exec_sql("INSERT INTO u VALUES ('a')", &[]))
            .unwrap_err(),
    );
    assert_eq!(code & 0xff, 19, "constraint code, got {code}");
    assert_eq!(
        server_code(c.call(|p| p.exec_sql("NOT SQL", &[])).unwrap_err()) & 0xff,
        1
    );

    // Two statements in one QUERY_SQL (1.15 and later refuse the request, older servers
    // answer the first statement and drop the rest unseen) and more parameters than
    // placeholders (SQLITE_RANGE up to 1.18.1; from 1.18.2 EXEC binds what the statement
    // takes and stores the row, QUERY fails with code 10): the core refuses both before
    // sending, so every generation behaves the same.
    let refused = |r: Result<Vec<Reply>, CallError>| match r {
        Err(CallError::Proto(Error::Misuse(m))) => m,
        other => panic!("expected a refusal before sending, got {other:?}"),
    };
    assert_eq!(
        refused(c.call(|p| p.query_sql("SELECT 1; SELECT 2", &[]))),
        Misuse::MultipleStatements { statements: 2 }
    );
    let surplus = [Value::from("b"), Value::from("c")];
    let count = Misuse::ParamCount {
        expected: 1,
        given: 2,
    };
    assert_eq!(
        refused(c.call(|p| p.exec_sql("INSERT INTO u VALUES (?)", &surplus))),
        count
    );
    assert_eq!(
        refused(c.call(|p| p.query_sql("SELECT ?", &surplus))),
        count
    );
    let stored = rows_of(
        c.call(|p| p.query_sql("SELECT k FROM u ORDER BY k", &[]))
            .unwrap(),
    )
    .1;
    assert_eq!(stored, [[Value::from("a")]]);

    // A follower refuses SQL with "not leader": from 1.18.2 already at OPEN, before that at
    // the first statement.
    let not_leader = |e: CallError| match e {
        CallError::Proto(Error::Server(failure)) => assert!(failure.is_not_leader(), "{failure:?}"),
        other => panic!("{other:?}"),
    };
    let open = f.call(|p| p.open("core-test"));
    if harness::follower_open_refused() {
        not_leader(open.unwrap_err());
    } else {
        open.unwrap();
        not_leader(f.call(|p| p.query_sql("SELECT 1", &[])).unwrap_err());
    }

    // Node requests: DESCRIBE, WEIGHT, DUMP.
    c.call(|p| p.weight(7)).unwrap();
    let r = c.call(|p| p.describe()).unwrap();
    let [Reply::Metadata(m)] = &r[..] else {
        panic!("{r:?}")
    };
    assert_eq!(m.weight, 7);
    let r = c.call(|p| p.dump("core-test")).unwrap();
    let [Reply::Files(files)] = &r[..] else {
        panic!("{r:?}")
    };
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].name, "core-test");
    assert_eq!(files[1].name, "core-test-wal");
    let main = &files[0].data;
    assert!(main.starts_with(b"SQLite format 3\0"));
    let wal = &files[1].data;
    if harness::dump_checkpoints() {
        // Checkpointed: the main file alone holds the database (its header's page size
        // times page count is its length), and the WAL is empty.
        let page_size = match u16::from_be_bytes([main[16], main[17]]) {
            1 => 65536,
            n => usize::from(n),
        };
        let pages = u32::from_be_bytes([main[28], main[29], main[30], main[31]]);
        assert_eq!(main.len(), page_size * pages as usize);
        assert!(wal.is_empty(), "WAL of {} bytes", wal.len());
    } else {
        // The files as they are: the WAL, when there is one, starts with its magic number.
        assert!(
            wal.is_empty()
                || wal.starts_with(&[0x37, 0x7f, 0x06, 0x82])
                || wal.starts_with(&[0x37, 0x7f, 0x06, 0x83]),
            "not a WAL: {:02x?}",
            &wal[..wal.len().min(8)]
        );
    }
    assert!(c.core().is_idle());
}
