//! Just enough SQL lexing to send only what the caller meant: the bare words of a statement
//! (outside string literals, quoted identifiers and comments), how many parameters each
//! statement takes, where one statement of a script ends, and which statements control
//! transactions.
//!
//! The rules are SQLite's tokenizer's, reduced to what matters here:
//!
//! * `'...'` strings (and `x'..'` blobs), `"..."`, `` `...` `` and `[...]` identifiers,
//!   `-- ...` and `/* ... */` comments hide everything inside them.
//! * Parameters: `?` takes the next number (one more than the largest so far), `?NNN` takes
//!   number NNN, and `:name`, `@name`, `$name` (and `#name`, which SQLite's tokenizer reads
//!   the same way) take the next number unless the same name appeared before in the
//!   statement. A statement takes as many parameters as its largest
//!   number (SQLite's `sqlite3_bind_parameter_count`): dqlite binds them by position.
//! * A `;` ends a statement, except inside the body of a `CREATE TRIGGER` (between its
//!   `BEGIN` and `END`, where `CASE ... END` nests).

/// The bare words of `sql` (keywords and unquoted identifiers), in order.
///
/// ```
/// use dqlite_proto::sql::words;
/// let w: Vec<&str> = words("SELECT 'RETURNING' /* RETURNING */ FROM \"returning\" -- returning").collect();
/// assert_eq!(w, ["SELECT", "FROM"]);
/// ```
pub fn words(sql: &str) -> impl Iterator<Item = &str> + '_ {
    Tokens::new(sql).filter_map(|t| match t {
        Token::Word(w) => Some(w),
        _ => None,
    })
}

/// The statement's first word, if any (`SELECT`, `INSERT`, `WITH`, ...).
pub fn first_word(sql: &str) -> Option<&str> {
    words(sql).next()
}

/// True when `sql` uses `RETURNING` as a keyword. dqlite 1.11 servers crash on the next
/// request after a write that returned rows, so the core refuses such SQL unless told the
/// server handles it.
pub fn has_returning(sql: &str) -> bool {
    words(sql).any(|w| w.eq_ignore_ascii_case("RETURNING"))
}

/// What one pass over a piece of SQL found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Statements holding at least one token (empty ones between `;`s do not count).
    pub statements: usize,
    /// Parameters taken, added up over the statements (each statement numbers its own).
    pub params: usize,
    /// `RETURNING` appears as a keyword.
    pub returning: bool,
    /// Some statement begins, ends or nests a transaction (see [`TxControl`]).
    pub tx_control: bool,
    /// The text ends inside a string, quoted identifier or block comment. SQLite rejects an
    /// open string or identifier; an open block comment runs to the end of the text (it holds
    /// no statement), but like `sqlite3_complete` this still calls the text unfinished.
    pub unterminated: bool,
}

/// Reads `sql` once and summarizes it.
///
/// ```
/// use dqlite_proto::sql::summarize;
/// let s = summarize("INSERT INTO t VALUES (?, :a, :a, '?'); -- ?\nCOMMIT;");
/// assert_eq!((s.statements, s.params, s.tx_control), (2, 2, true));
/// ```
pub fn summarize(sql: &str) -> Summary {
    let mut summary = Summary::default();
    let mut tokens = Tokens::new(sql);
    while let Some(stmt) = next_statement(sql, &mut tokens) {
        let Some(stmt) = stmt else { continue };
        summary.statements += 1;
        summary.params += stmt.params;
        summary.returning |= stmt.returning;
        summary.tx_control |= stmt.tx_control.is_some();
    }
    summary.unterminated = tokens.unterminated;
    summary
}

