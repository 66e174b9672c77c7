//! The quickstart on smol: the same program as the tokio one, on another runtime.
//! Pass node addresses as arguments (default: 127.0.0.1:9001..9003).

use dqlite_smol::{create_pool, Result};

fn main() -> Result<()> {
    smol::block_on(async {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let defaults = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
        let nodes: Vec<&str> = if args.is_empty() {
            defaults.to_vec()
        } else {
            args.iter().map(String::as_str).collect()
        };

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
        for row in tx.fetch("SELECT id, name FROM test", ()).await? {
            println!(
                "id={} name={}",
                row.get::<i64, _>("id")?,
                row.get::<String, _>("name")?
            );
        }
        let count: i64 = tx.fetch_val("SELECT count(*) FROM test", ()).await?;
        tx.commit().await?;
        println!("{count} row(s) in test, leader at {}", conn.address());
        Ok(())
    })
}
