//! The repository's own dqlite node program, `tlsnode` (`tests/nodes/tlsnode`), and clusters
//! of it: over mutual TLS ([`TlsCluster`]), or in plaintext ([`ServerCommand::plain_node`]),
//! optionally with a unix-socket front per node. [`crate::links`] runs it with `--links`, for
//! partitions between nodes.
//!
//! # Building
//!
//! `tlsnode` is Go, built offline against Debian's go-dqlite sources by [`BUILD_COMMAND`]
//! (`bash tests/nodes/build.sh`, which installs `golang-go` and
//! `golang-github-canonical-go-dqlite-dev` when missing) into `target/nodes/tlsnode`.
//! [`node_program`] runs that script once per test process (it returns at once when the
//! binary is up to date) and panics with its output when it fails. `DQLITE_TLS_NODE`, if set
//! and not empty, names a prebuilt binary instead.
//!
//! # TLS
//!
//! go-dqlite's standard setup (`app.SimpleTLSConfig`): one cluster certificate
//! ([`Identity::cluster`]) is every node's server certificate, every node's and client's
//! client certificate, and the only trusted certificate. Nodes require and verify client
//! certificates. TLS 1.2 and 1.3; key exchange on P-521, P-384 or P-256 (no X25519, so a
//! client offering X25519 first gets a HelloRetryRequest); TLS 1.2 suites ECDHE with AES-GCM
//! or AES-CBC-SHA. One change from the stock setup: the nodes issue no session tickets,
//! since resumed TLS 1.3 handshakes between go-dqlite 1.11.5 nodes built with Go 1.19 fail
//! ("tls: invalid PSK binder") and no cluster forms (`tlsnode --session-tickets` turns them
//! back on).
//!
//! A client needs: to trust the cluster certificate (as its own root), to verify the server
//! name `127.0.0.1` (IP) or `localhost` (DNS), and to present the cluster certificate and
//! key as its client certificate. Debian's `dqlite` shell does exactly that with
//! `dqlite -s 127.0.0.1:PORT --cert cluster.crt --key cluster.key DB "SQL"` ([`shell`]).
//!
//! # Readiness
//!
//! The plaintext [`Cluster::wait_ready`] cannot talk to TLS nodes. Instead every `tlsnode`
//! prints a status line whenever its view of the cluster changes:
//!
//! ```text
//! tlsnode: status id=ID address=ADDR role=voter leader=ADDR voters=3 standbys=0 spares=0
//! ```
//!
//! [`Cluster::reported_status`] reads a node's latest one from its log (since its latest
//! start), and [`Cluster::wait_reported_ready`] waits until a running node reports itself as
//! leader with enough voters. [`TlsCluster::wait_ready`] is that wait. Statuses of paused
//! nodes are stale; killed nodes are ignored.
//!
//! # Unix sockets
//!
//! libdqlite 1.11.1 accepts connections on a unix socket only from its own process (it
//! checks `SO_PEERCRED` and closes the others), and go-dqlite's TLS listener is TCP only, so
//! nodes cannot form a cluster over unix sockets (`--db @NAME` gives a working single node
//! that no other process can reach). What works: `tlsnode --unix ADDR` (a path or `@NAME`,
//! abstract) serves clients in plaintext on a unix socket and forwards each connection to
//! its own node (over TLS in TLS mode). [`ServerCommand::with_unix_front`] adds it to every
//! node, at [`unix_front_name`]. The node still names its TCP address as leader, and
//! go-dqlite's connector (so Debian's shell) always moves to the address a node names as
//! leader, even when it is the node dialed: such clients use a front only to ask who leads.
//! A client that keeps the connection when the node it dialed leads can work over a front.

use std::io::Read;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::harness::{Cluster, ServerCommand};
use crate::tls::{Identity, PemFiles};
use crate::READY_TIMEOUT;

