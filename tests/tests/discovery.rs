//! Leader discovery and node-level requests against real clusters: nodes listed under host
//! names, a pool seeded with a follower only, the strict redirect policy, every node down,
//! and `NodeClient` on the leader and on a follower.

use std::future::Future;
use std::time::{Duration, Instant};

use dqlite_client::{
    Config, Connection, DiscoveryConfig, Error, NodeClient, NodeOutcome, NodeRole, Pool,
    PoolOptions, RedirectPolicy, Runtime,
};
use dqlite_tests::fake_server::{Behaviour, FakeServer};
use dqlite_tests::harness::{reserve_loopback_addr, Cluster};

/// Generous bound for waiting on a cluster event (never a timing assertion).
const EVENT_TIMEOUT: Duration = Duration::from_secs(60);

fn tokio_block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

fn config(db: &str) -> Config {
    Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(10))
}

/// `localhost:PORT` for node `i`: the nodes call themselves `127.0.0.1:PORT`.
fn localhost(cluster: &Cluster, i: usize) -> String {
    format!("localhost:{}", cluster.db_address(i).port())
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address:?}"))
}

/// The server version under test, from `DQLITE_SERVER_VERSION` (default 1.11.1, the
/// Debian bookworm server).
fn server_version() -> (u32, u32, u32) {
    let v = std::env::var("DQLITE_SERVER_VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "1.11.1".to_owned());
    let mut parts = v.trim().trim_start_matches('v').split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

/// Writes a row through `conn` and reads the table's row count back.
async fn round_trip<R: Runtime>(conn: &mut Connection<R>, marker: &str) -> i64 {
    conn.execute("CREATE TABLE IF NOT EXISTS t (name TEXT)", ())
        .await
        .unwrap();
    conn.execute("INSERT INTO t (name) VALUES (?)", (marker,))
        .await
        .unwrap();
    conn.fetch_val("SELECT count(*) FROM t WHERE name = ?", (marker,))
        .await
        .unwrap()
}

/// Every way in over one runtime: `connect_cluster` and a pool with `localhost` names, and
/// a pool and `connect_cluster` seeded with a single follower.
async fn reach_leader<R: Runtime>(rt: R, cluster: &Cluster, tag: &str) {
    let leader = cluster.leader().expect("a leader");
    let leader_port = cluster.db_address(leader).port();
    let follower = (0..cluster.size()).find(|&i| i != leader).unwrap();
    let names: Vec<String> = (0..cluster.size()).map(|i| localhost(cluster, i)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    // Host names for every node.
    let mut conn = dqlite_client::connect_cluster(rt.clone(), &names, config("disc"))
        .await
        .unwrap_or_else(|e| panic!("{tag}: connect_cluster with localhost names: {e}"));
    assert_eq!(port_of(conn.address()), leader_port, "{tag}");
    assert_eq!(round_trip(&mut conn, &format!("{tag}-names")).await, 1);

    let pool = Pool::new(rt.clone(), &names, config("disc"), PoolOptions::new())
        .await
        .unwrap_or_else(|e| panic!("{tag}: pool with localhost names: {e}"));
    pool.execute("INSERT INTO t (name) VALUES (?)", (format!("{tag}-pool"),))
        .await
        .unwrap();
    let n: i64 = pool
        .fetch_val(
            "SELECT count(*) FROM t WHERE name = ?",
            (format!("{tag}-pool"),),
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    pool.close().await;

    // A single follower, by its own address and by host name.
    let follower_ip = cluster.db_address(follower).to_string();
    let follower_name = localhost(cluster, follower);
    for seed in [follower_ip.as_str(), follower_name.as_str()] {
        let pool = Pool::new(rt.clone(), &[seed], config("disc"), PoolOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{tag}: pool seeded with follower {seed}: {e}"));
        let mut conn = pool.acquire().await.unwrap();
        assert_eq!(port_of(conn.address()), leader_port, "{tag} {seed}");
        assert_eq!(round_trip(&mut conn, &format!("{tag}-{seed}")).await, 1);
        drop(conn);
        pool.close().await;

        let mut conn = dqlite_client::connect_cluster(rt.clone(), &[seed], config("disc"))
            .await
            .unwrap_or_else(|e| panic!("{tag}: connect_cluster via follower {seed}: {e}"));
        assert_eq!(port_of(conn.address()), leader_port, "{tag} {seed}");
        let n: i64 = conn
            .fetch_val(
                "SELECT count(*) FROM t WHERE name = ?",
                (format!("{tag}-{seed}"),),
            )
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
}

#[test]
fn host_names_and_a_follower_only_seed_reach_the_leader() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    tokio_block_on(reach_leader(dqlite_tokio::Tokio, &cluster, "tokio"));
    smol::block_on(reach_leader(dqlite_smol::Smol, &cluster, "smol"));
    async_std::task::block_on(reach_leader(
        dqlite_async_std::AsyncStd::default(),
        &cluster,
        "async-std",
    ));

    // The adapters' own entry points, with host names.
    let names: Vec<String> = (0..3).map(|i| localhost(&cluster, i)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    tokio_block_on(async {
        let pool = dqlite_tokio::create_pool(&names).await.unwrap();
        let one: i64 = pool.fetch_val("SELECT 1", ()).await.unwrap();
        assert_eq!(one, 1);
    });

    // Strict policy: only listed spellings are dialled. A listed node that leads still
    // confirms itself under its own name; a follower alone is not enough.
    let strict = || {
        config("disc")
            .redirect_policy(RedirectPolicy::KnownNodes)
            .discovery(DiscoveryConfig {
                max_rounds: 2,
                redirects: RedirectPolicy::KnownNodes,
                ..DiscoveryConfig::default()
            })
    };
    tokio_block_on(async {
        let leader = cluster.leader().expect("a leader");
        let follower = (0..3).find(|&i| i != leader).unwrap();
        let mut conn = dqlite_tokio::connect_cluster(&names, strict())
            .await
            .unwrap();
        assert_eq!(
            port_of(conn.address()),
            cluster.db_address(leader).port(),
            "the listed leader confirms itself"
        );
        assert_eq!(conn.address(), localhost(&cluster, leader));
        let one: i64 = conn.fetch_val("SELECT 1", ()).await.unwrap();
        assert_eq!(one, 1);

        let seed = cluster.db_address(follower).to_string();
        let err = dqlite_tokio::connect_cluster(&[&seed], strict())
            .await
            .expect_err("strict policy must not follow the follower's hint");
        let Error::NoLeader(e) = &err else {
            panic!("expected NoLeader, got {err:?}")
        };
        let leader_addr = cluster.db_address(leader).to_string();
        assert!(
            matches!(&e.nodes[..], [(a, NodeOutcome::Redirected { to, followed: false })]
                if *a == seed && *to == leader_addr),
            "{e}"
        );
    });
}

#[test]
fn nodes_that_are_all_down_are_named_with_their_reasons() {
    let addrs: Vec<String> = (0..3)
        .map(|_| reserve_loopback_addr().to_string())
        .collect();
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    let check = |err: Error, timed_out: bool| {
        let Error::NoLeader(e) = &err else {
            panic!("expected NoLeader, got {err:?}")
        };
        assert_eq!(e.timed_out, timed_out, "{e}");
        assert_eq!(err.is_timeout(), timed_out, "{e}");
        assert!(e.no_node_reachable(), "{e}");
        let named: Vec<&str> = e.nodes.iter().map(|(a, _)| a.as_str()).collect();
        let mut sorted = named.clone();
        sorted.sort_unstable();
        let mut want = addrs.clone();
        want.sort_unstable();
        assert_eq!(sorted, want, "{e}");
        for (a, outcome) in &e.nodes {
            let NodeOutcome::Unreachable(why) = outcome else {
                panic!("{a}: {outcome}")
            };
            assert!(why.to_lowercase().contains("refused"), "{a}: {why}");
        }
        let msg = err.to_string();
        for a in &addrs {
            assert!(msg.contains(&format!("{a} unreachable")), "{msg}");
        }
    };
    // The connect deadline passes while discovery still has rounds to go.
    let short = || {
        Config::new()
            .connect_timeout(Duration::from_millis(800))
            .discovery(DiscoveryConfig {
                max_rounds: 1000,
                ..DiscoveryConfig::default()
            })
    };
    tokio_block_on(async {
        let err = dqlite_tokio::connect_cluster(&addrs, short())
            .await
            .expect_err("nothing listens");
        check(err, true);
        let err = dqlite_tokio::create_pool_with(&addrs, short(), PoolOptions::new())
            .await
            .expect_err("nothing listens");
        check(err, true);
        // The rounds run out first: the same report, not a timeout.
        let few = Config::new().discovery(DiscoveryConfig {
            max_rounds: 2,
            ..DiscoveryConfig::default()
        });
        let err = dqlite_tokio::connect_cluster(&addrs, few)
            .await
            .expect_err("nothing listens");
        check(err, false);
    });
    smol::block_on(async {
        let pool = dqlite_smol::create_pool_with(&addrs, short(), PoolOptions::new().min_size(0))
            .await
            .unwrap();
        let err = pool.acquire().await.expect_err("nothing listens");
        check(err, true);
    });
}

/// Waits until `f` returns `Some`, up to [`EVENT_TIMEOUT`].
async fn eventually<R: Runtime, T, F: AsyncFnMut() -> Option<T>>(
    rt: &R,
    what: &str,
    mut f: F,
) -> T {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        rt.sleep(Duration::from_millis(100)).await;
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn node_client_serves_cluster_requests_on_leader_and_followers() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    let rt = dqlite_tokio::Tokio;
    tokio_block_on(async {
        let leader = cluster.leader().expect("a leader");
        let follower = (0..3).find(|&i| i != leader).unwrap();
        let leader_addr = cluster.db_address(leader).to_string();
        let follower_addr = cluster.db_address(follower).to_string();

        // Data to dump, written on the leader.
        let marker = "dump-marker-5e1f0c";
        let mut conn = Connection::connect(rt, &leader_addr, config("dumped"))
            .await
            .unwrap();
        conn.execute("CREATE TABLE d (v TEXT)", ()).await.unwrap();
        conn.execute("INSERT INTO d (v) VALUES (?)", (marker,))
            .await
            .unwrap();

        let mut on_leader = dqlite_tokio::connect_node(&leader_addr).await.unwrap();
        let mut on_follower: NodeClient<dqlite_tokio::Tokio> =
            dqlite_tokio::connect_node_with(&follower_addr, config("unused"))
                .await
                .unwrap();
        assert_eq!(on_follower.address(), follower_addr);

        // leader() and cluster() on both.
        for node in [&mut on_leader, &mut on_follower] {
            // A follower learns who leads from heartbeats: wait until it names a leader.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let l = loop {
                if let Some(l) = node.leader().await.unwrap() {
                    break l;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no leader named in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(l.address.as_str(), leader_addr, "asked {}", node.address());
            let members = node.cluster().await.unwrap();
            assert_eq!(members.len(), 3, "{members:?}");
            let voters = members
                .iter()
                .filter(|m| m.role == Some(NodeRole::Voter))
                .count();
            assert_eq!(voters, 3, "{members:?}");
        }
        let members = on_leader.cluster().await.unwrap();
        let id_of = |addr: &str| {
            members
                .iter()
                .find(|m| m.address.as_str() == addr)
                .map(|m| m.id)
                .unwrap()
        };

        // describe() and set_weight() read back, on each node.
        on_leader.set_weight(5).await.unwrap();
        on_follower.set_weight(7).await.unwrap();
        assert_eq!(on_leader.describe().await.unwrap().weight, 5);
        assert_eq!(on_follower.describe().await.unwrap().weight, 7);

        // dump() of the database the leader wrote, on the leader and (once replicated) on
        // the follower.
        let files = on_leader.dump("dumped").await.unwrap();
        assert_eq!(files[0].name.as_str(), "dumped", "{files:?}");
        assert!(
            files.iter().any(|f| contains(&f.data, marker.as_bytes())),
            "the leader's dump holds the row"
        );
        eventually(&rt, "the follower's dump to hold the row", async || {
            let files = on_follower.dump("dumped").await.unwrap();
            files
                .iter()
                .any(|f| contains(&f.data, marker.as_bytes()))
                .then_some(())
        })
        .await;

        // Requests that need the leader fail typed on a follower.
        let e = on_follower
            .transfer_leadership(id_of(&follower_addr))
            .await
            .expect_err("a follower cannot transfer");
        assert!(e.is_not_leader(), "{e:?}");
        let spare = reserve_loopback_addr().to_string();
        let e = on_follower
            .add_node(99, &spare)
            .await
            .expect_err("follower");
        assert!(e.is_not_leader(), "{e:?}");
        assert!(!on_follower.is_broken());

        // Membership changes through the leader's handle.
        on_leader.add_node(99, &spare).await.unwrap();
        let m = on_leader.cluster().await.unwrap();
        assert!(
            m.iter()
                .any(|n| n.id == 99 && n.role == Some(NodeRole::Spare)),
            "{m:?}"
        );
        on_leader.assign(99, NodeRole::Standby).await.unwrap();
        let m = on_leader.cluster().await.unwrap();
        assert!(
            m.iter()
                .any(|n| n.id == 99 && n.role == Some(NodeRole::Standby)),
            "{m:?}"
        );
        on_leader.remove_node(99).await.unwrap();
        let m = on_leader.cluster().await.unwrap();
        assert!(!m.iter().any(|n| n.id == 99), "{m:?}");

        // connect() to a follower: typed refusal on servers that check OPEN (>= 1.18.2),
        // an open connection whose queries fail "not leader" on older ones.
        match Connection::connect(rt, &follower_addr, config("dumped")).await {
            Err(e) => {
                assert!(
                    server_version() >= (1, 18, 2),
                    "a {:?} server accepts OPEN on a follower, got {e:?}",
                    server_version()
                );
                let Error::NotLeader {
                    address,
                    leader: Some(l),
                    ..
                } = &e
                else {
                    panic!("expected NotLeader naming the leader, got {e:?}")
                };
                assert_eq!(
                    (address.as_str(), l.address.as_str()),
                    (follower_addr.as_str(), leader_addr.as_str())
                );
                assert!(e.is_not_leader());
            }
            Ok(mut c) => {
                assert!(
                    server_version() < (1, 18, 2),
                    "a {:?} server must refuse OPEN on a follower",
                    server_version()
                );
                let e = c
                    .fetch_val::<i64>("SELECT count(*) FROM d", ())
                    .await
                    .expect_err("a follower refuses queries");
                assert!(e.is_not_leader(), "{e:?}");
            }
        }

        // Leadership transfer to the follower through the node handle.
        on_leader
            .transfer_leadership(id_of(&follower_addr))
            .await
            .unwrap();
        eventually(&rt, "the follower to lead", async || {
            match on_follower.leader().await {
                Ok(Some(l)) if l.address.as_str() == follower_addr => Some(()),
                _ => None,
            }
        })
        .await;
        let now_leader = eventually(&rt, "the cluster to agree", async || cluster.leader()).await;
        assert_eq!(now_leader, follower);
        // The old leader's handle is still good, and now names the new leader.
        let l = eventually(&rt, "the old leader to learn", async || {
            match on_leader.leader().await {
                Ok(Some(l)) if l.address.as_str() == follower_addr => Some(l),
                _ => None,
            }
        })
        .await;
        assert_eq!(l.id, id_of(&follower_addr));
        on_leader.close().await.unwrap();
        on_follower.close().await.unwrap();
    });
}

#[test]
fn a_node_refusing_open_is_reported_not_leader_naming_the_leader() {
    // A follower of a server since 1.18.2, played by the fake node (the bookworm server
    // accepts OPEN on followers).
    let fake = FakeServer::start(Behaviour::FollowerRefusingOpen { leader_port: 9 });
    tokio_block_on(async {
        let err = dqlite_tokio::connect(&fake.address())
            .await
            .expect_err("the node refuses OPEN");
        assert!(err.is_not_leader(), "{err:?}");
        assert_eq!(err.code(), Some(10250));
        let Error::NotLeader {
            address,
            leader: Some(l),
            ..
        } = &err
        else {
            panic!("expected NotLeader naming the leader, got {err:?}")
        };
        assert_eq!(address, &fake.address());
        assert_eq!((l.id, l.address.as_str()), (2, "127.0.0.1:9"));
        assert!(err.to_string().contains("127.0.0.1:9"), "{err}");

        // The node handle needs no OPEN: the same node answers it.
        let mut node = dqlite_tokio::connect_node(&fake.address()).await.unwrap();
        let l = node.leader().await.unwrap().unwrap();
        assert_eq!(l.address.as_str(), "127.0.0.1:9");
    });
}