/// How a statement changes the transaction state of its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxControl {
    /// `BEGIN [DEFERRED | IMMEDIATE | EXCLUSIVE] [TRANSACTION]`.
    Begin,
    /// `COMMIT` or `END`.
    Commit,
    /// `ROLLBACK` of the whole transaction.
    Rollback,
    /// `SAVEPOINT name` (starts a transaction when none is open).
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name` (commits when it releases the savepoint that began the
    /// transaction).
    Release(String),
    /// `ROLLBACK [TRANSACTION] TO [SAVEPOINT] name` (the transaction stays open).
    RollbackTo(String),
}

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// Its text, from its first token to its end (without the `;`).
    pub sql: &'a str,
    /// Parameters it takes.
    pub params: usize,
    /// `RETURNING` appears as a keyword.
    pub returning: bool,
    /// Whether (and how) it controls the transaction.
    pub tx_control: Option<TxControl>,
}

/// The non-empty statements of a script, in order.
///
/// ```
/// use dqlite_proto::sql::{statements, TxControl};
/// let script = "BEGIN; CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE c SET n = n + 1; END; COMMIT";
/// let parts: Vec<_> = statements(script).collect();
/// assert_eq!(parts.len(), 3);
/// assert_eq!(parts[1].sql, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE c SET n = n + 1; END");
/// assert_eq!(parts[2].tx_control, Some(TxControl::Commit));
/// ```
pub fn statements(sql: &str) -> impl Iterator<Item = Statement<'_>> + '_ {
    let mut tokens = Tokens::new(sql);
    std::iter::from_fn(move || loop {
        let stmt = next_statement(sql, &mut tokens)?;
        if let Some(stmt) = stmt {
            return Some(stmt);
        }
    })
}

/// The transaction control of a single statement's text (its first statement if several).
pub fn tx_control(sql: &str) -> Option<TxControl> {
    statements(sql).next().and_then(|s| s.tx_control)
}

/// Reads up to the end of one statement: `None` at the end of the text, `Some(None)` for an
/// empty statement.
fn next_statement<'a>(sql: &'a str, tokens: &mut Tokens<'a>) -> Option<Option<Statement<'a>>> {
    let mut start = None;
    let mut end = 0;
    let mut params = Params::default();
    let mut returning = false;
    // The first tokens, enough to classify transaction control (no allocation).
    let mut head = [Token::Other; HEAD];
    let mut head_len = 0;
    let mut trigger = Trigger::default();
    let mut any = false;
    loop {
        let Some(token) = tokens.next() else {
            if !any {
                return None;
            }
            break;
        };
        any = true;
        if token == Token::Semicolon && trigger.ends_at_semicolon() {
            break;
        }
        if start.is_none() {
            start = Some(tokens.last_start);
        }
        end = tokens.pos;
        match token {
            Token::Word(w) => {
                returning |= w.eq_ignore_ascii_case("RETURNING");
                let creates = matches!(head[0], Token::Word(c) if c.eq_ignore_ascii_case("CREATE"));
                trigger.word(w, head_len, creates);
            }
            Token::Param(p) => {
                params.add(p);
                trigger.other(token);
            }
            _ => trigger.other(token),
        }
        if let Some(slot) = head.get_mut(head_len) {
            *slot = token;
            head_len += 1;
        }
    }
    let Some(start) = start else {
        return Some(None);
    };
    Some(Some(Statement {
        sql: sql.get(start..end).unwrap_or_default(),
        params: params.count,
        returning,
        tx_control: classify(head.get(..head_len).unwrap_or_default()),
    }))
}

/// Tokens kept from the start of each statement: `ROLLBACK TRANSACTION TO SAVEPOINT name`.
const HEAD: usize = 5;

/// Tracks whether a `;` ends the statement: not inside a trigger's body. As in SQLite's
/// `sqlite3_complete`, the body ends at an `END` that directly follows a `;` of the body: an
/// `END` anywhere else closes a `CASE` or is a name (`SET x = end`).
#[derive(Debug, Default)]
struct Trigger {
    /// Seen `CREATE [TEMP|TEMPORARY] TRIGGER`.
    is_trigger: bool,
    /// Inside `BEGIN ... END`.
    in_body: bool,
    /// The last token of the body was a `;`.
    after_semicolon: bool,
}

impl Trigger {
    fn word(&mut self, w: &str, index: usize, creates: bool) {
        let is = |k: &str| w.eq_ignore_ascii_case(k);
        if creates && (1..=2).contains(&index) && is("TRIGGER") {
            self.is_trigger = true;
        } else if self.is_trigger && !self.in_body && is("BEGIN") {
            self.in_body = true;
        } else if self.in_body && self.after_semicolon && is("END") {
            self.in_body = false;
            self.is_trigger = false;
        }
        self.after_semicolon = false;
    }

    /// Any token but a word (words go through [`word`](Self::word)).
    fn other(&mut self, token: Token<'_>) {
        self.after_semicolon = token == Token::Semicolon;
    }

