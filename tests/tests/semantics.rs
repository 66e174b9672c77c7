//! Every `Ok` means what it says, against real clusters: transaction state followed through
//! SQL-level control and never leaked through the pool, a refused BEGIN that leaves the open
//! transaction alone, parameter counts checked before sending, scripts that are atomic or
//! say how much ran, BUSY retried only while nothing applied, and the everyday conversions.

use std::time::Duration;

use dqlite_client::{Config, Connection, Error, Misuse, Pool, PoolOptions, Value};
use dqlite_proto::Misuse as CoreMisuse;
use dqlite_smol::Smol;
use dqlite_tests::cancel::drop_after;
use dqlite_tests::harness::Cluster;

fn config(db: &str) -> Config {
    Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(20))
}

/// A single-node cluster and its address.
fn one_node() -> (Cluster, String) {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let addr = cluster.db_address(leader).to_string();
    (cluster, addr)
}

async fn count(conn: &mut Connection<Smol>, sql: &str) -> i64 {
    conn.fetch_val(sql, ()).await.expect(sql)
}

/// The write lock is free: a write from another connection goes through without waiting.
async fn lock_is_free(addr: &str, db: &str) {
    let mut other = Connection::connect(Smol, addr, config(db).busy_timeout(Duration::ZERO))
        .await
        .unwrap();
    other
        .execute("INSERT INTO probe VALUES (1)", ())
        .await
        .expect("another writer must not be blocked by an idle pooled connection");
}

#[test]
fn sql_transaction_control_is_tracked_and_never_leaks_through_the_pool() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "txleak";
        let options = PoolOptions::new().min_size(1).max_size(1);
        let pool = Pool::new(Smol, &[addr.as_str()], config(db), options)
            .await
            .unwrap();
        setup(
            &pool,
            "CREATE TABLE t (x INTEGER); CREATE TABLE probe (x INTEGER)",
        )
        .await;

        // Each way of opening a transaction with SQL, left open when the connection goes
        // back to the pool.
        let openers: [&str; 6] = [
            "BEGIN",
            "BEGIN IMMEDIATE",
            "BEGIN EXCLUSIVE TRANSACTION",
            "SAVEPOINT user_sp",
            "script",
            "prepared",
        ];
        for (i, opener) in openers.into_iter().enumerate() {
            let marker = 100 + i as i64;
            {
                let mut conn = pool.acquire().await.unwrap();
                assert!(!conn.in_transaction());
                match opener {
                    "script" => conn
                        .execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (0)")
                        .await
                        .unwrap(),
                    "prepared" => {
                        let begin = conn.prepare("BEGIN").await.unwrap();
                        conn.execute_prepared(&begin, ()).await.unwrap();
                    }
                    sql => {
                        conn.execute(sql, ()).await.unwrap();
                    }
                }
                assert!(conn.in_transaction(), "{opener} is not tracked");
                conn.execute("INSERT INTO t VALUES (?)", (marker,))
                    .await
                    .unwrap();
            }
            // The next user of the same (only) connection is outside any transaction: its
            // autocommit write is committed, and the write lock is free.
            let mut conn = pool.acquire().await.unwrap();
            assert!(!conn.in_transaction(), "{opener}: handed out inside it");
            conn.execute("INSERT INTO t VALUES (?)", (-marker,))
                .await
                .unwrap();
            drop(conn);
            lock_is_free(&addr, db).await;
            let mut check = Connection::connect(Smol, &addr, config(db)).await.unwrap();
            let rows: Vec<Vec<Value>> = check
                .fetch_all("SELECT x FROM t WHERE x IN (?, ?, 0)", (marker, -marker))
                .await
                .unwrap();
            assert_eq!(
                rows,
                vec![vec![Value::Integer(-marker)]],
                "{opener}: the abandoned transaction was rolled back, the next write committed"
            );
        }

        // Ends are tracked too, on a plain connection.
        let mut conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
        for (sql, open_after) in [
            ("BEGIN", true),
            ("COMMIT", false),
            ("BEGIN DEFERRED", true),
            ("END TRANSACTION", false),
            ("SAVEPOINT a", true),
            ("SAVEPOINT b", true),
            ("RELEASE a", false),
            ("BEGIN", true),
            ("SAVEPOINT a", true),
            ("ROLLBACK TO a", true),
            ("RELEASE SAVEPOINT a", true),
            ("ROLLBACK", false),
        ] {
            conn.execute(sql, ()).await.unwrap();
            assert_eq!(conn.in_transaction(), open_after, "after {sql}");
        }
        // A refused COMMIT changes nothing.
        assert!(conn.execute("COMMIT", ()).await.is_err());
        assert!(!conn.in_transaction());
    });
}

