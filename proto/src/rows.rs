//! ROWS responses: column names, row tuples with packed 4-bit type
//! headers, and the PART / DONE end marker.

use bytes::Bytes;

use crate::encoding::{pad8, Reader};
use crate::error::{LimitExceeded, Malformed};
use crate::value::{Text, Value, ValueType};

/// End marker of a batch that more batches follow.
pub const PART: u64 = 0xeeee_eeee_eeee_eeee;
/// End marker of the last batch.
pub const DONE: u64 = 0xffff_ffff_ffff_ffff;

/// One ROWS message: the column names and some rows of a result.
///
/// Values are stored row after row in one vector; text and blob values share the frame's
/// memory.
#[derive(Debug, Clone, PartialEq)]
pub struct RowsBatch {
    pub(crate) columns: Vec<Text>,
    pub(crate) values: Vec<Value>,
    rows: usize,
    pub(crate) last: bool,
}

impl RowsBatch {
    /// Builds a batch (for fake servers and tests). `values.len()` must be a multiple of
    /// `columns.len()`; extra values are dropped.
    pub fn new(columns: Vec<Text>, mut values: Vec<Value>, last: bool) -> RowsBatch {
        let rows = values.len().checked_div(columns.len()).unwrap_or(0);
        values.truncate(rows * columns.len());
        RowsBatch {
            columns,
            values,
            rows,
            last,
        }
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[Text] {
        &self.columns
    }

    /// Number of rows in this batch.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when this batch holds no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// True for the final (DONE) batch of a result.
    pub fn is_last(&self) -> bool {
        self.last
    }

    /// The rows, each a slice of values in column order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[Value]> + '_ {
        let n = self.columns.len().max(1);
        self.values.chunks(n).take(self.rows)
    }

    /// One row by index (`None` past [`len`](Self::len)).
    pub fn row(&self, i: usize) -> Option<&[Value]> {
        if i >= self.rows {
            return None;
        }
        let n = self.columns.len();
        self.values
            .get(i.checked_mul(n)?..i.checked_add(1)?.checked_mul(n)?)
    }

    /// All values, row after row, and the column names: for callers that keep them.
    pub fn into_parts(self) -> (Vec<Text>, Vec<Value>) {
        (self.columns, self.values)
    }

    /// Decodes a ROWS body, refusing more than `max_columns` columns.
    pub(crate) fn decode(body: Bytes, max_columns: u64) -> Result<RowsBatch, DecodeRowsError> {
        let mut r = Reader::new(body);
        let ncols = r.u64("column count")?;
        if ncols > max_columns {
            return Err(LimitExceeded {
                what: "columns",
                limit: max_columns,
                actual: ncols,
            }
            .into());
        }
        // Every name takes at least one word; this also bounds the allocation below.
        let ncols = usize::try_from(ncols)
            .ok()
            .filter(|&n| n <= r.remaining() / 8)
            .ok_or(Malformed::BadCount {
                field: "column",
                count: ncols,
            })?;
        let mut columns = Vec::with_capacity(ncols);
        for _ in 0..ncols {
            columns.push(r.text("column name")?);
        }
        let header_len = pad8(ncols.div_ceil(2)).unwrap_or(usize::MAX);
        // A row takes its header plus one word per value: bound the capacity by the body.
        let row_min = header_len + 8 * ncols;
        let rows_cap = if ncols == 0 {
            0
        } else {
            r.remaining() / row_min
        };
        let mut values = Vec::with_capacity(rows_cap * ncols);
        let mut rows = 0usize;
        let mut header: Vec<u64> = Vec::with_capacity(header_len / 8);
        let last = loop {
            match r.peek_u64() {
                None => return Err(Malformed::MissingEndMarker.into()),
                Some(PART) => break false,
                Some(DONE) => break true,
                Some(_) if ncols == 0 => return Err(Malformed::MissingEndMarker.into()),
                Some(_) => {}
            }
            // The type nibbles, 16 to a word, read into a buffer reused for every row.
            header.clear();
            for _ in 0..header_len / 8 {
                header.push(r.u64("row header")?);
            }
            for i in 0..ncols {
                let word = header.get(i / 16).copied().unwrap_or(0);
                let code = ((word >> (4 * (i % 16))) & 0x0f) as u8;
                let ty = ValueType::from_code(code).ok_or(Malformed::UnknownValueType(code))?;
                values.push(Value::decode(ty, &mut r)?);
            }
            rows += 1;
        };
        r.u64("end marker")?;
        r.finish()?;
        if !last && rows == 0 {
            return Err(Malformed::EmptyPart.into());
        }
        Ok(RowsBatch {
            columns,
            values,
            rows,
            last,
        })
    }
}

/// Either malformed bytes or a column limit crossed.
#[derive(Debug)]
pub(crate) enum DecodeRowsError {
    Malformed(Malformed),
    Limit(LimitExceeded),
}

impl From<Malformed> for DecodeRowsError {
    fn from(e: Malformed) -> Self {
        DecodeRowsError::Malformed(e)
    }
}

impl From<LimitExceeded> for DecodeRowsError {
    fn from(e: LimitExceeded) -> Self {
        DecodeRowsError::Limit(e)
    }
}

