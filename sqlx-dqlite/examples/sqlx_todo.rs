//! A small to-do list on a dqlite cluster through sqlx: migrations, a pool, `query_as` with
//! a derived `FromRow`, a transaction.
//!
//! Start a local cluster (for instance with `scripts/local-cluster.sh`, or three
//! `dqlite-demo` nodes on 127.0.0.1:9001-9003), then:
//!
//! ```sh
//! cargo run -p sqlx-dqlite --example sqlx_todo -- dqlite://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003/todo
//! ```

use sqlx::migrate::Migrator;
use sqlx_dqlite::DqlitePoolOptions;

/// The migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("examples/migrations");

#[derive(Debug, sqlx::FromRow)]
struct Todo {
    id: i64,
    title: String,
    done: bool,
    notes: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "dqlite://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003/todo".to_owned());
    let pool = DqlitePoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;

    // Safe to run from every instance of the application at once: one applies, the others
    // wait for its lock and find the migrations applied.
    MIGRATOR.run(&pool).await?;

    let mut tx = pool.begin().await?;
    for title in ["write the driver", "test it on a cluster"] {
        sqlx::query("INSERT INTO todos (title, notes) VALUES (?, ?)")
            .bind(title)
            .bind(None::<String>)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE todos SET done = ? WHERE title = ?")
        .bind(true)
        .bind("write the driver")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let todos: Vec<Todo> = sqlx::query_as("SELECT id, title, done, notes FROM todos ORDER BY id")
        .fetch_all(&pool)
        .await?;
    for t in &todos {
        println!(
            "{:>3} [{}] {}{}",
            t.id,
            if t.done { "x" } else { " " },
            t.title,
            t.notes
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
    }
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM todos WHERE NOT done")
        .fetch_one(&pool)
        .await?;
    println!("{open} open");
    pool.close().await;
    Ok(())
}
