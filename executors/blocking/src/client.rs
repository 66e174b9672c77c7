//! The blocking client: a connection to the leader with its database open, queries,
//! prepared statements and transactions.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use dqlite_proto::discovery::{
    Action, Discovery, DiscoveryConfig, DiscoveryError, Node, ProbeId, RedirectPolicy,
};
use dqlite_proto::{
    Connection as Core, ExecResult, Misuse, NodeInfo, Reply, RequestId, ServerFailure, Stmt, Value,
};

use crate::conn::{BlockingConn, CallError, DEFAULT_TIMEOUT};

/// How long [`Client::connect_cluster`] may search for the leader, by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a [`Client`] connects: the database, timeouts, the protocol core's settings, the
/// leader search and TLS.
#[derive(Debug, Clone)]
pub struct Config {
    database: String,
    timeout: Duration,
    connect_timeout: Duration,
    core: dqlite_proto::Config,
    discovery: DiscoveryConfig,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Config {
    /// Settings that open `database`, with the default timeouts.
    pub fn new(database: impl Into<String>) -> Config {
        Config {
            database: database.into(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            core: dqlite_proto::Config::default(),
            discovery: DiscoveryConfig::default(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The database opened on connecting.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// How long every socket operation (dial, read, write) may take; default
    /// [`DEFAULT_TIMEOUT`]. A request whose answer does not come within it fails with
    /// [`Error::Io`] and breaks the connection.
    pub fn timeout(mut self, timeout: Duration) -> Config {
        self.timeout = timeout;
        self
    }

    /// How long [`Client::connect_cluster`] may search for the leader; default
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Config {
        self.connect_timeout = timeout;
        self
    }

    /// The protocol core's settings (limits, server capabilities).
    pub fn core(mut self, core: dqlite_proto::Config) -> Config {
        self.core = core;
        self
    }

    /// How [`Client::connect_cluster`] searches for the leader (rounds, backoff, which
    /// redirects it follows). The search ends after its rounds or at the connect timeout,
    /// whichever comes first; while a cluster elects a new leader (seconds), raise
    /// `max_rounds` and let the timeout bound it.
    pub fn discovery(mut self, discovery: DiscoveryConfig) -> Config {
        self.discovery = discovery;
        self
    }

    /// Connects over TLS with `tls`; each node's certificate is checked against the host
    /// part of its address (an IP address or a DNS name).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: std::sync::Arc<rustls::ClientConfig>) -> Config {
        self.tls = Some(tls);
        self
    }

    /// Dials `address` and sends the handshake (with the first request).
    fn dial(&self, address: &str, timeout: Duration) -> io::Result<BlockingConn> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return BlockingConn::connect_tls_with(
                address,
                self.core,
                timeout,
                tls.clone(),
                host_of(address),
            );
        }
        BlockingConn::connect_with(address, self.core, timeout)
    }
}

/// The host part of `HOST:PORT` or `[V6]:PORT`.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(host, _)| host)
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node could not be reached.
    #[error("connecting to {address}: {source}")]
    Connect {
        /// The address dialled.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// No node confirmed that it leads ([`Client::connect_cluster`]); says what each node
    /// answered.
    #[error("no leader found: {0}")]
    NoLeader(DiscoveryError),
    /// The socket failed or timed out during a request. The connection is broken, and a
    /// write's outcome is unknown.
    #[error("i/o: {0}")]
    Io(io::Error),
    /// The server refused the request (an SQL error, "not leader", ...). The connection
    /// stays usable.
    #[error(transparent)]
    Server(ServerFailure),
    /// The request was refused before anything was sent (wrong parameter count, several
    /// statements where one is allowed, ...). The connection stays usable.
    #[error(transparent)]
    Misuse(Misuse),
    /// The server broke the protocol. The connection is broken.
    #[error(transparent)]
    Protocol(dqlite_proto::Error),
    /// An earlier failure broke this connection; connect again.
    #[error("the connection is broken: {0}")]
    Broken(String),
    /// The server answered with a reply of the wrong kind.
    #[error("unexpected reply from the server: {0}")]
    Unexpected(String),
}

impl Error {
    /// The server's refusal, if that is what this is.
    pub fn server_failure(&self) -> Option<&ServerFailure> {
        match self {
            Error::Server(f) => Some(f),
            _ => None,
        }
    }

    /// True when the node answered that it does not lead (or lost leadership during the
    /// request): find the leader again with [`Client::connect_cluster`].
    pub fn is_not_leader(&self) -> bool {
        self.server_failure()
            .is_some_and(|f| f.is_not_leader() || f.is_leadership_lost())
    }
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Io(e) => Error::Io(e),
            CallError::Proto(dqlite_proto::Error::Server(f)) => Error::Server(f),
            CallError::Proto(dqlite_proto::Error::Misuse(m)) => Error::Misuse(m),
            CallError::Proto(e) => Error::Protocol(e),
        }
    }
}

