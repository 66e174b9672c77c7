//! The statement cache against real clusters: SQL with parameters is prepared once per
//! connection and executed by id; eviction finalizes (so ids the server reuses never reach
//! the wrong statement), a new connection starts empty, a leadership change is survived, and
//! a call dropped at any poll (the PREPARE included) leaves the connection answering right.

use std::time::Duration;

use dqlite_client::{Config, Connection, Pool, PoolOptions, Value};
use dqlite_smol::Smol;
use dqlite_tests::cancel::drop_after;
use dqlite_tests::harness::Cluster;

fn config(db: &str) -> Config {
    Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(20))
}

#[test]
fn cached_statements_evict_finalize_and_survive_cancellation() {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let addr = cluster.db_address(leader).to_string();
    smol::block_on(async {
        // No busy-polling: a wait parks at once, so the drops below land mid-request.
        let small = config("cache").statement_cache(2).busy_poll(Duration::ZERO);
        let mut conn = Connection::connect(Smol, &addr, small).await.unwrap();
        conn.execute("CREATE TABLE t (k INTEGER, v TEXT)", ())
            .await
            .unwrap();
        assert_eq!(
            conn.cached_statements(),
            0,
            "SQL without parameters is not cached"
        );

        // Five statements in turn through a cache of two: every answer is its own.
        let shapes: Vec<String> = (0..5).map(|i| format!("SELECT ? + {i}")).collect();
        for round in 0..3i64 {
            for (i, sql) in shapes.iter().enumerate() {
                let got: i64 = conn.fetch_val(sql, (round,)).await.unwrap();
                assert_eq!(got, round + i as i64, "{sql}");
                assert!(conn.cached_statements() <= 2);
            }
        }
        // Hundreds of evictions: the server reuses the ids of finalized statements, and each
        // new statement answers for itself.
        for i in 0..300i64 {
            conn.execute(&format!("INSERT INTO t VALUES (?, 'v{i}')"), (i,))
                .await
                .unwrap();
            let v: String = conn
                .fetch_val(&format!("SELECT v FROM t WHERE k = ? AND {i} = {i}"), (i,))
                .await
                .unwrap();
            assert_eq!(v, format!("v{i}"));
        }
        assert_eq!(conn.cached_statements(), 2);

        // Pipelined executions share one prepared statement.
        let rows = (1000..1100i64).map(|k| (k, format!("p{k}")));
        let results = conn
            .execute_pipelined("INSERT INTO t VALUES (?, ?)", rows)
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let n: i64 = conn
            .fetch_val("SELECT count(*) FROM t WHERE k >= ?", (1000i64,))
            .await
            .unwrap();
        assert_eq!(n, 100);

        // Streams read by id too.
        let mut stream = conn
            .stream("SELECT k FROM t WHERE k >= ? ORDER BY k", (1090i64,))
            .await
            .unwrap();
        let mut seen = 0;
        while let Some(batch) = stream.next_batch().await.unwrap() {
            seen += batch.rows().count();
        }
        drop(stream);
        assert_eq!(seen, 10);

        // Dropped at every poll, including while the PREPARE of a new statement is out:
        // the next query answers for itself.
        let mut points = 0;
        for n in 1..200 {
            let sql = format!("SELECT ? * {n}");
            let done = drop_after(conn.fetch_val::<i64>(&sql, (2i64,)), n).await;
            let check: i64 = conn.fetch_val("SELECT ? - 1", (n as i64,)).await.unwrap();
            assert_eq!(check, n as i64 - 1);
            if let Some(v) = done {
                assert_eq!(v.unwrap(), 2 * n as i64);
                break;
            }
            points += 1;
        }
        println!("statement cache: dropped at {points} points");

        // prepare_cached warms the cache; a new connection starts empty; 0 turns it off.
        conn.prepare_cached("SELECT v FROM t WHERE k = ?")
            .await
            .unwrap();
        assert!(conn.cached_statements() >= 1);
        let mut fresh = Connection::connect(Smol, &addr, config("cache"))
            .await
            .unwrap();
        assert_eq!(fresh.cached_statements(), 0);
        let v: String = fresh
            .fetch_val("SELECT v FROM t WHERE k = ?", (7i64,))
            .await
            .unwrap();
        assert_eq!(v, "v7");
        assert_eq!(fresh.cached_statements(), 1);
        let mut uncached = Connection::connect(Smol, &addr, config("cache").statement_cache(0))
            .await
            .unwrap();
        let got: Vec<Vec<Value>> = uncached
            .fetch_all("SELECT v FROM t WHERE k = ?", (7i64,))
            .await
            .unwrap();
        assert_eq!(got, vec![vec![Value::from("v7")]]);
        assert_eq!(uncached.cached_statements(), 0);
    });
}

#[test]
fn cached_statements_never_outlive_a_leadership_change() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let seeds: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
    smol::block_on(async {
        let options = PoolOptions::new().min_size(2).max_size(2);
        let pool = Pool::new(Smol, &seeds, config("cache-leader"), options)
            .await
            .unwrap();
        pool.execute("CREATE TABLE t (k INTEGER)", ())
            .await
            .unwrap();
        for k in 0..10i64 {
            pool.execute("INSERT INTO t VALUES (?)", (k,))
                .await
                .unwrap();
        }
        cluster.transfer_leadership(leader).unwrap();
        // The pool's idle connections held statements on the old leader: the first call
        // sees "not leader" there and the retry runs on a new connection, which prepares
        // afresh on the new leader.
        for k in 10..20i64 {
            pool.execute("INSERT INTO t VALUES (?)", (k,))
                .await
                .unwrap();
        }
        let n: i64 = pool
            .fetch_val("SELECT count(*) FROM t WHERE k >= ?", (0i64,))
            .await
            .unwrap();
        assert_eq!(n, 20);
    });
}
