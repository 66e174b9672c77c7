//! Leader discovery as a sans-IO state machine.
//!
//! The driver dials and asks LEADER; this machine decides whom to ask, in what order, how
//! many at once, when to back off, and when the answer is final.

use crate::backoff::Backoff;
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use crate::request::NodeRole;
use crate::response::NodeInfo;

/// A node the discovery may probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Address to dial, in the form the cluster reports it.
    pub address: String,
    /// Raft id when known (0 if not): a LEADER reply naming this id confirms the node even
    /// if it spells its address differently.
    pub id: u64,
    /// Role when known; voters (and unknown roles) are asked first.
    pub role: Option<NodeRole>,
}

impl Node {
    /// A node known only by its address.
    pub fn new(address: impl Into<String>) -> Node {
        Node {
            address: address.into(),
            id: 0,
            role: None,
        }
    }
}

/// Which leader hints (a node naming another node as leader) are followed.
///
/// Whatever the policy, a named node is believed only once it confirms, on its own
/// connection, that it leads: a redirect only decides whom else to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectPolicy {
    /// Never: only nodes in the list are asked.
    Never,
    /// Strict: only to addresses spelled exactly as in the list, so that nothing but the
    /// configured addresses is ever dialled (for example where a firewall or audit rule
    /// allows only those). A cluster whose nodes were configured under other names than the
    /// list uses (`localhost:9001` in the list, `127.0.0.1:9001` in the cluster) is then
    /// found only if a listed node turns out to be the leader itself (see
    /// [`Discovery::same_node`]), and a list holding only followers fails.
    KnownNodes,
    /// To nodes of the cluster (the default): addresses in the list, addresses the driver
    /// found to resolve to a listed node ([`Discovery::same_node`]), and addresses in the
    /// cluster's own membership as a node reported it ([`Discovery::handle_members`]). This
    /// follows the leader's own name for itself, as other dqlite clients do, while never
    /// dialling an address the cluster does not claim.
    Cluster,
    /// To any address a node names.
    Any,
}

/// Tuning of a [`Discovery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Most probes in flight at once. Default 4.
    pub max_in_flight: usize,
    /// Rounds over the node list before giving up. Default 16: with the default pauses, a
    /// search gives up after 2-4 s.
    pub max_rounds: u32,
    /// Pause after the first failed round, doubled each round. Default 100 ms.
    pub backoff_base: Duration,
    /// Longest pause between rounds. Default 250 ms: during an election the search asks
    /// again at least four times a second, so a new leader is found within about a quarter
    /// of a second of being elected (go-dqlite's cap is 1 s).
    pub backoff_cap: Duration,
    /// Seed of the jitter applied to pauses (each pause is 50-100 % of its nominal length).
    pub jitter_seed: u64,
    /// Which redirects to follow.
    pub redirects: RedirectPolicy,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            max_in_flight: 4,
            max_rounds: 16,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(250),
            jitter_seed: 0x9e37_79b9_7f4a_7c15,
            redirects: RedirectPolicy::Cluster,
        }
    }
}

/// Names one probe the driver was asked to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProbeId(u64);

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Dial `address`, send the handshake and LEADER, and report the reply with
    /// [`Discovery::handle_reply`] or a failure with [`Discovery::handle_failure`]. Keep the
    /// connection open until the discovery is done: it may be the leader's.
    Probe {
        /// The probe.
        probe: ProbeId,
        /// The address to dial.
        address: String,
    },
    /// The discovery is over. On success keep the connection of `leader.probe`; close every
    /// other probe's connection.
    Done(Result<Leader, DiscoveryError>),
}

/// The leader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The probe whose connection reached the leader.
    pub probe: ProbeId,
    /// The leader's address as dialled.
    pub address: String,
    /// The leader's raft id.
    pub id: u64,
}

/// What was learned from one node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeOutcome {
    /// Could not be dialled, or the handshake or LEADER failed (the driver's reason).
    Unreachable(String),
    /// Answered, but knows no leader (no leader elected, or the node is not a voter).
    NoLeader,
    /// Named another node as leader, which did not confirm (or was not followed).
    Redirected {
        /// The address named.
        to: String,
        /// Whether the policy allowed asking it.
        followed: bool,
    },
    /// Was named as leader by another node but named someone else (or nobody) itself.
    NotConfirmed {
        /// Whom it named instead (empty: nobody).
        names: String,
    },
    /// Was still being asked when the driver's deadline passed ([`Discovery::expire`]).
    Unanswered,
}

