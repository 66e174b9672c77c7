//! The async client against a scripted node in this process (`dqlite_tests::scripted`):
//! outcome classification, what is retried, transaction bookkeeping, the pool's reset of a
//! connection left in a transaction, and cancellation points. No sockets and no sleeps:
//! the client and the node's connections run on one thread, and what happens follows from
//! the script alone. Deadlines are set short only where a deadline is the scenario.
//!
//! One scenario per test, so that a failure names its scenario.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dqlite_client::{
    BoxStream, Config, Connection, Error, Misuse, Plain, Pool, PoolOptions, RowsBatch, Runtime,
    Text, Value,
};
use dqlite_proto::server::Response;
use dqlite_smol::Smol;
use dqlite_tests::cancel::drop_after;
use dqlite_tests::scripted::{when, Action, ScriptedNode, Seen, ADDRESS};
use dqlite_tokio::Tokio;

const INSERT: &str = "INSERT INTO t VALUES (1)";

/// The request deadline of the scenarios about a deadline: it passes only for the request
/// left unanswered, never for the answered ones before it, even on a loaded machine.
const DEADLINE: Duration = Duration::from_millis(500);

/// `base` with every node dialled through `node`.
fn config(node: &ScriptedNode, base: Config) -> Config {
    let node = node.clone();
    base.dial_with(Arc::new(move |address: &str| {
        let stream = node.dial(address);
        Box::pin(async move { Ok(Box::new(Plain::new(stream?)) as BoxStream) })
    }))
}

/// A connection to `node` with the default settings.
async fn connect(node: &ScriptedNode) -> Connection<Smol> {
    connect_with(node, Config::new()).await
}

async fn connect_with(node: &ScriptedNode, base: Config) -> Connection<Smol> {
    Connection::connect(Smol, ADDRESS, config(node, base))
        .await
        .expect("connect to the scripted node")
}

/// A pool over `node` of at most `max` connections, one opened at once.
async fn pool(node: &ScriptedNode, max: usize) -> Pool<Smol> {
    Pool::new(
        Smol,
        &[ADDRESS],
        config(node, Config::new()),
        PoolOptions::new().max_size(max),
    )
    .await
    .expect("pool over the scripted node")
}

fn is_write(sql: &'static str) -> impl Fn(&Seen) -> bool + Send + 'static {
    move |seen| seen.exec_sql() == Some(sql)
}

fn is_query(sql: &'static str) -> impl Fn(&Seen) -> bool + Send + 'static {
    move |seen| seen.query_sql() == Some(sql)
}

fn is_open(seen: &Seen) -> bool {
    matches!(seen.request, dqlite_proto::server::Request::Open { .. })
}

static UNIQUE: AtomicI64 = AtomicI64::new(1_000);

/// The connection answers a fresh query with its own value.
async fn answers_fresh<R: Runtime>(conn: &mut Connection<R>) {
    let v = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let got: i64 = conn
        .fetch_val("SELECT ?", (v,))
        .await
        .expect("a fresh query");
    assert_eq!(
        got, v,
        "the connection answered with another request's result"
    );
}

// ----- outcome classification ---------------------------------------------------------------

#[test]
fn a_write_refused_by_the_server_is_a_clean_failure_and_keeps_the_connection() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(2067, "UNIQUE constraint failed: t.id"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(matches!(e, Error::Server(_)), "{e:?}");
        assert!(!e.is_ambiguous());
        assert!(e.is_constraint());
        assert_eq!(e.code(), Some(2067));
        assert!(!conn.is_broken());
        answers_fresh(&mut conn).await;
    });
}

#[test]
fn a_write_whose_answer_is_lost_is_ambiguous_and_breaks_the_connection() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        assert!(matches!(&e, Error::Ambiguous(inner) if matches!(**inner, Error::Connection(_))));
        assert!(conn.is_broken());
        let sent = node.seen().len();
        let again = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(matches!(again, Error::Connection(_)), "{again:?}");
        assert_eq!(
            node.seen().len(),
            sent,
            "a broken connection sent a request"
        );
        assert_eq!(node.count_writes(INSERT), 1);
    });
}

#[test]
fn a_read_whose_answer_is_lost_is_a_clean_connection_error() {
    let node = ScriptedNode::new(when(is_query("SELECT 1"), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.fetch_all("SELECT 1", ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous());
        assert!(conn.is_broken());
    });
}

#[test]
fn a_write_on_a_stream_closed_before_it_was_sent_is_a_clean_failure() {
    // The node answers the barrier query that ends the open and closes at once: no byte of
    // the INSERT can be written.
    let node = ScriptedNode::new(when(Seen::is_barrier, 1, Action::AnswerThenClose));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous(), "{e:?}");
        assert!(conn.is_broken());
        assert_eq!(node.count_writes(INSERT), 0);
    });
}

#[test]
fn a_write_refused_before_sending_never_reaches_the_server() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn
            .execute("INSERT INTO t VALUES (?, ?)", (1i64,))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.misuse(),
                Some(Misuse::Request(dqlite_proto::Misuse::ParamCount {
                    expected: 2,
                    given: 1
                }))
            ),
            "{e:?}"
        );
        assert!(!e.is_ambiguous());
        assert!(node.writes().is_empty(), "{:?}", node.writes());
        assert!(!conn.is_broken());
        answers_fresh(&mut conn).await;
    });
}

