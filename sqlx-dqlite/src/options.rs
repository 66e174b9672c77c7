//! [`DqliteConnectOptions`]: where the cluster is and how to talk to it.

use std::str::FromStr;
use std::time::Duration;

use futures_core::future::BoxFuture;
use log::LevelFilter;
use sqlx_core::connection::{ConnectOptions, LogSettings};
use sqlx_core::Error;
use url::Url;

use crate::connection::DqliteConnection;

/// How to connect to a dqlite cluster: its node addresses, the database name and the
/// client's deadlines. Connecting finds the leader among the nodes (and follows a node's hint
/// to a leader it names), so a `sqlx::Pool<Dqlite>` always talks to the current leader.
///
/// # URL
/// `dqlite://HOST:PORT[,HOST:PORT...]/DATABASE[?PARAMETERS]`. The nodes may also be given
/// (or added) with the `nodes` parameter: `dqlite://HOST:PORT/DATABASE?nodes=HOST:PORT,HOST:PORT`.
/// Use that form with `sqlx::any`, whose URL parser refuses several hosts. The database
/// defaults to `default`, the port to 9001. Parameters (durations in seconds, fractions
/// allowed, or with a unit `ms`/`s`):
///
/// | parameter | meaning | default |
/// | --- | --- | --- |
/// | `nodes` | more node addresses, comma-separated | none |
/// | `connect_timeout` | a whole connect, leader discovery included | 30 s |
/// | `dial_timeout` | dialing one node | 5 s |
/// | `request_timeout` | one request's answer | 30 s |
/// | `busy_timeout` | how long `SQLITE_BUSY` is retried outside transactions | 30 s |
/// | `statement_cache` | prepared statements kept per connection (0 disables) | the client's |
/// | `begin` | `immediate` or `deferred`: how sqlx transactions begin (see [`begin_immediate`](Self::begin_immediate)) | `deferred` |
/// | `tls_cert`, `tls_key` | PEM files of the client certificate and its key: mutual TLS (feature `tls`) | plaintext |
/// | `tls_ca` | PEM file of the certificates to trust | the `tls_cert` file, as go-dqlite's `app.WithTLS(app.SimpleTLSConfig(..))` clusters share one certificate |
/// | `tls_server_name` | the name to check the nodes' certificates against | each node's address |
///
/// ```
/// use sqlx_dqlite::DqliteConnectOptions;
/// let opts: DqliteConnectOptions =
///     "dqlite://127.0.0.1:9001,127.0.0.1:9002/app?busy_timeout=5".parse().unwrap();
/// assert_eq!(opts.get_nodes(), ["127.0.0.1:9001", "127.0.0.1:9002"]);
/// assert_eq!(opts.get_database(), "app");
/// ```
#[derive(Debug, Clone)]
pub struct DqliteConnectOptions {
    pub(crate) nodes: Vec<String>,
    pub(crate) database: String,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) dial_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) busy_timeout: Option<Duration>,
    pub(crate) statement_cache: Option<usize>,
    pub(crate) begin_immediate: bool,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<dqlite_client::TlsConfig>,
    /// TLS files named in a URL, loaded once the URL is read whole.
    #[cfg(feature = "tls")]
    tls_files: TlsFiles,
    pub(crate) log_settings: LogSettings,
}

/// The TLS parameters of a URL.
#[cfg(feature = "tls")]
#[derive(Debug, Clone, Default)]
struct TlsFiles {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    server_name: Option<String>,
}

impl Default for DqliteConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DqliteConnectOptions {
    /// Options with no nodes yet and the database `default`.
    pub fn new() -> Self {
        DqliteConnectOptions {
            nodes: Vec::new(),
            database: "default".to_owned(),
            connect_timeout: None,
            dial_timeout: None,
            request_timeout: None,
            busy_timeout: None,
            statement_cache: None,
            begin_immediate: false,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_files: TlsFiles::default(),
            log_settings: LogSettings::default(),
        }
    }

    /// Adds a node address (`host:port`).
    pub fn node(mut self, address: impl Into<String>) -> Self {
        self.nodes.push(address.into());
        self
    }

    /// Adds node addresses.
    pub fn nodes<I, S>(mut self, addresses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes.extend(addresses.into_iter().map(Into::into));
        self
    }

    /// The database to open (created on first use).
    pub fn database(mut self, name: impl Into<String>) -> Self {
        self.database = name.into();
        self
    }

    /// Deadline of a whole connect, leader discovery included.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Deadline for dialing one node.
    pub fn dial_timeout(mut self, d: Duration) -> Self {
        self.dial_timeout = Some(d);
        self
    }

