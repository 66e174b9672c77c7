//! A dial function of the application's own: every connection to a node (leader discovery,
//! redirects, the pool) goes through it. This one logs each dial and connects over plain
//! TCP; a real one might open a tunnel, go through a proxy, or pick a source address.
//! Pass node addresses as arguments (default: 127.0.0.1:9001..9003).

use std::sync::Arc;

use dqlite_tokio::{create_pool_with, BoxStream, Config, Plain, PoolOptions, Result};
use tokio_util::compat::TokioAsyncReadCompatExt;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let defaults = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let nodes: Vec<&str> = if args.is_empty() {
        defaults.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };

    let config = Config::new().dial_with(Arc::new(|address: &str| {
        let address = address.to_owned();
        Box::pin(async move {
            eprintln!("dialing {address}");
            let stream = tokio::net::TcpStream::connect(&address).await?;
            stream.set_nodelay(true)?;
            // Any AsyncRead + AsyncWrite stream will do, wrapped in Plain.
            Ok(Box::new(Plain::new(stream.compat())) as BoxStream)
        })
    }));
    let pool = create_pool_with(&nodes, config, PoolOptions::new()).await?;
    let answer: i64 = pool.fetch_val("SELECT 6 * 7", ()).await?;
    println!("{answer}");
    Ok(())
}
