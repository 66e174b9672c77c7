//! Busy-polling (`Config::busy_poll`) against a real node, seen through a runtime that
//! counts the client's direct socket reads (`NodeStream::read_now`): a connection that polls
//! tries the socket while it waits, one with polling off never does, and neither loses or
//! mixes up an answer; a future dropped at any point while polling leaves the connection
//! answering its own queries and still polling; a window that closes empty makes the next
//! waits park at once.
//!
//! Everything is in one test, so that the counts of direct reads belong to it alone (tests of
//! one binary run side by side).

mod support;

use std::time::Duration;

use dqlite_client::{Config, Connection};
use dqlite_tests::cancel::drop_after;
use dqlite_tests::harness::Cluster;
use support::{reads_now, Counting};

/// Runs `SELECT ?` 50 times, checking each answer.
async fn selects(conn: &mut Connection<Counting>) {
    for i in 0..50i64 {
        assert_eq!(
            conn.fetch_val::<i64>("SELECT ?", (i,))
                .await
                .expect("select"),
            i
        );
    }
}

/// A statement that keeps the server busy for `n` steps (300 000: tens of milliseconds).
fn count_to(n: i64) -> String {
    format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) \
         SELECT count(*) FROM c"
    )
}

#[test]
fn busy_polling_on_a_real_node() {
    let cluster = Cluster::start(1);
    let leader = cluster.wait_ready(1);
    let address = cluster.db_address(leader).to_string();
    smol::block_on(async {
        let config = Config::new().database("spin");
        let connect = |config: Config| Connection::connect(Counting, &address, config);
        // A window far longer than `medium` takes (about a millisecond).
        let long_window = || config.clone().busy_poll(Duration::from_secs(1));
        let medium = count_to(3_000);
        let mut long = connect(long_window()).await.expect("connect");
        let mut parking = connect(config.clone().busy_poll(Duration::ZERO))
            .await
            .expect("connect");

        // While the server works, a polling wait tries the socket again and again; with
        // polling off, never. Answers are right either way. (Repeated until one wait shows
        // it: a client thread descheduled between its write and its first read finds the
        // answer there and has nothing to poll for.)
        let mut polled_at = None;
        for i in 0..200 {
            let (n, got) = reads_now(long.fetch_val::<i64>(&medium, ())).await;
            assert_eq!(got.expect("select"), 3_000);
            if n > 0 {
                polled_at = Some(i);
                break;
            }
        }
        println!("busy_poll: first direct read in wait {polled_at:?}");
        assert!(
            polled_at.is_some(),
            "a 1 s window never polled during a 1 ms statement"
        );
        let (n, ()) = reads_now(selects(&mut long)).await;
        println!("busy_poll: {n} direct reads for 50 requests");
        let (n, got) = reads_now(parking.fetch_val::<i64>(&medium, ())).await;
        assert_eq!((n, got.expect("select")), (0, 3_000));
        let (n, ()) = reads_now(selects(&mut parking)).await;
        assert_eq!(n, 0, "direct reads with busy-polling off");

        // With the default window, a statement that takes milliseconds closes it empty (once
        // the connection polls at all: its handshake may have closed one already): the next
        // wait parks at once, and polling resumes within MAX_SKIP + 1 waits.
        let mut spinning = connect(config.clone()).await.expect("connect");
        let slow = count_to(100_000);
        let mut closed_empty = false;
        for _ in 0..64 {
            let (n, got) = reads_now(spinning.fetch_val::<i64>(&slow, ())).await;
            assert_eq!(got.expect("slow select"), 100_000);
            if n > 0 {
                closed_empty = true;
                break;
            }
        }
        assert!(closed_empty, "no polling during slow statements");
        let (n, got) = reads_now(spinning.fetch_val::<i64>(&medium, ())).await;
        assert_eq!(
            (n, got.expect("select")),
            (0, 3_000),
            "polled after an empty window"
        );
        let mut resumed = None;
        for i in 0..64 {
            let (n, _) = reads_now(spinning.fetch_val::<i64>(&medium, ())).await;
            if n > 0 {
                resumed = Some(i);
                break;
            }
        }
        println!("busy_poll: polling resumed after {resumed:?} more waits");
        assert!(resumed.is_some(), "polling never resumed");

        // Dropped after 1, 2, … 64 polls, mostly while polling: the connection answers its own
        // queries after each drop. The statement takes several milliseconds, so that most
        // drops fall in the middle of the wait; on a busy machine the rounds repeat until a
        // few drops did (at least one must).
        let dropped_statement = count_to(30_000);
        let mut points = 0;
        'rounds: for _ in 0..10 {
            for n in 1..=64 {
                let done = drop_after(long.fetch_val::<i64>(&dropped_statement, ()), n).await;
                let v = n as i64;
                assert_eq!(
                    long.fetch_val::<i64>("SELECT ?", (v,))
                        .await
                        .expect("select"),
                    v
                );
                points += usize::from(done.is_none());
                if points >= 8 {
                    break 'rounds;
                }
            }
        }
        println!("busy_poll: dropped mid-wait {points} times");
        assert!(points > 0, "no drop ever fell in the middle of a wait");

        // One more dropped mid-wait, and that connection left alone: it no longer counts as
        // waiting, so another connection still polls.
        let mut dropped = false;
        for _ in 0..10 {
            let done = drop_after(long.fetch_val::<i64>(&medium, ()), 3).await;
            if done.is_none() {
                dropped = true;
                break;
            }
        }
        assert!(dropped, "never dropped mid-wait");
        // (Waits until one query shows it: a descheduled client thread may find a reply
        // already there and have nothing to poll for.)
        let mut other = connect(long_window()).await.expect("connect");
        let mut polled = false;
        for _ in 0..50 {
            let (n, got) = reads_now(other.fetch_val::<i64>(&medium, ())).await;
            assert_eq!(got.expect("select"), 3_000);
            if n > 1 {
                polled = true;
                break;
            }
        }
        assert!(polled, "not polling beside an abandoned wait");
        drop(long);
    });
}
