//! `dqlite-shell`: an SQL shell for dqlite clusters.
//!
//! Interactive on a terminal (line editing, history, multi-line statements, Ctrl-C to stop
//! a statement); otherwise it runs `-c SQL`, `-f FILE` or the script on stdin and stops at
//! the first error with a non-zero exit status. See the crate's README for the modes and
//! the dot commands.

mod args;
mod commands;
mod format;
mod input;
mod repl;
mod session;

use std::fs;
use std::io::{self, BufRead, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;
use dqlite_tokio::{Config, DiscoveryConfig, NodeStore, TlsConfig};

use crate::args::Args;
use crate::format::Mode;
use crate::input::Reader;
use crate::session::{Flow, Session, Settings};

fn main() -> ExitCode {
    let args = Args::parse();
    let interactive = args.command.is_none() && args.file.is_none() && io::stdin().is_terminal();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("dqlite-shell: {e}");
            return ExitCode::from(2);
        }
    };
    let default_mode = if io::stdout().is_terminal() {
        Mode::Table
    } else {
        Mode::Tabs
    };
    let settings = Settings {
        mode: args.mode.unwrap_or(default_mode),
        headers: args.headers,
        timer: false,
        report_changes: interactive,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dqlite-shell: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let servers = match servers(&args.servers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dqlite-shell: {e}");
            return ExitCode::from(2);
        }
    };
    let mut session = Session::new(servers, config, settings);
    if interactive {
        return repl::run(&runtime, &mut session);
    }
    let script: Box<dyn Iterator<Item = io::Result<String>>> = if let Some(sql) = &args.command {
        Box::new(
            sql.lines()
                .map(|l| Ok(l.to_owned()))
                .collect::<Vec<_>>()
                .into_iter(),
        )
    } else if let Some(path) = &args.file {
        match fs::read_to_string(path) {
            Ok(text) => Box::new(
                text.lines()
                    .map(|l| Ok(l.to_owned()))
                    .collect::<Vec<_>>()
                    .into_iter(),
            ),
            Err(e) => {
                eprintln!("dqlite-shell: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    } else {
        Box::new(io::stdin().lock().lines())
    };
    run_script(&runtime, &mut session, script)
}

/// The node addresses: as given, or read from a node store file (`file://PATH`, the
/// `cluster.yaml` layout of go-dqlite's node store).
fn servers(given: &[String]) -> Result<Vec<String>, String> {
    let stores: Vec<&str> = given
        .iter()
        .filter_map(|s| s.strip_prefix("file://"))
        .collect();
    match stores.as_slice() {
        [] => Ok(given.to_vec()),
        [path] if given.len() == 1 => {
            let nodes = NodeStore::new(path).load().map_err(|e| e.to_string())?;
            if nodes.is_empty() {
                return Err(format!("no nodes in the node store {path}"));
            }
            Ok(nodes.into_iter().map(|n| n.address).collect())
        }
        _ => Err("a node store (file://PATH) cannot be mixed with addresses".to_owned()),
    }
}

/// The client configuration the arguments ask for.
fn config(args: &Args) -> Result<Config, String> {
    let mut config = Config::new()
        .database(args.database.clone())
        .request_timeout(args.timeout)
        .connect_timeout(args.timeout)
        .dial_timeout(args.timeout.min(std::time::Duration::from_secs(5)))
        // The search for the leader (an election after the leader died may take seconds)
        // ends at the --timeout deadline, not after a number of rounds.
        .discovery(DiscoveryConfig {
            max_rounds: u32::MAX,
            ..DiscoveryConfig::default()
        });
    let read = |path: &std::path::Path| {
        fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let tls = match (&args.cert, &args.key, &args.ca) {
        (Some(cert), Some(key), ca) => {
            let cert = read(cert)?;
            let key = read(key)?;
            // As go-dqlite's SimpleTLSConfig: the one cluster certificate is also the CA.
            let ca = match ca {
                Some(ca) => read(ca)?,
                None => cert.clone(),
            };
            Some(TlsConfig::from_pem(&ca, &cert, &key).map_err(|e| e.to_string())?)
        }
        (None, None, Some(ca)) => {
            Some(TlsConfig::server_only(&read(ca)?).map_err(|e| e.to_string())?)
        }
        (None, None, None) => None,
        _ => return Err("--cert and --key go together".to_owned()),
    };
    if let Some(tls) = tls {
        config = config.tls(tls);
    }
    Ok(config)
}

/// Runs a script line by line; stops at the first error.
fn run_script(
    runtime: &tokio::runtime::Runtime,
    session: &mut Session,
    lines: impl Iterator<Item = io::Result<String>>,
) -> ExitCode {
    let mut out = BufWriter::new(io::stdout());
    let mut reader = Reader::new();
    let mut run = |input| match runtime.block_on(session.run(&input, &mut out)) {
        Ok(Flow::Continue) => None,
        Ok(Flow::Quit) => Some(ExitCode::SUCCESS),
        Err(e) => {
            let _ = out.flush();
            eprintln!("Error: {e}");
            Some(ExitCode::FAILURE)
        }
    };
    for line in lines {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                eprintln!("Error: reading the input: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(code) = reader.push_line(&line).and_then(&mut run) {
            return code;
        }
    }
    reader.finish().and_then(run).unwrap_or(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(["dqlite-shell", "-s", "127.0.0.1:9001"].iter().chain(extra))
            .expect("arguments")
    }

    #[test]
    fn tls_files_must_be_readable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.to_str().unwrap();
        let err = config(&args(&["--cert", junk, "--key", junk])).unwrap_err();
        assert!(err.contains("TLS"), "{err}");
        let err = config(&args(&["--ca", junk])).unwrap_err();
        assert!(err.contains("TLS"), "{err}");
        let err = config(&args(&["--ca", "/nonexistent/ca.pem"])).unwrap_err();
        assert!(err.contains("cannot read /nonexistent/ca.pem"), "{err}");
        assert!(config(&args(&[])).is_ok());
    }

    #[test]
    fn node_store_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.yaml");
        fs::write(
            &path,
            "- Address: 127.0.0.1:9001\n  ID: 1\n  Role: 0\n- Address: \"@node2\"\n  ID: 2\n  Role: 1\n",
        )
        .unwrap();
        let store = format!("file://{}", path.display());
        assert_eq!(
            servers(std::slice::from_ref(&store)).unwrap(),
            ["127.0.0.1:9001", "@node2"]
        );
        let given = ["a:1".to_owned(), "b:2".to_owned()];
        assert_eq!(servers(&given).unwrap(), given);
        assert!(servers(&[store, "a:1".to_owned()]).is_err());
        fs::write(&path, "{ not: [yaml").unwrap();
        assert!(servers(&[format!("file://{}", path.display())]).is_err());
    }
}
