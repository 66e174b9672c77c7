//! The everyday types (features `chrono`, `time`, `uuid`, `json`) against real clusters:
//! every type written and read back by the client, NULL from date columns (also into a
//! derived struct), zones kept, and dates and times exchanged both ways with go-dqlite's
//! database/sql driver (the `timeinterop` Go program, see `dqlite_tests::interop`).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use dqlite_client::{
    Config, Connection, Error, FromRow, FromValue, Json, Misuse, Param, UuidBlob, Value, ValueType,
};
use dqlite_smol::Smol;
use dqlite_tests::harness::Cluster;
use dqlite_tests::interop::{timeinterop, timeinterop_program};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use uuid::Uuid;

const GO_TIMEOUT: Duration = Duration::from_secs(90);

fn config(db: &str) -> Config {
    Config::new()
        .database(db)
        .request_timeout(Duration::from_secs(20))
}

/// A cluster of `n` nodes, ready, and a connection to its leader.
async fn cluster(n: usize, db: &str) -> (Cluster, Connection<Smol>) {
    let cluster = Cluster::start(n);
    let leader = cluster.wait_ready(n);
    let addr = cluster.db_address(leader).to_string();
    let conn = Connection::connect(Smol, &addr, config(db)).await.unwrap();
    (cluster, conn)
}

fn ist() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap()
}

fn chrono_utc() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 2, 29, 13, 14, 15)
        .unwrap()
        .with_nanosecond(123_456_789)
        .unwrap()
}

fn time_west() -> OffsetDateTime {
    let date = Date::from_calendar_date(1999, Month::December, 31).unwrap();
    PrimitiveDateTime::new(date, Time::from_hms_nano(23, 59, 59, 1).unwrap())
        .assume_offset(UtcOffset::from_hms(-7, 0, 0).unwrap())
}

/// Writes `value` into a fresh table whose column `v` is declared `decl`, reads it back as
/// `T`, and returns it with the raw value the server sent.
async fn round_trip<T: Param + FromValue>(
    conn: &mut Connection<Smol>,
    table: &str,
    decl: &str,
    value: T,
) -> (T, Value) {
    conn.execute(&format!("CREATE TABLE {table} (v {decl})"), ())
        .await
        .unwrap();
    conn.execute(&format!("INSERT INTO {table} (v) VALUES (?)"), (value,))
        .await
        .unwrap();
    let row = conn
        .fetch_one(&format!("SELECT v FROM {table}"), ())
        .await
        .unwrap();
    (row.get(0).unwrap(), row.value(0).unwrap().clone())
}

/// [`round_trip`] of a value that must come back equal.
async fn same<T: Param + FromValue + Clone + PartialEq + Debug>(
    conn: &mut Connection<Smol>,
    table: &str,
    decl: &str,
    value: T,
) -> Value {
    let (back, raw) = round_trip(conn, table, decl, value.clone()).await;
    assert_eq!(back, value, "{table} ({decl}): sent as {raw:?}");
    raw
}

fn iso(text: &str) -> Value {
    Value::Iso8601(text.into())
}

