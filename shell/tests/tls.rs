//! The shell over mutual TLS against a real cluster of go-dqlite TLS nodes, with the one
//! cluster certificate as CA and client certificate, and refused without it.

mod support;

use dqlite_tests::nodes::TlsCluster;
use support::{run, shell};

#[test]
fn the_shell_speaks_mutual_tls() {
    let cluster = TlsCluster::start(3);
    cluster.wait_ready(3);
    let servers = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let files = cluster.pem_files();
    let (cert, key) = (
        files.cert.to_string_lossy().into_owned(),
        files.key.to_string_lossy().into_owned(),
    );
    let tls = ["--cert", cert.as_str(), "--key", key.as_str()];
    let sql = "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7); SELECT x FROM t";
    let out = run(shell(&servers).args(tls).args(["-c", sql]), "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "7\n");
    let out = run(shell(&servers).args(tls).args(["-c", ".cluster"]), "");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    // Without a certificate: a clear error and a failing exit status, never plaintext.
    let out = run(
        shell(&servers).args(["--timeout", "3", "-c", "SELECT 1"]),
        "",
    );
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}