#[test]
fn leadership_lost_on_a_write_is_ambiguous() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(10506, "leadership lost"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        assert_eq!(e.code(), Some(10506));
        assert!(conn.saw_not_leader());
    });
}

#[test]
fn leadership_lost_on_a_read_is_a_clean_failure() {
    let node = ScriptedNode::new(when(
        is_query("SELECT 1"),
        1,
        Action::fail(10506, "leadership lost"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.fetch_all("SELECT 1", ()).await.unwrap_err();
        assert!(matches!(e, Error::Server(_)), "{e:?}");
        assert!(!e.is_ambiguous());
    });
}

#[test]
fn not_leader_on_a_write_is_a_clean_failure() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::fail(10250, "not leader")));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(matches!(e, Error::Server(_)), "{e:?}");
        assert!(e.is_not_leader());
        assert!(!e.is_ambiguous());
        assert!(conn.saw_not_leader());
    });
}

#[test]
fn a_write_unanswered_past_the_deadline_is_an_ambiguous_timeout() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::Ignore));
    node.run(async {
        let base = Config::new().request_timeout(DEADLINE);
        let mut conn = connect_with(&node, base).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        assert!(e.is_timeout(), "{e:?}");
        assert!(conn.is_broken());
        let sent = node.seen().len();
        let again = conn.fetch_all("SELECT 1", ()).await.unwrap_err();
        assert!(again.is_timeout(), "{again:?}");
        assert_eq!(
            node.seen().len(),
            sent,
            "a broken connection sent a request"
        );
    });
}

#[test]
fn a_read_unanswered_past_the_deadline_is_a_clean_timeout() {
    let node = ScriptedNode::new(when(is_query("SELECT 1"), 1, Action::Ignore));
    node.run(async {
        let base = Config::new().request_timeout(DEADLINE);
        let mut conn = connect_with(&node, base).await;
        let e = conn.fetch_all("SELECT 1", ()).await.unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e:?}");
        assert!(!e.is_ambiguous());
        assert!(conn.is_broken());
    });
}

#[test]
fn a_commit_whose_answer_is_lost_is_ambiguous() {
    let node = ScriptedNode::new(when(is_write("COMMIT"), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        let tx = conn.begin().await.expect("BEGIN");
        let e = tx.commit().await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        assert!(conn.is_broken());
    });
}

#[test]
fn a_reply_of_the_wrong_kind_to_a_write_is_a_protocol_error_that_breaks_the_connection() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::Reply(vec![Response::Db { id: 0 }]),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        let inner = match &e {
            Error::Ambiguous(inner) => &**inner,
            other => other,
        };
        assert!(matches!(inner, Error::Protocol(_)), "{e:?}");
        // The write was sent and its answer is unusable: it may have been applied.
        assert!(e.is_ambiguous(), "{e:?}");
        assert!(conn.is_broken());
    });
}

#[test]
fn a_result_cut_off_part_way_is_a_clean_connection_error() {
    // Two of the four batches of `SELECT many` arrive, then the stream closes.
    let batch = |b: i64| {
        let values = (b * 250..(b + 1) * 250).map(Value::Integer).collect();
        Response::Rows(RowsBatch::new(vec![Text::from("x")], values, false))
    };
    let node = ScriptedNode::new(when(
        is_query("SELECT many"),
        1,
        Action::ReplyThenClose(vec![batch(0), batch(1)]),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.fetch_all("SELECT many", ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous());
        assert!(conn.is_broken());
    });
}

#[test]
fn a_pipelined_batch_cut_off_reports_each_sent_write_ambiguous() {
    // The second of three pipelined writes loses its answer: the first was answered, the
    // second and third were sent.
    let mut writes = 0;
    let node = ScriptedNode::new(move |seen| {
        if seen.exec_sql().is_some() {
            writes += 1;
            if writes == 2 {
                return Action::Close;
            }
        }
        Action::Answer
    });
    node.run(async {
        let mut conn = connect(&node).await;
        let results = conn
            .execute_pipelined("INSERT INTO t VALUES (?)", [(1i64,), (2i64,), (3i64,)])
            .await
            .expect("the batch runs");
        assert_eq!(results.len(), 3);
        assert!(results[0].is_ok(), "{:?}", results[0]);
        for r in &results[1..] {
            assert!(r.as_ref().is_err_and(Error::is_ambiguous), "{r:?}");
        }
    });
}

#[test]
fn a_node_refusing_open_as_not_leader_is_reported_naming_the_leader() {
    let node = ScriptedNode::new(when(is_open, 1, Action::fail(10250, "not leader")));
    node.run(async {
        let e = Connection::connect(Smol, ADDRESS, config(&node, Config::new()))
            .await
            .unwrap_err();
        assert!(e.is_not_leader(), "{e:?}");
        match e {
            Error::NotLeader {
                leader: Some(leader),
                ..
            } => assert_eq!((leader.id, leader.address.as_str()), (1, ADDRESS)),
            other => panic!("expected NotLeader naming the leader, got {other:?}"),
        }
    });
}

