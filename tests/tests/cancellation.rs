//! Cancellation at every point: each public operation's future is dropped after N polls,
//! for every N until it completes, against the fake node and a real cluster. After each
//! drop the same connection (or pool) must answer a fresh query with its own result, never
//! a stale one, and the pool must account for every connection. Also what the server does
//! with an abandoned query (it runs it to its end).

use std::sync::atomic::{AtomicI64, Ordering};

use dqlite_client::{Config, Connection, Pool, PoolOptions, Runtime, Value};
use dqlite_smol::Smol;
use dqlite_tests::cancel::drop_after;
use dqlite_tests::fake_server::{Behaviour, FakeServer};
use dqlite_tests::harness::Cluster;

static UNIQUE: AtomicI64 = AtomicI64::new(1_000);

/// The connection answers a fresh query with its own value.
async fn answers_fresh<R: Runtime>(conn: &mut Connection<R>) {
    let v = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let got: i64 = conn
        .fetch_val("SELECT ?", (v,))
        .await
        .expect("query after cancellation");
    assert_eq!(got, v, "stale answer after a cancelled operation");
    assert!(
        !conn.in_transaction(),
        "a cancelled transaction was left open"
    );
}

/// Drops `$op` after 1, 2, 3, ... polls until it completes once, checking the connection
/// after every drop. Returns how many cancellation points were exercised.
macro_rules! at_every_poll {
    ($name:literal, $conn:ident, $op:expr) => {{
        let mut points = 0usize;
        for n in 1..10_000 {
            let completed = drop_after($op, n).await.is_some();
            answers_fresh(&mut $conn).await;
            if completed {
                break;
            }
            points += 1;
        }
        println!("cancellation: {} dropped at {points} point(s)", $name);
        points
    }};
}

/// Every connection-level operation, cancelled at every poll.
async fn connection_ops<R: Runtime>(conn: &mut Connection<R>, real: bool) {
    let big = if real {
        "SELECT x FROM big"
    } else {
        "SELECT many"
    };
    let mut c = conn;
    let mut total = 0;
    total += at_every_poll!("execute", c, async {
        c.execute("INSERT INTO t VALUES (?)", (1i64,))
            .await
            .unwrap()
    });
    total += at_every_poll!("fetch", c, async {
        c.fetch("SELECT ?", (7i64,)).await.unwrap()
    });
    total += at_every_poll!("fetch_all", c, async {
        let rows = c.fetch_all(big, ()).await.unwrap();
        assert_eq!(rows.len(), 1000);
    });
    total += at_every_poll!("stream", c, async {
        let mut s = c.stream(big, ()).await.unwrap();
        let first = s.next_batch().await.unwrap().unwrap();
        assert!(!first.is_empty());
    });
    total += at_every_poll!("prepare", c, async {
        let stmt = c.prepare("SELECT ?").await.unwrap();
        let rows = c.fetch_prepared(&stmt, (3i64,)).await.unwrap();
        assert_eq!(rows[0].values(), [Value::Integer(3)]);
    });
    if real {
        total += at_every_poll!("transaction", c, async {
            let mut tx = c.begin().await.unwrap();
            tx.execute("INSERT INTO t VALUES (?)", (2i64,))
                .await
                .unwrap();
            let mut sp = tx.begin().await.unwrap();
            sp.execute("INSERT INTO t VALUES (?)", (3i64,))
                .await
                .unwrap();
            sp.commit().await.unwrap();
            tx.commit().await.unwrap();
        });
        total += at_every_poll!("cluster", c, async { c.cluster().await.unwrap() });
    }
    total += at_every_poll!("leader", c, async { c.leader().await.unwrap() });
    total += at_every_poll!("execute_pipelined", c, async {
        let results = c
            .execute_pipelined("INSERT INTO t VALUES (?)", (0..50i64).map(|i| (i,)))
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok));
    });
    // Socket timing decides how often each operation waits, but together they must have
    // been cut off many times for the test to mean anything.
    let floor = if real { 3 } else { 20 };
    assert!(
        total >= floor,
        "only {total} cancellation points were exercised"
    );
    println!("cancellation: {total} cancellation points on one connection");
}

/// Pool operations cancelled at every poll: no connection leaked or counted twice.
async fn pool_ops<R: Runtime>(pool: &Pool<R>, max: usize) {
    let mut points = 0;
    for n in 1..10_000 {
        let done = drop_after(pool.execute("INSERT INTO t VALUES (?)", (5i64,)), n)
            .await
            .is_some();
        let done2 = drop_after(
            async {
                pool.acquire()
                    .await
                    .unwrap()
                    .fetch_val::<i64>("SELECT ?", (1i64,))
                    .await
                    .unwrap()
            },
            n,
        )
        .await
        .is_some();
        assert_eq!(
            pool.status().in_use,
            0,
            "a cancelled operation kept a connection"
        );
        let v = UNIQUE.fetch_add(1, Ordering::Relaxed);
        assert_eq!(pool.fetch_val::<i64>("SELECT ?", (v,)).await.unwrap(), v);
        if done && done2 {
            break;
        }
        points += 1;
    }
    // Every permit came back: max_size connections can be held at once.
    let held = futures_util::future::join_all((0..max).map(|_| pool.acquire())).await;
    assert!(held.iter().all(Result::is_ok));
    assert_eq!(pool.status().in_use, max);
    drop(held);
    let status = pool.status();
    assert_eq!(status.in_use, 0);
    assert!(status.idle <= max, "{status:?}");
    println!("cancellation: {points} pool cancellation points");
}

