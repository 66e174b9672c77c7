//! A connection to one node for cluster requests, with no database open.

use std::sync::Arc;

use dqlite_proto::{File, Metadata, NodeInfo, NodeRole};

use crate::config::Config;
use crate::error::Result;
use crate::runtime::Runtime;
use crate::session::Session;
use crate::transport::dial;
use tracing::Instrument;

/// A connection to one dqlite node that opens no database: for the cluster requests
/// (leader, membership, metadata, weight, leadership transfer, membership changes, dumps)
/// on any node, follower or leader.
///
/// A [`Connection`](crate::Connection) opens a database, which servers since dqlite 1.18.2 refuse on
/// followers; this handle sends the handshake only, so it reaches every node. Requests that
/// need the leader (`add_node`, `assign`, `remove_node`, `transfer_leadership`) fail with a
/// "not leader" server error on a follower ([`Error::is_not_leader`](crate::Error::is_not_leader)). The deadlines are
/// those of [`Config`]: the dial timeout for connecting, the request timeout for each
/// answer. A membership change or transfer whose answer is lost is [`Error::Ambiguous`](crate::Error::Ambiguous).
///
/// Like [`Connection`](crate::Connection), methods take `&mut self`, and a call whose future is dropped leaves
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
    session: Session<R>,
}

impl<R: Runtime> std::fmt::Debug for NodeClient<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("address", &self.session.address())
            .field("broken", &self.session.is_broken())
            .finish_non_exhaustive()
    }
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
            let (wire, _) = dial(&rt, address, &config).await?;
            let mut session = Session::new(rt, wire, address.to_owned(), config);
            session.flush().await?;
            Ok(NodeClient { session })
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
        self.session.address()
    }

    /// True once a deadline, protocol error or closed socket made this handle unusable.
    ///
    /// ```no_run
    /// # fn demo<R: dqlite_client::Runtime>(node: &dqlite_client::NodeClient<R>) {
    /// if node.is_broken() { /* connect again */ }
    /// # }
    /// ```
    pub fn is_broken(&self) -> bool {
        self.session.is_broken()
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
        self.session.leader().await
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
        self.session.cluster().await
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
        self.session.describe().await
    }

    /// Sets this node's weight (kept in the node's memory).
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.set_weight(10).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_weight(&mut self, weight: u64) -> Result<()> {
        self.session.set_weight(weight).await
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
        self.session.transfer_leadership(id).await
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
        self.session.add_node(id, address).await
    }

    /// Assigns a role to node `id`. Send it to the leader.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.assign(3, dqlite_client::NodeRole::Standby).await?;
    /// # Ok(()) }
    /// ```
    pub async fn assign(&mut self, id: u64, role: NodeRole) -> Result<()> {
        self.session.assign(id, role).await
    }

    /// Removes node `id` from the cluster. Send it to the leader.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: &mut dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.remove_node(4).await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_node(&mut self, id: u64) -> Result<()> {
        self.session.remove_node(id).await
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
        self.session.dump(name).await
    }

    /// Sends what is still queued and closes the connection.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(node: dqlite_client::NodeClient<R>) -> dqlite_client::Result<()> {
    /// node.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(self) -> Result<()> {
        self.session.close().await;
        Ok(())
    }
}
