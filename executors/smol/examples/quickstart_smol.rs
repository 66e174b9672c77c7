//! The quickstart on smol: the same program as the tokio one, run by `smol::block_on`.
//! Pass node addresses as arguments (default: 127.0.0.1:9001..9003).

use dqlite_smol::{create_pool, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let nodes: Vec<&str> = if args.is_empty() {
        defaults.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    smol::block_on(async {
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
        let names: Vec<String> = tx
            .fetch("SELECT name FROM test", ())
            .await?
            .iter()
            .map(|row| row.get("name"))
            .collect::<Result<_>>()?;
        tx.commit().await?;
        println!("names in test: {names:?}, leader at {}", conn.address());
        Ok(())
    })
}
