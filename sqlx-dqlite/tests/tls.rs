//! sqlx-dqlite over mutual TLS, against a 3-node cluster of the repository's go-dqlite TLS
//! node (`tests/nodes/tlsnode`), with the TLS settings given in the URL.

use std::time::Duration;

use dqlite_tests::nodes::TlsCluster;
use sqlx::Connection;
use sqlx_dqlite::{DqliteConnectOptions, DqliteConnection, DqlitePoolOptions};

#[test]
fn a_pool_reaches_a_mutual_tls_cluster_from_a_url_and_plaintext_is_refused() {
    let cluster = TlsCluster::start(3);
    cluster.wait_ready(3);
    let files = cluster.pem_files().clone();
    let nodes = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        // The cluster certificate is the client certificate and the one trusted root, as
        // go-dqlite's app.SimpleTLSConfig sets it up.
        let url = format!(
            "dqlite://{nodes}/tls?request_timeout=10&connect_timeout=30&tls_cert={}&tls_key={}",
            files.cert.display(),
            files.key.display()
        );
        let pool = DqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(60))
            .connect(&url)
            .await
            .expect("a pool over mutual TLS");
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&pool)
            .await
            .expect("CREATE over TLS");
        sqlx::query("INSERT INTO t VALUES (?)")
            .bind(7i64)
            .execute(&pool)
            .await
            .expect("INSERT over TLS");
        let x: i64 = sqlx::query_scalar("SELECT x FROM t")
            .fetch_one(&pool)
            .await
            .expect("SELECT over TLS");
        assert_eq!(x, 7);
        pool.close().await;

        // Without TLS settings the nodes drop the connection: an error, never plaintext.
        let plain =
            format!("dqlite://{nodes}/tls?connect_timeout=10&dial_timeout=2&request_timeout=2");
        DqliteConnection::connect(&plain)
            .await
            .expect_err("a plaintext connection reached a TLS cluster");

        // TLS files that cannot be read are a configuration error, named.
        let missing =
            format!("dqlite://{nodes}/tls?tls_cert=/nonexistent.pem&tls_key=/nonexistent.key");
        match missing.parse::<DqliteConnectOptions>() {
            Err(sqlx::Error::Configuration(e)) => {
                assert!(e.to_string().contains("/nonexistent.pem"), "{e}")
            }
            other => panic!("expected a configuration error, got {other:?}"),
        }
        let half = format!("dqlite://{nodes}/tls?tls_cert={}", files.cert.display());
        assert!(matches!(
            half.parse::<DqliteConnectOptions>(),
            Err(sqlx::Error::Configuration(_))
        ));
    });
}
