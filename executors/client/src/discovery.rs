//! Drives the core's leader discovery over real connections: parallel bounded probes in one
//! task, backoff between rounds, and the winning probe's connection kept as the leader's.
//!
//! The core compares addresses as strings; this driver resolves names (at each dial) and
//! tells it which spellings name the same node, and asks a node that names an unknown
//! address for the cluster's membership, so that the default
//! [`RedirectPolicy::Cluster`] can follow the leader's own name for itself.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use dqlite_proto::discovery::{Action, Discovery, Node, ProbeId, RedirectPolicy};
use dqlite_proto::{NodeInfo, Reply};
use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::config::Config;
use crate::connection::Connection;
use crate::driver::Driver;
use crate::error::{Error, Result};
use crate::resolve::resolve;
use crate::runtime::{timeout, BoxFuture, Runtime};
use crate::transport::{dial, BoxStream};
use tracing::Instrument;

/// What one probe learned.
struct Probed {
    wire: Driver<BoxStream>,
    /// The address dialled.
    address: String,
    /// The LEADER reply.
    info: NodeInfo,
    /// Addresses found to name the same node: (the name in the reply, a listed address or the
    /// address dialled).
    aliases: Vec<(String, String)>,
    /// The membership the node reported, when it was asked.
    members: Option<Vec<NodeInfo>>,
}

type ProbeResult = (ProbeId, Result<Probed>);

/// One request on a probe's wire.
async fn ask(
    wire: &mut Driver<BoxStream>,
    f: impl FnOnce(
        &mut dqlite_proto::Connection,
    ) -> std::result::Result<dqlite_proto::RequestId, dqlite_proto::Error>,
) -> Result<Reply> {
    let id = f(&mut wire.core)?;
    let ev = wire.next_event(id).await?;
    match ev.reply {
        Reply::Failure(f) => Err(Error::Server(f)),
        other => Ok(other),
    }
}

/// Whether `name` resolves to one of `targets` (a name that fails to resolve does not).
async fn resolves_to<R: Runtime>(rt: &R, name: &str, targets: &[SocketAddr]) -> bool {
    match resolve(rt, name).await {
        Ok(addrs) => addrs.iter().any(|a| targets.contains(a)),
        Err(_) => false,
    }
}

