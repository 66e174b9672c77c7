//! A connection to one node for cluster requests, with no database open.

use std::sync::Arc;

use dqlite_proto::{
    Error as CoreError, File, Metadata, NodeInfo, NodeRole, Reply, RequestId, SendState,
};

use crate::config::Config;
use crate::connection::{unexpected, Connection};
use crate::error::{Error, Result};
use crate::runtime::{timeout, Runtime};
use crate::transport::{dial, BoxStream};
use crate::wire::Wire;
use tracing::Instrument;

/// A connection to one dqlite node that opens no database: for the cluster requests
/// (leader, membership, metadata, weight, leadership transfer, membership changes, dumps)
/// on any node, follower or leader.
///
/// A [`Connection`] opens a database, which servers since dqlite 1.18.2 refuse on
/// followers; this handle sends the handshake only, so it reaches every node. Requests that
/// need the leader (`add_node`, `assign`, `remove_node`, `transfer_leadership`) fail with a
/// "not leader" server error on a follower ([`Error::is_not_leader`]). The deadlines are
/// those of [`Config`]: the dial timeout for connecting, the request timeout for each
/// answer. A membership change or transfer whose answer is lost is [`Error::Ambiguous`].
///
/// Like [`Connection`], methods take `&mut self`, and a call whose future is dropped leaves
/// the handle usable (the abandoned answer is discarded); a deadline, protocol error or
/// closed socket breaks it ([`is_broken`](Self::is_broken)).
///
/// ```no_run
/// # async fn demo<R: dqlite_client::Runtime>(rt: R) -> dqlite_client::Result<()> {
/// use dqlite_client::{Config, NodeClient};
///
/// let mut node = NodeClient::connect(rt, "127.0.0.1:9002", Config::new()).await?;
/// if let Some(leader) = node.leader().await? {
///     println!("{} leads", leader.address);
/// }
/// for member in node.cluster().await? {
///     println!("{} {} {:?}", member.id, member.address, member.role);
/// }
/// node.set_weight(3).await?;
/// assert_eq!(node.describe().await?.weight, 3);
/// # Ok(()) }
/// ```
pub struct NodeClient<R: Runtime> {
    rt: R,
    wire: Wire<BoxStream>,
    address: String,
    config: Arc<Config>,
    pid: u32,
    broken: Option<Error>,
    /// A request whose caller went away before its answer arrived.
    inflight: Option<RequestId>,
}

impl<R: Runtime> std::fmt::Debug for NodeClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("address", &self.address)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// Whether a failed request may have changed the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    None,
    Write,
}

