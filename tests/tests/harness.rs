//! Tests of the cluster harness itself, against the configured dqlite server.

use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use dqlite_tests::harness::{
    process_group_members, Cluster, ServerCommand, INSTALL_HINT, SETUP_HINT,
};

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Polls `condition` for up to 10 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The state letter from /proc/PID/stat (R, S, T, Z, ...), if the process exists.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn pids(cluster: &Cluster) -> Vec<u32> {
    (0..cluster.size()).filter_map(|i| cluster.pid(i)).collect()
}

/// Every node process group is gone: no live process, no zombie.
fn assert_all_gone(pgids: &[u32]) {
    for &pgid in pgids {
        assert_eq!(
            process_group_members(pgid),
            [] as [u32; 0],
            "group {pgid} survives"
        );
        assert_eq!(process_state(pgid), None, "process {pgid} survives");
    }
}

#[test]
fn three_node_cluster_accepts_on_every_db_port() {
    let mut cluster = Cluster::start(3);
    assert_eq!(cluster.size(), 3);
    let addrs = cluster.db_addresses();
    assert_eq!(addrs.len(), 3);
    for (i, addr) in addrs.iter().enumerate() {
        assert!(addr.ip().is_loopback());
        assert_eq!(cluster.db_address(i), *addr);
        assert!(cluster.is_running(i));
        assert!(accepts(*addr), "node {i} at {addr} does not accept");
        assert!(cluster.data_dir(i).is_dir());
        assert!(cluster.log_path(i).is_file());
    }
    let mut ports: Vec<u16> = addrs.iter().map(|a| a.port()).collect();
    ports.extend((0..3).map(|i| cluster.api_address(i).port()));
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6, "ports are distinct");
}

#[test]
fn killed_node_restarts_on_the_same_address() {
    let mut cluster = Cluster::start(3);
    let addr = cluster.db_address(1);
    let pid = cluster.pid(1).unwrap();
    let starts = |c: &Cluster| {
        let log = std::fs::read_to_string(c.log_path(1)).unwrap();
        let markers: Vec<String> = log
            .lines()
            .filter(|l| l.starts_with("==== dqlite-tests: starting node 1"))
            .map(String::from)
            .collect();
        markers
    };
    let before = starts(&cluster).len();

    cluster.kill(1);
    assert!(!cluster.is_running(1));
    assert_eq!(cluster.pid(1), None);
    assert_all_gone(&[pid]);
    eventually("the killed node's port refuses", || !accepts(addr));

    cluster.restart(1);
    assert!(cluster.is_running(1));
    assert_eq!(cluster.db_address(1), addr);
    assert!(accepts(addr));
    let after = starts(&cluster);
    assert_eq!(after.len(), before + 1);
    let others = format!("{},{}", cluster.db_address(0), cluster.db_address(2));
    assert!(
        after[before].ends_with(&others),
        "restart joins the others: {after:?}"
    );
}

#[test]
fn bootstrap_node_restarts_while_running() {
    let mut cluster = Cluster::start(3);
    let old = cluster.pid(0).unwrap();
    cluster.restart(0); // kills first
    assert_all_gone(&[old]);
    assert!(cluster.is_running(0));
    assert!(accepts(cluster.db_address(0)));
}

#[test]
fn pause_and_resume() {
    let mut cluster = Cluster::start(3);
    let pid = cluster.pid(2).unwrap();

    cluster.pause(2);
    assert!(cluster.is_paused(2));
    assert!(cluster.is_running(2), "a paused node counts as running");
    eventually("the node is stopped", || process_state(pid) == Some('T'));

    cluster.resume(2);
    assert!(!cluster.is_paused(2));
    eventually("the node runs again", || {
        !matches!(process_state(pid), Some('T') | None)
    });
    cluster.wait_accepting(2);
    assert!(accepts(cluster.db_address(2)));
}

#[test]
fn drop_leaves_no_process_and_no_directory() {
    let mut cluster = Cluster::start(3);
    cluster.pause(0); // Drop must SIGCONT a paused node before killing it.
    let pgids = pids(&cluster);
    let root: PathBuf = cluster
        .data_dir(0)
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .into();
    assert_eq!(pgids.len(), 3);
    assert!(root.is_dir());
    drop(cluster);
    assert_all_gone(&pgids);
    assert!(!root.exists(), "{} survives", root.display());
}

#[test]
fn panicking_test_still_cleans_up() {
    let mut seen = Vec::new();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut cluster = Cluster::start(2);
        cluster.pause(1);
        seen = pids(&cluster);
        panic!("deliberate test failure");
    }));
    assert!(result.is_err());
    assert_eq!(seen.len(), 2);
    assert_all_gone(&seen);
}

#[test]
fn missing_server_binary_is_a_loud_failure() {
    let command = ServerCommand {
        program: "/nonexistent/dqlite-demo".into(),
        ..ServerCommand::default()
    };
    let error = panic::catch_unwind(|| Cluster::start_with(command, 1))
        .err()
        .unwrap();
    let message = error
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(message.contains(INSTALL_HINT), "{message}");
    assert!(message.contains(SETUP_HINT), "{message}");
    assert!(message.contains("/nonexistent/dqlite-demo"), "{message}");
}

#[test]
fn server_that_never_listens_times_out_and_is_killed() {
    let command = ServerCommand {
        program: "sleep".into(),
        args: vec!["30".into()],
        start_timeout: Duration::from_millis(500),
        ..ServerCommand::default()
    };
    let started = Instant::now();
    let error = panic::catch_unwind(|| Cluster::start_with(command, 1))
        .err()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(20));
    let message = error.downcast_ref::<String>().unwrap();
    assert!(message.contains("did not accept TCP within"), "{message}");
    assert!(
        message.contains("starting node 0: sleep 30"),
        "log tail: {message}"
    );
    // No `sleep 30` child of this test process may survive.
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).unwrap_or("");
        assert!(!(head.ends_with("(sleep") && ppid == me), "orphan: {stat}");
    }
}

#[test]
fn server_that_exits_is_retried_then_reported() {
    let command = ServerCommand {
        program: "sh".into(),
        args: vec!["-c".into(), "echo cannot-start-{db};exit 3".into()],
        ..ServerCommand::default()
    };
    let error = panic::catch_unwind(|| Cluster::start_with(command, 1))
        .err()
        .unwrap();
    let message = error.downcast_ref::<String>().unwrap();
    assert!(message.contains("exited during start"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(message.contains("cannot-start-127.0.0.1:"), "{message}");
}

#[test]
fn restart_onto_a_taken_port_fails_clearly() {
    let mut cluster = Cluster::start(1);
    for squatted in [cluster.db_address(0), cluster.api_address(0)] {
        cluster.kill(0);
        let squatter =
            std::net::TcpListener::bind(squatted).expect("the killed node's port is free");
        let started = Instant::now();
        let error = panic::catch_unwind(AssertUnwindSafe(|| cluster.restart(0)))
            .err()
            .unwrap();
        let message = error.downcast_ref::<String>().unwrap();
        // dqlite-demo binds the API port only after the db port, so a squatted
        // API port may also show as the server exiting.
        let clash = message.contains("taken by another process")
            || (squatted != cluster.db_address(0) && message.contains("exited during start"));
        assert!(clash, "{message}");
        assert!(message.contains("gave up after 3 attempts"), "{message}");
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(!cluster.is_running(0));
        drop(squatter);
        cluster.restart(0);
        assert!(cluster.is_running(0));
    }
}
