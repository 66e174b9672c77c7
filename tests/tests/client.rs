//! The async client's behaviour against real dqlite clusters, the same scenarios on tokio,
//! smol and async-std.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dqlite_client::{
    Config, Connection, Error, Misuse, NodeRole, Pool, PoolOptions, Runtime, Value,
};
use dqlite_proto::Misuse as CoreMisuse;
use dqlite_tests::harness::{self, Cluster};

fn addrs(cluster: &Cluster) -> Vec<String> {
    cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect()
}

/// One database per scenario. The scenarios kill no node and write little, so several
/// databases on one cluster are fine on every generation; the failover test, which kills the
/// leader under write load, keeps to one database (see `harness`, "Server generations").
fn config(db: &str) -> Config {
    Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(10))
}

/// Runs `f` on each runtime in turn.
trait Block {
    fn block_on<F: Future>(&self, f: F) -> F::Output;
}

struct OnTokio;
impl Block for OnTokio {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(f)
    }
}

struct OnSmol;
impl Block for OnSmol {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        smol::block_on(f)
    }
}

struct OnAsyncStd;
impl Block for OnAsyncStd {
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        async_std::task::block_on(f)
    }
}

async fn quickstart<R: Runtime>(rt: R, leader: &str) {
    let mut conn = Connection::connect(rt, leader, config("quickstart"))
        .await
        .unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute("CREATE TABLE test (id INTEGER PRIMARY KEY, name TEXT)", ())
        .await
        .unwrap();
    let r = tx
        .execute("INSERT INTO test (name) VALUES (?)", ("hello",))
        .await
        .unwrap();
    assert_eq!((r.last_insert_id, r.rows_affected), (1, 1));
    tx.execute(
        "INSERT INTO test (name) VALUES (?)",
        dqlite_client::params!["world"],
    )
    .await
    .unwrap();
    let rows = tx
        .fetch("SELECT id, name FROM test ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<i64, _>("id").unwrap(), 1);
    assert_eq!(rows[1].get::<String, _>("name").unwrap(), "world");
    let all = tx
        .fetch_all("SELECT id, name FROM test ORDER BY id", ())
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            vec![Value::Integer(1), Value::from("hello")],
            vec![Value::Integer(2), Value::from("world")]
        ]
    );
    let n: i64 = tx.fetch_val("SELECT count(*) FROM test", ()).await.unwrap();
    assert_eq!(n, 2);
    tx.commit().await.unwrap();
    let name: Option<String> = conn
        .fetch_val("SELECT name FROM test WHERE id = ?", (1i64,))
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("hello"));
    assert!(matches!(
        conn.fetch_one("SELECT 1 FROM test WHERE id = 99", ()).await,
        Err(Error::NoRows)
    ));
    assert!(conn
        .fetch_optional("SELECT 1 FROM test WHERE id = 99", ())
        .await
        .unwrap()
        .is_none());
    // Wrong Rust type: a typed conversion error, not a panic.
    let wrong = conn
        .fetch_val::<i64>("SELECT name FROM test WHERE id = 1", ())
        .await;
    assert!(
        matches!(
            wrong,
            Err(Error::Conversion {
                expected: "i64",
                ..
            })
        ),
        "{wrong:?}"
    );
    // NUL inside text is refused before anything is sent.
    let nul = conn
        .execute("INSERT INTO test (name) VALUES (?)", ("a\0b",))
        .await;
    assert!(matches!(nul, Err(Error::Misuse(_))), "{nul:?}");
    // Statements without rows are refused on the query paths, before anything is sent.
    let e = conn
        .fetch("INSERT INTO test (name) VALUES ('x')", ())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Misuse(Misuse::ReturnsNoRows(w)) if w == "INSERT"),
        "{e:?}"
    );
    // RETURNING crashes dqlite 1.11 servers: refused before anything is sent.
    let e = conn
        .execute("INSERT INTO test (name) VALUES ('r') RETURNING id", ())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Misuse(Misuse::Request(CoreMisuse::Returning))),
        "{e:?}"
    );
    // Conversion errors name the column.
    let row = conn
        .fetch_one("SELECT name FROM test WHERE id = 1", ())
        .await
        .unwrap();
    let e = row.get::<i64, _>("name").unwrap_err();
    assert!(e.to_string().contains("column name"), "{e}");
    let name: String = row.get("name").unwrap();
    assert_eq!(name, "hello");
    // A script of several statements in one request.
    conn.execute_batch("CREATE TABLE a (x); CREATE TABLE b (y); INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)")
        .await
        .unwrap();
    let ab: i64 = conn
        .fetch_val("SELECT a.x + b.y FROM a, b", ())
        .await
        .unwrap();
    assert_eq!(ab, 3);
    conn.close().await.unwrap();
}