/// The result of [`Client`] calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A query's result: the column names and the rows, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl Rows {
    /// The column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The index of the column named `name` (compared ignoring ASCII case, as SQLite does).
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&[Value]> {
        self.rows.get(i).map(Vec::as_slice)
    }

    /// The rows in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[Value]> + '_ {
        self.rows.iter().map(Vec::as_slice)
    }

    /// The rows, owned.
    pub fn into_rows(self) -> Vec<Vec<Value>> {
        self.rows
    }
}

/// A statement prepared on the server ([`Client::prepare`]), run with
/// [`Client::execute_prepared`] or [`Client::query_prepared`].
///
/// It lives on the server until [`Client::finalize`] or until the connection closes;
/// dropping it does not finalize it. It belongs to the connection that prepared it.
#[derive(Debug)]
pub struct Statement {
    stmt: Stmt,
    sql: String,
}

impl Statement {
    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// How many parameters it takes.
    pub fn param_count(&self) -> u64 {
        self.stmt.param_count()
    }
}

/// A blocking connection to one dqlite node with a database open.
///
/// Every call sends one request and waits for its whole answer. A socket failure, timeout
/// or protocol error breaks the connection (later calls return [`Error::Broken`]); an SQL
/// error or misuse does not.
///
/// ```no_run
/// use dqlite_blocking::{Client, Config};
/// use dqlite_proto::Value;
///
/// let config = Config::new("app");
/// let mut client = Client::connect_cluster(&["127.0.0.1:9001", "127.0.0.1:9002"], &config)?;
/// client.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT)", &[])?;
/// client.execute("INSERT INTO t (name) VALUES (?)", &[Value::Text("one".into())])?;
/// for row in client.query("SELECT id, name FROM t", &[])?.iter() {
///     println!("{row:?}");
/// }
/// # Ok::<(), dqlite_blocking::Error>(())
/// ```
pub struct Client {
    conn: BlockingConn,
    address: String,
    broken: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the node at `address` and opens the configured database there.
    ///
    /// This talks to exactly that node. dqlite 1.11 servers open databases on followers
    /// too, and their statements then fail with "not leader" ([`Error::is_not_leader`]); to
    /// find the leader use [`connect_cluster`](Self::connect_cluster).
    pub fn connect(address: &str, config: &Config) -> Result<Client> {
        let conn = config
            .dial(address, config.timeout)
            .map_err(|source| Error::Connect {
                address: address.to_owned(),
                source,
            })?;
        Client::open(conn, address, config)
    }

