//! The shell given unix-socket addresses, against clusters of the repository's go-dqlite
//! node program (`tlsnode --unix`), whose nodes also serve clients on a unix socket each:
//! abstract (`@name`) and path sockets. The nodes name their TCP addresses as leader and
//! members, so SQL goes to the leader's TCP address once a node answered over its socket;
//! `.describe` and `.weight` talk to the node at the address given, over its socket.

mod support;

use std::fs;

use dqlite_tests::harness::{Cluster, ServerCommand};
use dqlite_tests::nodes::unix_front_name;
use support::{run, shell, sql_ok, Piped};

/// A 3-node `tlsnode` cluster with a unix front per node; returns it and the leader.
fn cluster_with(command: ServerCommand) -> (Cluster, usize) {
    let cluster = Cluster::start_with(command, 3);
    let leader = cluster.wait_ready(3);
    (cluster, leader)
}

#[test]
fn abstract_unix_sockets_reach_the_cluster() {
    let (mut cluster, leader) = cluster_with(ServerCommand::plain_node().with_unix_front());
    let fronts: Vec<String> = cluster
        .db_addresses()
        .into_iter()
        .map(unix_front_name)
        .collect();
    let address = |i: usize| cluster.db_address(i).to_string();
    let follower = (leader + 1) % 3;

    // Seeded with unix sockets only: statements run on the leader.
    let all = fronts.join(",");
    let out = sql_ok(
        &all,
        &[],
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7); SELECT x FROM t",
    );
    assert_eq!(out, "7\n");
    // One follower's socket is enough; the leader is the node it names.
    let out = sql_ok(&fronts[follower], &[], ".leader");
    assert!(out.ends_with(&format!("\t{}\n", address(leader))), "{out}");
    assert_eq!(sql_ok(&fronts[follower], &[], "SELECT x FROM t"), "7\n");

    // .weight and .describe over one node's socket reach that node (its TCP address
    // reports the same weight).
    sql_ok(&all, &[], &format!(".weight {} 5", fronts[follower]));
    let out = sql_ok(&all, &[], &format!(".describe {}", fronts[follower]));
    assert_eq!(out, format!("{}\t0\t5\n", fronts[follower]));
    let out = sql_ok(&all, &[], &format!(".describe {}", address(follower)));
    assert_eq!(out, format!("{}\t0\t5\n", address(follower)));

    // A node store file listing unix sockets.
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("cluster.yaml");
    let yaml: String = fronts
        .iter()
        .enumerate()
        .map(|(i, f)| format!("- Address: \"{f}\"\n  ID: {}\n  Role: 0\n", i + 1))
        .collect();
    fs::write(&store, yaml).unwrap();
    let store = format!("file://{}", store.display());
    assert_eq!(sql_ok(&store, &[], "SELECT count(*) FROM t"), "1\n");

    // A socket nobody listens on: an error naming it, and a failing exit status.
    let missing = "@dqlite-shell-test-nobody-listens";
    let out = run(
        shell(missing).args(["--timeout", "3", "-c", "SELECT 1"]),
        "",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(missing), "{stderr}");

    // The leader dies between two statements of a script: the shell finds the new leader
    // through the other nodes' sockets.
    let mut piped = Piped::start(shell(&all).args(["--timeout", "60"]));
    piped.send("SELECT 'before';");
    assert_eq!(piped.stdout_line(), "before");
    cluster.kill(leader);
    piped.send("SELECT 'after';");
    assert_eq!(piped.stdout_line(), "after");
    let notice = piped.stderr_line();
    assert!(
        notice.starts_with("reconnected to the leader at 127.0.0.1:"),
        "{notice}"
    );
    assert!(piped.finish().success());
}

#[test]
fn unix_socket_paths_reach_the_cluster() {
    let mut command = ServerCommand::plain_node();
    command
        .args
        .extend(["--unix".to_owned(), "{dir}/client.sock".to_owned()]);
    let (cluster, leader) = cluster_with(command);
    let sockets: Vec<String> = (0..3)
        .map(|i| {
            let path = cluster.data_dir(i).join("client.sock");
            path.to_str().expect("a UTF-8 path").to_owned()
        })
        .collect();
    let follower = (leader + 2) % 3;
    let out = sql_ok(
        &sockets[follower],
        &[],
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (8); SELECT x FROM t",
    );
    assert_eq!(out, "8\n");
    let out = sql_ok(&sockets.join(","), &[], ".leader");
    assert!(
        out.ends_with(&format!("\t{}\n", cluster.db_address(leader))),
        "{out}"
    );
    sql_ok(
        &sockets[follower],
        &[],
        &format!(".weight {} 6", sockets[follower]),
    );
    let out = sql_ok(
        &sockets[follower],
        &[],
        &format!(".describe {}", cluster.db_address(follower)),
    );
    assert_eq!(out, format!("{}\t0\t6\n", cluster.db_address(follower)));
}
