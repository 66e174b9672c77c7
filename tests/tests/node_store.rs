//! The node store against real nodes: the `cluster.yaml` files `dqlite-demo` writes are read,
//! a pool keeps its own file up to date with the membership, and a pool started from that
//! file alone finds the cluster.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dqlite_client::{Config, NodeStore, Pool, PoolOptions};
use dqlite_smol::Smol;
use dqlite_tests::harness::Cluster;

#[test]
fn node_store_files_of_real_nodes_and_pools() {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let addrs: BTreeSet<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();

    // dqlite-demo keeps the membership in <dir>/<address>/cluster.yaml; wait until node 0's
    // file lists all three nodes (go-dqlite's app refreshes it periodically, every 30 s or
    // so, not as nodes join).
    let first = cluster.db_address(0).to_string();
    let demo_store = NodeStore::new(cluster.data_dir(0).join(&first).join("cluster.yaml"));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    loop {
        let nodes = demo_store.load().expect("dqlite-demo's cluster.yaml");
        let listed: BTreeSet<String> = nodes.iter().map(|n| n.address.clone()).collect();
        if listed == addrs {
            assert!(nodes.iter().all(|n| n.id != 0), "{nodes:?}");
            println!(
                "cluster.yaml listed every node after {:?}",
                started.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cluster.yaml never listed every node: {nodes:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.yaml");
    smol::block_on(async {
        // Seeded with one node, the pool writes the whole membership to its file.
        let seed = cluster.db_address(leader).to_string();
        let options = PoolOptions::new().node_store(&path);
        let pool = Pool::new(Smol, &[seed.as_str()], Config::new(), options)
            .await
            .unwrap();
        pool.execute("CREATE TABLE t (x INTEGER)", ())
            .await
            .unwrap();
        let saved: BTreeSet<String> = NodeStore::new(&path)
            .load()
            .unwrap()
            .into_iter()
            .map(|n| n.address)
            .collect();
        assert_eq!(saved, addrs);
        pool.close().await;

        // A pool given no address at all starts from the file.
        let options = PoolOptions::new().node_store(&path);
        let pool = Pool::new(Smol, &[], Config::new(), options).await.unwrap();
        let n: i64 = pool.fetch_val("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(n, 0);

        // A file that is not a node store is a clear error.
        std::fs::write(&path, "- ID: 1\n").unwrap();
        let options = PoolOptions::new().node_store(&path);
        let e = Pool::new(Smol, &[seed.as_str()], Config::new(), options)
            .await
            .unwrap_err();
        assert!(matches!(e, dqlite_client::Error::NodeStore { .. }), "{e:?}");
    });
}
