//! `--sqlx`: workloads a, b (one at a time) and c through the sqlx driver (`sqlx-dqlite`),
//! the same statements as the client's, to show what the driver adds over the client.

use std::time::Instant;

use futures_util::TryStreamExt;
use sqlx::{Connection, Row};
use sqlx_dqlite::DqliteConnection;

use crate::{ms, percentile, Report, Runs, BIG_ROWS, C_RUNS};

/// Runs the selected workloads on one sqlx connection to `leader`.
pub(crate) async fn run(leader: &str, w: &str, report: &mut Report) {
    let url = format!("dqlite://{leader}/bench?request_timeout=120");
    let mut conn = DqliteConnection::connect(&url).await.expect("sqlx connect");
    if w.contains('a') {
        let mut lat = Vec::with_capacity(2000);
        for _ in 0..2000 {
            let t = Instant::now();
            let _: i64 = sqlx::query_scalar("SELECT 1")
                .fetch_one(&mut conn)
                .await
                .expect("select 1");
            lat.push(t.elapsed());
        }
        lat.sort();
        report.num("a_p50_us", percentile(&lat, 0.5).as_secs_f64() * 1e6);
        report.num("a_p99_us", percentile(&lat, 0.99).as_secs_f64() * 1e6);
    }
    if w.contains('b') {
        sqlx::query("DROP TABLE IF EXISTS ins_sqlx")
            .execute(&mut conn)
            .await
            .expect("drop ins_sqlx");
        sqlx::query("CREATE TABLE ins_sqlx (id INTEGER PRIMARY KEY, a TEXT, b REAL, c BLOB)")
            .execute(&mut conn)
            .await
            .expect("create ins_sqlx");
        let blob = vec![7u8; 16];
        let t = Instant::now();
        let mut tx = conn.begin().await.expect("begin");
        for i in 0..10_000i64 {
            sqlx::query("INSERT INTO ins_sqlx VALUES (?, ?, ?, ?)")
                .bind(i)
                .bind(format!("name number {i:08}"))
                .bind(i as f64 * 0.25)
                .bind(&blob)
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
        report.num("b_serial_ms", ms(t.elapsed()));
    }
    if w.contains('c') {
        // Streamed, every value read, as the client's c and go-dqlite's rows.Next/Scan.
        let mut runs = Runs::default();
        for _ in 0..C_RUNS {
            let start = Runs::start();
            let mut rows = sqlx::query("SELECT id, a, b, c FROM big WHERE id <= ?")
                .bind(BIG_ROWS)
                .fetch(&mut conn);
            let (mut n, mut check) = (0i64, 0usize);
            while let Some(row) = rows.try_next().await.expect("row") {
                let id: i64 = row.get(0);
                let a: &str = row.get(1);
                let b: f64 = row.get(2);
                let c: &[u8] = row.get(3);
                std::hint::black_box((id, b));
                check += a.len() + c.len() + 4;
                n += 1;
            }
            drop(rows);
            assert_eq!((n, check), (BIG_ROWS, BIG_ROWS as usize * 41));
            runs.done(start);
        }
        runs.report(report, "c");
    }
    conn.close().await.expect("close");
}
