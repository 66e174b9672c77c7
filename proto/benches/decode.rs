//! Decoder throughput on real ROWS frames: a 4000-row x 4-column result (INTEGER, 27-char
//! TEXT, REAL, 16-byte BLOB) captured from a dqlite-demo node by
//! `dqlite-bench --capture proto/tests/fixtures/captured`.
//!
//! `cargo bench -p dqlite-proto --bench decode` reports bytes per second.

use divan::counter::BytesCount;
use divan::Bencher;
use dqlite_proto::server::{Deframer, Response};
use dqlite_proto::{Config, Connection, Reply};

static CAPTURE: &[u8] = include_bytes!("../tests/fixtures/captured/rows_4000x4.bin");

fn main() {
    divan::main();
}

/// The whole receive path: bytes into a connection with a query pending, rows out.
#[divan::bench]
fn connection_receive(bencher: Bencher) {
    let mut db = Vec::new();
    Response::Db { id: 0 }
        .encode(&mut db)
        .expect("a reply fits in a frame");
    bencher.counter(BytesCount::new(CAPTURE.len())).bench(|| {
        let mut c = Connection::new(Config::default());
        c.open("bench").ok();
        c.query_sql("SELECT id, a, b, c FROM big", &[]).ok();
        c.handle_input(&db);
        c.handle_input(CAPTURE);
        let mut rows = 0;
        while let Ok(Some(ev)) = c.poll_event() {
            if let Reply::Rows(batch) = ev.reply {
                rows += batch.len();
            }
        }
        assert_eq!(rows, 4000);
        rows
    });
}

/// Decoding alone: frames already split off, each decoded into a rows batch.
#[divan::bench]
fn decode_frames(bencher: Bencher) {
    let mut deframer = Deframer::new(1 << 30);
    deframer.push(CAPTURE);
    let mut frames = Vec::new();
    while let Ok(Some(f)) = deframer.next_frame() {
        frames.push(f);
    }
    bencher.counter(BytesCount::new(CAPTURE.len())).bench(|| {
        let mut rows = 0;
        for f in &frames {
            if let Ok(Response::Rows(b)) = dqlite_proto::server::decode_response(f.clone(), false) {
                rows += b.len();
            }
        }
        assert_eq!(rows, 4000);
        rows
    });
}
