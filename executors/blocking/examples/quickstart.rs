//! Connects to a dqlite cluster, finds its leader, and runs a few statements: a table,
//! a transaction, a prepared statement, a query.
//!
//! `cargo run -p dqlite-blocking --example quickstart -- ADDR[,ADDR..] [DATABASE]`

use std::process::ExitCode;

use dqlite_blocking::{Client, Config};
use dqlite_proto::Value;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(addresses) = args.next() else {
        eprintln!("usage: quickstart ADDR[,ADDR..] [DATABASE]");
        return ExitCode::from(2);
    };
    let database = args.next().unwrap_or_else(|| "quickstart".to_owned());
    let addresses: Vec<&str> = addresses.split(',').collect();
    match run(&addresses, &database) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(addresses: &[&str], database: &str) -> dqlite_blocking::Result<()> {
    let mut client = Client::connect_cluster(addresses, &Config::new(database))?;
    println!("connected to the leader at {}", client.address());
    client.execute(
        "CREATE TABLE IF NOT EXISTS visits (id INTEGER PRIMARY KEY, who TEXT NOT NULL)",
        &[],
    )?;

    let mut tx = client.transaction()?;
    for who in ["ada", "grace"] {
        tx.execute(
            "INSERT INTO visits (who) VALUES (?)",
            &[Value::Text(who.into())],
        )?;
    }
    tx.commit()?;

    let count = client.prepare("SELECT count(*) FROM visits WHERE who = ?")?;
    let rows = client.query_prepared(&count, &[Value::Text("ada".into())])?;
    let visits = rows
        .get(0)
        .and_then(|r| r.first())
        .map_or_else(String::new, show);
    println!("ada visited {visits} time(s)");
    client.finalize(count)?;

    let rows = client.query("SELECT id, who FROM visits ORDER BY id DESC LIMIT 5", &[])?;
    println!("{}", rows.columns().join("\t"));
    for row in rows.iter() {
        let cells: Vec<String> = row.iter().map(show).collect();
        println!("{}", cells.join("\t"));
    }
    Ok(())
}

/// A value as text.
fn show(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) | Value::UnixTime(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) | Value::Iso8601(t) => t.to_string(),
        Value::Blob(b) => format!("{} bytes", b.len()),
        Value::Boolean(b) => b.to_string(),
    }
}
