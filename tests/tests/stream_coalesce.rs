//! Read coalescing in the middle of a multi-part result (`Config::stream_coalesce`) against a
//! real node, seen through a runtime that counts the client's direct socket reads: with it, a
//! long result is read straight from the socket between naps, a short one is not; without it,
//! never; the rows are the same either way; behind a slow link (naps that find nothing) the
//! result still arrives whole; and a stream dropped at any point (napping included) leaves the
//! connection answering its own queries. On tokio, whose `sleep` rounds a 1 ms nap up to about
//! 2 ms, the adapter's own nap timer (a timerfd on Linux) carries the naps, and abandoning
//! naps mid-way does no harm.

mod support;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dqlite_client::{BoxFuture, Config, Connection, NapTimer, Runtime};
use dqlite_tests::cancel::drop_after;
use dqlite_tests::harness::Cluster;
use dqlite_tests::proxy::Proxy;
use dqlite_tokio::Tokio;
use support::{reads_now, Counting};

const ROWS: i64 = 20_000;

/// Streams the first `limit` rows of `big` and returns (rows, sum of x, batches).
async fn stream_all<R: Runtime>(conn: &mut Connection<R>, limit: i64) -> (i64, i64, usize) {
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

/// Creates `big`: `ROWS` rows of (x, 40-digit text of x).
async fn create_big<R: Runtime>(conn: &mut Connection<R>) {
    conn.execute_batch(&format!(
        "CREATE TABLE big (x INTEGER, t TEXT); \
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS}) \
         INSERT INTO big SELECT x, printf('%040d', x) FROM c"
    ))
    .await
    .expect("create big");
}

const EXPECTED: (i64, i64) = (ROWS, ROWS * (ROWS + 1) / 2);

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
        create_big(&mut on).await;
        let expected = EXPECTED;

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
        // (Rounds repeat on a busy machine until a few drops fell mid-result.)
        let mut dropped = 0;
        'rounds: for _ in 0..10 {
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
                    if dropped >= 10 {
                        break 'rounds;
                    }
                }
            }
        }
        println!("stream_coalesce: dropped mid-result {dropped} times");
        assert!(dropped > 0, "no drop ever fell in the middle of a result");
    });
}

/// Naps taken, and their total length in microseconds.
static NAPS: AtomicU64 = AtomicU64::new(0);
static NAPPED_MICROS: AtomicU64 = AtomicU64::new(0);

/// tokio, timing every nap: on the adapter's own nap timer (`precise`) or on `tokio::time`.
#[derive(Clone)]
struct TimedNaps {
    precise: bool,
}

impl Runtime for TimedNaps {
    type Stream = <Tokio as Runtime>::Stream;

    fn connect(&self, address: &str) -> BoxFuture<'static, io::Result<Self::Stream>> {
        Tokio.connect(address)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Tokio.sleep(duration)
    }

    fn nap_timer(&self) -> NapTimer {
        let timer: NapTimer = if self.precise {
            Tokio.nap_timer()
        } else {
            Box::new(|d| Tokio.sleep(d))
        };
        Box::new(move |d| {
            let nap = timer(d);
            Box::pin(async move {
                let t = Instant::now();
                nap.await;
                NAPS.fetch_add(1, Ordering::Relaxed);
                NAPPED_MICROS.fetch_add(t.elapsed().as_micros() as u64, Ordering::Relaxed);
            })
        })
    }
}

/// Streams the whole of `big` over `conn`: (naps taken, their mean length in µs).
async fn timed_naps(conn: &mut Connection<TimedNaps>) -> (u64, u64) {
    let (naps, micros) = (
        NAPS.load(Ordering::Relaxed),
        NAPPED_MICROS.load(Ordering::Relaxed),
    );
    let (rows, sum, _) = stream_all(conn, ROWS).await;
    assert_eq!((rows, sum), EXPECTED);
    let naps = NAPS.load(Ordering::Relaxed) - naps;
    let micros = NAPPED_MICROS.load(Ordering::Relaxed) - micros;
    (naps, micros.checked_div(naps).unwrap_or(0))
}

#[test]
fn tokio_naps_on_its_own_timer() {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let proxy = Proxy::start(cluster.db_address(leader));
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let config = Config::new()
            .database("tokio_naps")
            .busy_poll(Duration::ZERO);
        let connect = |precise: bool, address: String| {
            let config = config.clone();
            async move {
                Connection::connect(TimedNaps { precise }, &address, config)
                    .await
                    .expect("connect")
            }
        };
        let mut precise = connect(true, proxy.address().to_string()).await;
        let mut coarse = connect(false, proxy.address().to_string()).await;
        create_big(&mut precise).await;
        // A link that forwards a chunk a millisecond keeps the socket short of data, so the
        // client naps. Both read the whole result; the figures show what each timer makes of
        // a 1 ms nap.
        proxy.set_latency(Duration::from_millis(1));
        let mut taken = 0;
        for _ in 0..2 {
            let (naps, mean) = timed_naps(&mut precise).await;
            let (coarse_naps, coarse_mean) = timed_naps(&mut coarse).await;
            println!(
                "tokio naps of 1 ms: adapter timer {naps} naps, mean {mean} µs; \
                 tokio::time {coarse_naps} naps, mean {coarse_mean} µs"
            );
            if naps > 0 {
                assert!(mean >= 1000, "naps of 1 ms ended early (mean {mean} µs)");
            }
            taken += naps;
        }
        assert!(taken > 0, "no naps in two long results over a slow link");

        // Over a slow link, naps are abandoned at every point of the result: the connection
        // goes on answering, and its later naps still last their time.
        let mut slow = precise;
        proxy.set_latency(Duration::from_millis(3));
        let mut dropped = 0;
        'rounds: for _ in 0..10 {
            for polls in 1..=30u32 {
                if drop_after(stream_all(&mut slow, 4_000), polls as usize)
                    .await
                    .is_none()
                {
                    dropped += 1;
                }
                let v = i64::from(polls);
                assert_eq!(
                    slow.fetch_val::<i64>("SELECT ?", (v,))
                        .await
                        .expect("select"),
                    v
                );
                if dropped >= 10 {
                    break 'rounds;
                }
            }
        }
        assert!(dropped > 0, "no drop ever fell in the middle of a result");
        proxy.set_latency(Duration::from_millis(1));
        let (naps, mean) = timed_naps(&mut slow).await;
        println!("tokio naps after {dropped} abandoned streams: {naps} naps, mean {mean} µs");
        assert!(naps > 0, "no naps after abandoned streams");
        assert!(
            mean >= 1000,
            "naps ended early after abandoned ones ({mean} µs)"
        );
    });
}