    /// Finds the leader among the nodes at `addresses` and connects to it, within the
    /// connect timeout.
    ///
    /// The nodes are asked one at a time who leads, by the protocol core's leader search
    /// ([`dqlite_proto::discovery::Discovery`]): a node named as leader is believed only once
    /// it confirms, and by default the leader's own address for itself is followed when it
    /// is a member of the cluster, so a single follower's address is enough. Addresses are
    /// compared as spelled: give them as the cluster knows its nodes.
    pub fn connect_cluster(addresses: &[&str], config: &Config) -> Result<Client> {
        let nodes: Vec<Node> = addresses.iter().map(|a| Node::new(*a)).collect();
        let mut discovery = Discovery::new(nodes, None, config.discovery);
        let deadline = Instant::now() + config.connect_timeout;
        let mut probed: HashMap<ProbeId, BlockingConn> = HashMap::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::NoLeader(discovery.expire()));
            }
            match discovery.poll_action(now) {
                Some(Action::Probe { probe, address }) => {
                    let limit = config.timeout.min(deadline - now);
                    match ask_leader(&address, addresses, config, limit) {
                        Ok((conn, info, members)) => {
                            if let Some(members) = members {
                                discovery.handle_members(probe, &members);
                            }
                            discovery.handle_reply(probe, &info);
                            probed.insert(probe, conn);
                        }
                        Err(e) => discovery.handle_failure(probe, e.to_string()),
                    }
                }
                Some(Action::Done(Ok(leader))) => {
                    let conn = probed.remove(&leader.probe).ok_or_else(|| {
                        Error::Unexpected("the leader's connection went missing".to_owned())
                    })?;
                    return Client::open(conn, &leader.address, config);
                }
                Some(Action::Done(Err(e))) => return Err(Error::NoLeader(e)),
                None => {
                    // Backing off between rounds.
                    let wake = discovery
                        .poll_timeout()
                        .map_or(deadline, |t| t.min(deadline));
                    let pause = wake
                        .saturating_duration_since(now)
                        .max(Duration::from_millis(1));
                    std::thread::sleep(pause);
                }
            }
        }
    }

    /// Opens the database on a connection that reached a node, then sends the barrier query
    /// ([`dqlite_proto::BARRIER_SQL`]: on a dqlite 1.11 node that has just become leader, it
    /// waits until the node has applied its log). A server failure answering the barrier is
    /// left to the first statement, which meets the same cause; a socket or protocol error
    /// fails the open.
    fn open(mut conn: BlockingConn, address: &str, config: &Config) -> Result<Client> {
        conn.call(|p| p.open(&config.database))?;
        match conn.call(|p| p.query_sql(dqlite_proto::BARRIER_SQL, &[])) {
            Ok(_) | Err(CallError::Proto(dqlite_proto::Error::Server(_))) => Ok(Client {
                conn,
                address: address.to_owned(),
                broken: None,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The address of the node this client talks to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True once a socket failure, timeout or protocol error made the connection unusable.
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Runs one statement (or several separated by `;`, without parameters) and returns the
    /// last insert id and rows affected. The parameters must match the placeholders.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<ExecResult> {
        match self.one(|p| p.exec_sql(sql, params))? {
            Reply::Executed(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs one query and returns all of its rows.
    pub fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows> {
        self.rows(|p| p.query_sql(sql, params))
    }

    /// Runs one query and hands each row to `each` as its batch arrives (memory stays
    /// bounded by one batch); returns the column names. If `each` fails, the rest of the
    /// result is still read (the connection stays usable) and the first error returned.
    pub fn query_each<E>(
        &mut self,
        sql: &str,
        params: &[Value],
        mut each: impl FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<Result<Vec<String>, E>> {
        let mut columns = None;
        let mut failed = None;
        self.call_each(
            |p| p.query_sql(sql, params),
            |reply| {
                if let Reply::Rows(batch) = reply {
                    if columns.is_none() {
                        columns = Some(batch.columns().iter().map(|c| c.to_string()).collect());
                    }
                    for row in batch.rows() {
                        if failed.is_none() {
                            if let Err(e) = each(row) {
                                failed = Some(e);
                            }
                        }
                    }
                }
            },
        )?;
        Ok(match failed {
            Some(e) => Err(e),
            None => Ok(columns.unwrap_or_default()),
        })
    }

    /// Prepares one statement on the server for repeated use.
    pub fn prepare(&mut self, sql: &str) -> Result<Statement> {
        match self.one(|p| p.prepare(sql))? {
            Reply::Prepared(stmt) => Ok(Statement {
                stmt,
                sql: sql.to_owned(),
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs a prepared statement that does not return rows.
    pub fn execute_prepared(&mut self, stmt: &Statement, params: &[Value]) -> Result<ExecResult> {
        match self.one(|p| p.exec(&stmt.stmt, params))? {
            Reply::Executed(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Runs a prepared query and returns all of its rows.
    pub fn query_prepared(&mut self, stmt: &Statement, params: &[Value]) -> Result<Rows> {
        self.rows(|p| p.query(&stmt.stmt, params))
    }

    /// Frees a prepared statement on the server.
    pub fn finalize(&mut self, stmt: Statement) -> Result<()> {
        self.one(|p| p.finalize(stmt.stmt)).map(|_| ())
    }

    /// Begins a transaction (`BEGIN`). It ends with [`Transaction::commit`] or
    /// [`Transaction::rollback`]; dropped, it is rolled back.
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.execute("BEGIN", &[])?;
        Ok(Transaction {
            client: self,
            done: false,
        })
    }

    /// Who this node thinks leads (`None`: no leader known).
    pub fn leader(&mut self) -> Result<Option<NodeInfo>> {
        match self.one(Core::leader)? {
            Reply::Leader(n) if n.id == 0 && n.address.is_empty() => Ok(None),
            Reply::Leader(n) => Ok(Some(n)),
            other => Err(unexpected(&other)),
        }
    }

    /// The cluster's nodes, with their roles.
    pub fn cluster(&mut self) -> Result<Vec<NodeInfo>> {
        match self.one(|p| p.cluster(true))? {
            Reply::Nodes(n) => Ok(n),
            other => Err(unexpected(&other)),
        }
    }

    /// The low-level connection, for requests this client has no method for.
    pub fn raw(&mut self) -> &mut BlockingConn {
        &mut self.conn
    }

    // ----- internals -----------------------------------------------------------------------

    /// One request, every reply handed to `each`.
    fn call_each(
        &mut self,
        f: impl FnOnce(&mut Core) -> std::result::Result<RequestId, dqlite_proto::Error>,
        each: impl FnMut(Reply),
    ) -> Result<()> {
        if let Some(why) = &self.broken {
            return Err(Error::Broken(why.clone()));
        }
        let result = self.conn.call_each(f, each).map_err(Error::from);
        if let Err(e) = &result {
            if matches!(e, Error::Io(_) | Error::Protocol(_)) {
                self.broken = Some(e.to_string());
            }
        }
        result
    }

    /// One request with one reply.
    fn one(
        &mut self,
        f: impl FnOnce(&mut Core) -> std::result::Result<RequestId, dqlite_proto::Error>,
    ) -> Result<Reply> {
        let mut last = None;
        self.call_each(f, |r| last = Some(r))?;
        last.ok_or_else(|| Error::Unexpected("no reply".to_owned()))
    }

    /// A query's rows, batch after batch.
    fn rows(
        &mut self,
        f: impl FnOnce(&mut Core) -> std::result::Result<RequestId, dqlite_proto::Error>,
    ) -> Result<Rows> {
        let mut rows = Rows::default();
        let mut other = None;
        self.call_each(f, |reply| match reply {
            Reply::Rows(batch) => {
                if rows.columns.is_empty() {
                    rows.columns = batch.columns().iter().map(|c| c.to_string()).collect();
                }
                rows.rows.extend(batch.rows().map(<[Value]>::to_vec));
            }
            reply => other = Some(reply),
        })?;
        match other {
            Some(reply) => Err(unexpected(&reply)),
            None => Ok(rows),
        }
    }
}

fn unexpected(reply: &Reply) -> Error {
    Error::Unexpected(reply.message_type().to_owned())
}

/// Asks the node at `address` who leads; when it names a node outside `listed`, also asks
/// for the cluster's members (so that the search may follow the name).
fn ask_leader(
    address: &str,
    listed: &[&str],
    config: &Config,
    timeout: Duration,
) -> Result<(BlockingConn, NodeInfo, Option<Vec<NodeInfo>>)> {
    let mut conn = config
        .dial(address, timeout)
        .map_err(|source| Error::Connect {
            address: address.to_owned(),
            source,
        })?;
    let info = conn.leader()?;
    let named = info.address.as_str();
    let mut members = None;
    if !named.is_empty()
        && named != address
        && !listed.contains(&named)
        && config.discovery.redirects == RedirectPolicy::Cluster
    {
        match conn.cluster() {
            Ok(nodes) => members = Some(nodes),
            Err(CallError::Proto(dqlite_proto::Error::Server(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((conn, info, members))
}

/// A transaction on a [`Client`] ([`Client::transaction`]). Its statements run through
/// the client it dereferences to. Dropped without [`commit`](Self::commit) or
/// [`rollback`](Self::rollback), it is rolled back (errors then are ignored: the server
/// rolls back a transaction whose connection is gone).
pub struct Transaction<'a> {
    client: &'a mut Client,
    done: bool,
}

impl Transaction<'_> {
    /// Commits the transaction (`COMMIT`).
    /// If it fails, the transaction is rolled back (as when dropped).
    pub fn commit(mut self) -> Result<()> {
        self.client.execute("COMMIT", &[])?;
        self.done = true;
        Ok(())
    }

    /// Rolls the transaction back (`ROLLBACK`).
    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.client.execute("ROLLBACK", &[]).map(|_| ())
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
    }
}

impl std::ops::DerefMut for Transaction<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done && !self.client.is_broken() {
            let _ = self.client.execute("ROLLBACK", &[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("127.0.0.1:9001"), "127.0.0.1");
        assert_eq!(host_of("localhost:9001"), "localhost");
        assert_eq!(host_of("[::1]:9001"), "::1");
        assert_eq!(host_of("node"), "node");
    }

    #[test]
    fn rows_by_column_name() {
        let rows = Rows {
            columns: vec!["id".into(), "Name".into()],
            rows: vec![vec![Value::Integer(1), Value::Null]],
        };
        assert_eq!(rows.column_index("name"), Some(1));
        assert_eq!(rows.column_index("missing"), None);
        assert_eq!(rows.get(0), Some(&[Value::Integer(1), Value::Null][..]));
        assert_eq!(rows.len(), 1);
    }
}
