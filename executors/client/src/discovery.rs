//! Drives the core's leader discovery over real connections: parallel bounded probes in one
//! task, backoff between rounds, and the winning probe's connection kept as the leader's.

use std::collections::HashMap;
use std::sync::Arc;

use dqlite_proto::leader::{Action, Discovery, Node};
use dqlite_proto::{NodeInfo, Reply};
use futures_util::future::{select, Either};
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::config::Config;
use crate::connection::{dial, Connection};
use crate::error::{Error, Result};
use crate::runtime::{timeout, BoxFuture, Runtime};
use crate::wire::Wire;
use tracing::Instrument;

type ProbeResult<S> = (dqlite_proto::leader::ProbeId, Result<(Wire<S>, NodeInfo)>);

/// Asks one node who leads: dial, handshake, LEADER, within the probe deadline.
async fn probe<R: Runtime>(
    rt: R,
    address: String,
    config: Arc<Config>,
) -> Result<(Wire<R::Stream>, NodeInfo)> {
    let work = async {
        let mut wire = dial(&rt, &address, &config).await?;
        let id = wire.core.leader()?;
        let ev = wire.next_event(id).await?;
        match ev.reply {
            Reply::Leader(n) => Ok((wire, n)),
            Reply::Failure(f) => Err(Error::Server(f)),
            other => Err(crate::connection::unexpected(other, "SERVER")),
        }
    };
    timeout(&rt, config.probe_timeout, work)
        .await
        .unwrap_or(Err(Error::Timeout("asking a node for the leader")))
}

/// Finds the leader among `nodes` (trying `last_leader` first) and opens a connection to it.
pub(crate) async fn connect_leader<R: Runtime>(
    rt: &R,
    nodes: Vec<Node>,
    last_leader: Option<String>,
    config: Arc<Config>,
) -> Result<Connection<R>> {
    let span = tracing::debug_span!("dqlite.discover", nodes = nodes.len());
    let work = async {
        let mut discovery = Discovery::new(nodes, last_leader, config.discovery);
        let mut probes: FuturesUnordered<BoxFuture<'static, ProbeResult<R::Stream>>> =
            FuturesUnordered::new();
        let mut wires: HashMap<dqlite_proto::leader::ProbeId, Wire<R::Stream>> = HashMap::new();
        loop {
            while let Some(action) = discovery.poll_action(rt.now()) {
                match action {
                    Action::Probe { probe: id, address } => {
                        tracing::debug!(%address, "probing for leader");
                        let fut = probe(rt.clone(), address, config.clone());
                        probes.push(Box::pin(async move { (id, fut.await) }));
                    }
                    Action::Done(Ok(leader)) => {
                        let wire = wires
                            .remove(&leader.probe)
                            .ok_or(Error::Pool("leader probe connection missing"))?;
                        tracing::debug!(address = %leader.address, id = leader.id, "leader found");
                        return Connection::open(rt.clone(), wire, leader.address, config.clone())
                            .await;
                    }
                    Action::Done(Err(e)) => return Err(Error::NoLeader(e)),
                }
            }
            // Wait for a probe to finish or for the backoff pause to end.
            let next = if probes.is_empty() {
                let until = discovery.poll_timeout().unwrap_or_else(|| rt.now());
                rt.sleep(until.saturating_duration_since(rt.now())).await;
                continue;
            } else {
                match discovery.poll_timeout() {
                    None => probes.next().await,
                    Some(until) => {
                        let pause = rt.sleep(until.saturating_duration_since(rt.now()));
                        match select(probes.next(), pause).await {
                            Either::Left((r, _)) => r,
                            Either::Right(_) => continue,
                        }
                    }
                }
            };
            if let Some((id, result)) = next {
                match result {
                    Ok((wire, info)) => {
                        wires.insert(id, wire);
                        discovery.handle_reply(id, &info);
                    }
                    Err(e) => discovery.handle_failure(id, e.to_string()),
                }
            }
        }
    };
    timeout(rt, config.connect_timeout, work.instrument(span))
        .await
        .unwrap_or(Err(Error::Timeout("connecting to the leader")))
}

/// Connects to the leader of a cluster, given the addresses of some of its nodes.
///
/// The nodes are asked in parallel (voters first, a bounded number at a time); a node naming
/// another as leader is believed only once that node confirms.
pub async fn connect_cluster<R: Runtime>(
    rt: R,
    addresses: &[&str],
    config: Config,
) -> Result<Connection<R>> {
    let nodes = addresses.iter().map(|a| Node::new(*a)).collect();
    connect_leader(&rt, nodes, None, Arc::new(config)).await
}