impl fmt::Display for NodeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeOutcome::Unreachable(why) => write!(f, "unreachable ({why})"),
            NodeOutcome::NoLeader => f.write_str("knows no leader"),
            NodeOutcome::Redirected { to, followed: true } => {
                write!(f, "named {to} as leader, which did not confirm")
            }
            NodeOutcome::Redirected {
                to,
                followed: false,
            } => {
                write!(f, "named {to} as leader (redirect not allowed by policy)")
            }
            NodeOutcome::NotConfirmed { names } if names.is_empty() => {
                f.write_str("named as leader by another node but knows no leader")
            }
            NodeOutcome::NotConfirmed { names } => {
                write!(f, "named as leader by another node but names {names}")
            }
            NodeOutcome::Unanswered => f.write_str("had not answered when the deadline passed"),
        }
    }
}

/// Why no leader was found, per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryError {
    /// Rounds tried.
    pub rounds: u32,
    /// The last outcome of each node asked, in the order they were first asked.
    pub nodes: Vec<(String, NodeOutcome)>,
    /// True when the driver's deadline ended the discovery ([`Discovery::expire`]) before
    /// its rounds were over.
    pub timed_out: bool,
}

impl DiscoveryError {
    /// True when no node could be reached at all (or no node was given).
    pub fn no_node_reachable(&self) -> bool {
        self.nodes
            .iter()
            .all(|(_, o)| matches!(o, NodeOutcome::Unreachable(_)))
    }