async fn value_types<R: Runtime>(rt: R, leader: &str) {
    let mut conn = Connection::connect(rt, leader, config("values"))
        .await
        .unwrap();
    conn.execute(
        "CREATE TABLE v (i INTEGER, f REAL, s TEXT, b BLOB, flag BOOLEAN, d DATETIME)",
        (),
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)",
        (
            i64::MIN,
            2.25f64,
            "ünïcode",
            vec![0u8, 1, 2, 255],
            true,
            Value::Iso8601("2024-05-06 07:08:09".into()),
        ),
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?)",
        dqlite_client::params![
            None::<i64>,
            None::<f64>,
            None::<String>,
            None::<Vec<u8>>,
            None::<bool>,
            None::<String>
        ],
    )
    .await
    .unwrap();
    let rows = conn
        .fetch_all("SELECT i, f, s, b, flag, d FROM v ORDER BY rowid", ())
        .await
        .unwrap();
    assert_eq!(
        rows[0],
        [
            Value::Integer(i64::MIN),
            Value::Float(2.25),
            Value::from("ünïcode"),
            Value::Blob(Bytes::from_static(&[0, 1, 2, 255])),
            Value::Boolean(true),
            Value::Iso8601("2024-05-06 07:08:09".into()),
        ]
    );
    // NULLs: real NULL in plain columns on every server; BOOLEAN / DATETIME columns give NULL
    // on patched servers and false / "" on released ones.
    let n = &rows[1];
    assert_eq!(n[..4], [Value::Null, Value::Null, Value::Null, Value::Null]);
    assert!(
        matches!(n[4], Value::Null | Value::Boolean(false)),
        "{:?}",
        n[4]
    );
    assert!(
        n[5] == Value::Null || n[5] == Value::Iso8601("".into()),
        "{:?}",
        n[5]
    );
    // The `+col` workaround reads the stored NULL on every server.
    let plus = conn
        .fetch_all("SELECT +flag, +d FROM v WHERE i IS NULL", ())
        .await
        .unwrap();
    assert_eq!(plus[0], [Value::Null, Value::Null]);
    let flag: Option<bool> = conn
        .fetch_val("SELECT +flag FROM v WHERE i IS NULL", ())
        .await
        .unwrap();
    assert_eq!(flag, None);
    let blob: Vec<u8> = conn
        .fetch_val("SELECT b FROM v WHERE i IS NOT NULL", ())
        .await
        .unwrap();
    assert_eq!(blob, [0, 1, 2, 255]);
}

