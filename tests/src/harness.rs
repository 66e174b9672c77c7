//! Process management for real dqlite clusters in tests.
//!
//! [`Cluster::start`] starts an n-node cluster on free loopback ports, each node
//! in its own temporary directory, and offers per-node [`kill`](Cluster::kill)
//! (SIGKILL), [`pause`](Cluster::pause) (SIGSTOP), [`resume`](Cluster::resume)
//! (SIGCONT) and [`restart`](Cluster::restart). Dropping the cluster kills every
//! node, reaps it and removes the directories, also when the test panics; in that
//! case the tail of each node's log is printed to stderr first.
//!
//! **Node indexes are 0-based**: node 0 bootstraps the cluster, nodes 1.. join it
//! (they are unrelated to dqlite's own node IDs).
//!
//! # Server under test
//!
//! By default every node is `dqlite-demo` from the Debian package `go-dqlite`.
//! A missing server binary makes the test panic with the install command
//! (`apt-get install -y go-dqlite`); tests are never skipped silently.
//! Environment variables select another dqlite build (empty counts as unset):
//!
//! - `DQLITE_SERVER`: the program, a path or a name looked up in `PATH`.
//!   Default: `dqlite-demo`.
//! - `DQLITE_SERVER_ARGS`: the argument template, split on whitespace (no
//!   quoting). Default: `--api {api} --db {db} -D {dir} --join {join}`.
//!   Placeholders, replaced anywhere inside a token:
//!   - `{api}`: the node's API address, `127.0.0.1:PORT` (ignore it if the
//!     server has no such thing);
//!   - `{db}`: the node's database (raft) address, `127.0.0.1:PORT`;
//!   - `{dir}`: the node's data directory (it exists; empty on first start);
//!   - `{join}`: db addresses to join, comma-separated: nothing for node 0 on
//!     first start, node 0's address for the others on first start, all other
//!     nodes' addresses on [`restart`](Cluster::restart).
//!
//!   When `{join}` expands to nothing, every token containing it is dropped,
//!   and a token that is exactly `{join}` also takes the token before it along
//!   if that one is a bare flag: starts with `-`, holds no `=` and no
//!   placeholder. So both `--join {join}` and `--join={join}` vanish for node 0;
//!   keep the flag right before `{join}`.
//! - `DQLITE_SERVER_ENV`: extra environment for the server, whitespace-separated
//!   `KEY=VALUE` pairs, e.g. `LIBDQLITE_TRACE=1 LIBRAFT_TRACE=1`.
//!
//! # Server generations
//!
//! The suite runs against three generations of released servers (README.md, "Tests"):
//! Debian bookworm's 1.11 (the default `dqlite-demo`), trixie's 1.18.1 and forky's 1.18.x
//! (unpacked by `tests/servers/setup.sh`). Where their documented behaviour differs, tests
//! ask [`server_version`] or one of the predicates named after the behaviour
//! ([`follower_open_refused`], [`dump_checkpoints`],
//! [`snapshot_aborts_with_several_databases`]) and assert what that generation documents.
//! (Two statements in one query and surplus parameters also differ between generations;
//! the core refuses both before sending, so no test needs to tell them apart.) The version comes from, in order:
//!
//! - `DQLITE_SERVER_VERSION`: `MAJOR.MINOR.PATCH` of the server's libdqlite (a Debian
//!   version such as `1.18.1-1` is accepted too);
//! - a `VERSION` file beside the program's directory (`<dir>/../VERSION` for
//!   `<dir>/dqlite-demo`), which `tests/servers/setup.sh` writes;
//! - for the default program, the installed Debian package:
//!   `dpkg-query -W -f '${Version}' libdqlite0`.
//!
//! If none applies, [`server_version`] panics and asks for `DQLITE_SERVER_VERSION`.
//!
//! **One database per cluster in fault and workload tests.** dqlite 1.17.0 to 1.18.1
//! (trixie's server among them) can abort a follower (`free(): invalid size`) when a raft
//! snapshot completes while a database that has another database after it grew during the
//! snapshot; 1.18.2 fixed it. With a single database per cluster it cannot happen, so every
//! test that kills, pauses or loads a cluster for long (`workloads.rs`, `client.rs`'s
//! failover, `silence.rs`, `network_faults.rs`, `retries.rs`, `cancellation.rs`) keeps to one
//! database per cluster, on every generation. Only short scenarios that kill no node use
//! several ([`snapshot_aborts_with_several_databases`] tells the affected versions).
//!
//! # TLS, and the repository's own node program
//!
//! [`crate::nodes`] adds `tlsnode` (`tests/nodes/tlsnode`, a go-dqlite `app` node built by
//! `bash tests/nodes/build.sh` on first use): [`ServerCommand::tls_node`] runs it over
//! mutual TLS with a per-run certificate from [`crate::tls`], [`ServerCommand::plain_node`]
//! in plaintext, and [`crate::nodes::TlsCluster`] starts a TLS cluster and waits for it
//! through the status lines the nodes print (the protocol-level helpers of this crate speak
//! plaintext only). By hand, with the environment variables above:
//!
//! ```text
//! DQLITE_SERVER=target/nodes/tlsnode \
//! DQLITE_SERVER_ARGS="--db {db} -D {dir} --cert /abs/cluster.crt --key /abs/cluster.key --join {join}"
//! ```
//!
//! `tests/nodes/README.md` describes the program, the TLS setup and what a client needs.
//!
//! # Layout, logs, processes
//!
//! Each node gets `<tmp>/dqlite-cluster-XXXX/node<i>/` holding `data/` (the
//! `{dir}`) and `server.log`, which receives the server's stdout and stderr and a
//! marker line with the full command line before every start. Each node runs in
//! its own process group and signals go to the whole group, so a wrapper script
//! around the real server is fine too (better with `exec`; otherwise killing
//! waits up to 5 s until init has reaped the wrapper's children). The server
//! must stay in that process group (no daemonizing). Only `127.0.0.1`
//! addresses are used.
//!
//! For more useful logs on failure, try `DQLITE_SERVER_ENV="LIBDQLITE_TRACE=1"`
//! or add `-v` to `DQLITE_SERVER_ARGS` (`dqlite-demo` logs little by default).
//!
//! # Readiness
//!
//! A node counts as started when a socket owned by its process group listens on
//! its db port and that port accepts a TCP connection (at most
//! [`ServerCommand::start_timeout`]). Protocol-level readiness ("there is a leader
//! and n voters") needs the wire protocol and belongs on top of
//! [`Cluster::db_addresses`]. Note that right after start the joined nodes may
//! not be voters yet.
//!
//! Ports come from [`reserve_loopback_addr`]: unique within the process. A
//! clash with another process (say, a parallel test binary) is detected, as a
//! server that exits during start or a listener outside the node's process
//! group on its db port (or API port, if the template uses `{api}`), and the
//! start is retried (see [`Cluster::start_with`]). A clash on the API port that
//! arises after the db port accepts is not caught (`dqlite-demo` binds it only
//! once its node is ready): the node then exits soon after start.

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The command that installs the default server, `dqlite-demo`.
pub const INSTALL_HINT: &str = "apt-get install -y go-dqlite";