#[test]
fn a_script_failing_in_autocommit_is_undone_and_leaves_no_transaction() {
    let node = ScriptedNode::new(when(
        is_write(SCRIPT),
        1,
        Action::fail(2067, "UNIQUE constraint failed: t.id"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(SCRIPT, ()).await.unwrap_err();
        assert!(e.is_constraint(), "{e:?}");
        assert!(!e.is_ambiguous());
        assert_eq!(
            node.writes(),
            [
                "SAVEPOINT dqlite_script",
                SCRIPT,
                "ROLLBACK TO dqlite_script",
                "RELEASE dqlite_script",
            ]
        );
        assert!(!conn.in_transaction());
    });
}

#[test]
fn a_write_whose_prepare_answer_is_lost_is_a_clean_failure() {
    // With parameters the statement is prepared first: losing that answer loses no write.
    let node = ScriptedNode::new(when(
        |seen| matches!(seen.request, dqlite_proto::server::Request::Prepare { .. }),
        1,
        Action::Close,
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn
            .execute("INSERT INTO t VALUES (?)", (1i64,))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous());
        assert!(node.writes().is_empty());
    });
}

#[test]
fn a_transaction_script_whose_commit_answer_is_lost_is_partly_applied_and_ambiguous_within() {
    let node = ScriptedNode::new(when(is_write("COMMIT"), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn
            .execute("BEGIN; INSERT INTO t VALUES (1); COMMIT", ())
            .await
            .unwrap_err();
        match &e {
            Error::PartlyApplied {
                executed,
                total,
                error,
            } => {
                assert_eq!((*executed, *total), (2, 3));
                assert!(error.is_ambiguous(), "{error:?}");
            }
            other => panic!("expected PartlyApplied, got {other:?}"),
        }
    });
}

// ----- the barrier query after OPEN --------------------------------------------------------

#[test]
fn every_new_connection_sends_the_barrier_query_right_after_open() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut first = connect(&node).await;
        let mut second = connect(&node).await;
        answers_fresh(&mut first).await;
        answers_fresh(&mut second).await;
        let pool = pool(&node, 2).await;
        let mut pooled = pool.acquire().await.expect("a pooled connection");
        answers_fresh(&mut pooled).await;
    });
    let seen = node.seen();
    let mut opened = 0;
    for conn in 0..node.dials() {
        let on: Vec<&Seen> = seen.iter().filter(|s| s.conn == conn).collect();
        let Some(open) = on.iter().position(|s| is_open(s)) else {
            continue; // a connection of the pool's leader search: no database opened
        };
        opened += 1;
        assert!(
            on.get(open + 1).is_some_and(|s| s.is_barrier()),
            "connection {conn}: the request after OPEN was {:?}",
            on.get(open + 1)
        );
        assert_eq!(on.iter().filter(|s| s.is_barrier()).count(), 1);
        let first_app = on.iter().position(|s| s.app_query_sql().is_some());
        assert!(first_app > Some(open + 1), "connection {conn}: {on:?}");
    }
    assert_eq!(opened, 3, "{seen:?}");
}

#[test]
fn a_server_failure_answering_the_barrier_query_is_ignored() {
    let node = ScriptedNode::new(when(
        Seen::is_barrier,
        1,
        Action::fail(1, "the barrier query failed"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        assert!(!conn.is_broken());
        answers_fresh(&mut conn).await;
    });
    assert_eq!(node.seen().iter().filter(|s| s.is_barrier()).count(), 1);
    assert_eq!(node.dials(), 1);
}

#[test]
fn a_connection_closed_during_the_barrier_query_fails_the_open() {
    let node = ScriptedNode::new(when(Seen::is_barrier, 1, Action::Close));
    node.run(async {
        let e = Connection::connect(Smol, ADDRESS, config(&node, Config::new()))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous(), "{e:?}");
    });
    assert_eq!(node.seen().iter().filter(|s| s.is_barrier()).count(), 1);
}

#[test]
fn a_connection_closed_right_after_open_fails_the_open() {
    // The node answers OPEN and closes at once: the barrier query cannot be sent.
    let node = ScriptedNode::new(when(
        is_open,
        1,
        Action::ReplyThenClose(vec![Response::Db { id: 0 }]),
    ));
    node.run(async {
        let e = Connection::connect(Smol, ADDRESS, config(&node, Config::new()))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
    });
    assert!(!node.seen().iter().any(Seen::is_barrier));
}

// ----- what the pool retries ---------------------------------------------------------------

#[test]
fn the_pool_retries_a_write_answered_not_leader_on_a_new_connection() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::fail(10250, "not leader")));
    node.run(async {
        let pool = pool(&node, 2).await;
        pool.execute(INSERT, ()).await.expect("retried write");
        let conns: Vec<usize> = node
            .seen()
            .iter()
            .filter(|s| s.exec_sql() == Some(INSERT))
            .map(|s| s.conn)
            .collect();
        assert_eq!(conns.len(), 2, "{conns:?}");
        assert_ne!(
            conns[0], conns[1],
            "retried on the connection that said not leader"
        );
    });
}

