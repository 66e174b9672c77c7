//! Reading input: lines become dot commands or complete SQL, and SQL becomes statements.
//!
//! A line starting with `.` when no SQL is pending is a dot command. Other lines collect
//! until the text ends with a `;` that ends a statement: one outside string literals,
//! quoted identifiers, comments and trigger bodies (the lexing is the client's own,
//! [`dqlite_proto::sql`]).

use dqlite_proto::sql;

/// One unit of input, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A dot command line, trimmed (`.mode csv`).
    Command(String),
    /// SQL text holding one or more complete statements.
    Sql(String),
}

/// Collects lines into [`Input`]s.
#[derive(Debug, Default)]
pub struct Reader {
    pending: String,
}

impl Reader {
    /// A reader with nothing pending.
    pub fn new() -> Reader {
        Reader::default()
    }

    /// Takes one line (without its newline); returns an input once one is complete.
    pub fn push_line(&mut self, line: &str) -> Option<Input> {
        if self.pending.is_empty() && line.trim_start().starts_with('.') {
            return Some(Input::Command(line.trim().to_owned()));
        }
        self.pending.push_str(line);
        self.pending.push('\n');
        if is_complete(&self.pending) {
            let text = std::mem::take(&mut self.pending);
            if sql::statements(&text).next().is_some() {
                return Some(Input::Sql(text));
            }
        }
        None
    }

    /// Whether part of a statement is waiting for more lines.
    pub fn is_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Drops what is pending.
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// At the end of the input: what is pending, if it holds a statement (a script's last
    /// statement may lack its `;`).
    pub fn finish(&mut self) -> Option<Input> {
        let text = std::mem::take(&mut self.pending);
        let any = sql::statements(&text).next().is_some();
        any.then_some(Input::Sql(text))
    }
}

/// True when `text` needs no more lines: its last statement is ended by a `;`, or it holds
/// no statement at all (blank lines and comments), and no quote or comment is left open.
pub fn is_complete(text: &str) -> bool {
    if sql::summarize(text).unterminated {
        return false;
    }
    let Some(last) = sql::statements(text).last() else {
        return true;
    };
    let start = (last.sql.as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    let rest = text.get(start + last.sql.len()..).unwrap_or("");
    skip_blanks_and_comments(rest).starts_with(';')
}

fn skip_blanks_and_comments(mut s: &str) -> &str {
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix("--") {
            s = after.split_once('\n').map_or("", |(_, rest)| rest);
        } else if let Some(after) = s.strip_prefix("/*") {
            s = after.split_once("*/").map_or("", |(_, rest)| rest);
        } else {
            return s;
        }
    }
}

/// The statements of `text`, in order, without their `;`.
pub fn statements(text: &str) -> Vec<&str> {
    sql::statements(text).map(|s| s.sql).collect()
}

/// Whether a statement returns rows and goes through a query (`SELECT`, `VALUES`, `WITH`,
/// `PRAGMA`, `EXPLAIN`) rather than an execution.
pub fn returns_rows(statement: &str) -> bool {
    const QUERIES: [&str; 5] = ["SELECT", "VALUES", "WITH", "PRAGMA", "EXPLAIN"];
    sql::first_word(statement).is_some_and(|w| QUERIES.iter().any(|q| w.eq_ignore_ascii_case(q)))
}

