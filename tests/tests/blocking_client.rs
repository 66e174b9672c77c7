//! The blocking client (`dqlite-blocking`'s `Client`) against a real dqlite cluster: the
//! leader found from a follower's address, statements with parameters, whole and
//! row-by-row queries over many batches, prepared statements, transactions committed,
//! rolled back and dropped, typed errors that leave the connection usable, a follower's
//! "not leader", no leader to be found, and the leader killed (the connection breaks, a new
//! search finds the new leader and the committed rows).

use std::time::Duration;

use dqlite_blocking::{Client, Config, Error};
use dqlite_proto::discovery::DiscoveryConfig;
use dqlite_proto::Value;
use dqlite_tests::fake_server::{Behaviour, FakeServer, BARRIER_SQL};
use dqlite_tests::harness::Cluster;

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn count(client: &mut Client) -> i64 {
    let rows = client.query("SELECT count(*) FROM items", &[]).unwrap();
    match rows.get(0) {
        Some([Value::Integer(n)]) => *n,
        other => panic!("a count, got {other:?}"),
    }
}

#[test]
fn blocking_client_against_a_real_cluster() {
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_ready(3);
    let addresses: Vec<String> = (0..3).map(|i| cluster.db_address(i).to_string()).collect();
    let address = |i: usize| addresses[i].clone();
    let leader_address = address(leader);
    let follower = (leader + 1) % 3;
    let config = Config::new("blocking-client").timeout(Duration::from_secs(20));

    // One follower's address is enough to reach the leader.
    let follower_address = address(follower);
    let mut client = Client::connect_cluster(&[&follower_address], &config).unwrap();
    assert_eq!(client.address(), leader_address);
    let named = client.leader().unwrap().expect("a leader");
    assert_eq!(named.address.as_str(), leader_address);
    assert_eq!(client.cluster().unwrap().len(), 3);

    // Statements with parameters.
    client
        .execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)",
            &[],
        )
        .unwrap();
    let r = client
        .execute(
            "INSERT INTO items (name, price) VALUES (?, ?)",
            &[text("apple"), Value::Float(1.5)],
        )
        .unwrap();
    assert_eq!((r.last_insert_id, r.rows_affected), (1, 1));
    let rows = client
        .query(
            "SELECT id, name, price FROM items WHERE name = ?",
            &[text("apple")],
        )
        .unwrap();
    assert_eq!(rows.columns(), ["id", "name", "price"]);
    assert_eq!(rows.column_index("NAME"), Some(1));
    assert_eq!(
        rows.into_rows(),
        [vec![Value::Integer(1), text("apple"), Value::Float(1.5)]]
    );

    // A result of many batches, whole and row by row.
    let many = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000) \
                SELECT x, 'row ' || x AS label FROM c";
    let rows = client.query(many, &[]).unwrap();
    assert_eq!(rows.len(), 20000);
    assert_eq!(
        rows.get(19999),
        Some(&[Value::Integer(20000), text("row 20000")][..])
    );
    let mut sum = 0i64;
    let columns = client
        .query_each(many, &[], |row| {
            if let [Value::Integer(x), _] = row {
                sum += x;
            }
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(columns, ["x", "label"]);
    assert_eq!(sum, 20000 * 20001 / 2);
    // The callback's error comes back once the result is read; the connection goes on.
    let mut seen = 0;
    let stopped = client
        .query_each(many, &[], |_| {
            seen += 1;
            if seen == 10 {
                Err("enough")
            } else {
                Ok(())
            }
        })
        .unwrap();
    assert_eq!(stopped, Err("enough"));
    assert_eq!(seen, 10);
    assert_eq!(count(&mut client), 1);

    // Prepared statements.
    let insert = client
        .prepare("INSERT INTO items (name, price) VALUES (?, ?)")
        .unwrap();
    assert_eq!(insert.param_count(), 2);
    for (name, price) in [("pear", 2.0), ("plum", 0.5)] {
        client
            .execute_prepared(&insert, &[text(name), Value::Float(price)])
            .unwrap();
    }
    client.finalize(insert).unwrap();
    let cheap = client
        .prepare("SELECT name FROM items WHERE price < ? ORDER BY name")
        .unwrap();
    let rows = client.query_prepared(&cheap, &[Value::Float(1.6)]).unwrap();
    assert_eq!(rows.into_rows(), [vec![text("apple")], vec![text("plum")]]);
    client.finalize(cheap).unwrap();

    // Transactions: committed, rolled back, dropped (rolled back).
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO items (name) VALUES ('committed')", &[])
        .unwrap();
    tx.commit().unwrap();
    let mut tx = client.transaction().unwrap();
    tx.execute("INSERT INTO items (name) VALUES ('rolled back')", &[])
        .unwrap();
    tx.rollback().unwrap();
    {
        let mut tx = client.transaction().unwrap();
        tx.execute("INSERT INTO items (name) VALUES ('dropped')", &[])
            .unwrap();
    }
    let names = client
        .query(
            "SELECT name FROM items WHERE name IN ('committed', 'rolled back', 'dropped')",
            &[],
        )
        .unwrap();
    assert_eq!(names.into_rows(), [vec![text("committed")]]);
    // No transaction was left open: BEGIN works again.
    client.transaction().unwrap().commit().unwrap();

    // Typed errors that leave the connection usable: the server's, and misuse (nothing
    // sent).
    let e = client.query("SELECT * FROM missing", &[]).unwrap_err();
    let failure = e.server_failure().expect("a server failure");
    assert!(failure.message.contains("no such table"), "{failure:?}");
    let e = client
        .execute("INSERT INTO items (name) VALUES (?)", &[])
        .unwrap_err();
    assert!(matches!(e, Error::Misuse(_)), "{e:?}");
    assert!(!client.is_broken());
    assert_eq!(count(&mut client), 4);

    // A follower, connected to directly, does not lead (older servers open the database
    // and refuse the statement, newer ones refuse the OPEN).
    let e = Client::connect(&follower_address, &config)
        .and_then(|mut c| c.execute("INSERT INTO items (name) VALUES ('x')", &[]))
        .unwrap_err();
    assert!(e.is_not_leader(), "{e:?}");

    // Nobody to ask: no leader, within the connect timeout, saying what was tried.
    let nobody = dqlite_tests::harness::reserve_loopback_addr().to_string();
    let quick = config
        .clone()
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(3));
    let e = Client::connect_cluster(&[&nobody], &quick).unwrap_err();
    match &e {
        Error::NoLeader(d) => assert!(d.no_node_reachable(), "{d}"),
        other => panic!("expected no leader, got {other:?}"),
    }
    assert!(e.to_string().contains(&nobody), "{e}");

    // The leader dies: the connection breaks and says so from then on; a new search over
    // every address finds the new leader, with the committed rows.
    cluster.kill(leader);
    let e = client
        .execute("INSERT INTO items (name) VALUES ('lost')", &[])
        .unwrap_err();
    assert!(
        matches!(e, Error::Io(_) | Error::Protocol(_)),
        "expected a broken connection, got {e:?}"
    );
    assert!(client.is_broken());
    assert!(matches!(
        client.query("SELECT 1", &[]).unwrap_err(),
        Error::Broken(_)
    ));
    let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
    // The election takes a few seconds: search until the deadline, not for the default rounds.
    let patient = config
        .clone()
        .connect_timeout(Duration::from_secs(60))
        .discovery(DiscoveryConfig {
            max_rounds: u32::MAX,
            ..DiscoveryConfig::default()
        });
    let mut client = Client::connect_cluster(&addresses, &patient).unwrap();
    assert_ne!(client.address(), leader_address);
    assert_eq!(count(&mut client), 4);
}

/// Like the async client, the blocking client sends the barrier query right after OPEN (so a
/// dqlite 1.11 leader has applied its log before the first statement), once per connection.
#[test]
fn the_blocking_client_sends_the_barrier_query_right_after_open() {
    let node = FakeServer::start(Behaviour::Answer);
    let config = Config::new("db").timeout(Duration::from_secs(20));
    let mut client = Client::connect(&node.address(), &config).unwrap();
    let rows = client.query("SELECT ?", &[Value::Integer(7)]).unwrap();
    assert_eq!(rows.len(), 1);
    let seen = node.requests();
    let open = seen
        .iter()
        .position(|r| r == "OPEN db")
        .unwrap_or_else(|| panic!("no OPEN in {seen:?}"));
    assert_eq!(
        &seen[open + 1..],
        [
            format!("QUERY_SQL {BARRIER_SQL}"),
            "QUERY_SQL SELECT ?".to_owned()
        ],
        "{seen:?}"
    );
}
