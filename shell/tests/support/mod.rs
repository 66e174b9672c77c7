//! Running the built `dqlite-shell` against real clusters, every wait bounded.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use dqlite_tests::harness::Cluster;

/// The longest any one shell run may take.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The built shell.
pub const BIN: &str = env!("CARGO_BIN_EXE_dqlite-shell");

/// A 3-node cluster with a leader and three voters; returns it and the leader's index.
pub fn cluster() -> (Cluster, usize) {
    let cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    (cluster, leader)
}

/// Every node's address, comma-separated.
pub fn servers(cluster: &Cluster) -> String {
    cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The shell, told about `servers`, with a bounded request timeout.
pub fn shell(servers: &str) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["-s", servers, "--timeout", "20"]);
    cmd
}

/// Runs `cmd` with `stdin` as its input; panics if it takes longer than [`RUN_TIMEOUT`].
pub fn run(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dqlite-shell");
    let mut input = child.stdin.take().expect("stdin");
    let text = stdin.to_owned();
    let writer = thread::spawn(move || {
        // The shell may stop reading at its first error.
        let _ = input.write_all(text.as_bytes());
    });
    let stdout = drain(child.stdout.take().expect("stdout"));
    let stderr = drain(child.stderr.take().expect("stderr"));
    let status = wait(&mut child, RUN_TIMEOUT);
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for dqlite-shell") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dqlite-shell did not finish within {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `-c sql` in `mode`; returns stdout, panicking with stderr on failure.
pub fn sql_ok(servers: &str, extra: &[&str], sql: &str) -> String {
    let out = run(shell(servers).args(extra).args(["-c", sql]), "");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "`{sql}` failed ({:?}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout
}

/// A shell reading a script from a pipe, fed and read line by line.
pub struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Piped {
    /// Starts the shell on a pipe.
    pub fn start(cmd: &mut Command) -> Piped {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start dqlite-shell");
        let stdin = child.stdin.take();
        let stdout = lines(child.stdout.take().expect("stdout"));
        let stderr = lines(child.stderr.take().expect("stderr"));
        Piped {
            child,
            stdin,
            stdout,
            stderr,
        }
    }

    /// Sends one line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to dqlite-shell");
        stdin.flush().expect("flush");
    }

    /// The next stdout line (within [`RUN_TIMEOUT`]).
    pub fn stdout_line(&mut self) -> String {
        match self.stdout.recv_timeout(RUN_TIMEOUT) {
            Ok(line) => line,
            Err(e) => {
                let stderr: Vec<String> = self.stderr.try_iter().collect();
                panic!("no output line within {RUN_TIMEOUT:?} ({e}); stderr: {stderr:?}")
            }
        }
    }

    /// The next stderr line (within [`RUN_TIMEOUT`]).
    pub fn stderr_line(&mut self) -> String {
        self.stderr
            .recv_timeout(RUN_TIMEOUT)
            .unwrap_or_else(|e| panic!("no error line within {RUN_TIMEOUT:?}: {e}"))
    }

    /// Closes stdin and waits for the exit status.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        wait(&mut self.child, RUN_TIMEOUT)
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}
