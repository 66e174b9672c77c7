//! A bounded pool of leader connections that follows the leader.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Fair (first come, first served) and independent of any runtime; a pool whose releasing
// task could take its permit straight back would starve the tasks queued behind it.
use dqlite_proto::discovery::{DiscoveryConfig, Node, RedirectPolicy};
use dqlite_proto::{ExecResult, Value};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::connection::Connection;
use crate::convert::FromValue;
use crate::discovery::connect_leader;
use crate::error::{Error, Misuse, Result};
use crate::from_row::{rows_as, FromRow};
use crate::lock::lock;
use crate::node_store::NodeStore;
use crate::params::IntoParams;
use crate::row::{Row, Rows};
use crate::runtime::{timeout, Runtime};

/// How many times the pool's own query methods try again after an error that provably had
/// no effect ("not leader", a request never sent, a read that failed).
const POOL_ATTEMPTS: u32 = 3;

/// Runs `$call` on a pooled connection `$c`, and again on a fresh one (up to
/// [`POOL_ATTEMPTS`] tries) while the failure provably had no effect and a new leader may
/// serve it. A macro rather than a function taking an async closure: the pool's futures
/// must stay `Send` for any borrowed SQL and parameters.
macro_rules! retried {
    ($pool:expr, |$c:ident| $call:expr) => {{
        let mut attempt = 0;
        loop {
            let result = match $pool.acquire().await {
                Ok(mut $c) => $call.await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if retryable(&e) && attempt + 1 < POOL_ATTEMPTS => attempt += 1,
                other => break other,
            }
        }
    }};
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Connections opened (in parallel) when the pool is created. Default 1.
    pub min_size: usize,
    /// Most connections open at once. Default 10.
    pub max_size: usize,
    /// Longest wait in [`Pool::acquire`] (including connecting). Default 30 s.
    pub acquire_timeout: Duration,
    /// A file that seeds the pool's node list and receives the cluster's membership every
    /// time the pool reaches a leader (see [`PoolOptions::node_store`]). Default none.
    pub node_store: Option<NodeStore>,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            min_size: 1,
            max_size: 10,
            acquire_timeout: Duration::from_secs(30),
            node_store: None,
        }
    }
}

impl PoolOptions {
    /// The defaults: `min_size` 1, `max_size` 10, `acquire_timeout` 30 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = dqlite_client::PoolOptions::new()
    ///     .min_size(2)
    ///     .max_size(16)
    ///     .acquire_timeout(Duration::from_secs(5));
    /// assert_eq!(options.max_size, 16);
    /// ```
    pub fn new() -> PoolOptions {
        PoolOptions::default()
    }

    /// Connections opened in parallel when the pool is created.
    pub fn min_size(mut self, n: usize) -> Self {
        self.min_size = n;
        self
    }

    /// Most connections open at once (at least 1).
    pub fn max_size(mut self, n: usize) -> Self {
        self.max_size = n;
        self
    }

    /// Longest wait in [`Pool::acquire`].
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// Keeps the cluster's nodes in the file at `path`, in the layout of go-dqlite's node
    /// store (the `cluster.yaml` that `dqlite-demo` and go-dqlite applications write): the
    /// pool starts from the addresses it is given plus the file's nodes, and rewrites the
    /// file (atomically) with the membership the leader reports each time it reaches one.
    /// An application restarted after nodes were added or replaced still finds the cluster.
    /// A file that is not in that layout fails [`Pool::new`] with
    /// [`Error::NodeStore`](crate::Error::NodeStore); one that cannot be written is logged
    /// and the pool goes on.
    ///
    /// ```
    /// let options = dqlite_client::PoolOptions::new().node_store("/var/lib/app/cluster.yaml");
    /// assert!(options.node_store.is_some());
    /// ```
    pub fn node_store(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.node_store = Some(NodeStore::new(path));
        self
    }
}

/// Counts for monitoring and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections waiting in the pool.
    pub idle: usize,
    /// Connections handed out right now.
    pub in_use: usize,
}

struct Inner<R: Runtime> {
    rt: R,
    config: Arc<Config>,
    /// The same settings with a single discovery round: for asking the cached leader alone.
    one_round: Arc<Config>,
    options: PoolOptions,
    idle: Mutex<Vec<Connection<R>>>,
    permits: Arc<Semaphore>,
    in_use: AtomicUsize,
    nodes: Mutex<Vec<Node>>,
    leader: Mutex<Option<String>>,
    /// Serialises full discoveries; holds the count of discoveries done.
    discovery: async_lock::Mutex<u64>,
    generation: AtomicU64,
    closed: AtomicBool,
    pid: u32,
}

