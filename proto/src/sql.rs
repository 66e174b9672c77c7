//! Just enough SQL lexing to keep requests that crash servers from being sent: the bare
//! words of a statement, outside string literals, quoted identifiers and comments.

/// The bare words of `sql` (keywords and unquoted identifiers), in order.
///
/// ```
/// use dqlite_proto::sql::words;
/// let w: Vec<&str> = words("SELECT 'RETURNING' /* RETURNING */ FROM \"returning\" -- returning").collect();
/// assert_eq!(w, ["SELECT", "FROM"]);
/// ```
pub fn words(sql: &str) -> impl Iterator<Item = &str> + '_ {
    Words { sql, pos: 0 }
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

struct Words<'a> {
    sql: &'a str,
    pos: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let bytes = self.sql.as_bytes();
        loop {
            let b = *bytes.get(self.pos)?;
            let rest = bytes.get(self.pos..).unwrap_or_default();
            match b {
                b'\'' | b'"' | b'`' => self.pos = skip_quoted(bytes, self.pos, b),
                b'[' => {
                    self.pos = find_from(bytes, self.pos + 1, b"]").map_or(bytes.len(), |e| e + 1)
                }
                b'-' if rest.starts_with(b"--") => {
                    self.pos = find_from(bytes, self.pos, b"\n").map_or(bytes.len(), |e| e + 1)
                }
                b'/' if rest.starts_with(b"/*") => {
                    self.pos = find_from(bytes, self.pos + 2, b"*/").map_or(bytes.len(), |e| e + 2)
                }
                b if b.is_ascii_alphabetic() || b == b'_' => {
                    let start = self.pos;
                    while bytes
                        .get(self.pos)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$')
                    {
                        self.pos += 1;
                    }
                    return self.sql.get(start..self.pos);
                }
                b if b.is_ascii_digit() => {
                    // A number (possibly `1e5`, `0x1F`): not a word.
                    while bytes
                        .get(self.pos)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'.')
                    {
                        self.pos += 1;
                    }
                }
                _ => self.pos += 1,
            }
        }
    }
}

/// Position just past the quoted run starting at `start` (a doubled quote is an escape).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while let Some(&c) = bytes.get(i) {
        if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
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
        ] {
            let _ = words(s).count();
        }
        assert!(has_returning("é RETURNING"));
        assert!(has_returning("1e5 returning"));
    }
}
