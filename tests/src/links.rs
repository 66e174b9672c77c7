//! Partitions between nodes: a cluster of `tlsnode`s (plaintext) whose node-to-node
//! connections each pass through their own fault [`Proxy`], one per directed link.
//!
//! `tlsnode --links FILE` makes every connection from a node to another node (raft traffic
//! and the node's own cluster requests) dial the address that FILE names for that link,
//! instead of the other node's address; see `tests/nodes/README.md`. [`LinkedCluster::start`]
//! starts one [`Proxy`] per ordered pair of nodes `(from, to)`, forwarding to node `to`, and
//! writes FILE before any node starts. Clients still connect to every node directly (its db
//! address), so during a partition they see each side as it is, the old leader included.
//!
//! A raft node sends its messages to a peer on the connection it dialed itself, and receives
//! the peer's on the connection the peer dialed. So cutting link `(i, j)` silences what
//! node `i` says to node `j` and nothing else: [`cut`](LinkedCluster::cut) is one-way, and a
//! full partition between two nodes cuts both links.
//!
//! A cut link black-holes its live connections (nothing forwarded either way, the bytes wait
//! in the kernel's buffers, like packets lost on a network that TCP will retransmit once it
//! heals) and refuses new ones at once (so a node's dial fails fast instead of holding the
//! node's single dialing lock for go-dqlite's 5 s connect timeout).
//! [`heal`](LinkedCluster::heal) lifts every fault on every link.
//!
//! The cluster speaks plaintext, so every helper of [`Cluster`] works ([`Cluster::leader`],
//! [`Cluster::wait_ready`], [`Cluster::transfer_leadership`]): it dereferences to it.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tempfile::TempDir;

use crate::harness::{Cluster, ServerCommand};
use crate::proxy::Proxy;

/// The proxies of a cluster, one per directed link, and the links file the nodes read.
struct Links {
    file: PathBuf,
    proxies: BTreeMap<(usize, usize), Proxy>,
}

impl Links {
    /// (Re)creates the proxy of every link whose upstream is not the current address of its
    /// target node, then rewrites the links file (atomically: the nodes read it at every
    /// dial).
    fn update(&mut self, addresses: &[SocketAddr]) {
        for (from, _) in addresses.iter().enumerate() {
            for (to, &target) in addresses.iter().enumerate() {
                if from == to {
                    continue;
                }
                let stale = self
                    .proxies
                    .get(&(from, to))
                    .is_none_or(|p| p.upstream() != target);
                if stale {
                    self.proxies.insert((from, to), Proxy::start(target));
                }
            }
        }
        let mut text = String::from("# FROM TO VIA: one line per link, written by dqlite-tests\n");
        for (&(from, to), proxy) in &self.proxies {
            text.push_str(&format!(
                "{} {} {}\n",
                addresses[from],
                addresses[to],
                proxy.address()
            ));
        }
        let tmp = self.file.with_extension("tmp");
        fs::write(&tmp, text)
            .and_then(|()| fs::rename(&tmp, &self.file))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.file.display()));
    }
}

/// A fault between the nodes of a 3-node [`LinkedCluster`], chosen relative to the leader
/// when it is applied; see [`LinkedCluster::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nemesis {
    /// The leader cut off from both followers, both ways: the minority side holds the old
    /// leader, which clients can still reach; the followers elect a new one.
    IsolateLeader,
    /// One follower cut off from the other two nodes, both ways: the majority keeps its
    /// leader.
    IsolateFollower,
    /// What the leader sends to the followers is lost; what they send it arrives. The
    /// followers stop hearing heartbeats and elect a new leader, whose messages the old one
    /// still receives.
    LeaderCannotSend,
    /// What the followers send to the leader is lost; the leader's messages still arrive.
    /// The leader hears no acknowledgements and steps down.
    LeaderCannotHear,
    /// The leader and one follower cut off from each other, both ways; the other follower
    /// sees both (a bridge between the two sides).
    Bridge,
    /// Every link delays every chunk of data by the given time, each way.
    Latency(Duration),
}

impl Nemesis {
    /// Every kind, with 150 ms of latency, in the order schedules use them.
    pub const ALL: [Nemesis; 6] = [
        Nemesis::IsolateLeader,
        Nemesis::IsolateFollower,
        Nemesis::LeaderCannotSend,
        Nemesis::Bridge,
        Nemesis::LeaderCannotHear,
        Nemesis::Latency(Duration::from_millis(150)),
    ];
}

impl fmt::Display for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nemesis::IsolateLeader => f.write_str("isolate the leader"),
            Nemesis::IsolateFollower => f.write_str("isolate a follower"),
            Nemesis::LeaderCannotSend => f.write_str("one-way cut from the leader"),
            Nemesis::LeaderCannotHear => f.write_str("one-way cut to the leader"),
            Nemesis::Bridge => f.write_str("bridge"),
            Nemesis::Latency(d) => write!(f, "{d:?} latency on every link"),
        }
    }
}

