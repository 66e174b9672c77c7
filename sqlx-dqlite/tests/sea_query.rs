//! The sea-query example against a real cluster.

#[path = "../examples/sea_query_todo.rs"]
mod example;

use dqlite_tests::harness::Cluster;

#[test]
fn sea_query_statements_run_through_the_driver_and_the_client() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    let nodes: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let url = format!("dqlite://{}/seaquery", nodes.join(","));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (through_sqlx, through_client) = rt.block_on(example::run(&url)).unwrap();
    assert_eq!(through_sqlx, ["build", "ship"]);
    assert_eq!(through_client, through_sqlx);
    // A value the wire cannot carry is refused, not wrapped.
    let e = example::client_value(sea_query::Value::BigUnsigned(Some(u64::MAX))).unwrap_err();
    assert!(e.to_string().contains("i64::MAX"), "{e}");
}