#[test]
fn every_type_round_trips_through_a_cluster() {
    smol::block_on(async {
        let (_cluster, mut conn) = cluster(1, "types").await;
        let c = &mut conn;

        // chrono. Zoned values keep their offset, not only their instant.
        let utc = chrono_utc();
        assert_eq!(
            same(c, "c_utc", "DATETIME", utc).await,
            iso("2024-02-29 13:14:15.123456789+00:00")
        );
        let india = utc.with_timezone(&ist());
        let (back, raw) = round_trip(c, "c_ist", "TIMESTAMP", india).await;
        assert_eq!((back, back.offset()), (india, &ist()));
        assert_eq!(raw, iso("2024-02-29 18:44:15.123456789+05:30"));
        let naive = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_milli_opt(13, 14, 15, 500)
            .unwrap();
        assert_eq!(
            same(c, "c_naive", "DATETIME", naive).await,
            iso("2024-02-29 13:14:15.5")
        );
        assert_eq!(
            same(c, "c_date", "DATE", naive.date()).await,
            iso("2024-02-29")
        );
        let tod = NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap();
        assert_eq!(
            same(c, "c_time", "TIME", tod).await,
            Value::from("23:59:59.999999999"),
            "TIME is not a date type to the server: the text comes back as TEXT"
        );
        same(c, "c_time_dt", "DATETIME", tod).await;

        // time.
        let west = time_west();
        let (back, raw) = round_trip(c, "t_west", "DATETIME", west).await;
        assert_eq!((back, back.offset()), (west, west.offset()));
        assert_eq!(raw, iso("1999-12-31 23:59:59.000000001-07:00"));
        same(c, "t_utc", "DATETIME", west.to_offset(UtcOffset::UTC)).await;
        let primitive = PrimitiveDateTime::new(west.date(), west.time());
        same(c, "t_naive", "DATETIME", primitive).await;
        same(c, "t_date", "DATE", west.date()).await;
        same(c, "t_time", "TIME", west.time()).await;

        // uuid: TEXT by default, a 16-byte BLOB with UuidBlob; either reads as Uuid.
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            same(c, "u_text", "TEXT", id).await,
            Value::from("01234567-89ab-cdef-0123-456789abcdef")
        );
        assert_eq!(
            same(c, "u_blob", "BLOB", UuidBlob(id)).await,
            Value::from(id.as_bytes())
        );
        let from_blob: Uuid = c.fetch_val("SELECT v FROM u_blob", ()).await.unwrap();
        assert_eq!(from_blob, id);

        // JSON as TEXT.
        let doc = serde_json::json!({"name": "x", "tags": [1, 2.5, null], "ok": true});
        same(c, "j_value", "TEXT", doc.clone()).await;
        let tags: BTreeMap<String, Vec<i64>> = [("a".to_owned(), vec![1, 2])].into();
        assert_eq!(
            same(c, "j_typed", "TEXT", Json(tags)).await,
            Value::from(r#"{"a":[1,2]}"#)
        );
        let name: String = c
            .fetch_val("SELECT json_extract(v, '$.name') FROM j_value", ())
            .await
            .unwrap();
        assert_eq!(name, "x", "SQLite's JSON functions read the text");

        // SQLite's date functions read the written layouts, offsets and fractions included.
        let sqlite: String = c
            .fetch_val("SELECT datetime(?)", (utc.with_timezone(&ist()),))
            .await
            .unwrap();
        assert_eq!(sqlite, "2024-02-29 13:14:15");
        let now: DateTime<Utc> = c.fetch_val("SELECT CURRENT_TIMESTAMP", ()).await.unwrap();
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            clock.abs_diff(now.timestamp().unsigned_abs()) < 600,
            "{now}"
        );
    });
}

/// A row of the table in [`null_unixtime_and_conversion_errors`], as a derived struct.
#[derive(Debug, PartialEq, FromRow)]
struct Event {
    id: i64,
    at: Option<DateTime<Utc>>,
    day: Option<Date>,
    u: Option<Uuid>,
    j: Option<Json<Vec<i64>>>,
}