#[test]
fn the_pool_never_retries_an_ambiguous_write() {
    let node = ScriptedNode::new(when(is_write(INSERT), usize::MAX, Action::Close));
    node.run(async {
        let pool = pool(&node, 2).await;
        let e = pool.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        assert_eq!(node.count_writes(INSERT), 1);
    });
}

#[test]
fn the_pool_retries_a_read_whose_answer_was_lost() {
    let node = ScriptedNode::new(when(is_query("SELECT ?"), 1, Action::Close));
    node.run(async {
        let pool = pool(&node, 2).await;
        let got: i64 = pool
            .fetch_val("SELECT ?", (7i64,))
            .await
            .expect("retried read");
        assert_eq!(got, 7);
        assert_eq!(node.queries(), ["SELECT ?", "SELECT ?"]);
    });
}

#[test]
fn the_pool_retries_a_write_that_could_not_be_sent() {
    // The first connection is closed by the node once it is open (after the barrier query).
    let node = ScriptedNode::new(when(Seen::is_barrier, 1, Action::AnswerThenClose));
    node.run(async {
        let pool = pool(&node, 2).await;
        pool.execute(INSERT, ()).await.expect("retried write");
        assert_eq!(node.count_writes(INSERT), 1);
        let opened = node.seen().iter().filter(|s| is_open(s)).count();
        assert_eq!(opened, 2, "the write was not retried on a new connection");
    });
}

#[test]
fn the_pool_never_retries_a_write_whose_leader_lost_leadership() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        usize::MAX,
        Action::fail(10506, "leadership lost"),
    ));
    node.run(async {
        let pool = pool(&node, 2).await;
        let e = pool.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
        assert_eq!(node.count_writes(INSERT), 1);
    });
}

#[test]
fn the_pool_does_not_retry_a_constraint_failure() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        usize::MAX,
        Action::fail(19, "constraint failed"),
    ));
    node.run(async {
        let pool = pool(&node, 2).await;
        let e = pool.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_constraint(), "{e:?}");
        assert_eq!(node.count_writes(INSERT), 1);
    });
}

// ----- BUSY ---------------------------------------------------------------------------------

#[test]
fn busy_in_autocommit_is_retried_until_it_succeeds() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        3,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute(INSERT, ()).await.expect("retried past BUSY");
        assert_eq!(node.count_writes(INSERT), 4);
        assert!(!conn.in_transaction());
    });
}

#[test]
fn an_extended_busy_code_in_autocommit_is_retried() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(517, "database is locked (snapshot)"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute(INSERT, ()).await.expect("retried past BUSY");
        assert_eq!(node.count_writes(INSERT), 2);
    });
}

#[test]
fn busy_on_a_read_in_autocommit_is_retried() {
    let node = ScriptedNode::new(when(
        is_query("SELECT 1"),
        1,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.fetch_all("SELECT 1", ()).await.expect("retried read");
        assert_eq!(node.queries(), ["SELECT 1", "SELECT 1"]);
    });
}

#[test]
fn busy_past_the_budget_is_a_clean_busy_failure() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        usize::MAX,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let base = Config::new().busy_timeout(Duration::ZERO);
        let mut conn = connect_with(&node, base).await;
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_busy(), "{e:?}");
        assert!(!e.is_ambiguous());
        assert_eq!(node.count_writes(INSERT), 1);
        assert!(!conn.in_transaction());
        assert!(!conn.is_broken());
    });
}

#[test]
fn busy_inside_a_transaction_is_returned_at_once() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("BEGIN", ()).await.expect("BEGIN");
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_busy(), "{e:?}");
        assert!(!e.is_ambiguous());
        assert_eq!(node.count_writes(INSERT), 1, "retried inside a transaction");
    });
}

// ----- transaction bookkeeping ------------------------------------------------------------

#[test]
fn begin_and_commit_sent_through_execute_are_tracked() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        assert!(!conn.in_transaction());
        conn.execute("BEGIN", ()).await.expect("BEGIN");
        assert!(conn.in_transaction());
        conn.execute(INSERT, ()).await.expect("INSERT");
        assert!(conn.in_transaction());
        conn.execute("COMMIT", ()).await.expect("COMMIT");
        assert!(!conn.in_transaction());
    });
}

#[test]
fn begin_and_rollback_sent_through_execute_are_tracked() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("BEGIN IMMEDIATE", ()).await.expect("BEGIN");
        assert!(conn.in_transaction());
        conn.execute("ROLLBACK", ()).await.expect("ROLLBACK");
        assert!(!conn.in_transaction());
    });
}

#[test]
fn a_savepoint_outside_a_transaction_opens_one_that_its_release_commits() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("SAVEPOINT a", ()).await.expect("SAVEPOINT a");
        assert!(conn.in_transaction());
        conn.execute("SAVEPOINT b", ()).await.expect("SAVEPOINT b");
        conn.execute("RELEASE b", ()).await.expect("RELEASE b");
        assert!(
            conn.in_transaction(),
            "releasing the inner savepoint ended it"
        );
        conn.execute("RELEASE a", ()).await.expect("RELEASE a");
        assert!(!conn.in_transaction());
    });
}

