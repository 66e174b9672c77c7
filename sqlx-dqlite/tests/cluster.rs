//! sqlx-dqlite against real dqlite clusters: queries, types, transactions, pools, `Any`,
//! failure semantics.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dqlite_tests::harness::Cluster;
use dqlite_tests::proxy::Proxy;
use sqlx::{Connection, Executor, Row};
use sqlx_dqlite::{Dqlite, DqliteConnectOptions, DqliteConnection, DqlitePool, DqlitePoolOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn nodes(cluster: &Cluster) -> Vec<String> {
    cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect()
}

fn url(cluster: &Cluster, db: &str) -> String {
    format!(
        "dqlite://{}/{db}?request_timeout=10",
        nodes(cluster).join(",")
    )
}

#[derive(Debug, PartialEq, sqlx::FromRow)]
struct Item {
    id: i64,
    name: String,
    price: f64,
    tag: Option<String>,
    data: Vec<u8>,
    small: i16,
    flag: bool,
}

#[test]
fn queries_rows_and_types_round_trip() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    runtime().block_on(async {
        let mut conn = DqliteConnection::connect(&url(&cluster, "types")).await.unwrap();
        sqlx::query(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, \
             tag TEXT, data BLOB, small INTEGER, flag BOOLEAN, tiny INTEGER)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let r = sqlx::query(
            "INSERT INTO items (name, price, tag, data, small, flag, tiny) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind("apple")
        .bind(1.25f64)
        .bind(Some("red".to_owned()))
        .bind(vec![1u8, 2, 3])
        .bind(-7i16)
        .bind(true)
        .bind(5i8)
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(r.rows_affected(), 1);
        assert_eq!(r.last_insert_rowid(), 1);
        let r = sqlx::query(
            "INSERT INTO items (name, price, tag, data, small, flag, tiny) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(String::from("pear"))
        .bind(2.5f32)
        .bind(None::<String>)
        .bind(&b"\x00\xff"[..])
        .bind(300i16)
        .bind(false)
        .bind(0i32)
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(r.last_insert_rowid(), 2);

        let items: Vec<Item> = sqlx::query_as(
            "SELECT id, name, price, tag, data, small, flag FROM items ORDER BY id",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            items,
            [
                Item {
                    id: 1,
                    name: "apple".into(),
                    price: 1.25,
                    tag: Some("red".into()),
                    data: vec![1, 2, 3],
                    small: -7,
                    flag: true,
                },
                Item {
                    id: 2,
                    name: "pear".into(),
                    price: 2.5,
                    tag: None,
                    data: vec![0, 255],
                    small: 300,
                    flag: false,
                },
            ]
        );

        // query_scalar, fetch_optional, borrowed decodes, names and ordinals.
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 2);
        let none: Option<i64> = sqlx::query_scalar("SELECT id FROM items WHERE id = ?")
            .bind(99i64)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        assert_eq!(none, None);
        let row = sqlx::query("SELECT name, data, tiny FROM items WHERE id = ?")
            .bind(1i64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let name: &str = row.get("name");
        let data: &[u8] = row.get(1);
        let tiny: i8 = row.get("tiny");
        assert_eq!((name, data, tiny), ("apple", &[1u8, 2, 3][..], 5));
        use sqlx::Column;
        assert_eq!(row.columns()[2].name(), "tiny");
        assert_eq!(row.columns()[2].ordinal(), 2);

        // Strict conversions: a TEXT is not an integer; NULL only into Option.
        let e = row.try_get::<i64, _>("name").unwrap_err();
        assert!(matches!(e, sqlx::Error::ColumnDecode { .. }), "{e:?}");
        let e = row.try_get::<i64, _>("missing").unwrap_err();
        assert!(matches!(e, sqlx::Error::ColumnNotFound(_)), "{e:?}");
        let row = sqlx::query("SELECT tag FROM items WHERE id = 2")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.get::<Option<String>, _>(0), None);
        assert!(row.try_get::<String, _>(0).is_err());

        // A streamed result larger than one batch, read to the end.
        let rows = sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) \
             SELECT x, printf('%0100d', x) AS pad FROM c",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(rows.len(), 5000);
        assert_eq!(rows[4999].get::<i64, _>(0), 5000);

        // fetch_optional on a big result, then the connection is still in step.
        let first: (i64,) = sqlx::query_as(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) \
             SELECT x FROM c",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(first, (1,));
        let n: i64 = sqlx::query_scalar("SELECT 41 + 1").fetch_one(&mut conn).await.unwrap();
        assert_eq!(n, 42);

        // A script of several statements through the executor, with a result.
        let r = conn
            .execute("INSERT INTO items (name) VALUES ('a'); INSERT INTO items (name) VALUES ('b')")
            .await
            .unwrap();
        assert!(r.rows_affected() >= 1);
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 4);

        // prepare reports the parameter count; describe is refused with a clear error.
        let stmt = (&mut conn)
            .prepare("SELECT id FROM items WHERE id > ? AND name <> ?")
            .await
            .unwrap();
        use sqlx::Statement;
        assert_eq!(stmt.parameters(), Some(sqlx::Either::Right(2)));
        let ids: Vec<i64> = stmt
            .query_scalar()
            .bind(1i64)
            .bind("a")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(ids, [2, 4]);
        let e = (&mut conn).describe("SELECT 1").await.unwrap_err();
        assert!(e.to_string().contains("describe"), "{e}");

        // A server error is a database error with SQLite's extended code.
        let e = sqlx::query("INSERT INTO items (id, name) VALUES (1, 'dup')")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let db = e.as_database_error().expect("a database error");
        assert!(db.is_unique_violation(), "{e:?}");
        assert_eq!(db.code().as_deref(), Some("1555"));
        assert!(!sqlx_dqlite::is_ambiguous(&e));
        // A refusal before sending: parameters that do not match the placeholders.
        let e = sqlx::query("SELECT ?").execute(&mut conn).await.unwrap_err();
        let code = e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some(sqlx_dqlite::CODE_MISUSE), "{e:?}");

        conn.ping().await.unwrap();
        conn.close().await.unwrap();
    });
}

