//! The repository's node program, `tlsnode`, against Debian's `dqlite` shell and the
//! plaintext helpers: a 3-node cluster over mutual TLS answers the shell that holds the
//! cluster certificate and refuses it without one or with a bad one; a cluster runs with a
//! certificate whose names do not match the loopback address; the plaintext mode passes the
//! plaintext readiness check and answers `BlockingConn`; unix-socket fronts reach the nodes
//! (a LEADER request written by hand); a TLS cluster fails over and takes a restarted node back.
//! See `dqlite_tests::nodes` for what works with unix sockets and what does not.

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixStream};
use std::time::Duration;

use dqlite_blocking::BlockingConn;
use dqlite_proto::{Reply, Value};
use dqlite_tests::harness::{Cluster, ServerCommand};
use dqlite_tests::nodes::{shell, unix_front_name, NodeStatus, TlsCluster};
use dqlite_tests::tls::{Identity, PemFiles};

/// Time for a shell command that should succeed.
const SHELL_TIMEOUT: Duration = Duration::from_secs(20);
/// Time after which a shell that cannot connect is given up on (it retries forever).
const REFUSED_TIMEOUT: Duration = Duration::from_secs(3);

fn sh(servers: &str, tls: Option<&PemFiles>, sql: &str) -> String {
    let out = shell(servers, tls, "app", sql, SHELL_TIMEOUT);
    assert!(
        out.success(),
        "dqlite shell `{sql}` on {servers} failed: {out:?}"
    );
    out.stdout
}

fn assert_refused(servers: &str, tls: Option<&PemFiles>, what: &str) {
    let out = shell(servers, tls, "app", "SELECT x FROM t", REFUSED_TIMEOUT);
    assert!(!out.success(), "the shell {what} got an answer: {out:?}");
    assert!(
        !out.stdout.contains("42"),
        "the shell {what} read rows: {out:?}"
    );
}

#[test]
fn shell_with_the_cluster_certificate_writes_and_reads_and_without_it_is_refused() {
    let cluster = TlsCluster::start(3);
    let leader = cluster.wait_ready(3);
    let follower = (leader + 1) % 3;
    let files = cluster.pem_files().clone();
    let at = |i: usize| cluster.db_address(i).to_string();

    sh(&at(follower), Some(&files), "CREATE TABLE t (x INTEGER)");
    sh(&at(leader), Some(&files), "INSERT INTO t VALUES (42)");
    sh(&at(follower), Some(&files), "INSERT INTO t VALUES (43)");
    let rows = sh(
        &at((leader + 2) % 3),
        Some(&files),
        "SELECT x FROM t ORDER BY x",
    );
    assert_eq!(rows.split_whitespace().collect::<Vec<_>>(), ["42", "43"]);
    let reported = sh(&at(follower), Some(&files), ".leader");
    assert_eq!(reported.trim(), at(leader));

    // Plaintext against TLS: the node sees no TLS handshake and drops the connection.
    assert_refused(&at(leader), None, "without a certificate");
    assert!(
        cluster
            .log_tail(leader, 200)
            .contains("first record does not look like a TLS handshake"),
        "no TLS error in the leader's log:\n{}",
        cluster.log_tail(leader, 40)
    );

    // The bad certificates are refused too.
    let dir = cluster.cert_dir();
    let unknown = Identity::unknown_ca().write_pem(dir, "unknown").unwrap();
    assert_refused(&at(leader), Some(&unknown), "with an unknown certificate");
    let expired = cluster
        .identity()
        .expired()
        .write_pem(dir, "expired")
        .unwrap();
    assert_refused(&at(leader), Some(&expired), "with an expired certificate");

    // The cluster still serves the right certificate.
    let rows = sh(&at(leader), Some(&files), "SELECT count(*) FROM t");
    assert_eq!(rows.trim(), "2");
}

#[test]
fn a_cluster_runs_with_a_certificate_that_does_not_name_the_loopback_address() {
    // The nodes verify each other by the certificate's first DNS name, not by address, so
    // the cluster forms; clients that check 127.0.0.1 or localhost must refuse the nodes.
    let identity = Identity::wrong_names();
    assert_eq!(identity.names.dns, ["dqlite.invalid"]);
    let cluster = TlsCluster::start_with(identity, 3, |c| c);
    let leader = cluster.wait_ready(3);
    let files = cluster.pem_files().clone();
    let addr = cluster.db_address(leader).to_string();
    sh(&addr, Some(&files), "CREATE TABLE t (x INTEGER)");
    assert_eq!(
        sh(&addr, Some(&files), "SELECT count(*) FROM t").trim(),
        "0"
    );
}