impl From<DecodeRowsError> for crate::Error {
    fn from(e: DecodeRowsError) -> Self {
        match e {
            DecodeRowsError::Malformed(m) => m.into(),
            DecodeRowsError::Limit(l) => l.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(hex: &str) -> Bytes {
        let v: Vec<u8> = hex
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        Bytes::from(v)
    }

    #[test]
    fn a_zero_column_batch_has_no_rows_to_index() {
        let batch = RowsBatch::new(Vec::new(), Vec::new(), true);
        assert_eq!(batch.len(), 0);
        assert_eq!(batch.row(0), None);
        assert_eq!(batch.row(7), None);
    }

    #[test]
    fn decodes_one_row_of_integer_and_null() {
        let b = body(
            "02 00 00 00 00 00 00 00 31 00 00 00 00 00 00 00 4e 55 4c 4c 00 00 00 00 \
             51 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             ff ff ff ff ff ff ff ff",
        );
        let batch = RowsBatch::decode(b, 100).unwrap();
        assert_eq!(batch.columns(), ["1", "NULL"]);
        assert!(batch.is_last());
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.row(0).unwrap(), [Value::Integer(1), Value::Null]);
    }

    #[test]
    fn decodes_a_done_batch_without_rows() {
        let b = body("01 00 00 00 00 00 00 00 78 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff");
        let batch = RowsBatch::decode(b, 100).unwrap();
        assert!(batch.is_last() && batch.is_empty());
        assert_eq!(batch.columns(), ["x"]);
    }

    #[test]
    fn blob_padding_garbage_is_ignored() {
        // Servers do not clear the padding after a blob (docs/PROTOCOL.md#primitive-encodings).
        let b = body(
            "01 00 00 00 00 00 00 00 62 00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 \
             03 00 00 00 00 00 00 00 01 02 03 6c 00 00 00 00 ff ff ff ff ff ff ff ff",
        );
        let batch = RowsBatch::decode(b, 100).unwrap();
        assert_eq!(
            batch.row(0).unwrap(),
            [Value::Blob(Bytes::from_static(&[1, 2, 3]))]
        );
    }

    #[test]
    fn legacy_null_cells_decode_as_sent() {
        // (b BOOLEAN NULL, d DATETIME NULL) from a released server, then from a patched one.
        let old = body(
            "02 00 00 00 00 00 00 00 62 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00 \
             ab 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             ff ff ff ff ff ff ff ff",
        );
        let batch = RowsBatch::decode(old, 100).unwrap();
        assert_eq!(
            batch.row(0).unwrap(),
            [Value::Boolean(false), Value::Iso8601(Text::from(""))]
        );
        let new = body(
            "02 00 00 00 00 00 00 00 62 00 00 00 00 00 00 00 64 00 00 00 00 00 00 00 \
             55 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
             ff ff ff ff ff ff ff ff",
        );
        let batch = RowsBatch::decode(new, 100).unwrap();
        assert_eq!(batch.row(0).unwrap(), [Value::Null, Value::Null]);
    }

    #[test]
    fn rejects_bad_batches() {
        let zero_row_part =
            body("01 00 00 00 00 00 00 00 78 00 00 00 00 00 00 00 ee ee ee ee ee ee ee ee");
        assert!(matches!(
            RowsBatch::decode(zero_row_part, 100),
            Err(DecodeRowsError::Malformed(Malformed::EmptyPart))
        ));
        let no_marker = body("01 00 00 00 00 00 00 00 78 00 00 00 00 00 00 00");
        assert!(matches!(
            RowsBatch::decode(no_marker, 100),
            Err(DecodeRowsError::Malformed(Malformed::MissingEndMarker))
        ));
        let huge_cols = body("ff ff ff ff ff ff ff 7f ff ff ff ff ff ff ff ff");
        assert!(RowsBatch::decode(huge_cols.clone(), u64::MAX).is_err());
        assert!(matches!(
            RowsBatch::decode(huge_cols, 10),
            Err(DecodeRowsError::Limit(_))
        ));
        let bad_nibble = body(
            "01 00 00 00 00 00 00 00 78 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 \
             00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff",
        );
        assert!(matches!(
            RowsBatch::decode(bad_nibble, 100),
            Err(DecodeRowsError::Malformed(Malformed::UnknownValueType(7)))
        ));
        let trailing =
            body("00 00 00 00 00 00 00 00 ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00");
        assert!(matches!(
            RowsBatch::decode(trailing, 100),
            Err(DecodeRowsError::Malformed(Malformed::TrailingBytes(8)))
        ));
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let batch = RowsBatch::new(
            vec!["a".into(), "b".into(), "c".into()],
            vec![
                Value::Integer(1),
                Value::Text("x".into()),
                Value::Blob(Bytes::from_static(b"blob")),
                Value::Float(2.5),
                Value::UnixTime(-3),
                Value::Boolean(true),
            ],
            false,
        );
        let mut b = Vec::new();
        batch.encode_body(&mut b);
        assert_eq!(RowsBatch::decode(Bytes::from(b), 100).unwrap(), batch);
    }
}