async fn count(conn: &mut DqliteConnection) -> i64 {
    sqlx::query_scalar::<Dqlite, i64>("SELECT count(*) FROM t")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[test]
fn transactions_nest_as_savepoints_and_dropped_ones_roll_back() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    runtime().block_on(async {
        let mut conn = DqliteConnection::connect(&url(&cluster, "tx"))
            .await
            .unwrap();
        conn.execute("CREATE TABLE t (x INTEGER)").await.unwrap();

        // Commit, rollback.
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(count(&mut conn).await, 1);

        // Nested: the inner level rolled back, the outer committed.
        let mut outer = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (3)")
            .execute(&mut *outer)
            .await
            .unwrap();
        {
            let mut inner = outer.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (4)")
                .execute(&mut *inner)
                .await
                .unwrap();
            {
                let mut innermost = inner.begin().await.unwrap();
                sqlx::query("INSERT INTO t VALUES (5)")
                    .execute(&mut *innermost)
                    .await
                    .unwrap();
                innermost.commit().await.unwrap();
            }
            inner.rollback().await.unwrap();
        }
        {
            let mut inner = outer.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (6)")
                .execute(&mut *inner)
                .await
                .unwrap();
            // Dropped without commit: rolled back before the next request.
        }
        assert!(outer.is_in_transaction());
        sqlx::query("INSERT INTO t VALUES (7)")
            .execute(&mut *outer)
            .await
            .unwrap();
        outer.commit().await.unwrap();
        assert!(!conn.is_in_transaction());
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(xs, [1, 3, 7]);

        // A dropped outer transaction is rolled back; the connection goes on in autocommit.
        {
            let mut tx = conn.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (8)")
                .execute(&mut *tx)
                .await
                .unwrap();
            let _inner = tx.begin().await.unwrap();
        }
        assert!(!conn.is_in_transaction());
        assert_eq!(count(&mut conn).await, 3);
        // Another connection can write (no write lock left behind).
        let mut other = DqliteConnection::connect(&url(&cluster, "tx"))
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (9)")
            .execute(&mut other)
            .await
            .unwrap();

        // Connection::transaction: Err rolls back, Ok commits.
        let r: Result<(), sqlx::Error> = conn
            .transaction(|tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t VALUES (10)")
                        .execute(&mut **tx)
                        .await?;
                    Err(sqlx::Error::RowNotFound)
                })
            })
            .await;
        assert!(matches!(r, Err(sqlx::Error::RowNotFound)));
        conn.transaction(|tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t VALUES (11)")
                    .execute(&mut **tx)
                    .await?;
                Ok::<_, sqlx::Error>(())
            })
        })
        .await
        .unwrap();
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM t ORDER BY x")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(xs, [1, 3, 7, 9, 11]);

        // Statements sqlx sends to `execute` whatever they are: a writing WITH, PRAGMAs.
        let r = sqlx::query("WITH c(x) AS (VALUES (20), (21)) INSERT INTO t SELECT x FROM c")
            .execute(&mut conn)
            .await
            .unwrap();
        assert_eq!(r.rows_affected(), 2);
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&mut conn)
            .await
            .unwrap();
        let cols: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('t')")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(cols, ["x"]);
        let info = sqlx::query("PRAGMA table_info(t)")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(info.len(), 1);

        // A transaction begun with SQL: ping fails while it is open.
        sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
        assert!(conn.ping().await.is_err());
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        conn.ping().await.unwrap();
        // Through a pool, such a connection is closed when it comes back, and the write lock
        // it held is released.
        let pool: DqlitePool = DqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url(&cluster, "tx"))
            .await
            .unwrap();
        let mut pooled = pool.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *pooled)
            .await
            .unwrap();
        drop(pooled);
        let mut pooled = pool.acquire().await.unwrap();
        assert!(!pooled.as_client().in_transaction());
        sqlx::query("INSERT INTO t VALUES (30)")
            .execute(&mut *pooled)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (31)")
            .execute(&mut other)
            .await
            .unwrap();
        drop(pooled);

        // begin_with at the outer level; a statement for a nested level is refused.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.unwrap();
        assert!(matches!(
            tx.begin_with("SAVEPOINT x").await,
            Err(sqlx::Error::InvalidSavePointStatement)
        ));
        tx.rollback().await.unwrap();
    });
}

