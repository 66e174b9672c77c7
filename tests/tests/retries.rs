//! What is retried automatically, against a real cluster: `SQLITE_BUSY` within its budget
//! (and reported once the budget is spent), and "not leader" in the pool's own methods.

use std::time::Duration;

use dqlite_client::{Config, Connection, Pool, PoolOptions};
use dqlite_smol::Smol;
use dqlite_tests::harness::Cluster;

#[test]
fn busy_is_retried_within_budget_and_reported_after_it() {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let addr = cluster.db_address(leader).to_string();
    smol::block_on(async {
        let config = || Config::new().database("busy");
        let mut holder = Connection::connect(Smol, &addr, config()).await.unwrap();
        holder
            .execute("CREATE TABLE b (x INTEGER)", ())
            .await
            .unwrap();
        let mut tx = holder.begin().await.unwrap();
        tx.execute("INSERT INTO b VALUES (1)", ()).await.unwrap();

        // No retries: the lock held by the open transaction is reported as BUSY, a clean
        // failure (nothing applied), not an ambiguous one.
        let mut eager = Connection::connect(Smol, &addr, config().busy_timeout(Duration::ZERO))
            .await
            .unwrap();
        let e = eager
            .execute("INSERT INTO b VALUES (2)", ())
            .await
            .unwrap_err();
        assert!(e.is_busy(), "{e:?}");
        assert!(!e.is_ambiguous());

        // With the default budget, the write waits out a lock released 150 ms later.
        let mut patient = Connection::connect(Smol, &addr, config()).await.unwrap();
        let write = patient.execute("INSERT INTO b VALUES (3)", ());
        let release = async {
            smol::Timer::after(Duration::from_millis(150)).await;
            tx.commit().await.unwrap();
        };
        let (written, ()) = futures_util::future::join(write, release).await;
        written.expect("BUSY retried until the lock was released");
        let all = patient
            .fetch_all("SELECT x FROM b ORDER BY x", ())
            .await
            .unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
    });
}

#[test]
fn pool_retries_not_leader_on_the_new_leader() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let addrs: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let seeds: Vec<&str> = addrs.iter().map(String::as_str).collect();
    smol::block_on(async {
        let options = PoolOptions {
            min_size: 2,
            max_size: 2,
            ..PoolOptions::default()
        };
        let pool = Pool::new(Smol, &seeds, Config::new().database("nl"), options)
            .await
            .unwrap();
        pool.execute("CREATE TABLE n (x INTEGER)", ())
            .await
            .unwrap();
        assert_eq!(pool.acquire().await.unwrap().address(), addrs[leader]);

        // Leadership moves: the idle connections now point at a follower.
        let to = cluster.transfer_leadership(leader).unwrap();
        // The first call hits "not leader" on an idle connection, which had no effect; the
        // pool drops it, finds the new leader and runs the write there, once.
        pool.execute("INSERT INTO n VALUES (1)", ()).await.unwrap();
        assert_eq!(pool.acquire().await.unwrap().address(), to);
        let n: i64 = pool.fetch_val("SELECT count(*) FROM n", ()).await.unwrap();
        assert_eq!(n, 1);
    });
}