    fn ends_at_semicolon(&self) -> bool {
        !self.in_body
    }
}

fn classify(head: &[Token<'_>]) -> Option<TxControl> {
    let mut words = head.iter().map(|t| match t {
        Token::Word(w) => Some(*w),
        Token::Quoted(q) => Some(*q),
        _ => None,
    });
    let first = words.next()??;
    let is =
        |w: Option<Option<&str>>, k: &str| matches!(w, Some(Some(x)) if x.eq_ignore_ascii_case(k));
    let name = |w: Option<Option<&str>>| w.flatten().map(unquote);
    if first.eq_ignore_ascii_case("BEGIN") {
        Some(TxControl::Begin)
    } else if first.eq_ignore_ascii_case("COMMIT") || first.eq_ignore_ascii_case("END") {
        Some(TxControl::Commit)
    } else if first.eq_ignore_ascii_case("SAVEPOINT") {
        name(words.next()).map(TxControl::Savepoint)
    } else if first.eq_ignore_ascii_case("RELEASE") {
        let mut next = words.next();
        if is(next, "SAVEPOINT") {
            next = words.next();
        }
        name(next).map(TxControl::Release)
    } else if first.eq_ignore_ascii_case("ROLLBACK") {
        let mut next = words.next();
        if is(next, "TRANSACTION") {
            next = words.next();
        }
        if next.is_none() {
            return Some(TxControl::Rollback);
        }
        if !is(next, "TO") {
            return Some(TxControl::Rollback);
        }
        next = words.next();
        if is(next, "SAVEPOINT") {
            next = words.next();
        }
        name(next).map(TxControl::RollbackTo)
    } else {
        None
    }
}

/// A savepoint name as SQLite compares it: unquoted, ASCII case folded.
fn unquote(token: &str) -> String {
    let inner = match token.as_bytes().first() {
        Some(b'"' | b'`' | b'\'') if token.len() >= 2 => token.get(1..token.len() - 1),
        Some(b'[') if token.len() >= 2 => token.get(1..token.len() - 1),
        _ => Some(token),
    };
    let inner = inner.unwrap_or(token);
    let doubled = match token.as_bytes().first() {
        Some(b'"') => Some("\"\""),
        Some(b'`') => Some("``"),
        Some(b'\'') => Some("''"),
        _ => None,
    };
    let plain = match doubled {
        Some(d) => inner.replace(d, &d[..1]),
        None => inner.to_owned(),
    };
    plain.to_ascii_lowercase()
}

/// SQLite's parameter numbering within one statement.
#[derive(Debug, Default)]
struct Params<'a> {
    count: usize,
    names: Vec<&'a str>,
}

impl<'a> Params<'a> {
    fn add(&mut self, p: &'a str) {
        let digits = p.strip_prefix('?').unwrap_or("");
        if p == "?" {
            // After an absurd `?NNN` the count is already past any server's limit.
            self.count = self.count.saturating_add(1);
        } else if !digits.is_empty() {
            // `?NNN`: an absurd number is the server's to refuse; count it as given.
            let n = digits.parse::<usize>().unwrap_or(usize::MAX);
            self.count = self.count.max(n);
            // SQLite names this slot "?NNN"; a later `?NNN` with the same number reuses it.
        } else if !self.names.contains(&p) {
            self.names.push(p);
            self.count = self.count.saturating_add(1);
        }
    }
}

/// The lexical tokens that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// A keyword or unquoted identifier.
    Word(&'a str),
    /// A quoted string or identifier, quotes included.
    Quoted(&'a str),
    /// A parameter: `?`, `?NNN`, `:name`, `@name`, `$name`, `#name`.
    Param(&'a str),
    /// `;`.
    Semicolon,
    /// Anything else (numbers, operators, punctuation).
    Other,
    /// A string or quoted identifier still open at the end of the text.
    Unterminated,
}

struct Tokens<'a> {
    sql: &'a str,
    pos: usize,
    last_start: usize,
    /// A [`Token::Unterminated`] was produced.
    unterminated: bool,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Self {
        Tokens {
            sql,
            pos: 0,
            last_start: 0,
            unterminated: false,
        }
    }

    fn text(&self, start: usize) -> &'a str {
        self.sql.get(start..self.pos).unwrap_or_default()
    }
}