#[test]
fn a_pool_serves_32_tasks_on_the_leader() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    runtime().block_on(async {
        let pool: DqlitePool = DqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&format!("{}&begin=immediate", url(&cluster, "pool")))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE p (task INTEGER, n INTEGER, PRIMARY KEY (task, n))")
            .execute(&pool)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..32i64)
            .map(|task| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for n in 0..20i64 {
                        if n % 5 == 0 {
                            let mut tx = pool.begin().await.unwrap();
                            sqlx::query("INSERT INTO p VALUES (?, ?)")
                                .bind(task)
                                .bind(n)
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                            tx.commit().await.unwrap();
                        } else {
                            sqlx::query("INSERT INTO p VALUES (?, ?)")
                                .bind(task)
                                .bind(n)
                                .execute(&pool)
                                .await
                                .unwrap();
                        }
                    }
                    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM p WHERE task = ?")
                        .bind(task)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    assert_eq!(mine, 20);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM p")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 32 * 20);
        assert!(pool.size() <= 8);
        pool.close().await;
    });
}

#[test]
fn any_pool_runs_on_dqlite_urls() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    sqlx::any::install_drivers(&[sqlx_dqlite::any::DRIVER]).unwrap();
    let all = nodes(&cluster);
    // sqlx::any parses the URL with one host; the others go to `nodes`.
    let url = format!("dqlite://{}/anydb?nodes={}", all[0], all[1..].join(","));
    runtime().block_on(async {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE a (id INTEGER PRIMARY KEY, name TEXT, score REAL, ok BOOLEAN)")
            .execute(&pool)
            .await
            .unwrap();
        for (i, name) in ["x", "y", "z"].iter().enumerate() {
            sqlx::query("INSERT INTO a (name, score, ok) VALUES (?, ?, ?)")
                .bind(*name)
                .bind(i as f64 / 2.0)
                .bind(i % 2 == 0)
                .execute(&pool)
                .await
                .unwrap();
        }
        let rows: Vec<(i64, String, f64, bool)> =
            sqlx::query_as("SELECT id, name, score, ok FROM a ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            rows,
            [
                (1, "x".into(), 0.0, true),
                (2, "y".into(), 0.5, false),
                (3, "z".into(), 1.0, true)
            ]
        );
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("DELETE FROM a")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM a")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 3);
        let conn = pool.acquire().await.unwrap();
        assert_eq!(conn.backend_name(), "dqlite");
        drop(conn);

        // Migrations through Any.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_b.sql"), "CREATE TABLE b (x INTEGER);").unwrap();
        std::fs::write(dir.path().join("2_b.sql"), "INSERT INTO b VALUES (7);").unwrap();
        let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
        migrator.run(&pool).await.unwrap();
        migrator.run(&pool).await.unwrap();
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM b")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(xs, [7]);
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(versions, [1, 2]);
    });
}