/// Whether a statement changes rows, so that rows affected and the last insert id mean
/// something.
pub fn changes_rows(statement: &str) -> bool {
    const WRITES: [&str; 4] = ["INSERT", "UPDATE", "DELETE", "REPLACE"];
    sql::first_word(statement).is_some_and(|w| WRITES.iter().any(|q| w.eq_ignore_ascii_case(q)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> (Vec<Input>, Reader) {
        let mut reader = Reader::new();
        let inputs = lines.iter().filter_map(|l| reader.push_line(l)).collect();
        (inputs, reader)
    }

    #[test]
    fn a_semicolon_ends_a_statement() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1 ;  \n"));
        assert!(is_complete("SELECT 1; -- done\n"));
        assert!(is_complete("SELECT 1 /* x */ ;"));
        assert!(is_complete("SELECT 1; SELECT 2;"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT 1; SELECT 2"));
        assert!(is_complete(""));
        assert!(is_complete("  \n-- only a comment\n"));
    }

    #[test]
    fn semicolons_in_quotes_and_comments_do_not_end_it() {
        assert!(!is_complete("SELECT 'a;"));
        assert!(!is_complete("SELECT 'a;'"));
        assert!(!is_complete("SELECT \"a;\" FROM t"));
        assert!(!is_complete("SELECT 1 -- ;\n"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(!is_complete("SELECT 1 /* ; "));
        assert!(!is_complete("SELECT [x;y] FROM t"));
        assert!(!is_complete("SELECT `x;"));
        assert!(is_complete("SELECT 'a;b';"));
    }

    #[test]
    fn trigger_bodies_hold_semicolons() {
        let head = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE c SET n = n + 1;";
        assert!(!is_complete(head));
        assert!(is_complete(&format!("{head} END;")));
    }

    #[test]
    fn lines_collect_into_statements() {
        let (inputs, reader) = feed(&["SELECT", "  1,", "'x;y'", ";", "SELECT 2; SELECT"]);
        assert_eq!(inputs, [Input::Sql("SELECT\n  1,\n'x;y'\n;\n".into())]);
        assert!(reader.is_pending());
    }

    #[test]
    fn dot_commands_only_at_the_start_of_a_statement() {
        let (inputs, reader) = feed(&["  .mode csv", "SELECT", ".5;", ".tables"]);
        assert_eq!(
            inputs,
            [
                Input::Command(".mode csv".into()),
                Input::Sql("SELECT\n.5;\n".into()),
                Input::Command(".tables".into()),
            ]
        );
        assert!(!reader.is_pending());
    }

    #[test]
    fn blank_lines_and_lone_comments_run_nothing() {
        let (inputs, reader) = feed(&["", "   ", "-- hello", ";", "/* a */"]);
        assert!(inputs.is_empty());
        assert!(!reader.is_pending());
        let (inputs, reader) = feed(&["/* open", "still */ SELECT 1;"]);
        assert_eq!(inputs, [Input::Sql("/* open\nstill */ SELECT 1;\n".into())]);
        assert!(!reader.is_pending());
    }

    #[test]
    fn finish_returns_an_unterminated_last_statement() {
        let (_, mut reader) = feed(&["SELECT 1"]);
        assert_eq!(reader.finish(), Some(Input::Sql("SELECT 1\n".into())));
        assert_eq!(reader.finish(), None);
        let (_, mut reader) = feed(&["SELECT 1", "-- no"]);
        reader.clear();
        assert!(!reader.is_pending());
        assert_eq!(reader.finish(), None);
    }

    #[test]
    fn statements_are_split() {
        let parts = statements("SELECT 1; INSERT INTO t VALUES (';'); ; -- x\n VALUES (2)");
        assert_eq!(
            parts,
            ["SELECT 1", "INSERT INTO t VALUES (';')", "VALUES (2)"]
        );
    }

    #[test]
    fn statement_kinds() {
        for q in [
            "select 1",
            "VALUES (1)",
            "with x as (select 1) select * from x",
            "PRAGMA table_info(t)",
            "explain select 1",
        ] {
            assert!(returns_rows(q), "{q}");
        }
        for e in [
            "INSERT INTO t VALUES (1)",
            "create table t (x)",
            "-- c\nDELETE FROM t",
            "",
        ] {
            assert!(!returns_rows(e), "{e}");
        }
        assert!(changes_rows("/* c */ update t set x = 1"));
        assert!(!changes_rows("CREATE TABLE t (x)"));
    }
}