#[test]
fn null_unixtime_and_conversion_errors() {
    smol::block_on(async {
        let (_cluster, mut conn) = cluster(1, "typesnull").await;
        let c = &mut conn;
        c.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, at DATETIME, day DATE, u TEXT, j TEXT)",
            (),
        )
        .await
        .unwrap();
        c.execute(
            "INSERT INTO t VALUES (1, ?, ?, ?, ?)",
            (
                None::<DateTime<Utc>>,
                None::<Date>,
                None::<Uuid>,
                None::<Json<Vec<i64>>>,
            ),
        )
        .await
        .unwrap();
        let row = c
            .fetch_one("SELECT at, day, u, j FROM t", ())
            .await
            .unwrap();
        // Released servers send the empty ISO8601 text for NULL in date columns, newer ones
        // NULL: both read as None.
        let sent_null = match row.value("at").unwrap() {
            Value::Null => true,
            Value::Iso8601(t) => t.as_str().is_empty(),
            _ => false,
        };
        assert!(sent_null, "{:?}", row.value("at"));
        assert_eq!(row.get::<Option<DateTime<Utc>>, _>("at").unwrap(), None);
        assert_eq!(row.get::<Option<NaiveDateTime>, _>("at").unwrap(), None);
        assert_eq!(row.get::<Option<OffsetDateTime>, _>("at").unwrap(), None);
        assert_eq!(row.get::<Option<NaiveDate>, _>("day").unwrap(), None);
        assert_eq!(row.get::<Option<Date>, _>("day").unwrap(), None);
        assert_eq!(row.get::<Option<Uuid>, _>("u").unwrap(), None);
        assert_eq!(row.get::<Option<Json<Vec<i64>>>, _>("j").unwrap(), None);
        // The same through a derived struct.
        let typed: Event = c
            .fetch_one_as("SELECT id, at, day, u, j FROM t", ())
            .await
            .unwrap();
        assert_eq!(
            typed,
            Event {
                id: 1,
                at: None,
                day: None,
                u: None,
                j: None
            }
        );
        // `+at` sends the stored NULL from every server.
        let plain: Option<DateTime<Utc>> = c.fetch_val("SELECT +at FROM t", ()).await.unwrap();
        assert_eq!(plain, None);

        // An integer in a date column is UNIXTIME: seconds since the epoch, UTC.
        c.execute("INSERT INTO t (id, at) VALUES (2, 1709212455)", ())
            .await
            .unwrap();
        let row = c
            .fetch_one("SELECT at FROM t WHERE id = 2", ())
            .await
            .unwrap();
        assert_eq!(row.value(0).unwrap(), &Value::UnixTime(1_709_212_455));
        let expected = Utc.with_ymd_and_hms(2024, 2, 29, 13, 14, 15).unwrap();
        assert_eq!(row.get::<DateTime<Utc>, _>(0).unwrap(), expected);
        assert_eq!(
            row.get::<NaiveDateTime, _>(0).unwrap(),
            expected.naive_utc()
        );
        assert_eq!(
            row.get::<OffsetDateTime, _>(0).unwrap().unix_timestamp(),
            1_709_212_455
        );

        // Conversion errors name the column and both types.
        c.execute(
            "INSERT INTO t (id, at, u, j) VALUES (3, 'soon', 'not-a-uuid', '{')",
            (),
        )
        .await
        .unwrap();
        let row = c
            .fetch_one("SELECT at, u, j FROM t WHERE id = 3", ())
            .await
            .unwrap();
        let e = row.get::<DateTime<Utc>, _>("at").unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Conversion { expected: "chrono::DateTime<Utc>", found: ValueType::Iso8601, column: Some(col) } if col == "at"
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("column at"), "{e}");
        let e = row.get::<time::Date, _>("at").unwrap_err();
        assert!(
            matches!(
                &e,
                Error::Conversion {
                    expected: "time::Date",
                    ..
                }
            ),
            "{e:?}"
        );
        let e = row.get::<Uuid, _>("u").unwrap_err();
        assert!(
            matches!(&e, Error::Conversion { expected: "uuid::Uuid", found: ValueType::Text, column: Some(col) } if col == "u"),
            "{e:?}"
        );
        assert!(matches!(
            row.get::<serde_json::Value, _>("j"),
            Err(Error::Conversion {
                found: ValueType::Text,
                ..
            })
        ));
        // A non-NULL date is still required without Option.
        let e = c
            .fetch_val::<NaiveDate>("SELECT day FROM t WHERE id = 1", ())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Conversion { .. }), "{e:?}");

        // Values without a representation are refused before sending.
        let far = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        let e = c
            .execute("INSERT INTO t (id, day) VALUES (4, ?)", (far,))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.misuse(),
                Some(Misuse::ParamNotRepresentable { index: 1, .. })
            ),
            "{e:?}"
        );
        let rows: i64 = c.fetch_val("SELECT count(*) FROM t", ()).await.unwrap();
        assert_eq!(rows, 3);
    });
}