async fn big_results<R: Runtime>(rt: R, leader: &str) {
    let mut conn = Connection::connect(rt, leader, config("big"))
        .await
        .unwrap();
    conn.execute("CREATE TABLE big (x INTEGER, s TEXT)", ())
        .await
        .unwrap();
    conn.execute(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
         INSERT INTO big SELECT x, 'row-' || x FROM c",
        (),
    )
    .await
    .unwrap();
    let rows = conn
        .fetch("SELECT x, s FROM big ORDER BY x", ())
        .await
        .unwrap();
    assert_eq!(rows.len(), 100_000);
    assert_eq!(rows[99_999].get::<i64, _>("x").unwrap(), 100_000);
    assert_eq!(rows[41].get::<String, _>("s").unwrap(), "row-42");

    let mut stream = conn
        .stream("SELECT x FROM big ORDER BY x", ())
        .await
        .unwrap();
    let (mut batches, mut count, mut last) = (0, 0, 0);
    while let Some(rows) = stream.next_rows().await.unwrap() {
        batches += 1;
        for r in rows {
            let x: i64 = r.get(0).unwrap();
            assert_eq!(x, last + 1);
            last = x;
            count += 1;
        }
    }
    assert_eq!(count, 100_000);
    assert!(batches > 10, "expected many PART batches, got {batches}");
    drop(stream);

    // The same rows one by one, as a futures Stream.
    {
        use futures_util::StreamExt;
        let stream = conn
            .stream("SELECT x FROM big ORDER BY x", ())
            .await
            .unwrap();
        let mut rows = std::pin::pin!(stream.into_rows());
        let mut count = 0i64;
        while let Some(row) = rows.next().await {
            count += 1;
            assert_eq!(row.unwrap().get::<i64, _>("x").unwrap(), count);
        }
        assert_eq!(count, 100_000);
    }
    // Abandoning a stream after one batch: the next query gets its own answer.
    let mut stream = conn
        .stream("SELECT x FROM big ORDER BY x", ())
        .await
        .unwrap();
    assert!(stream.next_batch().await.unwrap().is_some());
    drop(stream);
    let n: i64 = conn
        .fetch_val("SELECT count(*) FROM big WHERE x > ?", (99_990i64,))
        .await
        .unwrap();
    assert_eq!(n, 10);
}

async fn transactions<R: Runtime>(rt: R, leader: &str) {
    let mut conn = Connection::connect(rt, leader, config("tx")).await.unwrap();
    conn.execute(
        "CREATE TABLE acct (id INTEGER PRIMARY KEY, v INTEGER UNIQUE)",
        (),
    )
    .await
    .unwrap();
    let mut tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO acct (v) VALUES (1)", ())
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(
        conn.fetch_val::<i64>("SELECT count(*) FROM acct", ())
            .await
            .unwrap(),
        0
    );

    {
        let mut tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO acct (v) VALUES (2)", ())
            .await
            .unwrap();
        // Dropped without commit: rolled back before the next use.
    }
    assert!(
        !conn.in_transaction(),
        "a dropped guard ends the transaction at once"
    );
    assert!(!conn.fetch_all("SELECT 1", ()).await.unwrap().is_empty());
    assert!(!conn.in_transaction());
    assert_eq!(
        conn.fetch_val::<i64>("SELECT count(*) FROM acct", ())
            .await
            .unwrap(),
        0
    );

    let mut tx = conn.begin().await.unwrap();
    tx.execute("INSERT INTO acct (v) VALUES (3)", ())
        .await
        .unwrap();
    {
        let mut sp = tx.begin().await.unwrap();
        sp.execute("INSERT INTO acct (v) VALUES (4)", ())
            .await
            .unwrap();
        sp.rollback().await.unwrap();
    }
    {
        let mut sp = tx.begin().await.unwrap();
        sp.execute("INSERT INTO acct (v) VALUES (5)", ())
            .await
            .unwrap();
        sp.commit().await.unwrap();
    }
    tx.commit().await.unwrap();
    let vs = conn
        .fetch_all("SELECT v FROM acct ORDER BY v", ())
        .await
        .unwrap();
    assert_eq!(vs, vec![vec![Value::Integer(3)], vec![Value::Integer(5)]]);

    // A transaction as a closure: committed on Ok, rolled back on Err.
    let n = conn
        .transaction(async |tx| {
            tx.execute("INSERT INTO acct (v) VALUES (7)", ()).await?;
            tx.fetch_val::<i64>("SELECT count(*) FROM acct", ()).await
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    let failed: Result<(), Error> = conn
        .transaction(async |tx| {
            tx.execute("INSERT INTO acct (v) VALUES (8)", ()).await?;
            Err(Error::NoRows)
        })
        .await;
    assert!(matches!(failed, Err(Error::NoRows)));
    let vs = conn
        .fetch_all("SELECT v FROM acct WHERE v IN (7, 8)", ())
        .await
        .unwrap();
    assert_eq!(vs, vec![vec![Value::Integer(7)]]);
    conn.execute("DELETE FROM acct WHERE v = 7", ())
        .await
        .unwrap();
    // Constraint violations surface the SQLite code (SQLITE_CONSTRAINT_UNIQUE = 2067).
    let e = conn
        .execute("INSERT INTO acct (v) VALUES (3)", ())
        .await
        .unwrap_err();
    assert!(e.is_constraint(), "{e:?}");
    assert_eq!(e.code(), Some(2067), "{e:?}");
    assert!(!e.is_ambiguous());
    // The connection is still good.
    assert_eq!(
        conn.fetch_val::<i64>("SELECT count(*) FROM acct", ())
            .await
            .unwrap(),
        2
    );

    // Prepared statements, executed many times, finalized on drop.
    let stmt = conn
        .prepare("INSERT INTO acct (v) VALUES (?)")
        .await
        .unwrap();
    for v in 10..20i64 {
        conn.execute_prepared(&stmt, (v,)).await.unwrap();
    }
    // A pipelined batch: 500 inserts written back to back, one of them violating the
    // UNIQUE constraint; each gets its own outcome.
    let values: Vec<i64> = (100..600).chain([3]).collect();
    let results = conn
        .execute_pipelined(
            "INSERT INTO acct (v) VALUES (?)",
            values.iter().map(|v| (*v,)),
        )
        .await
        .unwrap();
    assert_eq!(results.len(), 501);
    assert!(results[..500].iter().all(Result::is_ok));
    assert!(results[500].as_ref().unwrap_err().is_constraint());
    let n: i64 = conn
        .fetch_val("SELECT count(*) FROM acct WHERE v >= 100", ())
        .await
        .unwrap();
    assert_eq!(n, 500);
    // Parameter counts are checked against the statement before sending.
    let e = conn
        .execute_prepared(&stmt, (1i64, 2i64))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Misuse(Misuse::Request(CoreMisuse::ParamCount {
                expected: 1,
                given: 2
            }))
        ),
        "{e:?}"
    );
    drop(stmt);
    let q = conn
        .prepare("SELECT count(*) FROM acct WHERE v >= ? AND v < 100")
        .await
        .unwrap();
    let rows = conn.fetch_prepared(&q, (10i64,)).await.unwrap();
    assert_eq!(rows[0].get::<i64, _>(0).unwrap(), 10);
    conn.finalize(q).await.unwrap();
}

