//! Target `sql`: the core's SQL scanner (`dqlite_proto::sql`) against SQLite itself.
//!
//! The scanner decides how many parameters a statement takes, where a script's statements
//! end, and whether a write returns rows (`RETURNING`, which crashes dqlite 1.11 servers). It
//! must read every statement SQLite accepts the way SQLite's own tokenizer does. SQLite (the
//! `rusqlite` crate's bundled copy) prepares the input statement by statement against a
//! small schema, without running anything; for each statement it accepts, the scanner must
//! find the same statement with the same parameter count, and must see `RETURNING` in every
//! write that SQLite says returns columns. Text SQLite rejects is not compared past the
//! rejected statement: the server would refuse it too.

use std::cell::RefCell;

use dqlite_proto::sql::{first_word, statements, summarize};
use rusqlite::{Batch, Connection};

use super::tracing;

/// The tables statements may name (prepared, never filled).
const SCHEMA: &str = "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT, c BLOB, d REAL);
    CREATE TABLE u (x, y, z);
    CREATE TABLE \"returning\" (\"returning\" INTEGER);
    CREATE TABLE w (\"a\"\"b\", [d ?], `e;f`);";

thread_local! {
    static SQLITE: RefCell<Connection> = RefCell::new({
        let c = Connection::open_in_memory().expect("in-memory SQLite");
        c.execute_batch(SCHEMA).expect("schema");
        c
    });
}

/// What SQLite found in one statement it prepared.
#[derive(Debug)]
struct Prepared {
    params: usize,
    /// Writes and returns columns: a `RETURNING` clause.
    returns_rows_from_write: bool,
}

/// The statements SQLite prepares from `sql`, in order, and whether it reached the end (no
/// statement rejected).
fn sqlite_statements(sql: &str) -> (Vec<Prepared>, bool) {
    SQLITE.with(|c| {
        let c = c.borrow();
        let mut out = Vec::new();
        let mut batch = Batch::new(&c, sql);
        loop {
            match batch.next() {
                Ok(Some(stmt)) => out.push(Prepared {
                    params: stmt.parameter_count(),
                    returns_rows_from_write: !stmt.readonly() && stmt.column_count() > 0,
                }),
                Ok(None) => return (out, true),
                Err(e) => {
                    trace!("sql: SQLite stops at statement {}: {e}", out.len() + 1);
                    return (out, false);
                }
            }
        }
    })
}

/// The input as SQL text (invalid UTF-8 is replaced); text with NUL is skipped, since the core
/// refuses to send it and SQLite stops reading at the NUL.
pub fn sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if text.contains('\0') {
        return;
    }
    let (sqlite, complete) = sqlite_statements(&text);
    let ours: Vec<_> = statements(&text).collect();
    trace!("sql: {text:?}\n  SQLite {sqlite:?} complete {complete}\n  ours {ours:?}");
    for (i, (s, o)) in sqlite.iter().zip(&ours).enumerate() {
        assert_eq!(
            o.params, s.params,
            "statement {i} {:?}: parameter count",
            o.sql
        );
        let dml = first_word(o.sql).is_some_and(|w| {
            ["INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
        });
        if s.returns_rows_from_write && dml {
            assert!(o.returning, "statement {i} {:?}: RETURNING missed", o.sql);
        }
    }
    if complete {
        assert_eq!(
            ours.len(),
            sqlite.len(),
            "statement count of {text:?}: ours {ours:?}"
        );
        // (`unterminated` is not compared: it also counts a block comment left open, which
        // SQLite's tokenizer runs to the end of the text but `sqlite3_complete` does not
        // call complete, and the shell waits for more lines as SQLite's does.)
        let s = summarize(&text);
        assert_eq!(s.statements, sqlite.len(), "summarize().statements");
        assert_eq!(
            s.params,
            sqlite.iter().map(|p| p.params).sum::<usize>(),
            "summarize().params"
        );
    } else {
        assert!(
            ours.len() >= sqlite.len(),
            "the scanner found fewer statements ({}) than SQLite accepted ({})",
            ours.len(),
            sqlite.len()
        );
    }
}