/// Parses the JSON lines a `timeinterop` run printed.
fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// `time::OffsetDateTime` as chrono, instant and offset.
fn as_chrono(t: OffsetDateTime) -> DateTime<FixedOffset> {
    let offset = FixedOffset::east_opt(t.offset().whole_seconds()).unwrap();
    DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond())
        .unwrap()
        .with_timezone(&offset)
}

#[test]
fn go_dqlite_writes_times_the_client_reads() {
    timeinterop_program();
    let (cluster, mut conn) = smol::block_on(cluster(3, "gowrites"));
    let nodes = cluster
        .db_addresses()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let run = timeinterop(&nodes, "gowrites", &["write"], GO_TIMEOUT);
    assert!(run.success(), "timeinterop write: {run:?}");
    let wrote = json_lines(&run.stdout);
    assert_eq!(wrote.len(), 6, "{}", run.stdout);

    smol::block_on(async {
        let rows = conn
            .fetch("SELECT id, at, day FROM go_times ORDER BY id", ())
            .await
            .unwrap();
        assert_eq!(rows.len(), wrote.len());
        let mut nulls = 0;
        for (row, line) in rows.iter().zip(&wrote) {
            let id: i64 = row.get("id").unwrap();
            assert_eq!(Some(id), line["id"].as_i64());
            let Some(text) = line["wrote"].as_str() else {
                nulls += 1;
                assert_eq!(
                    row.get::<Option<DateTime<FixedOffset>>, _>("at").unwrap(),
                    None
                );
                assert_eq!(row.get::<Option<NaiveDateTime>, _>("at").unwrap(), None);
                assert_eq!(row.get::<Option<OffsetDateTime>, _>("at").unwrap(), None);
                assert_eq!(row.get::<Option<NaiveDate>, _>("day").unwrap(), None);
                assert_eq!(row.get::<Option<Date>, _>("day").unwrap(), None);
                continue;
            };
            let expected = DateTime::parse_from_rfc3339(text).unwrap();
            let context = format!("row {id}: Go wrote {text}, sent as {:?}", row.value("at"));

            // The client writes the very same text for the same value.
            assert_eq!(
                &expected.into_value(1).unwrap(),
                row.value("at").unwrap(),
                "{context}"
            );
            let zoned: DateTime<FixedOffset> = row.get("at").unwrap();
            assert_eq!(
                (zoned, zoned.offset()),
                (expected, expected.offset()),
                "{context}"
            );
            let utc: DateTime<Utc> = row.get("at").unwrap();
            assert_eq!(utc, expected, "{context}");
            let wall: NaiveDateTime = row.get("at").unwrap();
            assert_eq!(wall, expected.naive_local(), "{context}");
            let offset: OffsetDateTime = row.get("at").unwrap();
            let back = as_chrono(offset);
            assert_eq!(
                (back, back.offset()),
                (expected, expected.offset()),
                "{context}"
            );
            let primitive: PrimitiveDateTime = row.get("at").unwrap();
            assert_eq!(
                (
                    primitive.year(),
                    u32::from(u8::from(primitive.month())),
                    u32::from(primitive.day()),
                    u32::from(primitive.hour()),
                    u32::from(primitive.minute()),
                    u32::from(primitive.second()),
                    primitive.nanosecond()
                ),
                (
                    wall.year(),
                    wall.month(),
                    wall.day(),
                    wall.hour(),
                    wall.minute(),
                    wall.second(),
                    wall.nanosecond()
                ),
                "{context}"
            );
            let day: NaiveDate = row.get("day").unwrap();
            assert_eq!(day, expected.date_naive(), "{context}");
            let day: Date = row.get("day").unwrap();
            assert_eq!(
                (day.year(), u8::from(day.month()), day.day()),
                (
                    expected.year(),
                    expected.month() as u8,
                    expected.day() as u8
                ),
                "{context}"
            );
        }
        assert_eq!(nulls, 1);
        // go-dqlite's layout, as the server returns it, for the +05:30 row.
        let raw = conn
            .fetch_one("SELECT at FROM go_times WHERE id = 2", ())
            .await
            .unwrap();
        assert_eq!(raw.value(0).unwrap(), &iso("2024-02-29 18:44:15.12+05:30"));
    });
}