/// A connection whose transaction state is unknown (a script that controls transactions
/// failed part-way) is rolled back before the pool hands it out again.
#[test]
fn a_script_failing_inside_its_own_transaction_is_rolled_back_before_reuse() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "partial";
        let options = PoolOptions::new().min_size(1).max_size(1);
        let pool = Pool::new(Smol, &[addr.as_str()], config(db), options)
            .await
            .unwrap();
        setup(
            &pool,
            "CREATE TABLE t (x INTEGER); CREATE TABLE probe (x INTEGER)",
        )
        .await;
        {
            let mut conn = pool.acquire().await.unwrap();
            let e = conn
                .execute_batch(
                    "BEGIN; INSERT INTO t VALUES (5); INSERT INTO nosuch VALUES (1); COMMIT",
                )
                .await
                .unwrap_err();
            match &e {
                Error::PartlyApplied {
                    executed, total, ..
                } => assert_eq!((*executed, *total), (2, 4), "{e}"),
                other => panic!("expected PartlyApplied, got {other:?}"),
            }
            assert!(!e.is_ambiguous());
            assert!(conn.in_transaction(), "the script's BEGIN is still open");
        }
        let mut conn = pool.acquire().await.unwrap();
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, "SELECT count(*) FROM t").await, 0);
        drop(conn);
        lock_is_free(&addr, db).await;
    });
}

#[test]
fn a_refused_begin_leaves_the_open_transaction_alone() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "refused";
        let cfg = || config(db);
        let mut conn = Connection::connect(Smol, &addr, cfg()).await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();

        // Known to be open: refused before anything is sent.
        conn.execute("BEGIN", ()).await.unwrap();
        let e = conn.begin().await.err().expect("begin inside BEGIN");
        assert!(matches!(e, Error::Misuse(Misuse::TransactionOpen)), "{e:?}");
        conn.execute("INSERT INTO t VALUES (1)", ()).await.unwrap();
        conn.execute("COMMIT", ()).await.expect("the user's COMMIT");

        // Open, but unknown to the client: a BUSY inside a transaction may make SQLite roll
        // it back, so the client no longer claims to know. (Here it did not: a deferred
        // transaction that only failed to take the write lock stays open.) The server then
        // refuses the guard's BEGIN, and the user's transaction survives the refusal.
        let mut holder = Connection::connect(Smol, &addr, cfg()).await.unwrap();
        let mut held = holder.begin().await.unwrap();
        held.execute("INSERT INTO t VALUES (100)", ())
            .await
            .unwrap();
        conn.execute("BEGIN", ()).await.unwrap();
        let busy = conn
            .execute("INSERT INTO t VALUES (2)", ())
            .await
            .unwrap_err();
        assert!(busy.is_busy(), "{busy:?}");
        assert!(conn.in_transaction(), "unknown counts as maybe open");
        held.rollback().await.unwrap();
        let refused = conn.begin().await.err().expect("BEGIN inside BEGIN");
        assert!(refused.server_failure().is_some(), "{refused:?}");
        conn.execute("INSERT INTO t VALUES (2)", ()).await.unwrap();
        conn.execute("COMMIT", ()).await.expect("the user's COMMIT");
        assert!(!conn.in_transaction());

        let mut other = Connection::connect(Smol, &addr, cfg()).await.unwrap();
        let all = other
            .fetch_all("SELECT x FROM t ORDER BY x", ())
            .await
            .unwrap();
        assert_eq!(all, vec![vec![Value::Integer(1)], vec![Value::Integer(2)]]);

        // A refused savepoint leaves its transaction alone too.
        let mut tx = conn.begin().await.unwrap();
        tx.execute("INSERT INTO t VALUES (3)", ()).await.unwrap();
        let e = tx
            .execute("SAVEPOINT mine", ())
            .await
            .expect_err("raw transaction control inside a guard");
        assert!(
            matches!(e, Error::Misuse(Misuse::TransactionControl(_))),
            "{e:?}"
        );
        tx.commit().await.unwrap();
        assert_eq!(count(&mut other, "SELECT count(*) FROM t").await, 3);
    });
}

