//! Which statements each path accepts: queries must return rows, `execute` must not.

use super::*;

/// First words of the statements [`Connection::fetch`] and friends accept.
pub(super) const ROW_STATEMENTS: [&str; 5] = ["SELECT", "VALUES", "WITH", "PRAGMA", "EXPLAIN"];

/// First words of statements that always return rows (`WITH` and `PRAGMA` may not).
pub(super) const ALWAYS_ROWS: [&str; 3] = ["SELECT", "VALUES", "EXPLAIN"];

/// Refuses statements that return no rows on the query paths: servers answer them with a
/// confusing "not an error" without running them.
pub(crate) fn check_returns_rows(sql: &str) -> Result<()> {
    let first = sql::first_word(sql).unwrap_or("");
    if ROW_STATEMENTS.iter().any(|k| first.eq_ignore_ascii_case(k)) {
        return Ok(());
    }
    Err(Misuse::ReturnsNoRows(first.to_owned()).into())
}

/// The first word of `sql` when it always returns rows.
pub(super) fn returns_rows(sql: &str) -> Option<String> {
    let first = sql::first_word(sql)?;
    ALWAYS_ROWS
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
        .then(|| first.to_owned())
}

/// Refuses statements that always return rows on the execute paths: servers fail them
/// (dqlite 1.11 with code 100, newer ones with "rows yielded when none expected").
pub(super) fn check_returns_no_rows(sql: &str) -> Result<()> {
    match returns_rows(sql) {
        Some(first) => Err(Misuse::ReturnsRows(first).into()),
        None => Ok(()),
    }
}