#[test]
fn go_dqlite_reads_times_the_client_wrote() {
    timeinterop_program();
    let (cluster, mut conn) = smol::block_on(cluster(3, "rustwrites"));
    let naive = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .and_hms_milli_opt(13, 14, 15, 500)
        .unwrap();
    let west = time_west();
    smol::block_on(async {
        conn.execute(
            "CREATE TABLE rust_times (id INTEGER PRIMARY KEY, at DATETIME, tod TIME)",
            (),
        )
        .await
        .unwrap();
        let insert = "INSERT INTO rust_times (id, at, tod) VALUES (?, ?, ?)";
        let none = None::<NaiveTime>;
        let c = &mut conn;
        c.execute(insert, (1, chrono_utc(), chrono_utc().time()))
            .await
            .unwrap();
        c.execute(insert, (2, chrono_utc().with_timezone(&ist()), none))
            .await
            .unwrap();
        c.execute(insert, (3, naive, none)).await.unwrap();
        c.execute(insert, (4, naive.date(), none)).await.unwrap();
        c.execute(insert, (5, west, west.time())).await.unwrap();
        c.execute(
            insert,
            (6, PrimitiveDateTime::new(west.date(), west.time()), none),
        )
        .await
        .unwrap();
        c.execute(insert, (7, west.date(), none)).await.unwrap();
        c.execute(insert, (8, None::<DateTime<Utc>>, none))
            .await
            .unwrap();
        c.execute(insert, (9, west.to_offset(UtcOffset::UTC), none))
            .await
            .unwrap();
    });
    let nodes = cluster
        .db_addresses()
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let run = timeinterop(&nodes, "rustwrites", &["read", "rust_times"], GO_TIMEOUT);
    assert!(run.success(), "timeinterop read: {run:?}");
    let seen: BTreeMap<(i64, String), (String, serde_json::Value)> = json_lines(&run.stdout)
        .into_iter()
        .map(|l| {
            let key = (
                l["row"].as_i64().unwrap(),
                l["column"].as_str().unwrap().to_owned(),
            );
            (
                key,
                (l["kind"].as_str().unwrap().to_owned(), l["value"].clone()),
            )
        })
        .collect();
    assert_eq!(seen.len(), 27, "{}", run.stdout);

    // What Go's Scan returns, as RFC3339Nano: the same instants, offsets kept, values
    // without an offset read as UTC.
    let at = [
        (1, Some("2024-02-29T13:14:15.123456789Z")),
        (2, Some("2024-02-29T18:44:15.123456789+05:30")),
        (3, Some("2024-02-29T13:14:15.5Z")),
        (4, Some("2024-02-29T00:00:00Z")),
        (5, Some("1999-12-31T23:59:59.000000001-07:00")),
        (6, Some("1999-12-31T23:59:59.000000001Z")),
        (7, Some("1999-12-31T00:00:00Z")),
        (8, None),
        (9, Some("2000-01-01T06:59:59.000000001Z")),
    ];
    for (row, expected) in at {
        let got = &seen[&(row, "at".to_owned())];
        match expected {
            Some(text) => assert_eq!(got, &("time".to_owned(), text.into()), "row {row}"),
            None => assert_eq!(got.0, "null", "row {row}"),
        }
        assert_eq!(
            seen[&(row, "id".to_owned())],
            ("int".to_owned(), row.into())
        );
    }
    // TIME is not a date column: Go gets the text.
    let tod = |row: i64| seen[&(row, "tod".to_owned())].clone();
    assert_eq!(tod(1), ("string".to_owned(), "13:14:15.123456789".into()));
    assert_eq!(tod(5), ("string".to_owned(), "23:59:59.000000001".into()));
    assert_eq!(tod(2).0, "null");
}