/// Bytes that continue an identifier (SQLite counts every non-ASCII byte as one).
fn is_id_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        let bytes = self.sql.as_bytes();
        loop {
            let b = *bytes.get(self.pos)?;
            let start = self.pos;
            self.last_start = start;
            let rest = bytes.get(self.pos..).unwrap_or_default();
            match b {
                b'\'' | b'"' | b'`' | b'[' => {
                    let close = if b == b'[' { b']' } else { b };
                    return Some(match skip_quoted(bytes, start, close) {
                        Some(end) => {
                            self.pos = end;
                            Token::Quoted(self.text(start))
                        }
                        None => {
                            self.pos = bytes.len();
                            self.unterminated = true;
                            Token::Unterminated
                        }
                    });
                }
                b'-' if rest.starts_with(b"--") => {
                    self.pos = find_from(bytes, self.pos, b"\n").map_or(bytes.len(), |e| e + 1);
                }
                b'/' if rest.starts_with(b"/*") => match find_from(bytes, self.pos + 2, b"*/") {
                    Some(e) => self.pos = e + 2,
                    None => {
                        // SQLite's tokenizer runs an open comment to the end of the text: it
                        // hides the rest but is no statement.
                        self.pos = bytes.len();
                        self.unterminated = true;
                    }
                },
                b';' => {
                    self.pos += 1;
                    return Some(Token::Semicolon);
                }
                b'?' => {
                    self.pos += 1;
                    while bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                        self.pos += 1;
                    }
                    return Some(Token::Param(self.text(start)));
                }
                b':' | b'@' | b'$' | b'#' => {
                    self.pos += 1;
                    let name_start = self.pos;
                    loop {
                        match bytes.get(self.pos) {
                            Some(&c) if is_id_byte(c) => self.pos += 1,
                            Some(b':') if bytes.get(self.pos + 1) == Some(&b':') => self.pos += 2,
                            Some(b'(') if self.pos > name_start => {
                                self.pos =
                                    find_from(bytes, self.pos, b")").map_or(bytes.len(), |e| e + 1);
                                break;
                            }
                            _ => break,
                        }
                    }
                    if self.pos == name_start {
                        return Some(Token::Other);
                    }
                    return Some(Token::Param(self.text(start)));
                }
                b if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 => {
                    while bytes.get(self.pos).is_some_and(|&c| is_id_byte(c)) {
                        self.pos += 1;
                    }
                    return Some(Token::Word(self.text(start)));
                }
                b if b.is_ascii_digit()
                    || (b == b'.' && bytes.get(self.pos + 1).is_some_and(u8::is_ascii_digit)) =>
                {
                    // A number, as SQLite's tokenizer reads one: `0x1F`, or digits with an
                    // optional fraction and exponent (`1`, `1.5`, `.5`, `1e-3`, `1_000`).
                    // Identifier characters right after it belong to the same (illegal)
                    // token, but a `.` after them starts a new one.
                    let at = |i: usize| bytes.get(i).copied().unwrap_or(0);
                    let digits = |mut i: usize, ok: fn(&u8) -> bool| {
                        while ok(&at(i)) || (at(i) == b'_' && ok(&at(i + 1))) {
                            i += 1;
                        }
                        i
                    };
                    let mut i = self.pos;
                    if b == b'0'
                        && matches!(at(i + 1), b'x' | b'X')
                        && at(i + 2).is_ascii_hexdigit()
                    {
                        i = digits(i + 2, u8::is_ascii_hexdigit);
                    } else {
                        i = digits(i, u8::is_ascii_digit);
                        if at(i) == b'.' {
                            i = digits(i + 1, u8::is_ascii_digit);
                        }
                        if matches!(at(i), b'e' | b'E') {
                            let sign = usize::from(matches!(at(i + 1), b'+' | b'-'));
                            if at(i + 1 + sign).is_ascii_digit() {
                                i = digits(i + 1 + sign, u8::is_ascii_digit);
                            }
                        }
                    }
                    while is_id_byte(at(i)) {
                        i += 1;
                    }
                    self.pos = i;
                    return Some(Token::Other);
                }
                // SQLite's spaces: ASCII whitespace and the vertical tab.
                b if b.is_ascii_whitespace() || b == 0x0b => self.pos += 1,
                _ => {
                    self.pos += 1;
                    return Some(Token::Other);
                }
            }
        }
    }
}