    /// Deadline for one request's answer.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = Some(d);
        self
    }

    /// How long `SQLITE_BUSY` is retried for statements outside transactions (also how long
    /// a migration runner waits for another one's lock).
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = Some(d);
        self
    }

    /// Prepared statements kept per connection for queries with parameters (0 disables).
    pub fn statement_cache_capacity(mut self, capacity: usize) -> Self {
        self.statement_cache = Some(capacity);
        self
    }

    /// Begins sqlx transactions (`begin`, `Pool::begin`) with `BEGIN IMMEDIATE` instead of
    /// `BEGIN`: the transaction takes the write lock when it begins, and while another
    /// writer holds it the `BEGIN IMMEDIATE` is answered BUSY and retried by the client
    /// (within the busy timeout), before anything ran. With a plain (deferred) `BEGIN`, the
    /// first write inside the transaction may fail with BUSY ("database is locked") when
    /// other connections write, and that is not retried (SQLite may have rolled the
    /// transaction back): retry the whole transaction. Off by default, as in SQLite;
    /// URL parameter `begin=immediate`.
    pub fn begin_immediate(mut self, on: bool) -> Self {
        self.begin_immediate = on;
        self
    }

    /// Speaks TLS to every node (feature `tls`): see [`dqlite_client::TlsConfig`], e.g.
    /// `TlsConfig::from_pem(ca, cert, key)` for a go-dqlite cluster with mutual TLS. URL
    /// parameters `tls_cert`, `tls_key`, `tls_ca` and `tls_server_name` do the same from
    /// files.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: dqlite_client::TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The node addresses.
    pub fn get_nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The database name.
    pub fn get_database(&self) -> &str {
        &self.database
    }

    /// The client configuration these options stand for.
    pub fn to_client_config(&self) -> dqlite_client::Config {
        let mut config = dqlite_client::Config::new().database(self.database.clone());
        if let Some(d) = self.connect_timeout {
            config = config.connect_timeout(d);
        }
        if let Some(d) = self.dial_timeout {
            config = config.dial_timeout(d);
        }
        if let Some(d) = self.request_timeout {
            config = config.request_timeout(d);
        }
        if let Some(d) = self.busy_timeout {
            config = config.busy_timeout(d);
        }
        if let Some(n) = self.statement_cache {
            config = config.statement_cache(n);
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            config = config.tls(tls.clone());
        }
        config
    }

    fn parse(s: &str) -> Result<Self, Error> {
        let rest = s
            .strip_prefix("dqlite://")
            .ok_or_else(|| config_error(format!("not a dqlite:// URL: {s}")))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (hosts, path) = match before_query.split_once('/') {
            Some((h, p)) => (h, p),
            None => (before_query, ""),
        };
        let mut opts = DqliteConnectOptions::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            opts.nodes.push(with_default_port(host));
        }
        if !path.is_empty() {
            opts.database = decode(path)?;
        }
        if let Some(query) = query {
            // Parse the parameters with the URL library (percent-decoding included).
            let url = Url::parse(&format!("dqlite://x/?{query}")).map_err(Error::config)?;
            for (key, value) in url.query_pairs() {
                opts.set(&key, &value)?;
            }
        }
        if opts.nodes.is_empty() {
            return Err(config_error(format!("no node address in {s}")));
        }
        #[cfg(feature = "tls")]
        opts.load_tls()?;
        Ok(opts)
    }

    /// Builds the TLS settings from the files a URL named.
    #[cfg(feature = "tls")]
    fn load_tls(&mut self) -> Result<(), Error> {
        let files = std::mem::take(&mut self.tls_files);
        let read = |what: &str, path: &str| {
            std::fs::read(path).map_err(|e| config_error(format!("{what} {path}: {e}")))
        };
        let tls = match (&files.cert, &files.key) {
            (None, None) => match (&files.ca, &files.server_name) {
                (None, None) => return Ok(()),
                (Some(ca), _) => dqlite_client::TlsConfig::server_only(&read("tls_ca", ca)?),
                (None, Some(_)) => {
                    return Err(config_error(
                        "tls_server_name needs tls_ca, or tls_cert and tls_key".to_owned(),
                    ))
                }
            },
            (Some(cert), Some(key)) => {
                let cert_pem = read("tls_cert", cert)?;
                let ca_pem = match &files.ca {
                    Some(ca) => read("tls_ca", ca)?,
                    None => cert_pem.clone(),
                };
                dqlite_client::TlsConfig::from_pem(&ca_pem, &cert_pem, &read("tls_key", key)?)
            }
            _ => return Err(config_error("tls_cert and tls_key go together".to_owned())),
        }
        .map_err(|e| config_error(format!("TLS settings: {e}")))?;
        let tls = match &files.server_name {
            Some(name) => tls
                .server_name(name)
                .map_err(|e| config_error(format!("tls_server_name: {e}")))?,
            None => tls,
        };
        self.tls = Some(tls);
        Ok(())
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        match key {
            "nodes" => {
                for host in value.split(',').filter(|h| !h.is_empty()) {
                    self.nodes.push(with_default_port(host));
                }
            }
            "connect_timeout" => self.connect_timeout = Some(duration(key, value)?),
            "dial_timeout" => self.dial_timeout = Some(duration(key, value)?),
            "request_timeout" => self.request_timeout = Some(duration(key, value)?),
            "busy_timeout" => self.busy_timeout = Some(duration(key, value)?),
            "begin" => {
                self.begin_immediate = match value {
                    "immediate" => true,
                    "deferred" => false,
                    other => {
                        return Err(config_error(format!(
                            "begin: immediate or deferred, not {other}"
                        )))
                    }
                }
            }
            "statement_cache" => {
                self.statement_cache =
                    Some(value.parse().map_err(|_| {
                        config_error(format!("statement_cache: not a count: {value}"))
                    })?)
            }
            #[cfg(feature = "tls")]
            "tls_cert" => self.tls_files.cert = Some(value.to_owned()),
            #[cfg(feature = "tls")]
            "tls_key" => self.tls_files.key = Some(value.to_owned()),
            #[cfg(feature = "tls")]
            "tls_ca" => self.tls_files.ca = Some(value.to_owned()),
            #[cfg(feature = "tls")]
            "tls_server_name" => self.tls_files.server_name = Some(value.to_owned()),
            #[cfg(not(feature = "tls"))]
            "tls_cert" | "tls_key" | "tls_ca" | "tls_server_name" => {
                return Err(config_error(format!(
                    "{key}: this build of sqlx-dqlite has no TLS (feature `tls`)"
                )))
            }
            other => {
                return Err(config_error(format!(
                    "unknown dqlite URL parameter {other}"
                )))
            }
        }
        Ok(())
    }
}