/// A cluster of plaintext `tlsnode`s whose node-to-node links each pass through a fault
/// proxy; see the [module docs](self). Dereferences to the [`Cluster`].
pub struct LinkedCluster {
    cluster: Cluster,
    links: Arc<Mutex<Links>>,
    // Dropped after the cluster (fields drop in declaration order).
    _dir: TempDir,
}

impl LinkedCluster {
    /// Starts an `n`-node cluster of `tlsnode --links`, with a proxy on every directed link,
    /// no fault. Does not wait for readiness: call [`Cluster::wait_ready`].
    pub fn start(n: usize) -> LinkedCluster {
        let dir = tempfile::Builder::new()
            .prefix("dqlite-links-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let file = dir.path().join("links");
        let links = Arc::new(Mutex::new(Links {
            file: file.clone(),
            proxies: BTreeMap::new(),
        }));
        let mut command = ServerCommand::plain_node();
        command
            .args
            .extend(["--links".into(), file.to_string_lossy().into_owned()]);
        let hook = {
            let links = links.clone();
            Box::new(move |addresses: &[SocketAddr]| lock(&links).update(addresses))
        };
        let cluster = Cluster::start_with_hook(command, n, Some(hook));
        LinkedCluster {
            cluster,
            links,
            _dir: dir,
        }
    }

    /// The links file the nodes read.
    pub fn links_file(&self) -> PathBuf {
        lock(&self.links).file.clone()
    }

    /// Runs `f` on the proxy of the link from node `from` to node `to`.
    pub fn with_link<T>(&self, from: usize, to: usize, f: impl FnOnce(&Proxy) -> T) -> T {
        let links = lock(&self.links);
        let proxy = links
            .proxies
            .get(&(from, to))
            .unwrap_or_else(|| panic!("no link from node {from} to node {to}"));
        f(proxy)
    }

    /// Cuts the link from node `from` to node `to` (one way): live connections are
    /// black-holed, new ones refused.
    pub fn cut(&self, from: usize, to: usize) {
        self.with_link(from, to, |p| {
            p.refuse(true);
            p.black_hole(true);
        });
    }

    /// Cuts both links between nodes `a` and `b`.
    pub fn cut_both(&self, a: usize, b: usize) {
        self.cut(a, b);
        self.cut(b, a);
    }

    /// Cuts every link between node `node` and the others, both ways.
    pub fn isolate(&self, node: usize) {
        for other in (0..self.size()).filter(|&j| j != node) {
            self.cut_both(node, other);
        }
    }

    /// Delays every chunk on every link by `latency`, each way.
    pub fn set_latency(&self, latency: Duration) {
        for proxy in lock(&self.links).proxies.values() {
            proxy.set_latency(latency);
        }
    }

    /// Lifts every fault on every link. Connections the faults held resume with their data
    /// intact.
    pub fn heal(&self) {
        for proxy in lock(&self.links).proxies.values() {
            proxy.heal();
        }
    }

    /// Applies `nemesis` around node `leader` (of a 3-node cluster, or larger: the
    /// "followers" are then every other node, and [`Nemesis::IsolateFollower`] and
    /// [`Nemesis::Bridge`] pick the next node after the leader). Returns what was done, for
    /// the test's output. [`heal`](Self::heal) undoes it.
    pub fn apply(&self, nemesis: Nemesis, leader: usize) -> String {
        let n = self.size();
        let follower = (leader + 1) % n;
        let followers: Vec<usize> = (0..n).filter(|&j| j != leader).collect();
        match nemesis {
            Nemesis::IsolateLeader => self.isolate(leader),
            Nemesis::IsolateFollower => self.isolate(follower),
            Nemesis::LeaderCannotSend => followers.iter().for_each(|&j| self.cut(leader, j)),
            Nemesis::LeaderCannotHear => followers.iter().for_each(|&j| self.cut(j, leader)),
            Nemesis::Bridge => self.cut_both(leader, follower),
            Nemesis::Latency(d) => self.set_latency(d),
        }
        match nemesis {
            Nemesis::IsolateFollower | Nemesis::Bridge => {
                format!("{nemesis} (leader {leader}, node {follower})")
            }
            _ => format!("{nemesis} (leader {leader})"),
        }
    }

    /// Bytes each link forwarded to its target node so far, by `(from, to)`.
    pub fn bytes_forwarded(&self) -> BTreeMap<(usize, usize), u64> {
        lock(&self.links)
            .proxies
            .iter()
            .map(|(&link, p)| (link, p.bytes_to_server()))
            .collect()
    }
}

fn lock(links: &Mutex<Links>) -> MutexGuard<'_, Links> {
    links.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Deref for LinkedCluster {
    type Target = Cluster;
    fn deref(&self) -> &Cluster {
        &self.cluster
    }
}

impl DerefMut for LinkedCluster {
    fn deref_mut(&mut self) -> &mut Cluster {
        &mut self.cluster
    }
}
