//! Output modes: how a result (column names and rows of values) is written.
//!
//! Every mode keeps NULL apart from empty text: `NULL` in table, line and tabs modes, an
//! empty unquoted field (against `""`) in csv, `null` in json. BLOBs are written as SQL
//! hex literals (`x'0a0b'`).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::str::FromStr;

use dqlite_tokio::Value;

/// How results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// An aligned table with borders.
    Table,
    /// Comma-separated values (RFC 4180 quoting).
    Csv,
    /// A JSON array of objects, one object per row.
    Json,
    /// One `column = value` line per value, rows separated by a blank line.
    Line,
    /// Tab-separated values, one row per line.
    Tabs,
}

impl Mode {
    /// Every mode's name, for help texts.
    pub const NAMES: &'static str = "table, csv, json, line, tabs";

    /// Whether column headers are written when the user did not say.
    pub fn default_headers(self) -> bool {
        matches!(self, Mode::Table | Mode::Csv)
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" | "tabular" => Ok(Mode::Table),
            "csv" => Ok(Mode::Csv),
            "json" => Ok(Mode::Json),
            "line" => Ok(Mode::Line),
            "tabs" => Ok(Mode::Tabs),
            _ => Err(format!("unknown mode `{s}` (modes: {})", Mode::NAMES)),
        }
    }
}

/// Writes one result in a mode: [`begin`](Self::begin), then [`row`](Self::row) for each
/// row as it arrives, then [`finish`](Self::finish). Table mode holds the rows until the
/// end (column widths need them all); the others write each row at once.
#[derive(Debug)]
pub struct Rendering {
    mode: Mode,
    headers: bool,
    columns: Vec<String>,
    /// Table mode: the cells so far, and whether each column is numeric.
    cells: Vec<Vec<(String, bool)>>,
    rows: usize,
}

impl Rendering {
    /// Starts a result with these column names.
    pub fn new(mode: Mode, headers: bool, columns: Vec<String>) -> Rendering {
        Rendering {
            mode,
            headers,
            columns,
            cells: Vec::new(),
            rows: 0,
        }
    }

    /// Writes what comes before the rows.
    pub fn begin(&mut self, out: &mut dyn Write) -> io::Result<()> {
        match self.mode {
            Mode::Csv if self.headers => {
                let fields: Vec<String> = self.columns.iter().map(|c| csv_text(c)).collect();
                writeln!(out, "{}", fields.join(","))
            }
            Mode::Tabs if self.headers => writeln!(out, "{}", self.columns.join("\t")),
            Mode::Json => write!(out, "["),
            _ => Ok(()),
        }
    }

    /// Writes (or, in table mode, keeps) one row.
    pub fn row(&mut self, out: &mut dyn Write, values: &[Value]) -> io::Result<()> {
        let first = self.rows == 0;
        self.rows += 1;
        match self.mode {
            Mode::Table => {
                let row = values
                    .iter()
                    .map(|v| (escape_controls(&text(v)), is_number(v)))
                    .collect();
                self.cells.push(row);
                Ok(())
            }
            Mode::Csv => {
                let fields: Vec<String> = values.iter().map(csv).collect();
                writeln!(out, "{}", fields.join(","))
            }
            Mode::Tabs => {
                let fields: Vec<String> = values.iter().map(text).collect();
                writeln!(out, "{}", fields.join("\t"))
            }
            Mode::Json => {
                let mut object = String::from(if first { "\n{" } else { ",\n{" });
                for (i, (name, value)) in self.columns.iter().zip(values).enumerate() {
                    if i > 0 {
                        object.push(',');
                    }
                    json_string(&mut object, name);
                    object.push(':');
                    json(&mut object, value);
                }
                object.push('}');
                write!(out, "{object}")
            }
            Mode::Line => {
                if !first {
                    writeln!(out)?;
                }
                let width = self
                    .columns
                    .iter()
                    .map(|c| c.chars().count())
                    .max()
                    .unwrap_or(0);
                for (name, value) in self.columns.iter().zip(values) {
                    writeln!(out, "{name:>width$} = {}", text(value))?;
                }
                Ok(())
            }
        }
    }

    /// Writes what comes after the rows (in table mode, the whole table).
    pub fn finish(self, out: &mut dyn Write) -> io::Result<()> {
        match self.mode {
            Mode::Json if self.rows == 0 => writeln!(out, "]"),
            Mode::Json => writeln!(out, "\n]"),
            Mode::Table => write_table(out, &self.columns, self.headers, &self.cells),
            _ => Ok(()),
        }
    }
}