#[test]
fn parameter_counts_are_checked_on_every_path_before_sending() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "params";
        let mut conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
        conn.execute("CREATE TABLE t (a, b)", ()).await.unwrap();
        let count_err = |e: &Error| match e.misuse() {
            Some(Misuse::Request(CoreMisuse::ParamCount { expected, given })) => {
                (*expected, *given)
            }
            _ => panic!("expected a parameter count error, got {e:?}"),
        };
        let insert = "INSERT INTO t VALUES (?, ?)";
        let e = conn.execute(insert, (3i64,)).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 1));
        let e = conn.execute(insert, ()).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 0));
        let e = conn.execute(insert, (1i64, 2i64, 3i64)).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 3));
        let e = conn.fetch("SELECT ?, ?", (1i64,)).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 1));
        let e = conn.fetch_all("SELECT ?", ()).await.unwrap_err();
        assert_eq!(count_err(&e), (1, 0));
        let e = conn.stream("SELECT ?, ?", (1i64,)).await.err().unwrap();
        assert_eq!(count_err(&e), (2, 1));
        let results = conn
            .execute_pipelined(insert, [(1i64,), (2i64,)])
            .await
            .unwrap();
        for r in &results {
            assert_eq!(count_err(r.as_ref().unwrap_err()), (2, 1));
        }
        let stmt = conn.prepare(insert).await.unwrap();
        let e = conn.execute_prepared(&stmt, (1i64,)).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 1));
        drop(stmt);
        let mut tx = conn.begin().await.unwrap();
        let e = tx.execute(insert, (1i64,)).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 1));
        tx.rollback().await.unwrap();
        let pool = Pool::new(Smol, &[addr.as_str()], config(db), PoolOptions::new())
            .await
            .unwrap();
        let e = pool.execute(insert, (1i64,)).await.unwrap_err();
        assert_eq!(count_err(&e), (2, 1));
        let e = pool.fetch("SELECT ?", ()).await.unwrap_err();
        assert_eq!(count_err(&e), (1, 0));
        // Parameters with a script of several statements: servers disagree, refused.
        let e = conn
            .execute(
                "INSERT INTO t VALUES (?, 1); INSERT INTO t VALUES (2, 2)",
                (1i64,),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.misuse(),
                Some(Misuse::Request(CoreMisuse::ParamsInScript {
                    statements: 2
                }))
            ),
            "{e:?}"
        );
        assert_eq!(count(&mut conn, "SELECT count(*) FROM t").await, 0);

        // Named, numbered and quoted marks count as SQLite counts them.
        conn.execute("INSERT INTO t VALUES (:a, :a || '?')", ("x",))
            .await
            .unwrap();
        conn.execute("INSERT INTO t VALUES (?2, ?1) -- ?", (1i64, 2i64))
            .await
            .unwrap();
        let rows = conn
            .fetch_all("SELECT a, b FROM t ORDER BY rowid", ())
            .await
            .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Value::from("x"), Value::from("x?")],
                vec![Value::Integer(2), Value::Integer(1)],
            ]
        );
    });
}

#[test]
fn scripts_are_atomic_or_say_how_much_ran() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "scripts";
        let mut conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        let present = |x: i64| format!("SELECT count(*) FROM t WHERE x = {x}");

        // A failing second statement: the first is rolled back, a clean failure.
        let e = conn
            .execute_batch("INSERT INTO t VALUES (10); INSERT INTO nosuch VALUES (1)")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Server(_)), "{e:?}");
        assert_eq!(count(&mut conn, &present(10)).await, 0);
        assert!(!conn.in_transaction());
        // A statement that returns rows in a script fails it (code 100 on 1.11, "rows
        // yielded" on newer servers): the INSERT before it is rolled back.
        let e = conn
            .execute("INSERT INTO t VALUES (11); SELECT 1", ())
            .await
            .unwrap_err();
        assert!(!e.is_ambiguous(), "{e:?}");
        assert_eq!(count(&mut conn, &present(11)).await, 0);
        // A successful script applies everything.
        let r = conn
            .execute_batch("INSERT INTO t VALUES (12); INSERT INTO t VALUES (13);")
            .await;
        r.unwrap();
        assert_eq!(count(&mut conn, "SELECT count(*) FROM t").await, 2);
        assert!(!conn.in_transaction());

        // Inside a transaction, a failed script is undone and the transaction goes on.
        let mut tx = conn.begin().await.unwrap();
        let e = tx
            .execute_batch("INSERT INTO t VALUES (14); INSERT INTO nosuch VALUES (1)")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Server(_)), "{e:?}");
        tx.execute("INSERT INTO t VALUES (15)", ()).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&mut conn, &present(14)).await, 0);
        assert_eq!(count(&mut conn, &present(15)).await, 1);

        // A script with its own transaction control runs statement by statement.
        let e = conn
            .execute_batch(
                "BEGIN; INSERT INTO t VALUES (16); INSERT INTO nosuch VALUES (1); COMMIT",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::PartlyApplied {
                    executed: 2,
                    total: 4,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(conn.in_transaction());
        conn.execute("ROLLBACK", ()).await.unwrap();
        assert!(!conn.in_transaction());
        assert_eq!(count(&mut conn, &present(16)).await, 0);
        // ... with a trigger body (semicolons inside BEGIN ... END) kept whole.
        conn.execute_batch(
            "BEGIN; CREATE TABLE c (n INTEGER); INSERT INTO c VALUES (0); \
             CREATE TRIGGER bump AFTER INSERT ON t BEGIN \
             UPDATE c SET n = n + 1; UPDATE c SET n = n + 1; END; COMMIT",
        )
        .await
        .unwrap();
        assert!(!conn.in_transaction());
        conn.execute("INSERT INTO t VALUES (17)", ()).await.unwrap();
        assert_eq!(count(&mut conn, "SELECT n FROM c").await, 2);
    });
}

