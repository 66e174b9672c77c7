//! Read coalescing in the middle of a multi-part result (`Config::stream_coalesce`) against a
//! real node, seen through a runtime that counts the client's direct socket reads: with it, a
//! long result is read straight from the socket between naps, a short one is not; without it,
//! never; the rows are the same either way; behind a slow link (naps that find nothing) the
//! result still arrives whole; and a stream dropped at any point (napping included) leaves the
//! connection answering its own queries.

mod support;

use std::time::Duration;

use dqlite_client::{Config, Connection};
use dqlite_tests::cancel::drop_after;
use dqlite_tests::harness::Cluster;
use dqlite_tests::proxy::Proxy;
use support::{reads_now, Counting};

const ROWS: i64 = 20_000;

/// Streams the first `limit` rows of `big` and returns (rows, sum of x, batches).
async fn stream_all(conn: &mut Connection<Counting>, limit: i64) -> (i64, i64, usize) {
    let mut stream = conn
        .stream("SELECT x, t FROM big WHERE x <= ? ORDER BY x", (limit,))
        .await
        .expect("stream");
    let (mut rows, mut sum, mut batches) = (0, 0, 0);
    while let Some(batch) = stream.next_batch().await.expect("batch") {
        batches += 1;
        for row in batch.rows() {
            match row {
                [dqlite_client::Value::Integer(x), dqlite_client::Value::Text(t)] => {
                    assert_eq!(t.as_str().len(), 40, "row {x}");
                    rows += 1;
                    sum += x;
                }
                other => panic!("unexpected row {other:?}"),
            }
        }
    }
    (rows, sum, batches)
}

#[test]
fn coalesced_reads_on_a_real_node() {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let address = cluster.db_address(leader).to_string();
    smol::block_on(async {
        // No busy-polling, so that every direct read counted is coalescing's.
        let config = Config::new().database("coalesce").busy_poll(Duration::ZERO);
        let connect = |address: String, config: Config| async move {
            Connection::connect(Counting, &address, config)
                .await
                .expect("connect")
        };
        let mut on = connect(address.clone(), config.clone()).await;
        let mut off = connect(
            address.clone(),
            config.clone().stream_coalesce(Duration::ZERO),
        )
        .await;
        on.execute_batch(&format!(
            "CREATE TABLE big (x INTEGER, t TEXT); \
             WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS}) \
             INSERT INTO big SELECT x, printf('%040d', x) FROM c"
        ))
        .await
        .expect("create big");
        let expected = (ROWS, ROWS * (ROWS + 1) / 2);

        let (n, (rows, sum, batches)) = reads_now(stream_all(&mut on, ROWS)).await;
        println!("stream_coalesce: {batches} batches, {n} direct reads");
        assert_eq!((rows, sum), expected);
        assert!(
            batches > 10,
            "only {batches} batches: not a multi-part result"
        );
        assert!(n > 0, "no direct reads mid-result with coalescing on");
        // A result of a few batches is read the usual way: no nap holds it back.
        let (n, (rows, _, batches)) = reads_now(stream_all(&mut on, 300)).await;
        assert_eq!(rows, 300);
        assert!((2..8).contains(&batches), "{batches} batches for 300 rows");
        assert_eq!(n, 0, "direct reads in a short result");
        let (n, (rows, sum, _)) = reads_now(stream_all(&mut off, ROWS)).await;
        assert_eq!((rows, sum), expected);
        assert_eq!(n, 0, "direct reads with coalescing off");

        // Behind a link that delays every chunk longer than a nap, naps often find nothing
        // and the connection waits for the reactor: the result still arrives whole.
        let proxy = Proxy::start(cluster.db_address(leader));
        let mut slow = connect(proxy.address().to_string(), config).await;
        proxy.set_latency(Duration::from_millis(3));
        let (_, (rows, sum, _)) = reads_now(stream_all(&mut slow, ROWS)).await;
        assert_eq!((rows, sum), expected);
        assert_eq!(
            slow.fetch_val::<i64>("SELECT 5", ()).await.expect("select"),
            5
        );

        // Dropped after 1, 2, … polls of reading the whole result over that link (so that
        // reads, naps included, are often pending): the connection answers its own queries
        // after each drop.
        let mut dropped = 0;
        for polls in 1..=40u32 {
            let done = drop_after(stream_all(&mut slow, 4_000), polls as usize).await;
            let v = i64::from(polls);
            assert_eq!(
                slow.fetch_val::<i64>("SELECT ?", (v,))
                    .await
                    .expect("select"),
                v
            );
            if done.is_none() {
                dropped += 1;
            }
        }
        println!("stream_coalesce: dropped at {dropped} of 40 points");
        assert!(dropped > 10, "too few cancellation points ({dropped})");
    });
}