    /// True when every node reached said it knows no leader: no leader is elected.
    pub fn no_leader_elected(&self) -> bool {
        let mut reached = self
            .nodes
            .iter()
            .filter(|(_, o)| !matches!(o, NodeOutcome::Unreachable(_)))
            .peekable();
        reached.peek().is_some() && reached.all(|(_, o)| *o == NodeOutcome::NoLeader)
    }
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no leader found after {} round(s)", self.rounds)?;
        if self.timed_out {
            f.write_str(" (the deadline passed)")?;
        }
        if self.nodes.is_empty() {
            return f.write_str(": no nodes to ask");
        }
        for (i, (addr, outcome)) in self.nodes.iter().enumerate() {
            let sep = if i == 0 { ": " } else { "; " };
            write!(f, "{sep}{addr} {outcome}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DiscoveryError {}

#[derive(Debug)]
struct InFlight {
    probe: ProbeId,
    address: String,
    /// Known raft id of the node, 0 if unknown.
    id: u64,
    /// Set when this probe follows a redirect: it must confirm itself.
    redirect: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Asking the last known leader alone.
    FastPath,
    /// Asking the node list.
    Round,
    /// Pausing until the instant before the next round.
    Backoff(Instant),
    Finished,
}

/// The leader-discovery state machine.
///
/// Drive it like [`Connection`](crate::Connection): after every input, call
/// [`poll_action`](Discovery::poll_action) until it returns `None`, then wait for a probe to
/// finish or for [`poll_timeout`](Discovery::poll_timeout).
///
/// ```
/// use std::time::Instant;
/// use dqlite_proto::discovery::{Action, Discovery, DiscoveryConfig, Node};
/// use dqlite_proto::NodeInfo;
///
/// let nodes = vec![Node::new("127.0.0.1:9001"), Node::new("127.0.0.1:9002")];
/// let mut d = Discovery::new(nodes, None, DiscoveryConfig::default());
/// let now = Instant::now();
/// let Some(Action::Probe { probe: first, .. }) = d.poll_action(now) else { panic!() };
/// let Some(Action::Probe { probe: second, address }) = d.poll_action(now) else { panic!() };
/// // The first node points at the second, which confirms.
/// d.handle_reply(first, &NodeInfo { id: 2, address: "127.0.0.1:9002".into(), role: None });
/// d.handle_reply(second, &NodeInfo { id: 2, address: address.as_str().into(), role: None });
/// let Some(Action::Done(Ok(leader))) = d.poll_action(now) else { panic!() };
/// assert_eq!((leader.probe, leader.id), (second, 2));
/// ```
#[derive(Debug)]
pub struct Discovery {
    config: DiscoveryConfig,
    nodes: Vec<Node>,
    last_leader: Option<String>,
    phase: Phase,
    round: u32,
    queue: VecDeque<(String, u64, bool)>,
    asked: HashSet<String>,
    in_flight: Vec<InFlight>,
    outcomes: Vec<(String, NodeOutcome)>,
    /// Addresses in the order they were first probed (orders the final error).
    first_asked: Vec<String>,
    found: Option<Leader>,
    next_probe: u64,
    jitter: Backoff,
    /// Pairs of addresses the driver found to name the same node ([`Discovery::same_node`]).
    aliases: Vec<(String, String)>,
    /// Addresses in a membership list a node reported ([`Discovery::handle_members`]).
    members: HashSet<String>,
}

impl Discovery {
    /// A discovery over `nodes`, trying `last_leader` alone first when given.
    pub fn new(mut nodes: Vec<Node>, last_leader: Option<String>, config: DiscoveryConfig) -> Self {
        // Voters (and nodes of unknown role) first: only voters know the leader.
        nodes.sort_by_key(|n| match n.role {
            None | Some(NodeRole::Voter) => 0,
            Some(NodeRole::Standby) => 1,
            Some(NodeRole::Spare) => 2,
        });
        let phase = if last_leader.is_some() {
            Phase::FastPath
        } else {
            Phase::Round
        };
        let mut d = Discovery {
            config,
            nodes,
            last_leader,
            phase,
            round: 0,
            queue: VecDeque::new(),
            asked: HashSet::new(),
            in_flight: Vec::new(),
            outcomes: Vec::new(),
            first_asked: Vec::new(),
            found: None,
            next_probe: 0,
            jitter: Backoff::new(config.backoff_base, config.backoff_cap, config.jitter_seed),
            aliases: Vec::new(),
            members: HashSet::new(),
        };
        match d.last_leader.clone() {
            Some(addr) => {
                let id = d.known_id(&addr);
                d.queue.push_back((addr, id, false));
            }
            None => d.start_round(),
        }
        d
    }

    /// The instant the driver should call [`poll_action`](Self::poll_action) again even if no
    /// probe finished (the end of a backoff pause).
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Backoff(until) => Some(until),
            _ => None,
        }
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        loop {
            match self.phase {
                Phase::Finished => return None,
                Phase::Backoff(until) if now < until => return None,
                Phase::Backoff(_) => {
                    self.phase = Phase::Round;
                    self.start_round();
                }
                Phase::FastPath | Phase::Round => {
                    if let Some(leader) = self.found.take() {
                        self.phase = Phase::Finished;
                        return Some(Action::Done(Ok(leader)));
                    }
                    if self.in_flight.len() < self.config.max_in_flight.max(1) {
                        if let Some((address, id, redirect)) = self.queue.pop_front() {
                            return Some(self.launch(address, id, redirect));
                        }
                    }
                    if !self.in_flight.is_empty() {
                        return None;
                    }
                    // Nothing queued or running: this pass has failed.
                    if self.phase == Phase::FastPath {
                        self.phase = Phase::Round;
                        self.start_round();
                        continue;
                    }
                    if self.round >= self.config.max_rounds.max(1) || self.nodes.is_empty() {
                        self.phase = Phase::Finished;
                        let mut nodes = std::mem::take(&mut self.outcomes);
                        let order = &self.first_asked;
                        nodes.sort_by_key(|(a, _)| order.iter().position(|o| o == a));
                        return Some(Action::Done(Err(DiscoveryError {
                            rounds: self.round,
                            nodes,
                            timed_out: false,
                        })));
                    }
                    let pause = self.backoff();
                    self.phase = Phase::Backoff(now.checked_add(pause).unwrap_or(now));
                }
            }
        }
    }

    /// A probe got its LEADER reply.
    pub fn handle_reply(&mut self, probe: ProbeId, reply: &NodeInfo) {
        let Some(p) = self.take_in_flight(probe) else {
            return;
        };
        let named = reply.address.as_str();
        let confirms = (!named.is_empty() && self.is_same(named, &p.address))
            || (reply.id != 0 && reply.id == p.id);
        if confirms {
            if self.found.is_none() {
                self.found = Some(Leader {
                    probe,
                    address: p.address,
                    id: reply.id,
                });
            }
            return;
        }
        if named.is_empty() || reply.id == 0 {
            let outcome = if p.redirect {
                NodeOutcome::NotConfirmed {
                    names: String::new(),
                }
            } else {
                NodeOutcome::NoLeader
            };
            self.record(p.address, outcome);
            return;
        }
        if p.redirect {
            // Only one hop: a redirect target naming a third node is not followed.
            self.record(
                p.address,
                NodeOutcome::NotConfirmed {
                    names: named.to_owned(),
                },
            );
            return;
        }
        let followed = self.follow(named, reply.id);
        self.record(
            p.address,
            NodeOutcome::Redirected {
                to: named.to_owned(),
                followed,
            },
        );
    }

    /// A probe failed: dial error, timeout, closed connection, or a FAILURE reply.
    pub fn handle_failure(&mut self, probe: ProbeId, reason: impl Into<String>) {
        if let Some(p) = self.take_in_flight(probe) {
            self.record(p.address, NodeOutcome::Unreachable(reason.into()));
        }
    }

    /// Probes running now (asked for and not yet reported on).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Tells the discovery that `alias` and `address` name the same node: the driver resolved
    /// both and they share a socket address (or `alias` resolves to the very socket address a
    /// probe of `address` is connected to). The discovery never resolves names itself.
    ///
    /// Call it before [`handle_reply`](Self::handle_reply) for the probe whose reply named
    /// `alias`. Then a node that names itself under another spelling confirms itself, and
    /// under [`RedirectPolicy::Cluster`] an alias of a listed node is followed.
    ///
    /// ```
    /// use std::time::Instant;
    /// use dqlite_proto::discovery::{Action, Discovery, DiscoveryConfig, Node};
    /// use dqlite_proto::NodeInfo;
    ///
    /// let mut d = Discovery::new(vec![Node::new("localhost:9001")], None, DiscoveryConfig::default());
    /// let now = Instant::now();
    /// let Some(Action::Probe { probe, address }) = d.poll_action(now) else { panic!() };
    /// // The node calls itself 127.0.0.1:9001, which the driver resolved to where it is connected.
    /// d.same_node("127.0.0.1:9001", &address);
    /// d.handle_reply(probe, &NodeInfo { id: 1, address: "127.0.0.1:9001".into(), role: None });
    /// let Some(Action::Done(Ok(leader))) = d.poll_action(now) else { panic!() };
    /// assert_eq!(leader.address, "localhost:9001");
    /// ```
    pub fn same_node(&mut self, alias: &str, address: &str) {
        if alias == address || self.is_same(alias, address) {
            return;
        }
        self.aliases.push((alias.to_owned(), address.to_owned()));
    }

    /// A probe's node reported the cluster's membership (a CLUSTER reply). Under
    /// [`RedirectPolicy::Cluster`] the addresses in it may be followed when a node names one
    /// as leader. Call it before [`handle_reply`](Self::handle_reply) for that probe; it is
    /// ignored for a probe that is not running.
    ///
    /// ```
    /// use std::time::Instant;
    /// use dqlite_proto::discovery::{Action, Discovery, DiscoveryConfig, Node};
    /// use dqlite_proto::NodeInfo;
    ///
    /// // Seeded with one follower, which names a leader outside the list.
    /// let mut d = Discovery::new(vec![Node::new("127.0.0.1:9002")], None, DiscoveryConfig::default());
    /// let now = Instant::now();
    /// let Some(Action::Probe { probe, .. }) = d.poll_action(now) else { panic!() };
    /// let leader = NodeInfo { id: 1, address: "127.0.0.1:9001".into(), role: None };
    /// d.handle_members(probe, &[leader.clone()]);
    /// d.handle_reply(probe, &leader);
    /// // Followed: the named node is asked next, and must confirm itself.
    /// let Some(Action::Probe { address, .. }) = d.poll_action(now) else { panic!() };
    /// assert_eq!(address, "127.0.0.1:9001");
    /// ```
    pub fn handle_members(&mut self, probe: ProbeId, members: &[NodeInfo]) {
        if self.phase == Phase::Finished || !self.in_flight.iter().any(|p| p.probe == probe) {
            return;
        }
        for m in members {
            if !m.address.is_empty() {
                self.members.insert(m.address.as_str().to_owned());
            }
        }
    }

    /// The driver's deadline passed: ends the discovery (later inputs are ignored and
    /// [`poll_action`](Self::poll_action) returns `None`) and returns what was learned so far.
    /// Nodes being asked that had no earlier outcome are [`NodeOutcome::Unanswered`];
    /// [`DiscoveryError::timed_out`] is set. Close every probe's connection.
    ///
    /// ```
    /// use std::time::Instant;
    /// use dqlite_proto::discovery::{Action, Discovery, DiscoveryConfig, Node, NodeOutcome};
    ///
    /// let mut d = Discovery::new(vec![Node::new("127.0.0.1:9001")], None, DiscoveryConfig::default());
    /// let Some(Action::Probe { .. }) = d.poll_action(Instant::now()) else { panic!() };
    /// let e = d.expire();
    /// assert!(e.timed_out);
    /// assert_eq!(e.nodes, [("127.0.0.1:9001".to_string(), NodeOutcome::Unanswered)]);
    /// ```
    pub fn expire(&mut self) -> DiscoveryError {
        self.phase = Phase::Finished;
        self.found = None;
        for p in std::mem::take(&mut self.in_flight) {
            if !self.outcomes.iter().any(|(a, _)| *a == p.address) {
                self.outcomes.push((p.address, NodeOutcome::Unanswered));
            }
        }
        let mut nodes = std::mem::take(&mut self.outcomes);
        let order = &self.first_asked;
        nodes.sort_by_key(|(a, _)| order.iter().position(|o| o == a));
        DiscoveryError {
            rounds: self.round,
            nodes,
            timed_out: true,
        }
    }

    /// Whether the two addresses are one spelling or declared aliases of each other.
    fn is_same(&self, a: &str, b: &str) -> bool {
        a == b
            || self
                .aliases
                .iter()
                .any(|(x, y)| (x == a && y == b) || (x == b && y == a))
    }

    fn known_id(&self, address: &str) -> u64 {
        self.nodes
            .iter()
            .find(|n| n.address == address)
            .map_or(0, |n| n.id)
    }

    fn start_round(&mut self) {
        self.round += 1;
        self.asked.clear();
        self.queue = self
            .nodes
            .iter()
            .map(|n| (n.address.clone(), n.id, false))
            .collect();
    }

    /// Queues a redirect target ahead of the rest. Returns whether it is (or will be) asked.
    fn follow(&mut self, address: &str, id: u64) -> bool {
        let known = self.nodes.iter().any(|n| n.address == address);
        let allowed = match self.config.redirects {
            RedirectPolicy::Never => false,
            RedirectPolicy::KnownNodes => known,
            RedirectPolicy::Cluster => {
                known
                    || self.members.contains(address)
                    || self.nodes.iter().any(|n| self.is_same(address, &n.address))
            }
            RedirectPolicy::Any => true,
        };
        if !allowed {
            return false;
        }
        if self.asked.contains(address) {
            // Already asked (or being asked) in this pass; its own answer decides.
            return true;
        }
        self.queue.retain(|(a, _, _)| a != address);
        self.queue.push_front((address.to_owned(), id, true));
        true
    }

    fn launch(&mut self, address: String, id: u64, redirect: bool) -> Action {
        let probe = ProbeId(self.next_probe);
        self.next_probe += 1;
        self.asked.insert(address.clone());
        if !self.first_asked.contains(&address) {
            self.first_asked.push(address.clone());
        }
        self.in_flight.push(InFlight {
            probe,
            address: address.clone(),
            id,
            redirect,
        });
        Action::Probe { probe, address }
    }

    fn take_in_flight(&mut self, probe: ProbeId) -> Option<InFlight> {
        if self.phase == Phase::Finished {
            return None;
        }
        let i = self.in_flight.iter().position(|p| p.probe == probe)?;
        Some(self.in_flight.swap_remove(i))
    }

    fn record(&mut self, address: String, outcome: NodeOutcome) {
        match self.outcomes.iter_mut().find(|(a, _)| *a == address) {
            Some((_, o)) => *o = outcome,
            None => self.outcomes.push((address, outcome)),
        }
    }

    /// The pause after round `round`: see [`Backoff`].
    fn backoff(&mut self) -> Duration {
        self.jitter.pause(self.round)
    }
}
