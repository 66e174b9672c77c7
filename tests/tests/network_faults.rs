//! The async client behind the fault-injecting proxy, in front of a real dqlite node: a
//! black hole, resets, truncation mid-frame, latency, and 1-byte slicing. Every call ends
//! within its deadline with a typed error, writes whose fate is unknown are ambiguous, and
//! new connections work once the network heals.

use std::time::{Duration, Instant};

use dqlite_client::{Config, Connection, Error};
use dqlite_smol::Smol;
use dqlite_tests::harness::Cluster;
use dqlite_tests::proxy::Proxy;

const SLACK: Duration = Duration::from_millis(250);

fn config() -> Config {
    Config::new()
        .database("net")
        .dial_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_millis(700))
        .frame_timeout(Duration::from_millis(500))
        .probe_timeout(Duration::from_millis(400))
        .connect_timeout(Duration::from_secs(1))
}

/// One node, a proxy in front of it, and a table `t` created through the proxy.
fn setup() -> (Cluster, Proxy) {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let proxy = Proxy::start(cluster.db_address(leader));
    smol::block_on(async {
        let mut c = Connection::connect(Smol, &proxy.address().to_string(), config())
            .await
            .unwrap();
        c.execute("CREATE TABLE t (x INTEGER)", ()).await.unwrap();
        c.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) \
             INSERT INTO t SELECT x FROM c",
            (),
        )
        .await
        .unwrap();
    });
    (cluster, proxy)
}

async fn within<T: std::fmt::Debug>(
    what: &str,
    deadline: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Error {
    let start = Instant::now();
    let r = f.await;
    let took = start.elapsed();
    println!("network: {what}: {took:?} (deadline {deadline:?}): {r:?}");
    assert!(took <= deadline + SLACK, "{what} took {took:?}");
    r.expect_err(what)
}

/// A fresh connection through the healed proxy reads all 5000 rows of `t`.
async fn sees_every_row(addr: &str) {
    let mut conn = Connection::connect(Smol, addr, config()).await.unwrap();
    let n: i64 = conn
        .fetch_val("SELECT count(*) FROM t WHERE x > 0", ())
        .await
        .unwrap();
    assert_eq!(n, 5000);
}

#[test]
fn black_hole_times_out_within_deadlines() {
    let (_cluster, proxy) = setup();
    let addr = proxy.address().to_string();
    smol::block_on(async {
        let mut conn = Connection::connect(Smol, &addr, config()).await.unwrap();
        proxy.black_hole(true);

        let e = within(
            "execute",
            Duration::from_millis(700),
            conn.execute("INSERT INTO t VALUES (0)", ()),
        )
        .await;
        assert!(
            e.is_ambiguous() && e.is_timeout(),
            "a sent write that timed out is ambiguous: {e:?}"
        );
        let e = within(
            "fetch",
            Duration::from_millis(700),
            conn.fetch("SELECT 1", ()),
        )
        .await;
        assert!(e.is_timeout(), "{e:?}");
        let e = within(
            "connect",
            Duration::from_millis(700),
            Connection::connect(Smol, &addr, config()),
        )
        .await;
        assert!(e.is_timeout(), "{e:?}");
        let e = within(
            "connect_cluster",
            Duration::from_secs(1),
            dqlite_client::connect_cluster(Smol, &[addr.as_str()], config()),
        )
        .await;
        assert!(e.is_timeout() || matches!(e, Error::NoLeader(_)), "{e:?}");
        // Healed: a new connection works. (A pool cannot sit behind this proxy: the node
        // names its own address as leader, which is not the proxy's. The pool's recovery
        // from silence is tested with a paused leader in silence.rs.)
        proxy.black_hole(false);
        sees_every_row(&addr).await;
    });
}

#[test]
fn resets_and_truncation_are_typed_and_classified() {
    let (_cluster, proxy) = setup();
    let addr = proxy.address().to_string();
    smol::block_on(async {
        // A reset under an idle connection: the next read fails as a connection error (a
        // read is never ambiguous) and the connection is broken for good.
        let mut conn = Connection::connect(Smol, &addr, config()).await.unwrap();
        proxy.reset_all();
        let e = conn.fetch("SELECT 1", ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(conn.is_broken());
        assert!(matches!(
            conn.fetch("SELECT 1", ()).await,
            Err(Error::Connection(_))
        ));

        // A reply cut mid-frame: a large result truncated after 1000 bytes.
        let mut conn = Connection::connect(Smol, &addr, config()).await.unwrap();
        proxy.truncate_after(1000);
        let e = conn.fetch_all("SELECT x FROM t", ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(conn.is_broken());
        proxy.no_truncation();

        // A write whose answer is cut off: it was sent, so its outcome is ambiguous.
        let mut conn = Connection::connect(Smol, &addr, config()).await.unwrap();
        proxy.truncate_after(4);
        let e = conn
            .execute("INSERT INTO t VALUES (-1)", ())
            .await
            .unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        proxy.no_truncation();

        // Latency beyond the request deadline is a timeout, within the deadline.
        let mut conn = Connection::connect(Smol, &addr, config()).await.unwrap();
        proxy.set_latency(Duration::from_millis(900));
        let e = within(
            "fetch under latency",
            Duration::from_millis(700),
            conn.fetch("SELECT 1", ()),
        )
        .await;
        assert!(e.is_timeout(), "{e:?}");
        proxy.set_latency(Duration::ZERO);

        // Healed: a fresh connection sees every row, and the ambiguous write either way.
        sees_every_row(&addr).await;
    });
}

#[test]
fn one_byte_slices_change_nothing() {
    let (_cluster, proxy) = setup();
    proxy.slice_writes(true);
    let addr = proxy.address().to_string();
    smol::block_on(async {
        let mut conn = Connection::connect(
            Smol,
            &addr,
            config()
                .request_timeout(Duration::from_secs(10))
                .frame_timeout(Duration::from_secs(10)),
        )
        .await
        .unwrap();
        conn.execute("INSERT INTO t VALUES (?)", (-5i64,))
            .await
            .unwrap();
        let rows = conn
            .fetch_all("SELECT x FROM t WHERE x > 4900 ORDER BY x", ())
            .await
            .unwrap();
        assert_eq!(rows.len(), 100);
        let sum: i64 = conn.fetch_val("SELECT sum(x) FROM t", ()).await.unwrap();
        assert_eq!(sum, 5000 * 5001 / 2 - 5);
    });
}