#[test]
fn cancellation_against_fake_node() {
    let node = FakeServer::start(Behaviour::Answer);
    smol::block_on(async {
        let mut conn = Connection::connect(Smol, &node.address(), Config::new())
            .await
            .unwrap();
        connection_ops(&mut conn, false).await;
        let options = PoolOptions {
            min_size: 1,
            max_size: 4,
            ..PoolOptions::default()
        };
        let pool = Pool::new(Smol, &[node.address().as_str()], Config::new(), options)
            .await
            .unwrap();
        pool_ops(&pool, 4).await;
    });
}

/// The tables `connection_ops` uses on a real server: `t`, and `big` with 1000 rows.
async fn create_tables<R: Runtime>(conn: &mut Connection<R>) {
    conn.execute_batch(
        "CREATE TABLE t (x INTEGER); CREATE TABLE big (x INTEGER); \
         WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x < 999) \
         INSERT INTO big SELECT x FROM c",
    )
    .await
    .unwrap();
}

#[test]
fn cancellation_against_real_cluster() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let address = cluster.db_address(leader).to_string();
    smol::block_on(async {
        let config = || Config::new().database("cancel");
        let mut conn = Connection::connect(Smol, &address, config()).await.unwrap();
        create_tables(&mut conn).await;
        connection_ops(&mut conn, true).await;
        let options = PoolOptions {
            min_size: 1,
            max_size: 4,
            ..PoolOptions::default()
        };
        let pool = Pool::new(Smol, &[address.as_str()], config(), options)
            .await
            .unwrap();
        pool_ops(&pool, 4).await;
    });
}

#[test]
fn cancellation_against_real_node_in_one_byte_slices() {
    // Every byte in its own write: reads complete a little at a time, so operations are
    // cut off at many more points than on a fast loopback.
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let proxy = dqlite_tests::proxy::Proxy::start(cluster.db_address(leader));
    let address = proxy.address().to_string();
    smol::block_on(async {
        let mut conn = Connection::connect(Smol, &address, Config::new().database("sliced"))
            .await
            .unwrap();
        create_tables(&mut conn).await;
        proxy.slice_writes(true);
        connection_ops(&mut conn, true).await;
    });
}

/// What a dqlite server does with an abandoned query: it runs it to its end. The server
/// reads nothing from a connection while it sends a result, so the INTERRUPT the client
/// queues behind the abandoned query is read only after the last batch: every byte of the
/// result crosses the wire (counted by a proxy in front of the leader), and the connection
/// then answers the next query. The result (about 80 MB) is far larger than what the
/// sockets between the server and the client can buffer, so a server that stopped at the
/// INTERRUPT would have sent much less.
#[test]
fn an_abandoned_query_runs_to_its_end_on_the_server() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let proxy = dqlite_tests::proxy::Proxy::start(cluster.db_address(leader));
    let address = proxy.address().to_string();
    let sql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 2000000) \
               SELECT x, 'row number ' || x FROM c";
    smol::block_on(async {
        let config = Config::new()
            .database("abandoned")
            .request_timeout(std::time::Duration::from_secs(300));
        let mut conn = Connection::connect(Smol, &address, config).await.unwrap();
        answers_fresh(&mut conn).await;

        // The whole result, read.
        let before = proxy.bytes_to_client();
        let mut stream = conn.stream(sql, ()).await.unwrap();
        let mut rows = 0usize;
        while let Some(batch) = stream.next_batch().await.unwrap() {
            rows += batch.len();
        }
        drop(stream);
        let whole = proxy.bytes_to_client() - before;
        assert_eq!(rows, 2_000_000);

        // The same query, abandoned after its first batch; the next query waits for the
        // rest of the result to be read and dropped.
        let before = proxy.bytes_to_client();
        let mut stream = conn.stream(sql, ()).await.unwrap();
        let first = stream.next_batch().await.unwrap().expect("a first batch");
        assert!(!first.is_last(), "the result fits in one batch");
        drop(stream);
        answers_fresh(&mut conn).await;
        let abandoned = proxy.bytes_to_client() - before;
        assert!(
            abandoned >= whole,
            "the server stopped the abandoned query: {abandoned} bytes sent, the whole \
             result is {whole}"
        );
    });
}