/// One LEADER request, written by hand, over a unix socket: returns the SERVER response body.
fn leader_over_unix(name: &str) -> Vec<u8> {
    let abstract_name = name.strip_prefix('@').expect("an abstract name");
    let addr = UnixAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
    let mut sock = UnixStream::connect_addr(&addr)
        .unwrap_or_else(|e| panic!("connect to unix socket {name}: {e}"));
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = dqlite_proto::PROTOCOL_VERSION.to_le_bytes().to_vec();
    // Header: body length in 8-byte words, type LEADER (0), schema 0, two bytes unused;
    // the body is one unused word.
    out.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&[0; 8]);
    sock.write_all(&out).unwrap();
    let mut header = [0u8; 8];
    sock.read_exact(&mut header)
        .unwrap_or_else(|e| panic!("no answer over unix socket {name}: {e}"));
    let words = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    assert_eq!(
        header[4], 1,
        "expected a SERVER response, header {header:?}"
    );
    let mut body = vec![0; words * 8];
    sock.read_exact(&mut body).unwrap();
    body
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn unix_fronts_reach_tls_nodes() {
    let cluster = TlsCluster::start_with(Identity::cluster(), 3, ServerCommand::with_unix_front);
    let leader = cluster.wait_ready(3);
    let leader_addr = cluster.db_address(leader).to_string();
    for i in 0..3 {
        let body = leader_over_unix(&unix_front_name(cluster.db_address(i)));
        assert!(
            contains(&body, &leader_addr),
            "node {i} names no {leader_addr} over its unix front: {body:?}"
        );
    }
    // Debian's shell cannot use the fronts of TLS nodes: go-dqlite's connector always
    // moves to the address the node names as leader (TCP, TLS), and with --cert it speaks
    // TLS on the unix socket too, where the front expects plaintext.
}

#[test]
fn plaintext_node_passes_the_plaintext_checks() {
    let cluster = Cluster::start_with(ServerCommand::plain_node().with_unix_front(), 3);
    let leader = cluster.wait_ready(3);
    assert_eq!(cluster.wait_reported_ready(3), leader);
    let status: NodeStatus = cluster.reported_status(leader).unwrap();
    assert_eq!(status.address, cluster.db_address(leader).to_string());
    assert_eq!(status.role.as_deref(), Some("voter"));

    let mut c = BlockingConn::connect(&cluster.db_address(leader).to_string()).unwrap();
    c.call(|p| p.open("app")).unwrap();
    c.call(|p| p.exec_sql("CREATE TABLE t (x INTEGER)", &[]))
        .unwrap();
    c.call(|p| p.exec_sql("INSERT INTO t VALUES (?)", &[Value::Integer(7)]))
        .unwrap();
    let replies = c.call(|p| p.query_sql("SELECT x FROM t", &[])).unwrap();
    let Some(Reply::Rows(rows)) = replies.last() else {
        panic!("expected rows, got {replies:?}")
    };
    let values: Vec<Vec<Value>> = rows.rows().map(<[Value]>::to_vec).collect();
    assert_eq!(values, [vec![Value::Integer(7)]]);

    // The plaintext fronts answer too.
    for i in 0..3 {
        let front = unix_front_name(cluster.db_address(i));
        assert!(contains(
            &leader_over_unix(&front),
            &cluster.db_address(leader).to_string()
        ));
    }
}

#[test]
fn a_tls_cluster_elects_a_new_leader_and_takes_the_old_one_back() {
    let mut cluster = TlsCluster::start(3);
    let old = cluster.wait_ready(3);
    let files = cluster.pem_files().clone();
    let servers = |c: &TlsCluster| {
        (0..3)
            .filter(|&i| c.pid(i).is_some())
            .map(|i| c.db_address(i).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    sh(
        &servers(&cluster),
        Some(&files),
        "CREATE TABLE t (x INTEGER)",
    );

    cluster.kill(old);
    let new = cluster.wait_ready(3);
    assert_ne!(new, old);
    sh(&servers(&cluster), Some(&files), "INSERT INTO t VALUES (1)");

    cluster.restart(old);
    let status = || cluster.reported_status(old);
    let deadline = std::time::Instant::now() + dqlite_tests::READY_TIMEOUT;
    while status().and_then(|s| s.role).as_deref() != Some("voter") {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted node is no voter: {:?}\n{}",
            status(),
            cluster.log_tail(old, 30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let at_old = cluster.db_address(old).to_string();
    let rows = sh(&at_old, Some(&files), "SELECT count(*) FROM t");
    assert_eq!(rows.trim(), "1");
}