async fn cluster_aware<R: Runtime>(rt: R, cluster_addrs: &[String], leader: &str) {
    // The first address is a follower: the client finds the leader anyway.
    let mut ordered: Vec<&str> = cluster_addrs
        .iter()
        .map(String::as_str)
        .filter(|a| *a != leader)
        .collect();
    ordered.push(leader);
    let mut conn = dqlite_client::connect_cluster(rt.clone(), &ordered, config("cluster"))
        .await
        .unwrap();
    assert_eq!(conn.address(), leader);
    let members = conn.cluster().await.unwrap();
    assert_eq!(members.len(), 3);
    assert_eq!(
        members
            .iter()
            .filter(|m| m.role == Some(NodeRole::Voter))
            .count(),
        3
    );
    conn.set_weight(3).await.unwrap();
    assert_eq!(conn.describe().await.unwrap().weight, 3);
    let files = conn.dump().await.unwrap();
    assert_eq!(files.len(), 2);

    // A pool with 32 concurrent tasks.
    let options = PoolOptions {
        min_size: 2,
        max_size: 8,
        ..PoolOptions::default()
    };
    let pool = Pool::new(rt.clone(), &ordered, config("cluster"), options)
        .await
        .unwrap();
    pool.execute(
        "CREATE TABLE IF NOT EXISTS hits (task INTEGER, n INTEGER)",
        (),
    )
    .await
    .unwrap();
    let tasks = (0..32i64).map(|t| {
        let pool = pool.clone();
        async move {
            for n in 0..5i64 {
                pool.execute("INSERT INTO hits VALUES (?, ?)", (t, n))
                    .await
                    .unwrap();
            }
            let mut c = pool.acquire().await.unwrap();
            c.fetch_val::<i64>("SELECT count(*) FROM hits WHERE task = ?", (t,))
                .await
                .unwrap()
        }
    });
    let counts = futures_util::future::join_all(tasks).await;
    assert!(counts.iter().all(|&c| c == 5), "{counts:?}");
    assert_eq!(
        pool.fetch_val::<i64>("SELECT count(*) FROM hits", ())
            .await
            .unwrap(),
        160
    );
    let status = pool.status();
    assert_eq!(status.in_use, 0);
    assert!(status.idle >= 1 && status.idle <= 8, "{status:?}");
    assert_eq!(pool.nodes().len(), 3);
    pool.close().await;
    assert!(matches!(pool.acquire().await, Err(Error::Pool(_))));

    // Leadership transfer: the named voter becomes the leader, the old one answers
    // "not leader", and a cluster-aware connect finds the new one.
    let me = conn.leader().await.unwrap().expect("a leader");
    let target = members
        .iter()
        .find(|m| m.id != me.id)
        .expect("another voter");
    conn.transfer_leadership(target.id).await.unwrap();
    let e = conn
        .execute("INSERT INTO hits VALUES (0, 0)", ())
        .await
        .unwrap_err();
    assert!(e.is_not_leader(), "{e:?}");
    let conn = dqlite_client::connect_cluster(rt, &ordered, config("cluster"))
        .await
        .unwrap();
    assert_eq!(conn.address(), target.address.as_str());
}