#[test]
fn not_leader_invalidates_the_connection_and_the_pool_replaces_it() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    runtime().block_on(async {
        let url = url(&cluster, "moves");
        let mut conn = DqliteConnection::connect(&url).await.unwrap();
        conn.execute("CREATE TABLE m (x INTEGER)").await.unwrap();
        let pool: DqlitePool = DqlitePoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("INSERT INTO m VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();

        let new_leader = cluster.transfer_leadership(leader).unwrap();
        // The old connection: the node answers "not leader", and from then on the connection
        // is invalid, so ping (which a pool calls) fails.
        let e = sqlx::query("INSERT INTO m VALUES (2)")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let db = sqlx_dqlite::dqlite_error(&e).expect("a dqlite error");
        assert!(db.is_not_leader(), "{e:?}");
        assert!(!sqlx_dqlite::is_ambiguous(&e));
        assert!(!conn.is_valid());
        assert!(conn.ping().await.is_err());

        // dqlite 1.11 compiles a statement before a new leader has applied the log it
        // inherited ("no such table: m" for a moment; docs/FAILURE_SEMANTICS.md, "Server
        // generations"): a query naming no table waits for it, on every generation.
        let mut on_new_leader = DqliteConnection::connect(&url).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&mut on_new_leader)
            .await
            .unwrap();
        // The pool's idle connection fails its ping on acquire and is replaced: the next
        // query runs on the new leader.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match sqlx::query("INSERT INTO m VALUES (3)").execute(&pool).await {
                Ok(_) => break,
                Err(e) => {
                    let not_leader =
                        sqlx_dqlite::dqlite_error(&e).is_some_and(|d| d.is_not_leader());
                    assert!(not_leader, "{e:?}");
                    assert!(
                        Instant::now() < deadline,
                        "the pool never reached the new leader"
                    );
                }
            }
        }
        let mut fresh = pool.acquire().await.unwrap();
        assert_eq!(fresh.address(), new_leader);
        let xs: Vec<i64> = sqlx::query_scalar("SELECT x FROM m ORDER BY x")
            .fetch_all(&mut *fresh)
            .await
            .unwrap();
        assert_eq!(xs, [1, 3]);
    });
}