/// Eight tasks writing through one pool on a healthy cluster never see "database is
/// locked": BUSY is retried within the request's budget.
/// A script whose `execute` is dropped before it ended (its savepoint sent, the script
/// perhaps running) is rolled back before the connection's next write, which then commits
/// on its own: no later `Ok` is swallowed by a savepoint nobody will release.
#[test]
fn a_dropped_script_is_rolled_back_before_the_next_write() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "dropped_script";
        let mut conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        // Long enough for a drop to fall while the server runs it.
        let script = "INSERT INTO t WITH RECURSIVE c(x) AS \
                      (SELECT 1000001 UNION ALL SELECT x + 1 FROM c WHERE x < 1300000) \
                      SELECT x FROM c; INSERT INTO t VALUES (-1)";
        let mut dropped_mid_script = false;
        for polls in 1..=200 {
            let done = drop_after(conn.execute(script, ()), polls).await;
            conn.execute("INSERT INTO t VALUES (?)", (polls as i64,))
                .await
                .expect("the write after a dropped script");
            assert!(!conn.in_transaction(), "a transaction is left open");
            // Seen from another connection: the write committed, and the script either
            // committed whole or not at all.
            let mut other = Connection::connect(Smol, &addr, config(db)).await.unwrap();
            let mine: i64 = other
                .fetch_val("SELECT count(*) FROM t WHERE x = ?", (polls as i64,))
                .await
                .unwrap();
            assert_eq!(mine, 1, "the write after the dropped script did not commit");
            let ends = count(&mut other, "SELECT count(*) FROM t WHERE x = -1").await;
            let rows = count(&mut other, "SELECT count(*) FROM t WHERE x > 1000000").await;
            assert_eq!(rows, 300_000 * ends, "a script applied in part");
            conn.execute("DELETE FROM t WHERE x = -1 OR x > 1000000", ())
                .await
                .unwrap();
            if done.is_none() && ends == 0 {
                dropped_mid_script = true;
                break;
            }
        }
        assert!(dropped_mid_script, "no drop fell while the script ran");
    });
}

