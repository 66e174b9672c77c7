//! Typed rows against a real cluster: rows of INTEGER, REAL, TEXT, BLOB, BOOLEAN and NULL
//! columns read into derived structs (renamed columns, defaults for missing and NULL
//! columns, `Option`, nested `Option`, tuple structs) and tuples, through a connection, a
//! transaction, a pool and a typed stream; conversion errors that name the column, the Rust
//! type and the wire type; and serde both ways (parameters from a struct, rows into it).

use std::time::Duration;

use dqlite_client::{params_from, Config, Connection, De, Error, FromRow, Pool, PoolOptions};
use dqlite_proto::ValueType;
use dqlite_smol::Smol;
use dqlite_tests::harness::Cluster;
use futures_util::StreamExt;

fn config(db: &str) -> Config {
    Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(20))
}

/// A single-node cluster and its address.
fn one_node() -> (Cluster, String) {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let addr = cluster.db_address(leader).to_string();
    (cluster, addr)
}

const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, price REAL, name TEXT, \
                      data BLOB, active BOOLEAN, note TEXT, qty INTEGER); \
                      INSERT INTO items VALUES (1, 2.5, 'pen', x'0102', 1, 'blue', 3); \
                      INSERT INTO items VALUES (2, NULL, 'cup', NULL, 0, NULL, NULL)";

const SELECT: &str = "SELECT id, price, name, data, active, note, qty FROM items ORDER BY id";

#[derive(Debug, PartialEq, FromRow)]
struct Item {
    id: i64,
    price: Option<f64>,
    #[dqlite(rename = "name")]
    title: String,
    data: Option<Vec<u8>>,
    active: bool,
    note: Option<String>,
    /// NULL in the second row.
    #[dqlite(default)]
    qty: i64,
    /// No such column in the query.
    #[dqlite(default)]
    rating: u8,
    /// No such column: None.
    gone: Option<Option<String>>,
    /// Present: Some(Some(..)), or Some(None) for NULL.
    #[dqlite(rename = "note")]
    note_seen: Option<Option<String>>,
}

#[derive(Debug, PartialEq, FromRow)]
struct Priced(i64, Option<f64>);

fn expected() -> Vec<Item> {
    vec![
        Item {
            id: 1,
            price: Some(2.5),
            title: "pen".into(),
            data: Some(vec![1, 2]),
            active: true,
            note: Some("blue".into()),
            qty: 3,
            rating: 0,
            gone: None,
            note_seen: Some(Some("blue".into())),
        },
        Item {
            id: 2,
            price: None,
            title: "cup".into(),
            data: None,
            active: false,
            note: None,
            qty: 0,
            rating: 0,
            gone: None,
            note_seen: Some(None),
        },
    ]
}