/// The command that unpacks the newer server generations under `target/servers`.
pub const SETUP_HINT: &str = "bash tests/servers/setup.sh";

/// Start attempts per node: a failed start (the server exited, or another
/// process listens on one of its ports) is retried, on fresh ports for a first
/// start, on the same ports after a short pause for a restart. A start that
/// times out is not retried.
const START_ATTEMPTS: usize = 3;

/// How long killing a node waits for the rest of its process group to vanish.
const GROUP_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines of each node's log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// How to start one dqlite server node; see the [module docs](self) for the
/// template syntax and the environment variables.
#[derive(Clone, Debug)]
pub struct ServerCommand {
    /// The program to run, a path or a name looked up in `PATH`.
    pub program: PathBuf,
    /// The argument template, one token per element.
    pub args: Vec<String>,
    /// Extra environment variables for the server.
    pub env: Vec<(String, String)>,
    /// How long a node may take until its db port accepts TCP.
    pub start_timeout: Duration,
}

impl ServerCommand {
    /// The default program.
    pub const DEFAULT_PROGRAM: &'static str = "dqlite-demo";
    /// The default argument template.
    pub const DEFAULT_ARGS: &'static str = "--api {api} --db {db} -D {dir} --join {join}";
    /// The default [`start_timeout`](Self::start_timeout).
    pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

