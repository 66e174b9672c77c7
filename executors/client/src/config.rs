//! Connection settings with finite defaults.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use dqlite_proto::discovery::{DiscoveryConfig, RedirectPolicy};
use dqlite_proto::Limits;

use crate::transport::{DialFn, Dialer};

/// Settings for connections (and the pool's connections).
///
/// ```
/// use std::time::Duration;
/// use dqlite_client::Config;
///
/// let config = Config::new()
///     .database("app")
///     .dial_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(5));
/// assert_eq!(config.database_name(), "app");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) database: String,
    pub(crate) dial_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) frame_timeout: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) busy_timeout: Duration,
    pub(crate) discovery: DiscoveryConfig,
    pub(crate) params32: bool,
    pub(crate) returning: bool,
    pub(crate) busy_poll: Duration,
    pub(crate) stream_coalesce: Duration,
    pub(crate) dialer: Dialer,
    pub(crate) statement_cache: usize,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsConfig>,
    /// The busy-polling group: connections made with this config (a pool's) count each
    /// other's waits; see [`Config::busy_poll`].
    pub(crate) waiting: Arc<AtomicUsize>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database: "default".to_owned(),
            dial_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            frame_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            busy_timeout: Duration::from_secs(30),
            discovery: DiscoveryConfig::default(),
            params32: false,
            returning: false,
            busy_poll: Config::DEFAULT_BUSY_POLL,
            stream_coalesce: Config::DEFAULT_STREAM_COALESCE,
            dialer: Dialer::default(),
            statement_cache: Config::DEFAULT_STATEMENT_CACHE,
            #[cfg(feature = "tls")]
            tls: None,
            waiting: Arc::default(),
        }
    }
}

impl Config {
    /// The default [`statement_cache`](Config::statement_cache) capacity.
    pub const DEFAULT_STATEMENT_CACHE: usize = 100;

    /// The default [`busy_poll`](Config::busy_poll) window.
    pub const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(50);

    /// The default [`stream_coalesce`](Config::stream_coalesce) interval.
    pub const DEFAULT_STREAM_COALESCE: Duration = Duration::from_millis(1);

    /// The defaults: database `"default"`, dial 5 s, request 30 s, each result frame 10 s,
    /// leader probe 2 s, whole connect (discovery included) 30 s, BUSY retried for 30 s, busy-poll
    /// 50 µs, stream coalescing 1 ms.
    pub fn new() -> Config {
        Config::default()
    }

    /// The database to open (default `"default"`).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// The database name.
    pub fn database_name(&self) -> &str {
        &self.database
    }

    /// Deadline for establishing a TCP connection (default 5 s).
    pub fn dial_timeout(mut self, d: Duration) -> Self {
        self.dial_timeout = d;
        self
    }

    /// Deadline for one request's answer (default 30 s); for a query, for its first batch
    /// of rows.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }

    /// Deadline for each further batch of a query's rows after the first (default 10 s).
    pub fn frame_timeout(mut self, d: Duration) -> Self {
        self.frame_timeout = d;
        self
    }

    /// Deadline for asking one node who leads (dial, handshake and LEADER; default 2 s).
    pub fn probe_timeout(mut self, d: Duration) -> Self {
        self.probe_timeout = d;
        self
    }

    /// Deadline for a whole connect, leader discovery included (default 30 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Limits on what servers may send.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long a statement failing with `SQLITE_BUSY` keeps being retried (default 30 s,
    /// like the request deadline; zero disables retries). Pauses between tries are jittered
    /// and grow from 1 ms to at most 100 ms.
    ///
    /// Only statements that provably did not apply are retried: those sent outside a
    /// transaction (each is its own transaction, and BUSY means it did not run), and
    /// scripts, which run inside a savepoint that is rolled back first. Inside an explicit
    /// transaction BUSY is returned at once: a transaction that has read cannot take the
    /// write lock after another writer committed, however long it waits, so the whole
    /// transaction must be retried by the caller.
    pub fn busy_timeout(mut self, budget: Duration) -> Self {
        self.busy_timeout = budget;
        self
    }

    /// Leader discovery tuning (parallel probes, rounds, backoff).
    pub fn discovery(mut self, discovery: DiscoveryConfig) -> Self {
        self.discovery = discovery;
        self
    }

    /// Which leader hints to follow during discovery (default
    /// [`RedirectPolicy::Cluster`]: the leader's own address when it resolves to a listed
    /// node or is in the cluster's membership). [`RedirectPolicy::KnownNodes`] is the strict
    /// option that only ever dials the listed addresses.
    ///
    /// ```
    /// use dqlite_client::{Config, RedirectPolicy};
    ///
    /// // Only ever dial the addresses given (say, a firewall allows nothing else).
    /// let strict = Config::new().redirect_policy(RedirectPolicy::KnownNodes);
    /// # let _ = strict;
    /// ```
    pub fn redirect_policy(mut self, policy: RedirectPolicy) -> Self {
        self.discovery.redirects = policy;
        self
    }

    /// Declares that every server accepts 4-byte parameter counts (dqlite >= 1.12), allowing
    /// statements with more than 255 parameters. Never set this for dqlite 1.11 clusters.
    pub fn server_accepts_params32(mut self, yes: bool) -> Self {
        self.params32 = yes;
        self
    }