#[test]
fn an_unanswered_commit_is_reported_ambiguous() {
    let cluster = Cluster::start(1);
    cluster.wait_ready(1);
    let proxy = Proxy::start(cluster.db_address(0));
    runtime().block_on(async {
        let config = dqlite_client::Config::new()
            .database("amb")
            .request_timeout(Duration::from_secs(1));
        let client = dqlite_tokio::connect_with(&proxy.address().to_string(), config)
            .await
            .unwrap();
        let options: DqliteConnectOptions = url(&cluster, "amb").parse().unwrap();
        let mut conn = DqliteConnection::from_client(client, options);
        conn.execute("CREATE TABLE t (x INTEGER)").await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        proxy.black_hole(true);
        let e = tx.commit().await.unwrap_err();
        assert!(sqlx_dqlite::is_ambiguous(&e), "{e:?}");
        let db = e.as_database_error().expect("a database error");
        assert_eq!(db.code().as_deref(), Some(sqlx_dqlite::CODE_AMBIGUOUS));
        assert!(!conn.is_valid());
        assert!(conn.ping().await.is_err());

        // An autocommit write that goes unanswered is ambiguous too; a read is not.
        proxy.black_hole(false);
        let client = dqlite_tokio::connect_with(
            &proxy.address().to_string(),
            dqlite_client::Config::new()
                .database("amb")
                .request_timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
        let mut conn = DqliteConnection::from_client(client, url(&cluster, "amb").parse().unwrap());
        conn.ping().await.unwrap();
        proxy.black_hole(true);
        let e = sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(sqlx_dqlite::is_ambiguous(&e), "{e:?}");
        proxy.black_hole(false);
    });
}

#[derive(Debug)]
enum Outcome {
    Acknowledged(i64),
    Ambiguous(i64),
    Failed(i64),
}

#[test]
fn leader_killed_under_a_sqlx_pool_loses_and_duplicates_no_acknowledged_write() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let rt = runtime();
    let url = url(&cluster, "set");
    let pool: DqlitePool = rt.block_on(async {
        let pool = DqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&url)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE s (x INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        pool
    });
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok_after_kill = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..8i64)
        .map(|w| {
            let (pool, killed, ok_after_kill) =
                (pool.clone(), killed.clone(), ok_after_kill.clone());
            rt.spawn(async move {
                let mut outcomes = Vec::new();
                let started = Instant::now();
                for n in 0.. {
                    use std::sync::atomic::Ordering::SeqCst;
                    // Stop once 200 writes were acknowledged after the kill (or after 90 s).
                    if ok_after_kill.load(SeqCst) >= 200
                        || started.elapsed() > Duration::from_secs(90)
                    {
                        break;
                    }
                    let x = w * 1_000_000 + n;
                    let was_killed = killed.load(SeqCst);
                    match sqlx::query("INSERT INTO s VALUES (?)")
                        .bind(x)
                        .execute(&pool)
                        .await
                    {
                        Ok(_) => {
                            if was_killed {
                                ok_after_kill.fetch_add(1, SeqCst);
                            }
                            outcomes.push(Outcome::Acknowledged(x));
                        }
                        Err(e) if sqlx_dqlite::is_ambiguous(&e) => {
                            outcomes.push(Outcome::Ambiguous(x))
                        }
                        Err(e) => {
                            outcomes.push(Outcome::Failed(x));
                            let known = matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)
                                || sqlx_dqlite::dqlite_error(&e).is_some();
                            assert!(known, "unexpected error during failover: {e:?}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                outcomes
            })
        })
        .collect();
    // Kill the leader once writes are flowing.
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM s")
                .fetch_one(&pool)
                .await
                .unwrap();
            if n >= 100 {
                break;
            }
            assert!(Instant::now() < deadline, "writes did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    cluster.kill(leader);
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let mut all = Vec::new();
        for w in writers {
            all.extend(w.await.unwrap());
        }
        all
    });
    let present: Vec<i64> = rt.block_on(async {
        sqlx::query_scalar("SELECT x FROM s")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for x in &present {
        *counts.entry(*x).or_default() += 1;
    }
    let (mut acked, mut ambiguous, mut failed) = (0, 0, 0);
    for o in &outcomes {
        match o {
            Outcome::Acknowledged(x) => {
                acked += 1;
                assert_eq!(
                    counts.get(x),
                    Some(&1),
                    "acknowledged write {x} lost or duplicated"
                );
            }
            Outcome::Ambiguous(x) => {
                ambiguous += 1;
                assert!(counts.get(x).copied().unwrap_or(0) <= 1, "{x} duplicated");
            }
            Outcome::Failed(x) => {
                failed += 1;
                assert_eq!(counts.get(x), None, "write {x} reported failed is present");
            }
        }
    }
    assert!(counts.values().all(|&c| c == 1), "a value is duplicated");
    assert!(
        ok_after_kill.load(std::sync::atomic::Ordering::SeqCst) >= 200,
        "the pool did not recover on the new leader"
    );
    eprintln!("set check: {acked} acknowledged, {ambiguous} ambiguous, {failed} failed");
}