/// The command that builds `tlsnode`, run from the repository root.
pub const BUILD_COMMAND: &str = "bash tests/nodes/build.sh";

/// The repository root (this crate's parent directory).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from(".."), Path::to_path_buf)
}

/// The `tlsnode` binary: `DQLITE_TLS_NODE` if set, else `target/nodes/tlsnode`, built (or
/// found up to date) by [`BUILD_COMMAND`] once per process. Panics with the script's output
/// if the build fails, e.g. because the Go packages are missing and cannot be installed.
pub fn node_program() -> PathBuf {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PROGRAM.get_or_init(|| {
        if let Some(path) = std::env::var_os("DQLITE_TLS_NODE").filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        build_go_program("tlsnode")
    });
    match found {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Builds (or finds up to date) the Go program `tests/nodes/NAME` with
/// `bash tests/nodes/build.sh NAME`, and returns its path, or the script's output as the
/// error.
pub(crate) fn build_go_program(name: &str) -> Result<PathBuf, String> {
    let root = repo_root();
    let output = Command::new("bash")
        .arg(root.join("tests/nodes/build.sh"))
        .arg(name)
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `{BUILD_COMMAND} {name}`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{BUILD_COMMAND} {name}` (in {}) failed ({}); it builds {name} from Debian's \
             golang-go and golang-github-canonical-go-dqlite-dev, installing them if missing \
             (needs root and apt). Its output:\n{}{}",
            root.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(PathBuf::from(path))
}

impl ServerCommand {
    /// `tlsnode` over mutual TLS with the given cluster certificate and key (see the
    /// [module docs](crate::nodes)); builds the program if needed.
    pub fn tls_node(files: &PemFiles) -> Self {
        let mut command = Self::plain_node();
        command.args.extend([
            "--cert".into(),
            files.cert.to_string_lossy().into_owned(),
            "--key".into(),
            files.key.to_string_lossy().into_owned(),
        ]);
        command
    }

    /// `tlsnode` in plaintext: the wire protocol as `dqlite-demo` speaks it, so the plaintext
    /// helpers ([`Cluster::wait_ready`], [`BlockingConn`](dqlite_blocking::BlockingConn))
    /// work. Builds the program if needed.
    pub fn plain_node() -> Self {
        Self {
            program: node_program(),
            args: "--db {db} -D {dir} --join {join}"
                .split_whitespace()
                .map(String::from)
                .collect(),
            ..Self::default()
        }
    }

    /// Adds `--unix @dqlite-front-{db}`: every node also serves clients on the abstract unix
    /// socket [`unix_front_name`]`(db address)`. For `tlsnode` only.
    pub fn with_unix_front(mut self) -> Self {
        self.args
            .extend(["--unix".into(), "@dqlite-front-{db}".into()]);
        self
    }
}

/// The abstract unix socket name (with the leading `@`) that
/// [`ServerCommand::with_unix_front`] gives the node with db address `db`.
pub fn unix_front_name(db: SocketAddr) -> String {
    format!("@dqlite-front-{db}")
}

/// A node's latest status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's dqlite ID.
    pub id: u64,
    /// The node's address.
    pub address: String,
    /// Its role as the leader reports it (`voter`, `stand-by`, `spare`), if known.
    pub role: Option<String>,
    /// The leader's address, if known.
    pub leader: Option<String>,
    /// Voters in the membership (0 when no leader is known).
    pub voters: usize,
    /// Stand-bys in the membership.
    pub standbys: usize,
    /// Spares in the membership.
    pub spares: usize,
}

impl NodeStatus {
    /// Parses a `tlsnode: status ...` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<NodeStatus> {
        let fields = line.trim().strip_prefix("tlsnode: status ")?;
        let mut status = NodeStatus {
            id: 0,
            address: String::new(),
            role: None,
            leader: None,
            voters: 0,
            standbys: 0,
            spares: 0,
        };
        let known = |v: &str| (v != "-").then(|| v.to_owned());
        for field in fields.split_whitespace() {
            let (key, value) = field.split_once('=')?;
            match key {
                "id" => status.id = value.parse().ok()?,
                "address" => status.address = value.to_owned(),
                "role" => status.role = known(value),
                "leader" => status.leader = known(value),
                "voters" => status.voters = value.parse().ok()?,
                "standbys" => status.standbys = value.parse().ok()?,
                "spares" => status.spares = value.parse().ok()?,
                _ => {}
            }
        }
        Some(status)
    }

    /// Whether the node reports itself as the leader.
    pub fn is_leader(&self) -> bool {
        self.leader.as_deref() == Some(self.address.as_str())
    }
}

/// The marker line the harness writes before every start of a node.
const START_MARKER: &str = "==== dqlite-tests: starting node";

impl Cluster {
    /// Node `i`'s latest status line since its latest start (`tlsnode` only; see the
    /// [module docs](crate::nodes)).
    pub fn reported_status(&self, i: usize) -> Option<NodeStatus> {
        let bytes = std::fs::read(self.log_path(i)).ok()?;
        let text = String::from_utf8_lossy(&bytes);
        let since_start = text.rfind(START_MARKER).map_or(&*text, |at| &text[at..]);
        since_start.lines().rev().find_map(NodeStatus::parse)
    }

    /// The node that reports itself as leader, among the nodes that are started and not
    /// killed, with its status.
    pub fn reported_leader(&self) -> Option<(usize, NodeStatus)> {
        (0..self.size())
            .filter(|&i| self.pid(i).is_some())
            .filter_map(|i| Some((i, self.reported_status(i)?)))
            .find(|(_, status)| status.is_leader())
    }

    /// Waits until a node reports itself as leader with at least `voters` voters; returns its
    /// index. Panics with the nodes' log tails after [`READY_TIMEOUT`].
    pub fn wait_reported_ready(&self, voters: usize) -> usize {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some((i, status)) = self.reported_leader() {
                if status.voters >= voters {
                    return i;
                }
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = (0..self.size()).map(|i| self.log_tail(i, 20)).collect();
                panic!(
                    "cluster not ready ({voters} voters and a leader, as the nodes report) \
                     within {READY_TIMEOUT:?}:\n{}",
                    logs.join("\n---\n")
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A cluster of `tlsnode`s over mutual TLS, with its certificate files. Dereferences to
/// the [`Cluster`] for process control; its plaintext protocol helpers
/// ([`Cluster::leader`], [`Cluster::members`], [`Cluster::transfer_leadership`] and
/// [`Cluster::wait_ready`], which `TlsCluster::wait_ready` shadows) do not work over TLS.
pub struct TlsCluster {
    cluster: Cluster,
    identity: Identity,
    files: PemFiles,
    // Dropped after the cluster (fields drop in declaration order).
    certs: TempDir,
}

impl TlsCluster {
    /// Starts an `n`-node cluster with a fresh [`Identity::cluster`] certificate. Does not
    /// wait for readiness: call [`wait_ready`](Self::wait_ready).
    pub fn start(n: usize) -> TlsCluster {
        Self::start_with(Identity::cluster(), n, |command| command)
    }

    /// Starts an `n`-node cluster with the given cluster certificate, after letting `adjust`
    /// change the command (e.g. [`ServerCommand::with_unix_front`], more arguments, a
    /// longer start timeout).
    pub fn start_with(
        identity: Identity,
        n: usize,
        adjust: impl FnOnce(ServerCommand) -> ServerCommand,
    ) -> TlsCluster {
        let certs = tempfile::Builder::new()
            .prefix("dqlite-certs-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let files = identity
            .write_pem(certs.path(), "cluster")
            .unwrap_or_else(|e| panic!("cannot write the cluster certificate: {e}"));
        let cluster = Cluster::start_with(adjust(ServerCommand::tls_node(&files)), n);
        TlsCluster {
            cluster,
            identity,
            files,
            certs,
        }
    }

    /// The cluster certificate and key.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The cluster certificate and key as PEM files.
    pub fn pem_files(&self) -> &PemFiles {
        &self.files
    }

    /// A directory that lives as long as the cluster, for more certificate files.
    pub fn cert_dir(&self) -> &Path {
        self.certs.path()
    }

    /// [`Cluster::wait_reported_ready`]: waits for a leader and `voters` voters as the nodes
    /// report them; returns the leader's index.
    pub fn wait_ready(&self, voters: usize) -> usize {
        self.cluster.wait_reported_ready(voters)
    }

    /// The index of the node that reports itself as leader, if any.
    pub fn leader(&self) -> Option<usize> {
        self.cluster.reported_leader().map(|(i, _)| i)
    }
}

impl Deref for TlsCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl DerefMut for TlsCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}

/// What a run of Debian's `dqlite` shell (or another program run by [`run_bounded`]) did.
#[derive(Debug)]
pub struct ShellOutput {
    /// Exit code; `None` if it was killed at the deadline (or by a signal).
    pub code: Option<i32>,
    /// Whether it was killed because it ran past its time.
    pub timed_out: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl ShellOutput {
    /// Exited with code 0 in time.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// Runs Debian's `dqlite` shell (package go-dqlite):
/// `dqlite -s SERVERS [--cert C --key K] DATABASE COMMAND`, killed after `timeout`. The shell
/// retries unreachable servers without end, so a failed connection shows as a time-out.
/// Panics if the shell cannot be started.
pub fn shell(
    servers: &str,
    tls: Option<&PemFiles>,
    database: &str,
    command: &str,
    timeout: Duration,
) -> ShellOutput {
    let mut cmd = Command::new("dqlite");
    cmd.args(["-s", servers]);
    if let Some(files) = tls {
        cmd.arg("--cert")
            .arg(&files.cert)
            .arg("--key")
            .arg(&files.key);
    }
    cmd.args([database, command]);
    run_bounded(cmd, timeout).unwrap_or_else(|e| {
        panic!(
            "cannot run Debian's dqlite shell: {e}; install it with `{}`",
            crate::harness::INSTALL_HINT
        )
    })
}

/// Runs `cmd` with no input, collecting its output, and kills it after `timeout`. Fails only
/// if it cannot be started.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> std::io::Result<ShellOutput> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let out = thread::spawn(move || read_all(stdout));
    let err = thread::spawn(move || read_all(stderr));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    Ok(ShellOutput {
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn read_all(pipe: Option<impl Read>) -> String {
    let mut text = String::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse() {
        let s = NodeStatus::parse(
            "tlsnode: status id=7 address=127.0.0.1:9001 role=voter \
             leader=127.0.0.1:9001 voters=3 standbys=0 spares=1",
        )
        .unwrap();
        assert_eq!(s.id, 7);
        assert_eq!(s.role.as_deref(), Some("voter"));
        assert!(s.is_leader());
        assert_eq!((s.voters, s.standbys, s.spares), (3, 0, 1));
        let unknown = NodeStatus::parse(
            "tlsnode: status id=8 address=@x role=- leader=- voters=0 standbys=0 spares=0",
        )
        .unwrap();
        assert_eq!((unknown.role, unknown.leader), (None, None));
        assert_eq!(NodeStatus::parse("tlsnode: 2026/01/01 started"), None);
        assert_eq!(NodeStatus::parse("tlsnode: status id=x"), None);
    }

    #[test]
    fn unix_front_names_follow_the_template() {
        let db: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        let command = ServerCommand::default().with_unix_front();
        let args = command.expand_args(db, db, Path::new("/d"), &[]);
        let at = args.iter().position(|a| a == "--unix").unwrap();
        assert_eq!(args[at + 1], unix_front_name(db));
    }
}