#[test]
fn a_refused_commit_leaves_the_transaction_open() {
    let node = ScriptedNode::new(when(
        is_write("COMMIT"),
        1,
        Action::fail(787, "FOREIGN KEY constraint failed"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("BEGIN", ()).await.expect("BEGIN");
        let e = conn.execute("COMMIT", ()).await.unwrap_err();
        assert!(!e.is_ambiguous(), "{e:?}");
        assert!(conn.in_transaction());
        // Known to be open: a guard cannot begin another.
        let refused = conn.begin().await.map(|_| ()).unwrap_err();
        assert!(
            matches!(refused.misuse(), Some(Misuse::TransactionOpen)),
            "{refused:?}"
        );
        conn.execute("ROLLBACK", ()).await.expect("ROLLBACK");
        assert!(!conn.in_transaction());
    });
}

#[test]
fn a_commit_refused_as_no_transaction_is_active_means_autocommit() {
    let node = ScriptedNode::new(when(
        is_write("COMMIT"),
        1,
        Action::fail(1, "cannot commit - no transaction is active"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("BEGIN", ()).await.expect("BEGIN");
        conn.execute("COMMIT", ()).await.unwrap_err();
        assert!(!conn.in_transaction());
    });
}

/// Inside a transaction begun by `SAVEPOINT a`, an INSERT fails with `code`; then
/// `RELEASE a` succeeds. Returns whether the client still counts a transaction as open.
fn open_after_release_following_failure(code: u64) -> bool {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(code, "scripted failure"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("SAVEPOINT a", ()).await.expect("SAVEPOINT a");
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert_eq!(e.code(), Some(code));
        assert!(!e.is_ambiguous(), "{e:?}");
        assert_eq!(node.count_writes(INSERT), 1, "retried inside a transaction");
        conn.execute("RELEASE a", ()).await.expect("RELEASE a");
        conn.in_transaction()
    })
}

macro_rules! may_roll_back {
    ($($name:ident: $code:expr,)*) => {$(
        /// SQLite may have rolled the transaction back by itself after this error: the
        /// client cannot know whether the RELEASE ended it or ran in autocommit.
        #[test]
        fn $name() {
            assert!(
                open_after_release_following_failure($code),
                "after code {} the client claims to know the transaction ended",
                $code
            );
        }
    )*};
}

may_roll_back! {
    busy_inside_a_transaction_leaves_its_state_unknown: 5,
    busy_snapshot_inside_a_transaction_leaves_its_state_unknown: 517,
    nomem_inside_a_transaction_leaves_its_state_unknown: 7,
    interrupt_inside_a_transaction_leaves_its_state_unknown: 9,
    ioerr_inside_a_transaction_leaves_its_state_unknown: 10,
    full_inside_a_transaction_leaves_its_state_unknown: 13,
}

#[test]
fn a_constraint_failure_inside_a_transaction_keeps_its_state_known() {
    assert!(
        !open_after_release_following_failure(19),
        "after a constraint failure the RELEASE of the outer savepoint did not end the transaction"
    );
}

#[test]
fn a_dropped_transaction_guard_is_rolled_back_before_the_next_request() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let tx = conn.begin().await.expect("BEGIN");
        drop(tx);
        assert!(!conn.in_transaction());
        answers_fresh(&mut conn).await;
        assert_eq!(node.writes(), ["BEGIN", "ROLLBACK"]);
        let rollback = node
            .seen()
            .iter()
            .position(|s| s.exec_sql() == Some("ROLLBACK"));
        let query = node.seen().iter().position(|s| s.app_query_sql().is_some());
        assert!(
            rollback < query,
            "the ROLLBACK went out after the next request"
        );
    });
}

#[test]
fn a_refused_guard_commit_is_rolled_back_before_the_next_request() {
    let node = ScriptedNode::new(when(
        is_write("COMMIT"),
        1,
        Action::fail(787, "FOREIGN KEY constraint failed"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let tx = conn.begin().await.expect("BEGIN");
        let e = tx.commit().await.unwrap_err();
        assert!(!e.is_ambiguous(), "{e:?}");
        assert!(!conn.in_transaction());
        answers_fresh(&mut conn).await;
        assert_eq!(node.writes(), ["BEGIN", "COMMIT", "ROLLBACK"]);
    });
}

#[test]
fn a_guard_rollback_answered_no_transaction_is_active_succeeds() {
    let node = ScriptedNode::new(when(
        is_write("ROLLBACK"),
        1,
        Action::fail(1, "cannot rollback - no transaction is active"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let tx = conn.begin().await.expect("BEGIN");
        tx.rollback()
            .await
            .expect("a rollback finding no transaction");
        assert!(!conn.in_transaction());
        answers_fresh(&mut conn).await;
        assert_eq!(node.writes(), ["BEGIN", "ROLLBACK"]);
    });
}

#[test]
fn transaction_control_inside_a_guard_is_refused_before_sending() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let mut tx = conn.begin().await.expect("BEGIN");
        let e = tx.execute("COMMIT", ()).await.unwrap_err();
        assert!(
            matches!(e.misuse(), Some(Misuse::TransactionControl(_))),
            "{e:?}"
        );
        tx.commit().await.expect("COMMIT");
        assert!(!conn.in_transaction());
        assert_eq!(node.writes(), ["BEGIN", "COMMIT"]);
    });
}

