//! Silence: a node that accepts and never answers, and a paused leader. Every public call
//! returns a timeout error within its deadline plus 250 ms, and the pool recovers
//! afterwards.

use std::future::Future;
use std::time::{Duration, Instant};

use dqlite_client::{Config, Connection, Error, Pool, PoolOptions};
use dqlite_smol::Smol;
use dqlite_tests::fake_server::{Behaviour, FakeServer};
use dqlite_tests::harness::Cluster;

const SLACK: Duration = Duration::from_millis(250);

/// Runs `f`, checks it failed with a deadline error within `deadline + SLACK`.
async fn times_out<T: std::fmt::Debug>(
    what: &str,
    deadline: Duration,
    f: impl Future<Output = Result<T, Error>>,
) {
    let start = Instant::now();
    let result = f.await;
    let took = start.elapsed();
    println!("silence: {what} returned after {took:?} (deadline {deadline:?}): {result:?}");
    let err = result.expect_err(what);
    assert!(
        err.is_timeout() || matches!(err, Error::NoLeader(_)),
        "{what}: expected a timeout, got {err:?}"
    );
    assert!(
        took <= deadline + SLACK,
        "{what} took {took:?}, deadline {deadline:?}"
    );
}

fn short() -> Config {
    Config::new()
        .dial_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_millis(600))
        .frame_timeout(Duration::from_millis(400))
        .probe_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(900))
}

#[test]
fn silent_node_every_call_times_out_on_time() {
    let node = FakeServer::start(Behaviour::Silent);
    let addr = node.address();
    smol::block_on(async {
        // OPEN is never answered: the request deadline applies.
        times_out(
            "connect",
            Duration::from_millis(600),
            Connection::connect(Smol, &addr, short()),
        )
        .await;
        // Probes time out; the whole connect is bounded by connect_timeout.
        times_out(
            "connect_cluster",
            Duration::from_millis(900),
            dqlite_client::connect_cluster(Smol, &[addr.as_str()], short()),
        )
        .await;
        let options = PoolOptions {
            min_size: 0,
            max_size: 2,
            acquire_timeout: Duration::from_millis(700),
            ..PoolOptions::default()
        };
        let pool = Pool::new(Smol, &[addr.as_str()], short(), options)
            .await
            .unwrap();
        times_out("pool.acquire", Duration::from_millis(700), pool.acquire()).await;
        times_out(
            "pool.execute",
            Duration::from_millis(700) * 3,
            pool.execute("SELECT 1", ()),
        )
        .await;
        assert_eq!(pool.status().in_use, 0);
    });
    assert!(node.accepted() >= 3);
}

#[test]
fn paused_leader_times_out_then_pool_recovers() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let addrs: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let seeds: Vec<&str> = addrs.iter().map(String::as_str).collect();
    smol::block_on(async {
        let config = || {
            short()
                .database("silence")
                .connect_timeout(Duration::from_secs(5))
        };
        let mut conn = Connection::connect(Smol, &addrs[leader], config())
            .await
            .unwrap();
        conn.execute("CREATE TABLE s (x INTEGER)", ())
            .await
            .unwrap();
        let options = PoolOptions {
            min_size: 2,
            max_size: 4,
            acquire_timeout: Duration::from_secs(2),
            ..PoolOptions::default()
        };
        let pool = Pool::new(Smol, &seeds, config(), options).await.unwrap();

        cluster.pause(leader);
        times_out(
            "execute on a paused leader",
            Duration::from_millis(600),
            conn.execute("INSERT INTO s VALUES (1)", ()),
        )
        .await;
        assert!(
            conn.is_broken(),
            "a timed-out connection must not be reused"
        );
        let mut stream_conn = Connection::connect(Smol, &addrs[leader], config()).await;
        // Dialing works (the kernel accepts), OPEN does not answer.
        assert!(
            stream_conn.as_mut().err().is_some_and(|e| e.is_timeout()),
            "{stream_conn:?}"
        );
        let held = pool.acquire().await.unwrap();
        drop(held);
        let mut c = pool.acquire().await.unwrap();
        times_out(
            "pooled fetch on a paused leader",
            Duration::from_millis(600),
            c.fetch("SELECT 1", ()),
        )
        .await;
        drop(c);
        assert_eq!(pool.status().in_use, 0);

        cluster.resume(leader);
        // The pool serves queries again, on whichever node now leads.
        let start = Instant::now();
        loop {
            match pool.execute("INSERT INTO s VALUES (2)", ()).await {
                Ok(_) => break,
                Err(e) if start.elapsed() < Duration::from_secs(30) => {
                    println!("silence: while recovering: {e}");
                    smol::Timer::after(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("pool did not recover: {e:?}"),
            }
        }
        println!(
            "silence: pool recovered {:?} after the leader resumed",
            start.elapsed()
        );
        let n: i64 = pool
            .fetch_val("SELECT count(*) FROM s WHERE x = 2", ())
            .await
            .unwrap();
        assert!(n >= 1);
    });
}