#[test]
fn busy_is_retried_within_the_budget_under_concurrent_writers() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let addrs: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let seeds: Vec<&str> = addrs.iter().map(String::as_str).collect();
    const TASKS: i64 = 8;
    const WRITES: i64 = 150;
    smol::block_on(async {
        let options = PoolOptions::new().min_size(8).max_size(8);
        let pool = Pool::new(Smol, &seeds, config("busy8"), options)
            .await
            .unwrap();
        pool.execute("CREATE TABLE w (task INTEGER, i INTEGER)", ())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let pool = pool.clone();
                smol::spawn(async move {
                    for i in 0..WRITES {
                        pool.execute("INSERT INTO w VALUES (?, ?)", (task, i))
                            .await
                            .unwrap_or_else(|e| panic!("task {task} write {i}: {e}"));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await;
        }
        let n: i64 = pool.fetch_val("SELECT count(*) FROM w", ()).await.unwrap();
        assert_eq!(n, TASKS * WRITES);

        // Inside a transaction BUSY is returned at once, not waited out: the holder keeps
        // the lock for the whole check, so a retry could only end in the budget's BUSY.
        let leader_addr = addrs[leader].as_str();
        let mut holder = Connection::connect(Smol, leader_addr, config("busy8"))
            .await
            .unwrap();
        let mut held = holder.begin().await.unwrap();
        held.execute("INSERT INTO w VALUES (-1, -1)", ())
            .await
            .unwrap();
        let patient = config("busy8").busy_timeout(Duration::from_secs(300));
        let mut other = Connection::connect(Smol, leader_addr, patient)
            .await
            .unwrap();
        let mut tx = other.begin().await.unwrap();
        // Retried, the write would wait out the 300 s budget: it must answer well before.
        let answer = smol::future::or(
            async { Some(tx.execute("INSERT INTO w VALUES (-2, -2)", ()).await) },
            async {
                smol::Timer::after(Duration::from_secs(120)).await;
                None
            },
        )
        .await;
        let e = answer
            .expect("BUSY inside a transaction was retried")
            .unwrap_err();
        assert!(e.is_busy(), "{e:?}");
        assert!(!e.is_ambiguous());
        tx.rollback().await.unwrap();
        held.rollback().await.unwrap();
    });
}

#[derive(Debug)]
enum AppError {
    Db(Error),
    Refused,
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Db(e)
    }
}

#[test]
fn everyday_types_and_ergonomics() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "ergo";
        let mut conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
        conn.execute("CREATE TABLE t (id INTEGER, f REAL)", ())
            .await
            .unwrap();

        // The closure's own error type; an Err rolls back.
        let r: Result<(), AppError> = conn
            .transaction(async |tx| {
                tx.execute("INSERT INTO t VALUES (1, 0)", ()).await?;
                Err(AppError::Refused)
            })
            .await;
        assert!(matches!(r, Err(AppError::Refused)), "{r:?}");
        let r: Result<i64, AppError> = conn
            .transaction(async |tx| {
                tx.execute("INSERT INTO t VALUES (2, 0)", ()).await?;
                Ok(tx.fetch_val("SELECT count(*) FROM t", ()).await?)
            })
            .await;
        assert_eq!(r.unwrap(), 1);
        let r: Result<(), AppError> = conn
            .transaction(async |tx| {
                tx.execute("INSERT INTO nosuch VALUES (1)", ()).await?;
                Ok(())
            })
            .await;
        assert!(matches!(r, Err(AppError::Db(Error::Server(_)))), "{r:?}");

        // An empty result still names its columns.
        let rows = conn
            .fetch("SELECT id, f AS ratio FROM t WHERE id < 0", ())
            .await
            .unwrap();
        assert!(rows.is_empty());
        let names: Vec<&str> = rows.columns().iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["id", "ratio"]);

        // u64 (range-checked) and f32, both ways.
        let big = i64::MAX as u64;
        conn.execute("INSERT INTO t VALUES (?, ?)", (big, 1.5f32))
            .await
            .unwrap();
        let row = conn
            .fetch_one("SELECT id, f FROM t WHERE id = ?", (big,))
            .await
            .unwrap();
        assert_eq!(row.get::<u64, _>("id").unwrap(), big);
        assert_eq!(row.get::<f32, _>("f").unwrap(), 1.5);
        let e = conn
            .execute("INSERT INTO t VALUES (?, 0)", (u64::MAX,))
            .await
            .unwrap_err();
        assert!(
            matches!(e.misuse(), Some(Misuse::ParamOutOfRange { index: 1, .. })),
            "{e:?}"
        );
        let e = conn.fetch_val::<u32>("SELECT -1", ()).await.unwrap_err();
        assert!(matches!(e, Error::Conversion { .. }), "{e:?}");

        // A statement that returns rows is refused by execute, pointing to fetch.
        for sql in ["SELECT 1", "values (1)", "EXPLAIN SELECT 1"] {
            let e = conn.execute(sql, ()).await.unwrap_err();
            assert!(matches!(e.misuse(), Some(Misuse::ReturnsRows(_))), "{e:?}");
            assert!(e.to_string().contains("fetch"), "{e}");
        }
        assert_eq!(count(&mut conn, "SELECT count(*) FROM t").await, 2);
    });
}

/// Runs a setup script on one of the pool's connections.
async fn setup(pool: &Pool<Smol>, script: &str) {
    let mut conn = pool.acquire().await.unwrap();
    conn.execute_batch(script).await.unwrap();
}