fn behaviour(block: impl Block, rt: impl Runtime) {
    let mut cluster = Cluster::start(3);
    let leader_idx = cluster.wait_ready(3);
    let leader = cluster.db_address(leader_idx).to_string();
    let all = addrs(&cluster);
    block.block_on(async {
        quickstart(rt.clone(), &leader).await;
        value_types(rt.clone(), &leader).await;
        big_results(rt.clone(), &leader).await;
        transactions(rt.clone(), &leader).await;
        cluster_aware(rt.clone(), &all, &leader).await;
    });
    // No node died on the way, except where the server documents that a follower may: the
    // scenarios use several databases, which dqlite 1.17.0-1.18.1 can abort a follower on
    // during a snapshot.
    if !harness::snapshot_aborts_with_several_databases() {
        for i in 0..cluster.size() {
            assert!(
                cluster.is_running(i),
                "node {i} exited during the scenarios"
            );
        }
    }
}

#[test]
fn behaviour_on_tokio() {
    behaviour(OnTokio, dqlite_tokio::Tokio);
}

#[test]
fn behaviour_on_smol() {
    behaviour(OnSmol, dqlite_smol::Smol);
}

#[test]
fn behaviour_on_async_std() {
    behaviour(OnAsyncStd, dqlite_async_std::AsyncStd::default());
}

/// What happened to one write during the failover.
enum Outcome {
    Acknowledged(i64),
    /// Reported as definitely not applied.
    Failed(i64),
    /// Reported as possibly applied.
    Ambiguous(i64),
}