impl<R: Runtime> Inner<R> {
    /// Stops treating `address` as the leader: it is forgotten as the cached leader and
    /// its idle connections are dropped.
    fn forget_leader(&self, address: &str) {
        {
            let mut l = lock(&self.leader);
            if l.as_deref() == Some(address) {
                *l = None;
            }
        }
        lock(&self.idle).retain(|c| c.address() != address);
    }
}

/// A pool of connections to the cluster's leader.
///
/// Cheap to clone (all clones share one pool). Connections are reused last-in-first-out;
/// broken ones are discarded; one returned inside a transaction is rolled back before reuse;
/// a "not leader" answer forgets the cached leader and the idle connections to it, and the
/// next connection finds the new leader. The node list is refreshed from the cluster's own
/// membership every time the pool reaches a leader, so a pool seeded with one address
/// survives that node's death.
pub struct Pool<R: Runtime> {
    inner: Arc<Inner<R>>,
}

impl<R: Runtime> Clone for Pool<R> {
    fn clone(&self) -> Self {
        Pool {
            inner: self.inner.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Pool<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> Pool<R> {
    /// Creates a pool over the nodes at `addresses` and opens `min_size` connections in
    /// parallel.
    pub async fn new(
        rt: R,
        addresses: &[&str],
        config: Config,
        options: PoolOptions,
    ) -> Result<Pool<R>> {
        let mut nodes: Vec<Node> = addresses.iter().map(|a| Node::new(*a)).collect();
        if let Some(store) = &options.node_store {
            for stored in store.load()? {
                if !nodes.iter().any(|n| n.address == stored.address) {
                    nodes.push(stored);
                }
            }
        }
        if nodes.is_empty() {
            return Err(Error::Misuse(Misuse::NoAddresses));
        }
        let max = options.max_size.max(1);
        // The pool's connections form one busy-polling group, apart from every other.
        let config = config.own_group();
        let pool = Pool {
            inner: Arc::new(Inner {
                rt,
                one_round: Arc::new(config.clone().discovery(DiscoveryConfig {
                    max_rounds: 1,
                    // The cached leader alone: a hint elsewhere means a full discovery.
                    redirects: RedirectPolicy::Never,
                    ..config.discovery
                })),
                config: Arc::new(config),
                options: PoolOptions {
                    max_size: max,
                    ..options
                },
                idle: Mutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(max)),
                in_use: AtomicUsize::new(0),
                nodes: Mutex::new(nodes),
                leader: Mutex::new(None),
                discovery: async_lock::Mutex::new(0),
                generation: AtomicU64::new(0),
                closed: AtomicBool::new(false),
                pid: std::process::id(),
            }),
        };
        let warm = pool.inner.options.min_size.min(max);
        let opened = futures_util::future::join_all((0..warm).map(|_| pool.acquire())).await;
        for conn in opened {
            conn?;
        }
        Ok(pool)
    }

    /// A connection to the leader, waiting at most the acquire timeout.
    pub async fn acquire(&self) -> Result<PooledConnection<R>> {
        let inner = &self.inner;
        if std::process::id() != inner.pid {
            return Err(Error::Forked {
                created_by: inner.pid,
            });
        }
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Pool("the pool is closed"));
        }
        let work = async {
            let permit = inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Pool("the pool is closed"))?;
            let reused = loop {
                let candidate = lock(&inner.idle).pop();
                let Some(mut c) = candidate else { break None };
                // A connection the server closed while idle (its node died, say) would turn
                // the caller's next write into an ambiguous failure: drop it instead.
                if !c.still_open() {
                    tracing::debug!(address = c.address(), "dropping a closed idle connection");
                    continue;
                }
                // Never hand out a connection inside a transaction (a guard dropped, raw
                // BEGIN left open, a script that failed part-way): roll it back, verified,
                // or drop the connection.
                match c.reset().await {
                    Ok(()) => break Some(c),
                    Err(e) => {
                        tracing::debug!(address = c.address(), error = %e, "dropping a connection that could not be reset");
                    }
                }
            };
            let conn = match reused {
                Some(c) => c,
                None => self.open_connection().await?,
            };
            inner.in_use.fetch_add(1, Ordering::AcqRel);
            Ok(PooledConnection {
                conn: Some(conn),
                pool: self.inner.clone(),
                _permit: permit,
            })
        };
        timeout(&inner.rt, inner.options.acquire_timeout, work)
            .await
            .unwrap_or(Err(Error::Timeout("acquiring a pooled connection")))
    }

    /// Counts of idle and handed-out connections.
    pub fn status(&self) -> PoolStatus {
        PoolStatus {
            idle: lock(&self.inner.idle).len(),
            in_use: self.inner.in_use.load(Ordering::Acquire),
        }
    }

    /// The node addresses the pool currently knows (refreshed from the cluster).
    pub fn nodes(&self) -> Vec<String> {
        lock(&self.inner.nodes)
            .iter()
            .map(|n| n.address.clone())
            .collect()
    }

    /// Closes the pool: idle connections are dropped, later acquires fail. Connections in
    /// use are closed when returned.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let idle: Vec<_> = lock(&self.inner.idle).drain(..).collect();
        for conn in idle {
            let _ = conn.close().await;
        }
    }

    /// Opens a connection to the leader; concurrent callers share one discovery.
    async fn open_connection(&self) -> Result<Connection<R>> {
        let inner = &self.inner;
        let seen = inner.generation.load(Ordering::Acquire);
        // Fast path: the cached leader, confirmed by one LEADER round trip.
        if let Some(addr) = self.cached_leader() {
            if let Some(conn) = self.connect_if_leader(&addr).await {
                return Ok(conn);
            }
            self.inner.forget_leader(&addr);
        }
        let mut done = inner.discovery.lock().await;
        if *done != seen {
            // Someone found the leader while we waited: use it.
            if let Some(addr) = self.cached_leader() {
                if let Some(conn) = self.connect_if_leader(&addr).await {
                    return Ok(conn);
                }
            }
        }
        let nodes = lock(&inner.nodes).clone();
        let mut conn = connect_leader(&inner.rt, nodes, None, inner.config.clone()).await?;
        *done += 1;
        inner.generation.store(*done, Ordering::Release);
        *lock(&inner.leader) = Some(conn.address().to_owned());
        self.refresh_nodes(&mut conn).await;
        Ok(conn)
    }

    fn cached_leader(&self) -> Option<String> {
        lock(&self.inner.leader).clone()
    }

    /// A connection to `address` if that node still leads (one round, no backoff).
    async fn connect_if_leader(&self, address: &str) -> Option<Connection<R>> {
        let nodes = vec![Node::new(address)];
        connect_leader(&self.inner.rt, nodes, None, self.inner.one_round.clone())
            .await
            .ok()
    }

    /// Replaces the node list with the cluster's own membership, as the leader reports it.
    async fn refresh_nodes(&self, conn: &mut Connection<R>) {
        let Ok(members) = conn.cluster().await else {
            return;
        };
        if members.is_empty() {
            return;
        }
        let members: Vec<Node> = members
            .into_iter()
            .map(|m| Node {
                address: m.address.to_string(),
                id: m.id,
                role: m.role,
            })
            .collect();
        if let Some(store) = &self.inner.options.node_store {
            if let Err(e) = store.save(&members) {
                tracing::warn!(error = %e, "could not update the node store");
            }
        }
        *lock(&self.inner.nodes) = members;
    }

    /// [`Connection::execute`] on a pooled connection, retried on a new leader when the
    /// failure provably had no effect.
    pub async fn execute(&self, sql: &str, params: impl IntoParams) -> Result<ExecResult> {
        let params = params.into_params()?;
        retried!(self, |c| c.execute(sql, params.as_slice()))
    }

    /// [`Connection::fetch`] on a pooled connection, retried like [`execute`](Self::execute).
    pub async fn fetch(&self, sql: &str, params: impl IntoParams) -> Result<Rows> {
        let params = params.into_params()?;
        retried!(self, |c| c.fetch(sql, params.as_slice()))
    }

    /// [`Connection::fetch_all`] on a pooled connection.
    pub async fn fetch_all(&self, sql: &str, params: impl IntoParams) -> Result<Vec<Vec<Value>>> {
        let rows = self.fetch(sql, params).await?;
        Ok(rows.into_iter().map(Row::into_values).collect())
    }

    /// [`Connection::fetch_one`] on a pooled connection.
    pub async fn fetch_one(&self, sql: &str, params: impl IntoParams) -> Result<Row> {
        self.fetch(sql, params)
            .await?
            .into_iter()
            .next()
            .ok_or(Error::NoRows)
    }

    /// [`Connection::fetch_as`] on a pooled connection: every row converted to `T`
    /// ([`FromRow`]), the query retried like [`fetch`](Self::fetch).
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(pool: &dqlite_client::Pool<R>) -> dqlite_client::Result<()> {
    /// #[derive(dqlite_client::FromRow)]
    /// struct Item {
    ///     id: i64,
    ///     name: String,
    /// }
    /// let items: Vec<Item> = pool.fetch_as("SELECT id, name FROM items", ()).await?;
    /// # let _ = items;
    /// # Ok(()) }
    /// ```
    pub async fn fetch_as<T: FromRow>(&self, sql: &str, params: impl IntoParams) -> Result<Vec<T>> {
        rows_as(self.fetch(sql, params).await?)
    }

    /// [`Connection::fetch_one_as`] on a pooled connection: the first row converted to `T`,
    /// or [`Error::NoRows`].
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(pool: &dqlite_client::Pool<R>) -> dqlite_client::Result<()> {
    /// let (n, total): (i64, Option<f64>) =
    ///     pool.fetch_one_as("SELECT count(*), sum(price) FROM items", ()).await?;
    /// # let _ = (n, total);
    /// # Ok(()) }
    /// ```
    pub async fn fetch_one_as<T: FromRow>(&self, sql: &str, params: impl IntoParams) -> Result<T> {
        T::from_row(&self.fetch_one(sql, params).await?)
    }

    /// [`Connection::fetch_optional_as`] on a pooled connection: the first row converted to
    /// `T`, if there is one.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(pool: &dqlite_client::Pool<R>) -> dqlite_client::Result<()> {
    /// let found: Option<(String,)> =
    ///     pool.fetch_optional_as("SELECT name FROM items WHERE id = ?", (1,)).await?;
    /// # let _ = found;
    /// # Ok(()) }
    /// ```
    pub async fn fetch_optional_as<T: FromRow>(
        &self,
        sql: &str,
        params: impl IntoParams,
    ) -> Result<Option<T>> {
        self.fetch(sql, params)
            .await?
            .first()
            .map(T::from_row)
            .transpose()
    }

    /// [`Connection::fetch_val`] on a pooled connection.
    pub async fn fetch_val<T: FromValue>(&self, sql: &str, params: impl IntoParams) -> Result<T> {
        self.fetch_one(sql, params).await?.get(0)
    }
}

impl<R: Runtime> Pool<R> {
    /// [`Connection::transaction`] on a pooled connection: `f` runs inside a transaction,
    /// committed on `Ok` and rolled back on `Err`. Not retried: a transaction is never run
    /// twice by the pool.
    pub async fn transaction<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'t> AsyncFnOnce(&'t mut crate::Transaction<'_, R>) -> Result<T, E>,
        E: From<Error>,
    {
        let mut conn = self.acquire().await?;
        conn.transaction(f).await
    }
}

/// Errors after which trying again on a fresh leader connection cannot apply anything twice.
fn retryable(e: &Error) -> bool {
    !e.is_ambiguous()
        && !matches!(e, Error::PartlyApplied { .. })
        && (e.is_not_leader()
            || matches!(
                e,
                Error::Connection(_) | Error::Timeout(_) | Error::NoLeader(_)
            ))
}

/// A connection borrowed from a [`Pool`]; returned to it when dropped.
pub struct PooledConnection<R: Runtime> {
    conn: Option<Connection<R>>,
    pool: Arc<Inner<R>>,
    _permit: OwnedSemaphorePermit,
}

impl<R: Runtime> std::fmt::Debug for PooledConnection<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PooledConnection").field(&self.conn).finish()
    }
}

impl<R: Runtime> Deref for PooledConnection<R> {
    type Target = Connection<R>;
    fn deref(&self) -> &Connection<R> {
        // Present from creation until drop.
        self.conn
            .as_ref()
            .unwrap_or_else(|| unreachable!("connection taken before drop"))
    }
}

impl<R: Runtime> DerefMut for PooledConnection<R> {
    fn deref_mut(&mut self) -> &mut Connection<R> {
        self.conn
            .as_mut()
            .unwrap_or_else(|| unreachable!("connection taken before drop"))
    }
}

impl<R: Runtime> Drop for PooledConnection<R> {
    fn drop(&mut self) {
        self.pool.in_use.fetch_sub(1, Ordering::AcqRel);
        let Some(conn) = self.conn.take() else { return };
        if conn.saw_not_leader() {
            self.pool.forget_leader(conn.address());
            return;
        }
        if conn.is_broken() || self.pool.closed.load(Ordering::Acquire) {
            return;
        }
        lock(&self.pool.idle).push(conn);
    }
}