// ----- scripts ------------------------------------------------------------------------------

const SCRIPT: &str = "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)";

#[test]
fn a_script_refused_busy_in_autocommit_is_undone_and_retried() {
    let node = ScriptedNode::new(when(
        is_write(SCRIPT),
        1,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute(SCRIPT, ()).await.expect("retried script");
        assert_eq!(
            node.writes(),
            [
                "SAVEPOINT dqlite_script",
                SCRIPT,
                "ROLLBACK TO dqlite_script",
                "RELEASE dqlite_script",
                "SAVEPOINT dqlite_script",
                SCRIPT,
                "RELEASE dqlite_script",
            ]
        );
    });
}

/// The BUSY that interrupted the first try leaves the client unsure whether SQLite rolled
/// the script's savepoint transaction back; the successful ROLLBACK TO and RELEASE that
/// follow show it did not, and that the retry started in autocommit.
#[test]
fn a_script_retried_after_busy_in_autocommit_leaves_no_transaction_open() {
    let node = ScriptedNode::new(when(
        is_write(SCRIPT),
        1,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute(SCRIPT, ()).await.expect("retried script");
        assert!(
            !conn.in_transaction(),
            "a transaction counted as open after an autocommit script"
        );
    });
}

#[test]
fn a_retried_script_whose_release_answer_is_lost_is_ambiguous() {
    // The first try is refused as busy and undone (its RELEASE answered); the answer to the
    // retry's RELEASE, which commits the script, is lost.
    let mut releases = 0;
    let node = ScriptedNode::new(move |seen| match seen.exec_sql() {
        Some(SCRIPT) if releases == 0 => Action::fail(5, "database is locked"),
        Some("RELEASE dqlite_script") => {
            releases += 1;
            if releases == 2 {
                Action::Close
            } else {
                Action::Answer
            }
        }
        _ => Action::Answer,
    });
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(SCRIPT, ()).await.unwrap_err();
        assert_eq!(node.count_writes(SCRIPT), 2);
        assert!(
            e.is_ambiguous(),
            "a lost commit reported as a clean failure: {e:?}"
        );
    });
}

#[test]
fn the_pool_never_repeats_a_script_whose_commit_answer_was_lost() {
    // As above, through the pool: the lost commit must not be sent again elsewhere.
    let mut releases = 0;
    let node = ScriptedNode::new(move |seen| match seen.exec_sql() {
        Some(SCRIPT) if releases == 0 => Action::fail(5, "database is locked"),
        Some("RELEASE dqlite_script") => {
            releases += 1;
            if releases == 2 {
                Action::Close
            } else {
                Action::Answer
            }
        }
        _ => Action::Answer,
    });
    node.run(async {
        let pool = pool(&node, 2).await;
        let result = pool.execute(SCRIPT, ()).await;
        assert_eq!(
            node.count_writes(SCRIPT),
            2,
            "a script whose commit may have applied was run again: {result:?}"
        );
        assert!(result.unwrap_err().is_ambiguous());
    });
}

#[test]
fn a_script_refused_busy_twice_in_autocommit_is_retried_again() {
    let node = ScriptedNode::new(when(
        is_write(SCRIPT),
        2,
        Action::fail(5, "database is locked"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let result = conn.execute(SCRIPT, ()).await;
        assert_eq!(node.count_writes(SCRIPT), 3, "{result:?}");
        result.expect("retried script");
    });
}

#[test]
fn a_script_whose_answer_is_lost_before_its_release_is_a_clean_failure() {
    let node = ScriptedNode::new(when(is_write(SCRIPT), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(SCRIPT, ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous());
    });
}

#[test]
fn a_script_whose_release_answer_is_lost_in_autocommit_is_ambiguous() {
    let node = ScriptedNode::new(when(is_write("RELEASE dqlite_script"), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn.execute(SCRIPT, ()).await.unwrap_err();
        assert!(e.is_ambiguous(), "{e:?}");
    });
}

#[test]
fn a_script_whose_release_answer_is_lost_inside_a_transaction_is_a_clean_failure() {
    // Its RELEASE commits nothing: the open transaction dies with the connection.
    let node = ScriptedNode::new(when(is_write("RELEASE dqlite_script"), 1, Action::Close));
    node.run(async {
        let mut conn = connect(&node).await;
        conn.execute("BEGIN", ()).await.expect("BEGIN");
        let e = conn.execute(SCRIPT, ()).await.unwrap_err();
        assert!(matches!(e, Error::Connection(_)), "{e:?}");
        assert!(!e.is_ambiguous());
    });
}

#[test]
fn a_script_controlling_its_transaction_that_fails_part_way_is_partly_applied() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(2067, "UNIQUE constraint failed: t.id"),
    ));
    node.run(async {
        let mut conn = connect(&node).await;
        let e = conn
            .execute("BEGIN; INSERT INTO t VALUES (1); COMMIT", ())
            .await
            .unwrap_err();
        match &e {
            Error::PartlyApplied {
                executed,
                total,
                error,
            } => {
                assert_eq!((*executed, *total), (1, 3));
                assert!(error.is_constraint(), "{error:?}");
            }
            other => panic!("expected PartlyApplied, got {other:?}"),
        }
        assert!(!e.is_ambiguous());
        assert!(conn.in_transaction(), "the BEGIN that ran was forgotten");
        assert_eq!(node.writes(), ["BEGIN", INSERT]);
    });
}