/// Asks one node who leads: dial (resolving the name now), handshake, LEADER, within the
/// probe deadline. When the node names an address other than the one dialled, finds out
/// whether that is this very node, or (under [`RedirectPolicy::Cluster`]) a listed node, and
/// otherwise asks the node for the membership.
async fn probe<R: Runtime>(
    rt: R,
    address: String,
    listed: Arc<Vec<String>>,
    config: Arc<Config>,
) -> Result<Probed> {
    let work = async {
        let (mut wire, peer) = dial(&rt, &address, &config).await?;
        let info = match ask(&mut wire, |c| c.leader()).await? {
            Reply::Leader(n) => n,
            other => return Err(crate::session::unexpected(other, "SERVER")),
        };
        let mut aliases = Vec::new();
        let mut members = None;
        let named = info.address.as_str().to_owned();
        if !named.is_empty() && named != address {
            let named_addrs = resolve(&rt, &named).await.unwrap_or_default();
            if peer.is_some_and(|p| named_addrs.contains(&p)) {
                // The node named itself under another spelling.
                aliases.push((named, address.clone()));
            } else if config.discovery.redirects == RedirectPolicy::Cluster
                && !listed.contains(&named)
            {
                for node in listed.iter().filter(|n| **n != address) {
                    if resolves_to(&rt, node, &named_addrs).await {
                        aliases.push((named.clone(), node.clone()));
                        break;
                    }
                }
                if aliases.is_empty() {
                    // Is the named node a member of this node's cluster?
                    match ask(&mut wire, |c| c.cluster(true)).await {
                        Ok(Reply::Nodes(n)) => members = Some(n),
                        Ok(_) | Err(Error::Server(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(Probed {
            wire,
            address,
            info,
            aliases,
            members,
        })
    };
    timeout(&rt, config.probe_timeout, work)
        .await
        .unwrap_or(Err(Error::Timeout("asking a node for the leader")))
}

/// Finds the leader among `nodes` (trying `last_leader` first) and opens a connection to it.
///
/// The whole connect is bounded by the connect timeout; when it passes during the search,
/// the error is [`Error::NoLeader`] with what each node said so far (and
/// [`is_timeout`](Error::is_timeout) true).
pub(crate) async fn connect_leader<R: Runtime>(
    rt: &R,
    nodes: Vec<Node>,
    last_leader: Option<String>,
    config: Arc<Config>,
) -> Result<Connection<R>> {
    let span = tracing::debug_span!("dqlite.discover", nodes = nodes.len());
    let deadline = rt
        .now()
        .checked_add(config.connect_timeout)
        .unwrap_or_else(|| rt.now());
    let listed: Arc<Vec<String>> = Arc::new(nodes.iter().map(|n| n.address.clone()).collect());
    let work = async {
        let mut discovery = Discovery::new(nodes, last_leader, config.discovery);
        let mut probes: FuturesUnordered<BoxFuture<'static, ProbeResult>> = FuturesUnordered::new();
        let mut wires: HashMap<ProbeId, Driver<BoxStream>> = HashMap::new();
        let (wire, leader) = loop {
            let mut done = None;
            while let Some(action) = discovery.poll_action(rt.now()) {
                match action {
                    Action::Probe { probe: id, address } => {
                        tracing::debug!(%address, "probing for leader");
                        let fut = probe(rt.clone(), address, listed.clone(), config.clone());
                        probes.push(Box::pin(async move { (id, fut.await) }));
                    }
                    Action::Done(Ok(leader)) => {
                        // The core reports success only for a probe whose reply was handled,
                        // and every such probe's wire is kept.
                        let wire = wires
                            .remove(&leader.probe)
                            .ok_or(Error::Internal("the leader's probe connection is missing"))?;
                        done = Some((wire, leader));
                    }
                    Action::Done(Err(e)) => return Err(Error::NoLeader(e)),
                }
            }
            if let Some(found) = done {
                break found;
            }
            // Wait for a probe to finish, the backoff pause to end, or the deadline.
            let now = rt.now();
            if now >= deadline {
                return Err(Error::NoLeader(discovery.expire()));
            }
            let wake: Instant = discovery
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            let pause = rt.sleep(wake.saturating_duration_since(now));
            let next = if probes.is_empty() {
                pause.await;
                continue;
            } else {
                match select(probes.next(), pause).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => continue,
                }
            };
            if let Some((id, result)) = next {
                match result {
                    Ok(p) => {
                        for (alias, node) in &p.aliases {
                            discovery.same_node(alias, node);
                        }
                        if p.aliases.iter().any(|(_, node)| *node == p.address) {
                            tracing::debug!(address = %p.address, named = %p.info.address.as_str(),
                                "the node names itself under another spelling");
                        }
                        if let Some(members) = &p.members {
                            discovery.handle_members(id, members);
                        }
                        wires.insert(id, p.wire);
                        discovery.handle_reply(id, &p.info);
                    }
                    Err(e) => discovery.handle_failure(id, e.to_string()),
                }
            }
        };
        tracing::debug!(address = %leader.address, id = leader.id, "leader found");
        let rest = deadline.saturating_duration_since(rt.now());
        timeout(
            rt,
            rest,
            Connection::open(rt.clone(), wire, leader.address, config.clone()),
        )
        .await
        .unwrap_or(Err(Error::Timeout("opening the database on the leader")))
    };
    work.instrument(span).await
}

/// Connects to the leader of a cluster, given the addresses of some of its nodes.
///
/// The nodes are asked in parallel (voters first, a bounded number at a time); a node naming
/// another as leader is believed only once that node confirms. By default
/// ([`RedirectPolicy::Cluster`]) the leader's own name for itself is followed when it is a
/// node of the cluster, so a list of `localhost:PORT` addresses, or a single follower's
/// address, is enough.
///
/// ```no_run
/// # async fn demo<R: dqlite_client::Runtime>(rt: R) -> dqlite_client::Result<()> {
/// use dqlite_client::{connect_cluster, Config};
/// let mut conn = connect_cluster(rt, &["localhost:9001", "localhost:9002"], Config::new()).await?;
/// conn.execute("CREATE TABLE IF NOT EXISTS t (x)", ()).await?;
/// # Ok(()) }
/// ```
pub async fn connect_cluster<R: Runtime>(
    rt: R,
    addresses: &[&str],
    config: Config,
) -> Result<Connection<R>> {
    let nodes = addresses.iter().map(|a| Node::new(*a)).collect();
    connect_leader(&rt, nodes, None, Arc::new(config.own_group())).await
}