fn config_error(message: String) -> Error {
    Error::Configuration(message.into())
}

fn decode(s: &str) -> Result<String, Error> {
    sqlx_core::percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|d| d.into_owned())
        .map_err(|e| config_error(format!("database name is not UTF-8: {e}")))
}

fn with_default_port(host: &str) -> String {
    let has_port = match host.rfind(']') {
        Some(end) => host[end..].contains(':'),
        None => host.contains(':'),
    };
    if has_port {
        host.to_owned()
    } else {
        format!("{host}:9001")
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, Error> {
    let (number, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 0.001)
    } else if let Some(s) = value.strip_suffix('s') {
        (s, 1.0)
    } else {
        (value, 1.0)
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| Duration::from_secs_f64(n * scale))
        .ok_or_else(|| config_error(format!("{key}: not a duration: {value}")))
}

impl FromStr for DqliteConnectOptions {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl ConnectOptions for DqliteConnectOptions {
    type Connection = DqliteConnection;

    fn from_url(url: &Url) -> Result<Self, Error> {
        Self::parse(url.as_str())
    }

    fn to_url_lossy(&self) -> Url {
        // The URL library refuses several hosts: all but the first go to `nodes`.
        let (first, rest) = self
            .nodes
            .split_first()
            .map_or(("localhost", &[][..]), |(f, r)| (f.as_str(), r));
        let mut s = format!("dqlite://{first}/{}", self.database);
        if !rest.is_empty() {
            s.push_str(&format!("?nodes={}", rest.join(",")));
        }
        // The fallback is a constant that parses.
        #[allow(clippy::expect_used)]
        Url::parse(&s).unwrap_or_else(|_| Url::parse("dqlite://localhost/").expect("a valid URL"))
    }

    fn connect(&self) -> BoxFuture<'_, Result<DqliteConnection, Error>> {
        Box::pin(DqliteConnection::establish(self))
    }

    fn log_statements(mut self, level: LevelFilter) -> Self {
        self.log_settings.log_statements(level);
        self
    }

    fn log_slow_statements(mut self, level: LevelFilter, duration: Duration) -> Self {
        self.log_settings.log_slow_statements(level, duration);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let o: DqliteConnectOptions = "dqlite://a:1,b:2/db?nodes=c:3&busy_timeout=250ms"
            .parse()
            .unwrap();
        assert_eq!(o.nodes, ["a:1", "b:2", "c:3"]);
        assert_eq!(o.database, "db");
        assert_eq!(o.busy_timeout, Some(Duration::from_millis(250)));
        assert!(!o.begin_immediate);
        let o: DqliteConnectOptions = "dqlite://a?begin=immediate".parse().unwrap();
        assert!(o.begin_immediate);
        let o: DqliteConnectOptions = "dqlite://a".parse().unwrap();
        assert_eq!(o.nodes, ["a:9001"]);
        assert_eq!(o.database, "default");
        let o: DqliteConnectOptions = "dqlite://[::1]:7/x?connect_timeout=1.5".parse().unwrap();
        assert_eq!(o.nodes, ["[::1]:7"]);
        assert_eq!(o.connect_timeout, Some(Duration::from_millis(1500)));
        assert!("postgres://a/b".parse::<DqliteConnectOptions>().is_err());
        assert!("dqlite://a/b?bogus=1"
            .parse::<DqliteConnectOptions>()
            .is_err());
        assert!("dqlite:///b".parse::<DqliteConnectOptions>().is_err());
        let url = ConnectOptions::to_url_lossy(
            &"dqlite://a:1,b:2/db"
                .parse::<DqliteConnectOptions>()
                .unwrap(),
        );
        let back = DqliteConnectOptions::from_url(&url).unwrap();
        assert_eq!(back.nodes, ["a:1", "b:2"]);
        assert_eq!(back.database, "db");
    }
}