    /// Declares that every server survives SQL with `RETURNING` (refused by default: dqlite
    /// 1.11 crashes on the request after one).
    pub fn server_handles_returning(mut self, yes: bool) -> Self {
        self.returning = yes;
        self
    }

    /// How long to keep polling the socket for a reply before parking (default 50 µs; zero
    /// turns it off).
    ///
    /// On loopback or a fast LAN a dqlite reply often arrives within a few tens of
    /// microseconds, less than it takes to wake a thread that went to sleep waiting for it:
    /// polling for a short while roughly halves the latency of small requests. The task
    /// tries in bursts of at most 10 µs and yields to the executor between them, so other
    /// tasks keep running, but the thread stays busy for up to this long per wait. It only
    /// polls while it is the only connection of the process waiting for a server, and not
    /// in the middle of a multi-part result. When a window passes without a reply, the
    /// next waits park at once (1, 3, 7, … up to 63 of them), so a slow query or a distant
    /// server costs little CPU. It needs [`NodeStream::read_now`](crate::NodeStream::read_now),
    /// which the tokio and smol adapters provide.
    pub fn busy_poll(mut self, window: Duration) -> Self {
        self.busy_poll = window;
        self
    }

    /// How long to wait between reads while a multi-part result is arriving (default 1 ms;
    /// zero turns it off).
    ///
    /// A server sends a long result in frames of a few KiB as they are ready, usually more
    /// slowly than the client decodes them, so a client woken for every frame spends most of
    /// its CPU time being woken. With coalescing, once the socket is empty in the middle of a
    /// long result (from its 8th batch on: short ones are not held back) the connection
    /// sleeps this long and then reads everything that arrived meanwhile: streaming
    /// 100 000 rows from a local node takes about half the CPU, and no longer (the server
    /// also has the CPU to itself more often). If nothing came during a nap, the connection
    /// waits for data as usual, so a slow server costs at most one interval. The last batch
    /// of a result can arrive up to one interval later. It needs
    /// [`NodeStream::read_now`](crate::NodeStream::read_now), which the tokio and smol adapters
    /// provide.
    pub fn stream_coalesce(mut self, interval: Duration) -> Self {
        self.stream_coalesce = interval;
        self
    }

    /// Dials nodes with `dial` instead of the runtime's TCP (or unix-socket) dialer: it gets
    /// each node's address as the cluster names it and returns any stream (a proxy, an SSH
    /// tunnel, a test wrapper). Leader discovery, redirects and pools use it for every node;
    /// the dial deadline covers it, and TLS, when configured, runs on top of what it returns.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use dqlite_client::{BoxStream, Config, Plain};
    /// # async fn open_tunnel(to: String) -> std::io::Result<futures_util::io::Cursor<Vec<u8>>> { todo!() }
    ///
    /// // Every node through a tunnel of the application's own (any AsyncRead + AsyncWrite).
    /// let config = Config::new().dial_with(Arc::new(|address: &str| {
    ///     let address = address.to_owned();
    ///     Box::pin(async move {
    ///         let stream = open_tunnel(address).await?;
    ///         Ok(Box::new(Plain::new(stream)) as BoxStream)
    ///     })
    /// }));
    /// ```
    pub fn dial_with(mut self, dial: Arc<DialFn>) -> Self {
        self.dialer = Dialer(Some(dial));
        self
    }

    /// Speaks TLS to every node (feature `tls`): the handshake runs within the dial deadline
    /// on top of the transport (TCP, unix socket or [`dial_with`](Config::dial_with)), and a
    /// failure is [`Error::Tls`](crate::Error::Tls), never a plaintext fallback.
    ///
    /// ```no_run
    /// # fn demo() -> dqlite_client::Result<()> {
    /// use dqlite_client::{Config, TlsConfig};
    /// let cert = std::fs::read("cluster.crt")?;
    /// let key = std::fs::read("cluster.key")?;
    /// let config = Config::new().tls(TlsConfig::from_pem(&cert, &cert, &key)?);
    /// # let _ = config; Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// How many prepared statements each connection keeps (default 100; 0 turns the cache
    /// off). SQL sent with parameters (by `execute`, `fetch` and friends, `stream`,
    /// `execute_pipelined`) is prepared once per connection and then executed by id, so the
    /// leader parses it once instead of on every call; the least recently used statement is
    /// finalized when the cache is full. Scripts, transaction control and SQL without
    /// parameters are sent as text, as before. Statements never outlive their connection,
    /// so a reconnection or a leadership change starts afresh.
    pub fn statement_cache(mut self, capacity: usize) -> Self {
        self.statement_cache = capacity;
        self
    }

    /// A config like this one whose connections form a busy-polling group of their own.
    pub(crate) fn own_group(&self) -> Config {
        Config {
            waiting: Arc::default(),
            ..self.clone()
        }
    }

    pub(crate) fn core(&self) -> dqlite_proto::Config {
        dqlite_proto::Config {
            limits: self.limits,
            server_accepts_params32: self.params32,
            server_handles_returning: self.returning,
        }
    }
}