impl<R: Runtime> NodeClient<R> {
    /// Dials `address` (resolving its name now) within the dial timeout and sends the
    /// handshake. No database is opened.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(rt: R) -> dqlite_client::Result<()> {
    /// let mut node = dqlite_client::NodeClient::connect(rt, "127.0.0.1:9001", Default::default()).await?;
    /// let members = node.cluster().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(rt: R, address: &str, config: Config) -> Result<NodeClient<R>> {
        let config = Arc::new(config);
        let span = tracing::debug_span!("dqlite.connect_node", address);
        async move {
            let (mut wire, _) = dial(&rt, address, &config).await?;
            match timeout(&rt, config.request_timeout, wire.flush()).await {
                None => return Err(Error::Timeout("sending the handshake")),
                Some(r) => r?,
            }
            Ok(NodeClient {
                rt,
                wire,
                address: address.to_owned(),
                config,
                pid: std::process::id(),
                broken: None,
                inflight: None,
            })
        }
        .instrument(span)
        .await
    }

    /// The node address this handle talks to.
    ///
    /// ```no_run
    /// # fn demo<R: dqlite_client::Runtime>(node: &dqlite_client::NodeClient<R>) {
    /// println!("talking to {}", node.address());
    /// # }
    /// ```
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True once a deadline, protocol error or closed socket made this handle unusable.
    ///
    /// ```no_run
    /// # fn demo<R: dqlite_client::Runtime>(node: &dqlite_client::NodeClient<R>) {
    /// if node.is_broken() { /* connect again */ }
    /// # }
    /// ```
    pub fn is_broken(&self) -> bool {
        self.broken.is_some() || self.wire.core.error().is_some()
    }

    /// Who this node thinks leads (`None`: it knows no leader, or it is not a voter).
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// match node.leader().await? {
    ///     Some(l) => println!("leader {} at {}", l.id, l.address),
    ///     None => println!("no leader known"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leader(&mut self) -> Result<Option<NodeInfo>> {
        match self.call(Effect::None, |p| p.leader()).await? {
            Reply::Leader(n) if n.id == 0 && n.address.is_empty() => Ok(None),
            Reply::Leader(n) => Ok(Some(n)),
            other => Err(unexpected(other, "SERVER")),
        }
    }

    /// The cluster's nodes with their roles, as this node knows them.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// let voters = node.cluster().await?.into_iter()
    ///     .filter(|n| n.role == Some(dqlite_client::NodeRole::Voter))
    ///     .count();
    /// # Ok(()) }
    /// ```
    pub async fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        match self.call(Effect::None, |p| p.cluster(true)).await? {
            Reply::Nodes(n) => Ok(n),
            other => Err(unexpected(other, "SERVERS")),
        }
    }

    /// This node's failure domain and weight.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// let meta = node.describe().await?;
    /// println!("domain {} weight {}", meta.failure_domain, meta.weight);
    /// # Ok(()) }
    /// ```
    pub async fn describe(&mut self) -> Result<Metadata> {
        match self.call(Effect::None, |p| p.describe()).await? {
            Reply::Metadata(m) => Ok(m),
            other => Err(unexpected(other, "METADATA")),
        }
    }

    /// Sets this node's weight (kept in the node's memory).
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.set_weight(10).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_weight(&mut self, weight: u64) -> Result<()> {
        self.call_empty(Effect::None, |p| p.weight(weight)).await
    }

    /// Hands leadership to node `id`. Send it to the leader; a follower answers "not
    /// leader".
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.transfer_leadership(2).await?;
    /// # Ok(()) }
    /// ```
    pub async fn transfer_leadership(&mut self, id: u64) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.transfer(id)).await
    }

    /// Adds a node to the cluster as a spare (then [`assign`](Self::assign) a role). Send
    /// it to the leader.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.add_node(4, "127.0.0.1:9004").await?;
    /// node.assign(4, dqlite_client::NodeRole::Voter).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add_node(&mut self, id: u64, address: &str) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.add(id, address)).await
    }

    /// Assigns a role to node `id`. Send it to the leader.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.assign(3, dqlite_client::NodeRole::Standby).await?;
    /// # Ok(()) }
    /// ```
    pub async fn assign(&mut self, id: u64, role: NodeRole) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.assign(id, role)).await
    }

    /// Removes node `id` from the cluster. Send it to the leader.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.remove_node(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_node(&mut self, id: u64) -> Result<()> {
        self.call_empty(Effect::Write, |p| p.remove(id)).await
    }

    /// The files (main file and WAL) of the database `name` as this node has them; any node
    /// answers.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// for file in node.dump("app").await? {
    ///     println!("{}: {} bytes", file.name, file.data.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn dump(&mut self, name: &str) -> Result<Vec<File>> {
        match self.call(Effect::None, |p| p.dump(name)).await? {
            Reply::Files(f) => Ok(f),
            other => Err(unexpected(other, "FILES")),
        }
    }

    /// Sends what is still queued and closes the connection.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) -> Result<()> {
        if self.broken.is_none() {
            let limit = self.config.request_timeout;
            let _ = timeout(&self.rt, limit, self.wire.flush()).await;
        }
        Ok(())
    }

    /// One request, one reply, within the request timeout.
    async fn call(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<Reply> {
        if std::process::id() != self.pid {
            return Err(Error::Forked {
                created_by: self.pid,
            });
        }
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        if let Some(e) = self.wire.core.error() {
            return Err(Error::from(e.clone()));
        }
        if let Some(old) = self.inflight.take() {
            self.wire.core.abandon(old);
        }
        let span = tracing::debug_span!("dqlite.node_request", address = %self.address);
        let id = f(&mut self.wire.core).map_err(Error::from)?;
        self.inflight = Some(id);
        let limit = self.config.request_timeout;
        let result = match timeout(&self.rt, limit, self.wire.next_event(id).instrument(span)).await
        {
            None => Err(Error::Timeout("waiting for the server's answer")),
            Some(Err(e)) => Err(e),
            Some(Ok(ev)) => match ev.reply {
                Reply::Failure(f) => Err(Error::Server(f)),
                reply => Ok(reply),
            },
        };
        self.inflight = None;
        result.map_err(|e| {
            let lost = matches!(
                e,
                Error::Connection(_) | Error::Protocol(_) | Error::Timeout(_)
            );
            if lost {
                self.broken = Some(e.clone());
            }
            let sent = self.wire.core.send_state(id) != SendState::Unsent;
            let leadership_lost = e
                .server_failure()
                .is_some_and(dqlite_proto::ServerFailure::is_leadership_lost);
            if effect == Effect::Write && ((lost && sent) || leadership_lost) {
                Error::Ambiguous(Box::new(e))
            } else {
                e
            }
        })
    }

    async fn call_empty(
        &mut self,
        effect: Effect,
        f: impl FnOnce(&mut dqlite_proto::Connection) -> Result<RequestId, CoreError>,
    ) -> Result<()> {
        match self.call(effect, f).await? {
            Reply::Empty => Ok(()),
            other => Err(unexpected(other, "EMPTY")),
        }
    }
}

/// Turns a "not leader" failure of OPEN into [`Error::NotLeader`], naming the leader as the
/// node knows it (asked with LEADER on the same connection, within the request timeout).
/// Other errors pass through.
pub(crate) async fn explain_open_failure<R: Runtime>(conn: &mut Connection<R>, e: Error) -> Error {
    let failure = match &e {
        Error::Server(f) if f.is_not_leader() => f.clone(),
        _ => return e,
    };
    let ask = async {
        let id = conn.wire.core.leader().ok()?;
        let ev = conn.wire.next_event(id).await.ok()?;
        match ev.reply {
            Reply::Leader(n) if !(n.id == 0 && n.address.is_empty()) => Some(n),
            _ => None,
        }
    };
    let leader = timeout(&conn.rt, conn.config.request_timeout, ask)
        .await
        .flatten();
    Error::NotLeader {
        address: conn.address().to_owned(),
        leader,
        failure,
    }
}
