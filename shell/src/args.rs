//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::format::Mode;

/// An SQL shell for dqlite clusters.
///
/// Connects to the leader of the cluster (found from any of the given addresses) and runs
/// SQL typed interactively, given with -c, read from a file with -f, or piped on stdin.
#[derive(Debug, Parser)]
#[command(name = "dqlite-shell", version, args_override_self = true)]
pub struct Args {
    /// Addresses of cluster nodes, comma-separated (any of them: the leader is found).
    /// `@name` and `/path` are unix sockets; `file://PATH` reads the addresses from a node
    /// store file (go-dqlite's `cluster.yaml`).
    #[arg(
        short = 's',
        long = "servers",
        value_name = "ADDR[,ADDR..]",
        value_delimiter = ',',
        required = true
    )]
    pub servers: Vec<String>,

    /// The database to open.
    #[arg(default_value = "default")]
    pub database: String,

    /// TLS: the client certificate (PEM); also the CA unless --ca is given.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// TLS: the client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// TLS: the CA certificate (PEM) that signed the servers' certificates.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,

    /// Runs SQL (statements separated by `;`, or dot commands on their own lines), then exits.
    #[arg(short = 'c', value_name = "SQL", conflicts_with = "file")]
    pub command: Option<String>,

    /// Runs the script in FILE, then exits.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Output mode: table, csv, json, line or tabs (default: table on a terminal, tabs
    /// otherwise).
    #[arg(long, value_name = "MODE")]
    pub mode: Option<Mode>,

    /// Column headers: on or off (default: on in table and csv modes).
    #[arg(long, value_name = "on|off", num_args = 0..=1, default_missing_value = "on", value_parser = parse_switch)]
    pub headers: Option<bool>,

    /// Seconds each request (and the search for the leader) may take.
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub timeout: Duration,
}

/// Parses `on`/`off` (also `true`/`false`, `yes`/`no`, `1`/`0`).
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Ok(true),
        "off" | "false" | "no" | "0" => Ok(false),
        _ => Err(format!("expected on or off, not `{s}`")),
    }
}

/// Parses a positive number of seconds (fractions allowed).
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(format!(
            "the timeout must be between 0 and 86400 seconds, not {s}"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("dqlite-shell").chain(args.iter().copied()))
    }

    #[test]
    fn servers_split_on_commas_and_database_defaults() {
        let a = parse(&["-s", "127.0.0.1:9001,127.0.0.1:9002"]).unwrap();
        assert_eq!(a.servers, ["127.0.0.1:9001", "127.0.0.1:9002"]);
        assert_eq!(a.database, "default");
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert_eq!(a.headers, None);
        let a = parse(&["--servers", "@sock", "app", "--headers", "--mode", "csv"]).unwrap();
        assert_eq!(a.database, "app");
        assert_eq!(a.headers, Some(true));
        assert_eq!(a.mode, Some(Mode::Csv));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&[]).is_err(), "servers are required");
        assert!(
            parse(&["-s", "a", "--cert", "c.pem"]).is_err(),
            "cert needs key"
        );
        assert!(
            parse(&["-s", "a", "--key", "k.pem"]).is_err(),
            "key needs cert"
        );
        assert!(parse(&["-s", "a", "--mode", "xml"]).is_err());
        assert!(parse(&["-s", "a", "--timeout", "-1"]).is_err());
        assert!(parse(&["-s", "a", "--timeout", "soon"]).is_err());
        assert!(parse(&["-s", "a", "-c", "SELECT 1", "-f", "x.sql"]).is_err());
        assert!(parse(&["-s", "a", "--headers=maybe"]).is_err());
    }

    #[test]
    fn switches() {
        assert_eq!(parse_switch("ON"), Ok(true));
        assert_eq!(parse_switch("off"), Ok(false));
        assert!(parse_switch("").is_err());
    }
}