    /// The defaults, overridden by `DQLITE_SERVER`, `DQLITE_SERVER_ARGS` and
    /// `DQLITE_SERVER_ENV`. Panics on a malformed `DQLITE_SERVER_ENV`.
    pub fn from_env() -> Self {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let mut command = Self::default();
        if let Some(program) = get("DQLITE_SERVER") {
            command.program = program.trim().into();
        }
        if let Some(args) = get("DQLITE_SERVER_ARGS") {
            command.args = args.split_whitespace().map(String::from).collect();
        }
        if let Some(env) = get("DQLITE_SERVER_ENV") {
            command.env = env
                .split_whitespace()
                .map(|pair| match pair.split_once('=') {
                    Some((key, value)) if !key.is_empty() => (key.into(), value.into()),
                    _ => panic!("DQLITE_SERVER_ENV: `{pair}` is not of the form KEY=VALUE"),
                })
                .collect();
        }
        command
    }

    /// Expands the argument template for one node (see the [module docs](self)).
    pub fn expand_args(
        &self,
        api: SocketAddr,
        db: SocketAddr,
        dir: &Path,
        join: &[SocketAddr],
    ) -> Vec<String> {
        let join = join
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let is_bare_flag = |t: &str| t.starts_with('-') && !t.contains(['=', '{']);
        let mut out: Vec<String> = Vec::new();
        let mut previous: Option<&str> = None;
        for token in &self.args {
            let before = previous.replace(token);
            if join.is_empty() && token.contains("{join}") {
                if token == "{join}" && before.is_some_and(is_bare_flag) {
                    out.pop();
                }
                continue;
            }
            out.push(
                token
                    .replace("{api}", &api.to_string())
                    .replace("{db}", &db.to_string())
                    .replace("{dir}", &dir.to_string_lossy())
                    .replace("{join}", &join),
            );
        }
        out
    }
}

impl Default for ServerCommand {
    /// `dqlite-demo` with [`DEFAULT_ARGS`](Self::DEFAULT_ARGS), no extra
    /// environment; ignores the environment variables.
    fn default() -> Self {
        Self {
            program: Self::DEFAULT_PROGRAM.into(),
            args: Self::DEFAULT_ARGS
                .split_whitespace()
                .map(String::from)
                .collect(),
            env: Vec::new(),
            start_timeout: Self::DEFAULT_START_TIMEOUT,
        }
    }
}

/// A dqlite server version: `(major, minor, patch)` of its libdqlite.
pub type Version = (u32, u32, u32);