/// Renders a whole result into a string.
pub fn render(mode: Mode, headers: bool, columns: &[&str], rows: &[Vec<Value>]) -> String {
    let mut out = Vec::new();
    let columns = columns.iter().map(|c| c.to_string()).collect();
    let mut r = Rendering::new(mode, headers, columns);
    // Writing to a Vec cannot fail.
    let _ = r.begin(&mut out);
    for row in rows {
        let _ = r.row(&mut out, row);
    }
    let _ = r.finish(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn write_table(
    out: &mut dyn Write,
    columns: &[String],
    headers: bool,
    cells: &[Vec<(String, bool)>],
) -> io::Result<()> {
    if columns.is_empty() {
        return Ok(());
    }
    let mut widths: Vec<usize> = if headers {
        columns.iter().map(|c| c.chars().count()).collect()
    } else {
        vec![0; columns.len()]
    };
    for row in cells {
        for (w, (cell, _)) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule: String = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
        s
    });
    let line = |cells: &mut dyn Iterator<Item = (&str, bool)>| {
        let mut s = String::from("|");
        for ((cell, right), w) in cells.zip(&widths) {
            let pad = w.saturating_sub(cell.chars().count());
            let (left_pad, right_pad) = if right { (pad, 0) } else { (0, pad) };
            let _ = write!(
                s,
                " {}{cell}{} |",
                " ".repeat(left_pad),
                " ".repeat(right_pad)
            );
        }
        s
    };
    writeln!(out, "{rule}")?;
    if headers {
        writeln!(
            out,
            "{}",
            line(&mut columns.iter().map(|c| (c.as_str(), false)))
        )?;
        writeln!(out, "{rule}")?;
    }
    for row in cells {
        writeln!(
            out,
            "{}",
            line(&mut row.iter().map(|(c, n)| (c.as_str(), *n)))
        )?;
    }
    if !cells.is_empty() {
        writeln!(out, "{rule}")?;
    }
    Ok(())
}

fn is_number(v: &Value) -> bool {
    matches!(v, Value::Integer(_) | Value::Float(_) | Value::UnixTime(_))
}

/// A value as text in the table, line and tabs modes.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_owned(),
        Value::Integer(i) | Value::UnixTime(i) => i.to_string(),
        Value::Float(f) => float(*f),
        Value::Text(t) | Value::Iso8601(t) => t.as_str().to_owned(),
        Value::Blob(b) => hex_literal(b),
        Value::Boolean(b) => b.to_string(),
    }
}

/// A float, always recognizable as one (`1.0`, not `1`).
fn float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Bytes as an SQL blob literal: `x'0a0b'`.
fn hex_literal(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(3 + 2 * bytes.len());
    s.push_str("x'");
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s.push('\'');
    s
}

/// Newlines, tabs and other control characters as escapes, so table rows stay one line.
fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A CSV field: NULL is empty and unquoted, empty text is `""`.
fn csv(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Text(t) | Value::Iso8601(t) => csv_text(t),
        other => text(other),
    }
}

fn csv_text(s: &str) -> String {
    if s.is_empty() || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Integer(i) | Value::UnixTime(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) if f.is_finite() => out.push_str(&float(*f)),
        // JSON has no infinities or NaN.
        Value::Float(f) => json_string(out, &f.to_string()),
        Value::Text(t) | Value::Iso8601(t) => json_string(out, t),
        Value::Blob(b) => json_string(out, &hex_literal(b)),
        Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
    }
}

fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Vec<Value>> {
        vec![
            vec![
                Value::Integer(1),
                Value::Null,
                Value::Text("".into()),
                Value::Blob(vec![0x0a, 0x0b].into()),
                Value::Float(1.5),
            ],
            vec![
                Value::Integer(-20),
                Value::Text("a,\"b\"".into()),
                Value::Text("NULL".into()),
                Value::Blob(Vec::new().into()),
                Value::Float(2.0),
            ],
        ]
    }

    const COLUMNS: [&str; 5] = ["id", "t", "e", "b", "f"];

    #[test]
    fn table_aligns_numbers_right_and_text_left() {
        let got = render(Mode::Table, true, &COLUMNS, &sample());
        let want = "\
+-----+-------+------+---------+-----+
| id  | t     | e    | b       | f   |
+-----+-------+------+---------+-----+
|   1 | NULL  |      | x'0a0b' | 1.5 |
| -20 | a,\"b\" | NULL | x''     | 2.0 |
+-----+-------+------+---------+-----+
";
        assert_eq!(got, want);
    }

    #[test]
    fn table_without_headers_and_without_rows() {
        let got = render(Mode::Table, false, &["a"], &[vec![Value::Integer(7)]]);
        assert_eq!(got, "+---+\n| 7 |\n+---+\n");
        let got = render(Mode::Table, true, &["abc"], &[]);
        assert_eq!(got, "+-----+\n| abc |\n+-----+\n");
        assert_eq!(render(Mode::Table, true, &[], &[]), "");
    }

    #[test]
    fn table_escapes_control_characters() {
        let got = render(
            Mode::Table,
            false,
            &["a"],
            &[vec![Value::Text("x\ny".into())]],
        );
        assert_eq!(got, "+------+\n| x\\ny |\n+------+\n");
    }

    #[test]
    fn csv_keeps_null_apart_from_empty_text() {
        let got = render(Mode::Csv, true, &COLUMNS, &sample());
        let want = "id,t,e,b,f\n1,,\"\",x'0a0b',1.5\n-20,\"a,\"\"b\"\"\",NULL,x'',2.0\n";
        assert_eq!(got, want);
        let got = render(Mode::Csv, false, &COLUMNS, &sample()[..1]);
        assert_eq!(got, "1,,\"\",x'0a0b',1.5\n");
    }

    #[test]
    fn json_is_an_array_of_objects() {
        let got = render(Mode::Json, true, &COLUMNS, &sample());
        let want = "[\n{\"id\":1,\"t\":null,\"e\":\"\",\"b\":\"x'0a0b'\",\"f\":1.5},\n\
                    {\"id\":-20,\"t\":\"a,\\\"b\\\"\",\"e\":\"NULL\",\"b\":\"x''\",\"f\":2.0}\n]\n";
        assert_eq!(got, want);
        assert_eq!(render(Mode::Json, true, &["a"], &[]), "[]\n");
    }

    #[test]
    fn json_escapes_and_special_values() {
        let rows = vec![vec![
            Value::Text("tab\there \"q\" \\ \u{1}".into()),
            Value::Float(f64::INFINITY),
            Value::Boolean(true),
            Value::UnixTime(5),
        ]];
        let got = render(Mode::Json, false, &["s", "f", "b", "u"], &rows);
        assert_eq!(
            got,
            "[\n{\"s\":\"tab\\there \\\"q\\\" \\\\ \\u0001\",\"f\":\"inf\",\"b\":true,\"u\":5}\n]\n"
        );
    }

    #[test]
    fn line_mode_right_aligns_names() {
        let got = render(Mode::Line, true, &COLUMNS, &sample());
        let want = "id = 1\n t = NULL\n e = \n b = x'0a0b'\n f = 1.5\n\n\
                    id = -20\n t = a,\"b\"\n e = NULL\n b = x''\n f = 2.0\n";
        assert_eq!(got, want);
    }

    #[test]
    fn tabs_mode_with_and_without_headers() {
        let got = render(Mode::Tabs, false, &COLUMNS, &sample());
        assert_eq!(
            got,
            "1\tNULL\t\tx'0a0b'\t1.5\n-20\ta,\"b\"\tNULL\tx''\t2.0\n"
        );
        let got = render(Mode::Tabs, true, &["a", "b"], &[]);
        assert_eq!(got, "a\tb\n");
    }

    #[test]
    fn floats_stay_floats() {
        assert_eq!(float(3.0), "3.0");
        assert_eq!(float(-0.25), "-0.25");
        assert_eq!(float(1e20), "100000000000000000000");
        assert_eq!(float(f64::NAN), "NaN");
    }

    #[test]
    fn modes_parse_by_name() {
        assert_eq!("TABLE".parse(), Ok(Mode::Table));
        assert_eq!("tabular".parse(), Ok(Mode::Table));
        assert_eq!("tabs".parse(), Ok(Mode::Tabs));
        assert!("xml".parse::<Mode>().unwrap_err().contains("unknown mode"));
        assert!(Mode::Csv.default_headers());
        assert!(!Mode::Tabs.default_headers());
    }
}