/// Position just past the quoted run starting at `start` (a doubled quote is an escape), or
/// `None` when it is not closed.
fn skip_quoted(bytes: &[u8], start: usize, close: u8) -> Option<usize> {
    let mut i = start + 1;
    while let Some(&c) = bytes.get(i) {
        if c == close {
            if close != b']' && bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = bytes.get(from..)?;
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_returning_only_as_a_keyword() {
        assert!(has_returning("INSERT INTO t VALUES (1) RETURNING id"));
        assert!(has_returning("delete from t returning *"));
        assert!(has_returning("UPDATE t SET x = 1\nRETURNING\tx"));
        assert!(!has_returning("SELECT 'returning' FROM t"));
        assert!(!has_returning(
            "SELECT \"returning\", [returning], `returning` FROM t"
        ));
        assert!(!has_returning("SELECT 1 -- returning"));
        assert!(!has_returning("SELECT /* returning */ 1"));
        assert!(!has_returning("SELECT returning_id FROM t"));
        assert!(!has_returning("SELECT 'it''s returning' FROM t"));
        assert!(!has_returning("SELECT 1 /* unterminated returning"));
        assert!(!has_returning("SELECT 'unterminated returning"));
    }

    #[test]
    fn numbers_end_where_sqlite_ends_them() {
        // SQLite reads `6S` as one (illegal) token, then `.`, then the keyword.
        assert!(has_returning("INSERT INTO t VALUES (1) 6S.RETURNING id"));
        assert!(has_returning("INSERT INTO t VALUES (1.5)RETURNING id"));
        let w: Vec<&str> =
            words("SELECT 1e5, 0x1F, 1.5e-3, .5, 1_000, 1.2.3, 0xg FROM t").collect();
        assert_eq!(w, ["SELECT", "FROM", "t"]);
        // `1e` without digits is no exponent: `1e` is one token, then `+`, then `x`.
        let w: Vec<&str> = words("SELECT 1e+x, 2E-7e FROM t").collect();
        assert_eq!(w, ["SELECT", "x", "FROM", "t"]);
    }

    #[test]
    fn first_word_skips_comments_and_space() {
        assert_eq!(first_word("  -- hi\n /* x */ select 1"), Some("select"));
        assert_eq!(
            first_word("WITH c AS (SELECT 1) SELECT * FROM c"),
            Some("WITH")
        );
        assert_eq!(first_word(""), None);
        assert_eq!(first_word("  ;"), None);
        assert_eq!(first_word("123 abc"), Some("abc"));
    }

    #[test]
    fn never_panics_on_odd_text() {
        for s in [
            "'",
            "\"",
            "[",
            "--",
            "/*",
            "/",
            "-",
            "é RETURNING",
            "x'ab'",
            "1e5 returning",
            "?",
            ":",
            "$(",
            "$a(",
            "@",
            "?99999999999999999999999",
            "1e",
            "0x",
            ".",
            "é",
        ] {
            let _ = words(s).count();
            let _ = summarize(s);
        }
        assert!(has_returning("é RETURNING"));
        assert!(has_returning("1e5 returning"));
    }

    fn params(sql: &str) -> usize {
        summarize(sql).params
    }

    #[test]
    fn counts_parameters_like_sqlite() {
        assert_eq!(params("SELECT 1"), 0);
        assert_eq!(params("SELECT ?"), 1);
        assert_eq!(params("INSERT INTO t VALUES (?, ?)"), 2);
        assert_eq!(params("SELECT ?3"), 3);
        assert_eq!(params("SELECT ?2, ?"), 3);
        assert_eq!(params("SELECT ?1, ?1"), 1);
        assert_eq!(params("SELECT :a, :b, :a"), 2);
        assert_eq!(params("SELECT :a, @a, $a"), 3);
        assert_eq!(params("SELECT ?5, :x"), 6);
        assert_eq!(params("SELECT $a::b(c d), $a::b(c d)"), 1);
        assert_eq!(params("SELECT a=?,b=?"), 2);
    }

    #[test]
    fn ignores_parameter_marks_in_strings_identifiers_and_comments() {
        assert_eq!(
            params("SELECT '?', \"?\", `?`, [?], x'3f' -- ?\n/* ? :a */"),
            0
        );
        assert_eq!(params("SELECT 'it''s ?', ? -- ?"), 1);
        assert_eq!(params("SELECT \"a\"\"?\", :x"), 1);
        assert_eq!(params("SELECT 'unterminated ?"), 0);
        assert!(summarize("SELECT 'open").unterminated);
        assert!(summarize("SELECT 1 /* open").unterminated);
        // An open comment is no statement (found by the `sql` fuzz target against SQLite).
        assert_eq!(summarize("/* SELECT 1").statements, 0);
        assert_eq!(summarize("SELECT 1; /* SELECT ?").statements, 1);
        assert_eq!(summarize("SELECT 1; /* SELECT ?").params, 0);
        assert_eq!(summarize("\t\x0b\x0c\r\n").statements, 0);
        // A trigger's body ends at an END right after one of its `;`s (found by the `sql`
        // fuzz target: `SET x = END` names a column).
        let body = "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET x = END; \
                    UPDATE u SET y = CASE WHEN 1 THEN 2 END; END; SELECT 1";
        assert_eq!(summarize(body).statements, 2);
        // `#name` is a parameter to SQLite's tokenizer (found by the `sql` fuzz target).
        assert_eq!(params("UPDATE t SET b = #b, c = #b, d = ?"), 2);
        // A `?` after the largest number there is neither panics nor wraps to 0 (found by
        // the `sql` fuzz target).
        assert_eq!(params("SELECT ?99999999999999999999, ?"), usize::MAX);
        assert!(!summarize("SELECT 1 -- open").unterminated);
    }

    #[test]
    fn splits_statements() {
        let s = summarize("CREATE TABLE t (x); INSERT INTO t VALUES (1);");
        assert_eq!(s.statements, 2);
        assert_eq!(summarize(";;  ; -- nothing\n").statements, 0);
        assert_eq!(summarize("SELECT ';'; SELECT 2").statements, 2);
        let parts: Vec<_> = statements("SELECT ?; /* x */ SELECT ?, ?  ; ").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].sql, parts[0].params), ("SELECT ?", 1));
        assert_eq!((parts[1].sql, parts[1].params), ("SELECT ?, ?", 2));
        assert_eq!(summarize("SELECT ?; SELECT ?, ?").params, 3);
    }

    #[test]
    fn keeps_trigger_bodies_whole() {
        let script = "CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN \
                      UPDATE c SET n = CASE WHEN n > 1 THEN 0 ELSE n + 1 END; \
                      DELETE FROM d; END; SELECT 1";
        let parts: Vec<_> = statements(script).collect();
        assert_eq!(parts.len(), 2, "{parts:?}");
        assert!(parts[0].sql.ends_with("DELETE FROM d; END"));
        assert_eq!(
            parts[0].tx_control, None,
            "a trigger's BEGIN is not a transaction"
        );
    }

    #[test]
    fn classifies_transaction_control() {
        use TxControl::*;
        let cases = [
            ("BEGIN", Some(Begin)),
            ("begin immediate transaction", Some(Begin)),
            ("COMMIT", Some(Commit)),
            ("END TRANSACTION", Some(Commit)),
            ("ROLLBACK", Some(Rollback)),
            ("ROLLBACK TRANSACTION", Some(Rollback)),
            ("SAVEPOINT a", Some(Savepoint("a".into()))),
            ("savepoint \"My Point\"", Some(Savepoint("my point".into()))),
            ("RELEASE a", Some(Release("a".into()))),
            ("RELEASE SAVEPOINT [A]", Some(Release("a".into()))),
            ("ROLLBACK TO a", Some(RollbackTo("a".into()))),
            (
                "ROLLBACK TRANSACTION TO SAVEPOINT a",
                Some(RollbackTo("a".into())),
            ),
            ("/* c */ COMMIT", Some(Commit)),
            ("SELECT 'BEGIN'", None),
            ("EXPLAIN BEGIN", None),
            ("INSERT INTO t VALUES (1)", None),
        ];
        for (sql, want) in cases {
            assert_eq!(tx_control(sql), want, "{sql}");
        }
        assert!(summarize("INSERT INTO t VALUES (1); COMMIT").tx_control);
        assert!(!summarize("INSERT INTO t VALUES ('COMMIT')").tx_control);
    }
}
