//! The sqlx driver's feature types (`chrono`, `time`, `uuid`, `json`) on a real cluster: sent
//! and read as the client does, NULL dates read as `None`.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use dqlite_client::Json;
use dqlite_tests::harness::Cluster;
use sqlx::Connection;
use sqlx_dqlite::{Dqlite, DqliteConnection};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Doc {
    name: String,
    tags: Vec<String>,
}

async fn round_trip<T>(conn: &mut DqliteConnection, column_type: &str, value: T) -> T
where
    T: for<'q> sqlx::Encode<'q, Dqlite> + for<'r> sqlx::Decode<'r, Dqlite> + sqlx::Type<Dqlite>,
    T: Send + Unpin + 'static,
{
    sqlx::query("DROP TABLE IF EXISTS rt")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE TABLE rt (v {column_type})"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO rt VALUES (?)")
        .bind(value)
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT v FROM rt")
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[test]
fn chrono_time_uuid_and_json_round_trip_through_sqlx() {
    let cluster = Cluster::start(3);
    cluster.wait_ready(3);
    let nodes: Vec<String> = cluster
        .db_addresses()
        .iter()
        .map(|a| a.to_string())
        .collect();
    let url = format!("dqlite://{}/sqlxtypes", nodes.join(","));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut conn = DqliteConnection::connect(&url).await.unwrap();

            let naive = NaiveDate::from_ymd_opt(2024, 3, 1)
                .unwrap()
                .and_hms_nano_opt(9, 30, 15, 250_000_000)
                .unwrap();
            for column in ["DATETIME", "TEXT"] {
                assert_eq!(
                    round_trip::<NaiveDateTime>(&mut conn, column, naive).await,
                    naive
                );
            }
            let utc: DateTime<Utc> = Utc.from_utc_datetime(&naive);
            assert_eq!(round_trip(&mut conn, "TIMESTAMP", utc).await, utc);
            let ist = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
            let zoned: DateTime<FixedOffset> = ist.from_local_datetime(&naive).unwrap();
            assert_eq!(round_trip(&mut conn, "DATETIME", zoned).await, zoned);
            let date = NaiveDate::from_ymd_opt(1999, 12, 31).unwrap();
            assert_eq!(round_trip(&mut conn, "DATE", date).await, date);
            let tod = NaiveTime::from_hms_opt(23, 59, 1).unwrap();
            assert_eq!(round_trip(&mut conn, "TEXT", tod).await, tod);

            let tdate = time::Date::from_calendar_date(2024, time::Month::March, 1).unwrap();
            let tdt = tdate.with_hms_milli(9, 30, 15, 250).unwrap();
            assert_eq!(round_trip(&mut conn, "DATETIME", tdt).await, tdt);
            let odt = tdt.assume_offset(time::UtcOffset::from_hms(-7, 0, 0).unwrap());
            assert_eq!(round_trip(&mut conn, "DATETIME", odt).await, odt);
            assert_eq!(round_trip(&mut conn, "DATE", tdate).await, tdate);

            let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
            assert_eq!(round_trip(&mut conn, "TEXT", id).await, id);
            let stored: String = sqlx::query_scalar("SELECT v FROM rt")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(stored, "01234567-89ab-cdef-0123-456789abcdef");

            let json = serde_json::json!({"a": [1, 2, {"b": null}]});
            assert_eq!(round_trip(&mut conn, "TEXT", json.clone()).await, json);
            let doc = Doc {
                name: "n".into(),
                tags: vec!["x".into(), "y".into()],
            };
            assert_eq!(
                round_trip(&mut conn, "TEXT", Json(doc.clone())).await.0,
                doc
            );

            // A NULL in a date column reads as None (released servers send it as "").
            sqlx::query("CREATE TABLE nulls (d DATETIME)")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO nulls VALUES (NULL)")
                .execute(&mut conn)
                .await
                .unwrap();
            let d: Option<NaiveDateTime> = sqlx::query_scalar("SELECT d FROM nulls")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(d, None);
            let d: Option<time::OffsetDateTime> = sqlx::query_scalar("SELECT d FROM nulls")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(d, None);

            // A value of the wrong kind is a decode error, not a panic or a silent default.
            sqlx::query("CREATE TABLE bad (d DATETIME)")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO bad VALUES ('not a date')")
                .execute(&mut conn)
                .await
                .unwrap();
            let e = sqlx::query_scalar::<_, NaiveDateTime>("SELECT d FROM bad")
                .fetch_one(&mut conn)
                .await
                .unwrap_err();
            assert!(matches!(e, sqlx::Error::ColumnDecode { .. }), "{e:?}");
            conn.close().await.unwrap();
        });
}