// ----- which failures the pool keeps a connection after ------------------------------------

#[test]
fn a_pooled_connection_after_a_constraint_failure_is_reused() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        1,
        Action::fail(19, "constraint failed"),
    ));
    node.run(async {
        let pool = pool(&node, 1).await;
        {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.execute(INSERT, ()).await.unwrap_err();
        }
        let mut conn = pool.acquire().await.expect("acquire again");
        answers_fresh(&mut conn).await;
        assert_eq!(node.dials(), 1, "a usable connection was dropped");
    });
}

#[test]
fn a_pooled_connection_that_saw_not_leader_is_not_reused() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::fail(10250, "not leader")));
    node.run(async {
        let pool = pool(&node, 1).await;
        {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.execute(INSERT, ()).await.unwrap_err();
        }
        let mut conn = pool.acquire().await.expect("acquire again");
        answers_fresh(&mut conn).await;
        assert_eq!(
            node.dials(),
            2,
            "a connection to a node that is not the leader was reused"
        );
    });
}

#[test]
fn a_pooled_connection_whose_answer_was_lost_is_not_reused() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::Close));
    node.run(async {
        let pool = pool(&node, 1).await;
        {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.execute(INSERT, ()).await.unwrap_err();
        }
        let mut conn = pool.acquire().await.expect("acquire again");
        answers_fresh(&mut conn).await;
        assert_eq!(node.dials(), 2, "a broken connection was reused");
    });
}

// ----- the pool's reset ---------------------------------------------------------------------

#[test]
fn the_pool_rolls_back_a_transaction_left_open_before_reuse() {
    let node = ScriptedNode::answering();
    node.run(async {
        let pool = pool(&node, 1).await;
        {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.execute("BEGIN", ()).await.expect("BEGIN");
        }
        let conn = pool.acquire().await.expect("acquire again");
        assert!(!conn.in_transaction());
        assert_eq!(node.writes(), ["BEGIN", "ROLLBACK"]);
        assert_eq!(node.dials(), 1, "the connection was not reused");
    });
}

#[test]
fn the_pool_keeps_a_connection_whose_rollback_finds_no_transaction() {
    let node = ScriptedNode::new(when(
        is_write("ROLLBACK"),
        1,
        Action::fail(1, "cannot rollback - no transaction is active"),
    ));
    node.run(async {
        let pool = pool(&node, 1).await;
        {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.execute("BEGIN", ()).await.expect("BEGIN");
        }
        let conn = pool.acquire().await.expect("acquire again");
        assert!(!conn.in_transaction());
        assert_eq!(node.dials(), 1, "the connection was not reused");
    });
}

#[test]
fn the_pool_discards_a_connection_whose_rollback_fails() {
    let node = ScriptedNode::new(when(
        is_write("ROLLBACK"),
        1,
        Action::fail(1, "cannot rollback - SQL statements in progress"),
    ));
    node.run(async {
        let pool = pool(&node, 1).await;
        {
            let mut conn = pool.acquire().await.expect("acquire");
            conn.execute("BEGIN", ()).await.expect("BEGIN");
        }
        let mut conn = pool.acquire().await.expect("acquire again");
        assert!(!conn.in_transaction());
        assert_eq!(
            node.dials(),
            2,
            "a connection inside a transaction was handed out"
        );
        answers_fresh(&mut conn).await;
    });
}

// ----- cancellation points ------------------------------------------------------------------

/// Drops `$op` after 1, 2, 3, ... polls until it completes, checking after each drop that
/// the connection answers its own next request and holds no transaction. Asserts that at
/// least one cancellation point was exercised.
macro_rules! at_every_poll {
    ($conn:ident, $op:expr) => {{
        let mut points = 0usize;
        for n in 1..10_000 {
            let completed = drop_after($op, n).await.is_some();
            answers_fresh(&mut *$conn).await;
            assert!(
                !$conn.in_transaction(),
                "a transaction was left open after {n} polls"
            );
            if completed {
                break;
            }
            points += 1;
        }
        assert!(
            points > 0,
            "the operation never waited: nothing was cancelled"
        );
    }};
}

#[test]
fn an_execute_dropped_at_any_poll_leaves_the_connection_answering_its_own_requests() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let c = &mut conn;
        at_every_poll!(c, async { c.execute(INSERT, ()).await.expect("INSERT") });
    });
}

#[test]
fn a_fetch_of_several_batches_dropped_at_any_poll_leaves_the_connection_answering_its_own_requests()
{
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let c = &mut conn;
        at_every_poll!(c, async {
            let rows = c.fetch_all("SELECT many", ()).await.expect("SELECT many");
            assert_eq!(rows.len(), 1000);
        });
    });
}