/// Kills the leader while 8 writers use a pool seeded with the leader's address alone:
/// every error is classified, no acknowledged write is lost, no write reported as failed is
/// present, and the pool serves writes on the new leader soon after the election.
fn failover(block: impl Block, rt: impl Runtime) {
    let mut cluster = Cluster::start(3);
    let leader_idx = cluster.wait_ready(3);
    let all = addrs(&cluster);
    // The pool must learn the other nodes from the cluster's membership to survive the death
    // of the only node it was given.
    let seeds = [all[leader_idx].as_str()];
    let options = PoolOptions {
        min_size: 4,
        max_size: 8,
        ..PoolOptions::default()
    };
    let killed_at = std::sync::Mutex::new(None::<Instant>);
    let first_ok_after_kill = std::sync::Mutex::new(None::<Instant>);
    // One runtime for the whole scenario: tokio sockets die with the runtime that made them.
    let (outcomes, present, new_leader) = block.block_on(async {
        let pool = Pool::new(rt.clone(), &seeds, config("failover"), options)
            .await
            .unwrap();
        pool.execute("CREATE TABLE f (x INTEGER PRIMARY KEY)", ())
            .await
            .unwrap();
        assert_eq!(
            pool.nodes().len(),
            3,
            "node list refreshed from the cluster"
        );
        let writers = (0..8i64).map(|w| {
            let (pool, rt) = (pool.clone(), rt.clone());
            let (killed_at, first_ok) = (&killed_at, &first_ok_after_kill);
            async move {
                let mut outcomes = Vec::new();
                let started = Instant::now();
                for n in 0.. {
                    let x = w * 1_000_000 + n;
                    let kill = *killed_at.lock().unwrap();
                    // Stop 2 s after the first write acknowledged by the new leader, or after
                    // 60 s in all.
                    let done = first_ok
                        .lock()
                        .unwrap()
                        .is_some_and(|t| t.elapsed() > Duration::from_secs(2));
                    if done || started.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    match pool.execute("INSERT INTO f VALUES (?)", (x,)).await {
                        Ok(_) => {
                            if kill.is_some() {
                                first_ok.lock().unwrap().get_or_insert_with(Instant::now);
                            }
                            outcomes.push(Outcome::Acknowledged(x));
                        }
                        Err(e) if e.is_ambiguous() => outcomes.push(Outcome::Ambiguous(x)),
                        Err(e) => {
                            assert!(
                                e.is_not_leader()
                                    || e.is_busy()
                                    || matches!(
                                        e,
                                        Error::Connection(_)
                                            | Error::Timeout(_)
                                            | Error::NoLeader(_)
                                    ),
                                "unexpected error during failover: {e:?}"
                            );
                            outcomes.push(Outcome::Failed(x));
                            rt.sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                outcomes
            }
        });
        let killer = async {
            rt.sleep(Duration::from_millis(500)).await;
            cluster.kill(leader_idx);
            *killed_at.lock().unwrap() = Some(Instant::now());
        };
        let (outcomes, ()) =
            futures_util::future::join(futures_util::future::join_all(writers), killer).await;
        let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
        let rows = pool.fetch_all("SELECT x FROM f", ()).await.unwrap();
        let present: std::collections::HashSet<i64> = rows
            .into_iter()
            .map(|r| match r[0] {
                Value::Integer(x) => x,
                ref v => panic!("{v:?}"),
            })
            .collect();
        let new_leader = pool.acquire().await.unwrap().address().to_owned();
        (outcomes, present, new_leader)
    });
    let killed = killed_at.lock().unwrap().expect("leader killed");
    let recovered = first_ok_after_kill
        .lock()
        .unwrap()
        .expect("a write succeeded after the kill")
        - killed;
    let (mut acked, mut failed, mut ambiguous, mut lost, mut failed_present) = (0, 0, 0, 0, 0);
    let mut ambiguous_present = 0;
    for o in &outcomes {
        match o {
            Outcome::Acknowledged(x) => {
                acked += 1;
                lost += usize::from(!present.contains(x));
            }
            Outcome::Failed(x) => {
                failed += 1;
                failed_present += usize::from(present.contains(x));
            }
            Outcome::Ambiguous(x) => {
                ambiguous += 1;
                ambiguous_present += usize::from(present.contains(x));
            }
        }
    }
    println!(
        "failover: {acked} acknowledged, {failed} failed, {ambiguous} ambiguous ({ambiguous_present} of them applied); \
         new leader served a write {recovered:?} after the kill"
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert_eq!(failed_present, 0, "writes reported as failed but applied");
    assert_ne!(new_leader, all[leader_idx]);
    assert!(
        recovered < Duration::from_secs(30),
        "recovery took {recovered:?}"
    );
}

#[test]
fn failover_on_tokio() {
    failover(OnTokio, dqlite_tokio::Tokio);
}

#[test]
fn failover_on_smol() {
    failover(OnSmol, dqlite_smol::Smol);
}

#[test]
fn failover_on_async_std() {
    failover(OnAsyncStd, dqlite_async_std::AsyncStd::default());
}