#[test]
fn rows_read_into_structs_and_tuples_everywhere() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let db = "typed";
        let mut conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
        conn.execute_batch(SCHEMA).await.unwrap();

        // Connection.
        let items: Vec<Item> = conn.fetch_as(SELECT, ()).await.unwrap();
        assert_eq!(items, expected());
        let row = conn
            .fetch_one("SELECT active FROM items WHERE id = 1", ())
            .await
            .unwrap();
        assert_eq!(
            row.values(),
            [dqlite_client::Value::Boolean(true)],
            "a BOOLEAN column"
        );
        let one: Item = conn
            .fetch_one_as(&format!("{SELECT} LIMIT 1"), ())
            .await
            .unwrap();
        assert_eq!(one, expected()[0]);
        let none: Option<Item> = conn
            .fetch_optional_as("SELECT * FROM items WHERE id = ?", (99,))
            .await
            .unwrap();
        assert_eq!(none, None);
        assert!(matches!(
            conn.fetch_one_as::<Item>("SELECT * FROM items WHERE id = 99", ())
                .await,
            Err(Error::NoRows)
        ));
        let priced: Vec<Priced> = conn
            .fetch_as("SELECT id, price FROM items ORDER BY id", ())
            .await
            .unwrap();
        assert_eq!(priced, [Priced(1, Some(2.5)), Priced(2, None)]);
        let tuple: (String, Option<Vec<u8>>, bool) = conn
            .fetch_one_as("SELECT name, data, active FROM items WHERE id = ?", (1,))
            .await
            .unwrap();
        assert_eq!(tuple, ("pen".into(), Some(vec![1, 2]), true));
        let (n,): (u32,) = conn
            .fetch_one_as("SELECT count(*) FROM items", ())
            .await
            .unwrap();
        assert_eq!(n, 2);

        // Transaction (through its deref to the connection).
        let mut tx = conn.begin().await.unwrap();
        tx.execute(
            "INSERT INTO items VALUES (3, 1.0, 'lid', x'', 1, NULL, 7)",
            (),
        )
        .await
        .unwrap();
        let seen: Option<(i64, String)> = tx
            .fetch_optional_as("SELECT qty, name FROM items WHERE id = 3", ())
            .await
            .unwrap();
        assert_eq!(seen, Some((7, "lid".into())));
        let all: Vec<Item> = tx.fetch_as(SELECT, ()).await.unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[2].data, Some(Vec::new()));
        tx.rollback().await.unwrap();

        // Typed stream: a row that does not convert yields its error, and the stream goes on.
        let stream = conn.stream(SELECT, ()).await.unwrap();
        let streamed: Vec<Item> = stream
            .into_typed::<Item>()
            .map(Result::unwrap)
            .collect()
            .await;
        assert_eq!(streamed, expected());
        let stream = conn
            .stream("SELECT id, price FROM items ORDER BY id", ())
            .await
            .unwrap();
        let results: Vec<_> = stream.into_typed::<(i64, f64)>().collect().await;
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].as_ref().unwrap(), &(1, 2.5));
        assert!(
            matches!(&results[1], Err(Error::Conversion { expected: "f64", found: ValueType::Null, column: Some(c) }) if c == "#1"),
            "{:?}",
            results[1]
        );
        // The connection is still good.
        let (n,): (i64,) = conn
            .fetch_one_as("SELECT count(*) FROM items", ())
            .await
            .unwrap();
        assert_eq!(n, 2);

        // Pool.
        let pool = Pool::new(
            Smol,
            &[addr.as_str()],
            config(db),
            PoolOptions::new().max_size(2),
        )
        .await
        .unwrap();
        let items: Vec<Item> = pool.fetch_as(SELECT, ()).await.unwrap();
        assert_eq!(items, expected());
        let priced: Priced = pool
            .fetch_one_as("SELECT id, price FROM items WHERE id = ?", (2,))
            .await
            .unwrap();
        assert_eq!(priced, Priced(2, None));
        let missing: Option<Priced> = pool
            .fetch_optional_as("SELECT id, price FROM items WHERE id = ?", (99,))
            .await
            .unwrap();
        assert_eq!(missing, None);
        pool.close().await;
    });
}

#[derive(Debug, FromRow)]
struct WrongName {
    #[allow(dead_code)]
    name: i64,
}

#[derive(Debug, FromRow)]
struct WrongData {
    #[allow(dead_code)]
    data: String,
}

#[derive(Debug, FromRow)]
struct NeedsQty {
    #[allow(dead_code)]
    qty: i64,
}

#[test]
fn conversion_errors_name_the_column_and_both_types() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let mut conn = Connection::connect(Smol, &addr, config("typed_errors"))
            .await
            .unwrap();
        conn.execute_batch(SCHEMA).await.unwrap();

        let e = conn
            .fetch_as::<WrongName>("SELECT name FROM items", ())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Conversion { expected: "i64", found: ValueType::Text, column: Some(c) } if c == "name"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "cannot convert Text value of column name to i64"
        );

        let e = conn
            .fetch_one_as::<WrongData>("SELECT data FROM items WHERE id = 1", ())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot convert Blob value of column data to text"
        );

        // NULL into a field without Option or default.
        let e = conn
            .fetch_one_as::<NeedsQty>("SELECT qty FROM items WHERE id = 2", ())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot convert Null value of column qty to i64"
        );

        // A missing column.
        let e = conn
            .fetch_one_as::<NeedsQty>("SELECT id FROM items", ())
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::NoSuchColumn(c) if c == "qty"), "{e:?}");

        // Tuples name the column by position; narrow integers name their own type.
        let e = conn
            .fetch_one_as::<(i64, u8)>("SELECT id, price FROM items WHERE id = 1", ())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot convert Float value of column #1 to u8"
        );
        let e = conn
            .fetch_optional_as::<(u8,)>("SELECT 300", ())
            .await
            .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Conversion {
                    found: ValueType::Integer,
                    ..
                }
            ),
            "{e:?}"
        );
    });
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    id: i64,
    price: Option<f64>,
    name: String,
    data: Option<Vec<u8>>,
    active: bool,
    note: Option<String>,
}