#[test]
fn a_row_stream_dropped_at_any_poll_leaves_the_connection_answering_its_own_requests() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let c = &mut conn;
        at_every_poll!(c, async {
            let mut rows = c.stream("SELECT many", ()).await.expect("SELECT many");
            let first = rows.next_batch().await.expect("a batch").expect("rows");
            assert!(!first.is_empty());
        });
    });
}

/// A script runs inside a savepoint; dropped part-way, the savepoint must not stay open
/// under the connection's next (autocommit) writes, which would then never commit.
#[test]
fn a_script_dropped_at_any_poll_leaves_no_transaction_open() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let c = &mut conn;
        at_every_poll!(c, async { c.execute(SCRIPT, ()).await.expect("script") });
    });
}

#[test]
fn a_write_after_a_dropped_script_is_not_sent_inside_its_savepoint() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        assert!(drop_after(conn.execute(SCRIPT, ()), 1).await.is_none());
        conn.execute(INSERT, ()).await.expect("INSERT");
        let writes = node.writes();
        let savepoint = writes.iter().position(|w| w == "SAVEPOINT dqlite_script");
        let insert = writes.iter().position(|w| w == INSERT);
        assert!(savepoint.is_some(), "{writes:?}");
        let undone = writes[..insert.expect("the INSERT was sent")]
            .iter()
            .any(|w| w.starts_with("ROLLBACK"));
        assert!(
            undone,
            "the INSERT went out inside the script's savepoint: {writes:?}"
        );
    });
}

#[test]
fn a_begin_dropped_at_any_poll_leaves_no_transaction_open() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let c = &mut conn;
        at_every_poll!(c, async {
            let tx = c.begin().await.expect("BEGIN");
            drop(tx);
        });
    });
}

#[test]
fn a_commit_dropped_at_any_poll_leaves_no_transaction_open() {
    let node = ScriptedNode::answering();
    node.run(async {
        let mut conn = connect(&node).await;
        let c = &mut conn;
        let mut points = 0usize;
        for n in 1..10_000 {
            let tx = c.begin().await.expect("BEGIN");
            let completed = drop_after(tx.commit(), n).await.is_some();
            answers_fresh(c).await;
            assert!(
                !c.in_transaction(),
                "a transaction was left open after {n} polls"
            );
            if completed {
                break;
            }
            points += 1;
        }
        assert!(points > 0, "the commit never waited: nothing was cancelled");
    });
}

#[test]
fn a_pool_execute_dropped_at_any_poll_leaves_every_connection_accounted_for() {
    let node = ScriptedNode::answering();
    node.run(async {
        let pool = pool(&node, 2).await;
        let mut points = 0usize;
        for n in 1..10_000 {
            let completed = drop_after(pool.execute(INSERT, ()), n).await.is_some();
            assert_eq!(
                pool.status().in_use,
                0,
                "a connection leaked after {n} polls"
            );
            let v = UNIQUE.fetch_add(1, Ordering::Relaxed);
            let got: i64 = pool.fetch_val("SELECT ?", (v,)).await.expect("fresh query");
            assert_eq!(got, v, "a pooled connection answered another request");
            if completed {
                break;
            }
            points += 1;
        }
        assert!(points > 0, "the pool never waited: nothing was cancelled");
    });
}

// ----- on the tokio adapter -------------------------------------------------------------------

/// Runs `fut` on a current-thread tokio runtime (whose timers the `Tokio` runtime uses),
/// serving `node`'s connections meanwhile.
fn on_tokio<T>(node: &ScriptedNode, fut: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime")
        .block_on(node.serve(fut))
}

#[test]
fn on_tokio_a_write_unanswered_past_the_deadline_is_an_ambiguous_timeout() {
    let node = ScriptedNode::new(when(is_write(INSERT), 1, Action::Ignore));
    on_tokio(&node, async {
        let base = Config::new().request_timeout(DEADLINE);
        let mut conn = Connection::connect(Tokio, ADDRESS, config(&node, base))
            .await
            .expect("connect");
        let e = conn.execute(INSERT, ()).await.unwrap_err();
        assert!(e.is_ambiguous() && e.is_timeout(), "{e:?}");
        assert!(conn.is_broken());
    });
}

#[test]
fn on_tokio_busy_in_autocommit_is_retried_until_it_succeeds() {
    let node = ScriptedNode::new(when(
        is_write(INSERT),
        2,
        Action::fail(5, "database is locked"),
    ));
    on_tokio(&node, async {
        let mut conn = Connection::connect(Tokio, ADDRESS, config(&node, Config::new()))
            .await
            .expect("connect");
        conn.execute(INSERT, ()).await.expect("retried past BUSY");
        assert_eq!(node.count_writes(INSERT), 3);
    });
}

#[test]
fn on_tokio_an_execute_dropped_at_any_poll_leaves_the_connection_answering_its_own_requests() {
    let node = ScriptedNode::answering();
    on_tokio(&node, async {
        let mut conn = Connection::connect(Tokio, ADDRESS, config(&node, Config::new()))
            .await
            .expect("connect");
        let c = &mut conn;
        at_every_poll!(c, async { c.execute(INSERT, ()).await.expect("INSERT") });
    });
}
