//! The quickstart on tokio: create a table, insert with parameters, read rows back into a
//! struct, in a transaction. Pass node addresses as arguments (default: 127.0.0.1:9001..9003).
//!
//! `bash scripts/quickstart.sh` starts a local 3-node cluster and runs this.

use dqlite_tokio::{create_pool, FromRow, Result};

/// A row of `test`: fields are read from the columns of the same name.
#[derive(Debug, FromRow)]
struct Test {
    id: i64,
    name: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let nodes: Vec<&str> = if args.is_empty() {
        defaults.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };

    // A pool finds the leader among the nodes and follows it when it changes.
    let pool = create_pool(&nodes).await?;
    let mut conn = pool.acquire().await?;

    let mut tx = conn.begin().await?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS test (id INTEGER PRIMARY KEY, name TEXT)",
        (),
    )
    .await?;
    tx.execute("INSERT INTO test (name) VALUES (?)", ("hello",))
        .await?;
    for test in tx.fetch_as::<Test>("SELECT id, name FROM test", ()).await? {
        println!("id={} name={}", test.id, test.name);
    }
    let count: i64 = tx.fetch_val("SELECT count(*) FROM test", ()).await?;
    tx.commit().await?;
    println!("{count} row(s) in test, leader at {}", conn.address());
    Ok(())
}