/// The version of the dqlite server under test (see [Server generations](self#server-generations)
/// for where it comes from), worked out once per process. Panics, asking for
/// `DQLITE_SERVER_VERSION`, when it cannot be found.
pub fn server_version() -> Version {
    static VERSION: OnceLock<Version> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let command = ServerCommand::from_env();
        detect_server_version(
            |key| std::env::var(key).ok(),
            &command.program,
            || debian_package_version("libdqlite0"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Whether the server refuses OPEN on a follower with "not leader" (FAILURE 10250): from
/// 1.18.2. Older servers open the database and refuse the first statement instead.
pub fn follower_open_refused() -> bool {
    server_version() >= (1, 18, 2)
}

/// Whether DUMP checkpoints first: the main file holds every committed page and the WAL file
/// is empty, from 1.18.4. Older servers send the main file and the WAL as they are.
pub fn dump_checkpoints() -> bool {
    server_version() >= (1, 18, 4)
}

/// Whether a follower may abort (`free(): invalid size`) when a raft snapshot completes while
/// a database followed by another one grew: dqlite 1.17.0 to 1.18.1. On these servers a test
/// that uses several databases on one cluster cannot count on every node surviving.
pub fn snapshot_aborts_with_several_databases() -> bool {
    ((1, 17, 0)..=(1, 18, 1)).contains(&server_version())
}

/// Works out the server version from `DQLITE_SERVER_VERSION` (via `lookup`), a `VERSION` file
/// beside `program`'s directory, or, for the default program, `package_version()`.
fn detect_server_version(
    lookup: impl Fn(&str) -> Option<String>,
    program: &Path,
    package_version: impl FnOnce() -> Result<String, String>,
) -> Result<Version, String> {
    if let Some(v) = lookup("DQLITE_SERVER_VERSION").filter(|v| !v.trim().is_empty()) {
        return parse_version(&v)
            .ok_or_else(|| format!("DQLITE_SERVER_VERSION=`{v}` is not MAJOR.MINOR.PATCH"));
    }
    if let Some(file) = program
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join("../VERSION"))
        .filter(|file| file.is_file())
    {
        let text = fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        return parse_version(&text).ok_or_else(|| {
            format!(
                "{} holds `{}`, not MAJOR.MINOR.PATCH",
                file.display(),
                text.trim()
            )
        });
    }
    if program == Path::new(ServerCommand::DEFAULT_PROGRAM) {
        let v = package_version()?;
        return parse_version(&v)
            .ok_or_else(|| format!("libdqlite0's package version `{v}` is not understood"));
    }
    Err(format!(
        "cannot tell which dqlite version `{}` is: set DQLITE_SERVER_VERSION=MAJOR.MINOR.PATCH \
         (the version of its libdqlite)",
        program.display()
    ))
}

/// The installed version of Debian package `package`, from `dpkg-query`.
fn debian_package_version(package: &str) -> Result<String, String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", package])
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run dpkg-query to find the {package} version: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || version.is_empty() {
        return Err(format!(
            "{package} is not installed ({INSTALL_HINT}), or set \
             DQLITE_SERVER_VERSION=MAJOR.MINOR.PATCH"
        ));
    }
    Ok(version)
}

/// Parses `1.18.1`, or a Debian version such as `1:1.11.5-1+b4` (epoch and revision
/// ignored), into a [`Version`].
fn parse_version(text: &str) -> Option<Version> {
    let text = text.trim();
    let text = text.split_once(':').map_or(text, |(_, rest)| rest);
    let end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let mut parts = text[..end].split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// Ports handed out by [`reserve_loopback_addr`] in this process; never reused.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Returns `127.0.0.1:PORT` for a port that was free a moment ago (the kernel
/// picked it for a listener that is closed again) and that no other caller in
/// this process has received, so parallel tests never share a port.
pub fn reserve_loopback_addr() -> SocketAddr {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    for _ in 0..1000 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
    panic!("no unused loopback port found after 1000 tries");
}

/// A running (or partly stopped) dqlite cluster owned by a test.
///
/// All methods taking a node index panic if it is out of range.
pub struct Cluster {
    command: ServerCommand,
    nodes: Vec<Node>,
    root: TempDir,
    on_addresses: Option<AddressHook>,
}

/// Called with every node's db address; see [`Cluster::start_with_hook`].
pub type AddressHook = Box<dyn FnMut(&[SocketAddr]) + Send + Sync>;

struct Node {
    api: SocketAddr,
    db: SocketAddr,
    dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Cluster {
    /// Starts an `n`-node cluster with [`ServerCommand::from_env`]; see
    /// [`start_with`](Self::start_with).
    pub fn start(n: usize) -> Self {
        Self::start_with(ServerCommand::from_env(), n)
    }

    /// Starts an `n`-node cluster: node 0 first, then, once its db port accepts
    /// TCP, nodes 1.. with `{join}` = node 0's db address, one after the other,
    /// each waited for in the same way.
    ///
    /// Panics if the server binary is missing (with [`INSTALL_HINT`]), if a node
    /// fails to start 3 times in a row (it exits, or another process listens on
    /// its db port), or if a node does not accept
    /// TCP within [`ServerCommand::start_timeout`]; the message includes the tail
    /// of the node's log. Nodes already started are cleaned up.
    pub fn start_with(command: ServerCommand, n: usize) -> Self {
        Self::start_with_hook(command, n, None)
    }

    /// [`start_with`](Self::start_with), but every node's db address is reserved before the
    /// first node starts, and `on_addresses`, if given, is called with all of them (nodes not
    /// yet started included) before the first node starts, and again whenever a first start
    /// is retried on fresh ports. A node program that must know its peers' addresses in
    /// advance (say, through a file the hook writes) can thus be started; restarts keep the
    /// ports and do not call it.
    pub fn start_with_hook(
        command: ServerCommand,
        n: usize,
        on_addresses: Option<AddressHook>,
    ) -> Self {
        assert!(n >= 1, "a cluster needs at least one node");
        let root = tempfile::Builder::new()
            .prefix("dqlite-cluster-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let mut cluster = Cluster {
            command,
            nodes: Vec::with_capacity(n),
            root,
            on_addresses,
        };
        for i in 0..n {
            let dir = cluster.root.path().join(format!("node{i}"));
            fs::create_dir_all(dir.join("data"))
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            cluster.nodes.push(Node {
                api: reserve_loopback_addr(),
                db: reserve_loopback_addr(),
                dir,
                child: None,
                paused: false,
            });
        }
        cluster.addresses_changed();
        for i in 0..n {
            let join = if i == 0 {
                vec![]
            } else {
                vec![cluster.nodes[0].db]
            };
            cluster.launch(i, &join, true);
        }
        cluster
    }

    /// Tells the address hook, if any, every node's db address.
    fn addresses_changed(&mut self) {
        let addresses = self.db_addresses();
        if let Some(hook) = self.on_addresses.as_mut() {
            hook(&addresses);
        }
    }

    /// The number of nodes, running or not.
    pub fn size(&self) -> usize {
        self.nodes.len()
    }

    /// Node `i`'s database (raft) address, the one clients connect to.
    pub fn db_address(&self, i: usize) -> SocketAddr {
        self.node(i).db
    }

    /// All nodes' db addresses, indexed by node; includes stopped nodes. This is
    /// the hook for protocol-level readiness checks and for clients.
    pub fn db_addresses(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.db).collect()
    }

    /// Node `i`'s API address (`{api}`; unused by servers that have none).
    pub fn api_address(&self, i: usize) -> SocketAddr {
        self.node(i).api
    }

    /// Node `i`'s data directory (`{dir}`).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.node(i).dir.join("data")
    }

    /// Node `i`'s log file (stdout and stderr of every start).
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.node(i).dir.join("server.log")
    }

    /// The last `lines` lines of node `i`'s log, or a note why it can't be read.
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        match fs::read(self.log_path(i)) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("<cannot read {}: {e}>", self.log_path(i).display()),
        }
    }

    /// The process id of node `i`'s server (also its process group id), if it
    /// was started and not killed.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.node(i).child.as_ref().map(Child::id)
    }

    /// Whether node `i`'s process is alive; a paused node counts as running. A
    /// node found to have exited on its own is reaped here.
    pub fn is_running(&mut self, i: usize) -> bool {
        let node = self.node_mut(i);
        let Some(child) = node.child.as_mut() else {
            return false;
        };
        if let Ok(None) = child.try_wait() {
            return true;
        }
        // Exited on its own: take the rest of its process group down too.
        let _ = signal_group(child.id(), libc::SIGKILL);
        node.child = None;
        node.paused = false;
        false
    }

    /// Whether node `i` is paused by [`pause`](Self::pause).
    pub fn is_paused(&self, i: usize) -> bool {
        self.node(i).paused
    }

    /// Kills node `i` with SIGKILL (after SIGCONT, in case it is paused) and
    /// reaps it. Does nothing if the node is not running.
    pub fn kill(&mut self, i: usize) {
        let node = self.node_mut(i);
        if let Some(mut child) = node.child.take() {
            stop(&mut child);
        }
        node.paused = false;
    }

    /// Pauses node `i` with SIGSTOP. Its sockets stay open: the kernel still
    /// completes TCP handshakes, but the server answers nothing. Panics if the
    /// node is not running.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, libc::SIGSTOP);
        self.node_mut(i).paused = true;
    }

    /// Resumes node `i` with SIGCONT. Panics if the node is not running.
    pub fn resume(&mut self, i: usize) {
        self.signal(i, libc::SIGCONT);
        self.node_mut(i).paused = false;
    }

    /// Starts node `i` again with the same ports and data directory, with
    /// `{join}` = all other nodes' db addresses, and waits until its db port
    /// accepts TCP. Kills the node first if it is running. Panics like
    /// [`start_with`](Self::start_with).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let join: Vec<SocketAddr> = (0..self.size())
            .filter(|&j| j != i)
            .map(|j| self.nodes[j].db)
            .collect();
        self.launch(i, &join, false);
    }

    /// Waits until node `i`'s db port accepts TCP, at most
    /// [`ServerCommand::start_timeout`]; panics with the log tail otherwise.
    /// Succeeds at once for a paused node (the kernel accepts for it).
    pub fn wait_accepting(&self, i: usize) {
        let addr = self.db_address(i);
        let timeout = self.command.start_timeout;
        let deadline = Instant::now() + timeout;
        while !accepts(addr) {
            if Instant::now() >= deadline {
                panic!(
                    "node {i} ({addr}) does not accept TCP after {timeout:?}; log tail:\n{}",
                    self.log_tail(i, LOG_TAIL_LINES)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn node(&self, i: usize) -> &Node {
        let n = self.nodes.len();
        self.nodes
            .get(i)
            .unwrap_or_else(|| panic!("node index {i} out of range: {n} nodes, 0-based"))
    }

    fn node_mut(&mut self, i: usize) -> &mut Node {
        let n = self.nodes.len();
        self.nodes
            .get_mut(i)
            .unwrap_or_else(|| panic!("node index {i} out of range: {n} nodes, 0-based"))
    }

    fn signal(&mut self, i: usize, signal: libc::c_int) {
        assert!(self.is_running(i), "node {i} is not running");
        let pid = self.pid(i).expect("running node has a pid");
        signal_group(pid, signal)
            .unwrap_or_else(|e| panic!("cannot send signal {signal} to node {i}: {e}"));
    }

    /// Starts node `i` (not running) and waits for its db port. A server that
    /// exits or finds its ports taken is retried, on new ports if
    /// `new_ports_on_retry`, else on the same ones after a short pause.
    fn launch(&mut self, i: usize, join: &[SocketAddr], new_ports_on_retry: bool) {
        for attempt in 1..=START_ATTEMPTS {
            let child = self.spawn(i, join);
            let timeout = self.command.start_timeout;
            let uses_api = self.command.args.iter().any(|a| a.contains("{api}"));
            let node = self.node_mut(i);
            let api = uses_api.then_some(node.api);
            let child = node.child.insert(child);
            let failure = match wait_listening(child, node.db, api, timeout) {
                Ok(()) => return,
                Err(failure) => failure,
            };
            self.kill(i);
            let tail = self.log_tail(i, LOG_TAIL_LINES);
            let db = self.db_address(i);
            let what = match failure {
                StartFailure::Exited(status) => format!("exited during start ({status})"),
                StartFailure::PortTaken => {
                    "found its db or API port taken by another process".into()
                }
                StartFailure::TimedOut(seen) => panic!(
                    "node {i} ({db}) did not accept TCP within {timeout:?} ({seen}); \
                     log tail:\n{tail}"
                ),
            };
            if attempt == START_ATTEMPTS {
                panic!(
                    "node {i} ({db}) {what}; gave up after {attempt} attempts; log tail:\n{tail}"
                );
            }
            eprintln!("dqlite-tests: node {i} ({db}) {what}, retrying; log tail:\n{tail}");
            if new_ports_on_retry {
                let node = self.node_mut(i);
                node.api = reserve_loopback_addr();
                node.db = reserve_loopback_addr();
                self.addresses_changed();
            } else {
                thread::sleep(Duration::from_millis(300));
            }
        }
    }

    fn spawn(&self, i: usize, join: &[SocketAddr]) -> Child {
        let node = self.node(i);
        let program = &self.command.program;
        let args = self
            .command
            .expand_args(node.api, node.db, &self.data_dir(i), join);
        assert!(
            node.api.ip().is_loopback() && node.db.ip().is_loopback(),
            "only loopback addresses are allowed"
        );
        let log_path = self.log_path(i);
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let _ = writeln!(
            log,
            "==== dqlite-tests: starting node {i}: {} {}",
            program.display(),
            args.join(" ")
        );
        let stdout = log.try_clone().expect("duplicate log file handle");
        Command::new(program)
            .args(&args)
            .envs(self.command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{}", spawn_error(program, &e)))
    }
}

impl Drop for Cluster {
    /// Kills and reaps every node; if the thread is panicking, prints each
    /// node's log tail to stderr; then removes the temporary directories.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                stop(&mut child);
            }
        }
        if thread::panicking() {
            for i in 0..self.nodes.len() {
                eprintln!(
                    "---- dqlite node {i} (db {}) {}, last {LOG_TAIL_LINES} lines:\n{}\n---- end of node {i} log",
                    self.nodes[i].db,
                    self.log_path(i).display(),
                    self.log_tail(i, LOG_TAIL_LINES)
                );
            }
        }
    }
}

fn spawn_error(program: &Path, error: &io::Error) -> String {
    let what = if error.kind() == io::ErrorKind::NotFound {
        "not found"
    } else {
        "cannot be started"
    };
    format!(
        "dqlite server `{}` {what}: {error}. Install the default server with \
         `{INSTALL_HINT}`, unpack the newer generations with `{SETUP_HINT}`, or point \
         DQLITE_SERVER at another dqlite server build",
        program.display()
    )
}

/// Sends `signal` to the process group led by `pgid`.
fn signal_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(io::Error::other)?;
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid names
    // the process group, and pgid > 0 because it is a child's pid.
    if unsafe { libc::kill(-pgid, signal) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// SIGCONT then SIGKILL to the child's process group, then reap the child and
/// wait (bounded) until the group is gone: processes of a wrapper's group are
/// reaped by init, not by us.
fn stop(child: &mut Child) {
    let pgid = child.id();
    let _ = signal_group(pgid, libc::SIGCONT);
    let _ = signal_group(pgid, libc::SIGKILL);
    let _ = child.wait();
    let deadline = Instant::now() + GROUP_EXIT_TIMEOUT;
    while !process_group_members(pgid).is_empty() {
        if Instant::now() >= deadline {
            eprintln!("dqlite-tests: process group {pgid} still has members after SIGKILL");
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Why a node did not start.
enum StartFailure {
    /// The server exited.
    Exited(ExitStatus),
    /// A process outside the node's process group listens on its db port, or
    /// on its API port if the template uses `{api}`.
    PortTaken,
    /// Nothing accepted in time; what was seen last.
    TimedOut(String),
}

/// Waits until `addr` accepts TCP and a socket of the child's process group
/// listens on it. Checking who owns the listener keeps a foreign process that
/// took the port from passing for our node; it is done only once a connection
/// succeeded, since reading `/proc/net/tcp` is not cheap. Then `api`, if given,
/// must not have a foreign listener either (`dqlite-demo` binds it later and
/// would exit).
fn wait_listening(
    child: &mut Child,
    addr: SocketAddr,
    api: Option<SocketAddr>,
    timeout: Duration,
) -> Result<(), StartFailure> {
    let pgid = child.id();
    let foreign = |port: u16| {
        let sockets = listening_sockets(port);
        !sockets.is_empty() && !group_holds_any(pgid, &sockets)
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StartFailure::Exited(status));
        }
        let seen = match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(_) if foreign(addr.port()) || api.is_some_and(|a| foreign(a.port())) => {
                return Err(StartFailure::PortTaken)
            }
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            let sockets = listening_sockets(addr.port());
            let listening = if sockets.is_empty() {
                "nothing"
            } else {
                "a socket"
            };
            return Err(StartFailure::TimedOut(format!(
                "{listening} listens on the port; last connect: {seen}"
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process in process group `pgid` has one of `sockets` (link
/// targets `socket:[INODE]`) open, from `/proc/PID/fd`.
fn group_holds_any(pgid: u32, sockets: &[String]) -> bool {
    process_group_members(pgid).into_iter().any(|pid| {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            fs::read_link(fd.path())
                .is_ok_and(|target| sockets.iter().any(|s| target == Path::new(s)))
        })
    })
}

/// `socket:[INODE]` link targets of the IPv4 TCP sockets listening on `port`.
fn listening_sockets(port: u16) -> Vec<String> {
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (_, local_port) = fields.get(1)?.split_once(':')?;
            let listening = fields.get(3) == Some(&"0A");
            let matches = u16::from_str_radix(local_port, 16).ok() == Some(port);
            let inode = fields.get(9)?;
            (listening && matches).then(|| format!("socket:[{inode}]"))
        })
        .collect()
}

/// The pids of all live or zombie processes in process group `pgid`, from
/// `/proc` (Linux). Tests use it to check that nothing outlives a cluster.
pub fn process_group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold
            // spaces and parentheses, so split after the last ')'.
            let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            rest.split_whitespace().nth(2).and_then(|g| g.parse().ok()) == Some(pgid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn default_template_drops_join_for_the_bootstrap_node() {
        let cmd = ServerCommand::default();
        let args = cmd.expand_args(addr(1), addr(2), Path::new("/d"), &[]);
        assert_eq!(
            args,
            ["--api", "127.0.0.1:1", "--db", "127.0.0.1:2", "-D", "/d"]
        );
    }

    #[test]
    fn join_expands_to_a_comma_separated_list() {
        let cmd = ServerCommand::default();
        let args = cmd.expand_args(addr(1), addr(2), Path::new("/d"), &[addr(3), addr(4)]);
        assert_eq!(&args[6..], ["--join", "127.0.0.1:3,127.0.0.1:4"]);
    }

    #[test]
    fn attached_join_flag_is_dropped_and_positional_tokens_survive() {
        let cmd = ServerCommand {
            args: "serve {dir} --join={join} --addr={db} {join}"
                .split_whitespace()
                .map(String::from)
                .collect(),
            ..ServerCommand::default()
        };
        let empty = cmd.expand_args(addr(1), addr(2), Path::new("/d"), &[]);
        assert_eq!(empty, ["serve", "/d", "--addr=127.0.0.1:2"]);
        let full = cmd.expand_args(addr(1), addr(2), Path::new("/d"), &[addr(3)]);
        assert_eq!(
            full,
            [
                "serve",
                "/d",
                "--join=127.0.0.1:3",
                "--addr=127.0.0.1:2",
                "127.0.0.1:3"
            ]
        );
    }

    #[test]
    fn environment_overrides() {
        let cmd = ServerCommand::from_lookup(|key| match key {
            "DQLITE_SERVER" => Some(" /opt/dqlite/server ".into()),
            "DQLITE_SERVER_ARGS" => Some("--db {db}\t--data {dir}".into()),
            "DQLITE_SERVER_ENV" => Some("LIBDQLITE_TRACE=1  X=a=b EMPTY=".into()),
            _ => None,
        });
        assert_eq!(cmd.program, Path::new("/opt/dqlite/server"));
        assert_eq!(cmd.args, ["--db", "{db}", "--data", "{dir}"]);
        let env: Vec<(&str, &str)> = cmd.env.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(env, [("LIBDQLITE_TRACE", "1"), ("X", "a=b"), ("EMPTY", "")]);
    }

    #[test]
    fn empty_variables_mean_defaults() {
        let cmd = ServerCommand::from_lookup(|_| Some("  ".into()));
        assert_eq!(cmd.program, Path::new(ServerCommand::DEFAULT_PROGRAM));
        assert_eq!(cmd.args.join(" "), ServerCommand::DEFAULT_ARGS);
        assert!(cmd.env.is_empty());
    }

    #[test]
    #[should_panic(expected = "not of the form KEY=VALUE")]
    fn malformed_env_panics() {
        ServerCommand::from_lookup(|key| (key == "DQLITE_SERVER_ENV").then(|| "NOEQUALS".into()));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("1.18.1\n"), Some((1, 18, 1)));
        assert_eq!(parse_version("1.11.5-1+b4"), Some((1, 11, 5)));
        assert_eq!(parse_version("2:1.18.7-1"), Some((1, 18, 7)));
        assert_eq!(parse_version("1.18"), None);
        assert_eq!(parse_version("1.18.1.2"), None);
        assert_eq!(parse_version("x"), None);
    }

    #[test]
    fn version_sources_in_order() {
        let none = |_: &str| None;
        let dpkg = || Ok("1.11.5-1+b4".to_owned());
        let default = Path::new(ServerCommand::DEFAULT_PROGRAM);
        let env = |key: &str| (key == "DQLITE_SERVER_VERSION").then(|| "1.18.7".into());
        assert_eq!(detect_server_version(env, default, dpkg), Ok((1, 18, 7)));
        assert_eq!(detect_server_version(none, default, dpkg), Ok((1, 11, 5)));

        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("bin")).unwrap();
        fs::write(dir.path().join("VERSION"), "1.18.1\n").unwrap();
        let wrapped = dir.path().join("bin/dqlite-demo");
        let no_dpkg = || Err("not asked".to_owned());
        assert_eq!(
            detect_server_version(none, &wrapped, no_dpkg),
            Ok((1, 18, 1))
        );
        assert_eq!(
            detect_server_version(env, &wrapped, no_dpkg),
            Ok((1, 18, 7))
        );

        let other = Path::new("/opt/dqlite/server");
        let e = detect_server_version(none, other, no_dpkg).unwrap_err();
        assert!(e.contains("DQLITE_SERVER_VERSION"), "{e}");
        let bad = |key: &str| (key == "DQLITE_SERVER_VERSION").then(|| "1.x".into());
        assert!(detect_server_version(bad, default, dpkg).is_err());
    }

    #[test]
    fn reserved_ports_are_unique() {
        let ports: BTreeSet<u16> = (0..200).map(|_| reserve_loopback_addr().port()).collect();
        assert_eq!(ports.len(), 200);
    }
}