#[test]
fn serde_parameters_and_rows() {
    let (_cluster, addr) = one_node();
    smol::block_on(async {
        let mut conn = Connection::connect(Smol, &addr, config("typed_serde"))
            .await
            .unwrap();
        conn.execute(
            "CREATE TABLE rec (id INTEGER PRIMARY KEY, price REAL, name TEXT, data BLOB, \
             active BOOLEAN, note TEXT)",
            (),
        )
        .await
        .unwrap();
        let records = [
            Record {
                id: 1,
                price: Some(9.75),
                name: "lamp".into(),
                data: Some(vec![0, 255, 7]),
                active: true,
                note: Some("desk".into()),
            },
            Record {
                id: 2,
                price: None,
                name: "chair".into(),
                data: None,
                active: false,
                note: None,
            },
        ];
        // Field order matches the placeholders: dqlite binds by position.
        for r in &records {
            let params = params_from(r).unwrap();
            conn.execute(
                "INSERT INTO rec (id, price, name, data, active, note) VALUES (?, ?, ?, ?, ?, ?)",
                params,
            )
            .await
            .unwrap();
        }

        let read: Vec<De<Record>> = conn
            .fetch_as("SELECT * FROM rec ORDER BY id", ())
            .await
            .unwrap();
        let read: Vec<Record> = read.into_iter().map(De::into_inner).collect();
        assert_eq!(read, records);
        let rows = conn
            .fetch("SELECT note, id FROM rec ORDER BY id", ())
            .await
            .unwrap();
        let (note, id): (Option<String>, i64) = rows[0].deserialize().unwrap();
        assert_eq!((note.as_deref(), id), (Some("desk"), 1));
        // A struct reads its fields by name, whatever the column order.
        let reordered: Record = conn
            .fetch_one(
                "SELECT note, active, data, name, price, id FROM rec WHERE id = 2",
                (),
            )
            .await
            .unwrap()
            .deserialize()
            .unwrap();
        assert_eq!(reordered, records[1]);
        let De(count) = conn
            .fetch_one_as::<De<u64>>("SELECT count(*) FROM rec", ())
            .await
            .unwrap();
        assert_eq!(count, 2);

        // Parameters from a tuple, through the pool's typed reads.
        let pool = Pool::new(
            Smol,
            &[addr.as_str()],
            config("typed_serde"),
            PoolOptions::new().max_size(1),
        )
        .await
        .unwrap();
        let params = params_from(&("lamp", true)).unwrap();
        let De(found) = pool
            .fetch_one_as::<De<Record>>("SELECT * FROM rec WHERE name = ? AND active = ?", params)
            .await
            .unwrap();
        assert_eq!(found, records[0]);
        pool.close().await;

        // Errors name the column and both types.
        let e = conn
            .fetch_one_as::<De<Record>>(
                "SELECT id, price, id AS name, data, active, note FROM rec WHERE id = 1",
                (),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::Conversion { expected: "string", found: ValueType::Integer, column: Some(c) } if c == "name"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "cannot convert Integer value of column name to string"
        );
        let e = conn
            .fetch_one_as::<De<Record>>("SELECT id FROM rec WHERE id = 1", ())
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::NoSuchColumn(c) if c == "name"), "{e:?}");
    });
}

/// The typed methods are the same on every runtime; one check on tokio, through the
/// adapter crate's re-exports (its own `FromRow` derive path included).
#[test]
fn typed_rows_on_tokio() {
    let (_cluster, addr) = one_node();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        #[derive(Debug, PartialEq, dqlite_tokio::FromRow)]
        #[dqlite(crate = "dqlite_tokio")]
        struct Named {
            id: i64,
            name: String,
        }
        let mut conn = dqlite_tokio::connect_with(&addr, config("typed_tokio"))
            .await
            .unwrap();
        conn.execute_batch(SCHEMA).await.unwrap();
        let named: Vec<Named> = conn
            .fetch_as("SELECT id, name FROM items ORDER BY id", ())
            .await
            .unwrap();
        assert_eq!(
            named,
            [
                Named {
                    id: 1,
                    name: "pen".into()
                },
                Named {
                    id: 2,
                    name: "cup".into()
                }
            ]
        );
    });
}
