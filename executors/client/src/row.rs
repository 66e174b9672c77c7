//! Result rows addressable by column name or index.

use std::sync::Arc;

use dqlite_proto::{Text, Value};

use crate::convert::FromValue;
use crate::error::{Error, Result};

/// A column selector: an index (`usize`) or a name (`&str`).
pub trait ColumnIndex {
    /// The position of the column in `columns`, if it exists.
    fn position(&self, columns: &[Text]) -> Option<usize>;
    /// For error messages.
    fn describe(&self) -> String;
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[Text]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        format!("#{self}")
    }
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[Text]) -> Option<usize> {
        columns.iter().position(|c| c.as_str() == *self)
    }
    fn describe(&self) -> String {
        (*self).to_owned()
    }
}

/// One result row. Column names are shared by all rows of a result, and values by all rows
/// of a batch: a row is cheap to make and to clone.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[Text]>,
    batch: Arc<Vec<Value>>,
    start: usize,
}

impl Row {
    /// The rows of one batch: `values` holds them one after another.
    pub(crate) fn from_batch(
        columns: &Arc<[Text]>,
        values: Vec<Value>,
    ) -> impl Iterator<Item = Row> + '_ {
        let n = columns.len();
        let count = values.len().checked_div(n).unwrap_or(0);
        let batch = Arc::new(values);
        (0..count).map(move |i| Row {
            columns: columns.clone(),
            batch: batch.clone(),
            start: i * n,
        })
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[Text] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        self.batch
            .get(self.start..self.start + self.columns.len())
            .unwrap_or_default()
    }

    /// The values, by value.
    pub fn into_values(self) -> Vec<Value> {
        self.values().to_vec()
    }

    /// The raw value of a column, by index or name.
    pub fn value(&self, column: impl ColumnIndex) -> Result<&Value> {
        column
            .position(&self.columns)
            .and_then(|i| self.values().get(i))
            .ok_or_else(|| Error::NoSuchColumn(column.describe()))
    }

    /// A column converted to `T`, by index or name.
    ///
    /// The type can usually be inferred: `let id: i64 = row.get("id")?;`.
    pub fn get<T: FromValue, I: ColumnIndex>(&self, column: I) -> Result<T> {
        let value = column
            .position(&self.columns)
            .and_then(|i| self.values().get(i))
            .ok_or_else(|| Error::NoSuchColumn(column.describe()))?;
        T::from_value(value).map_err(|e| match e {
            Error::Conversion {
                expected, found, ..
            } => Error::Conversion {
                expected,
                found,
                column: Some(column.describe()),
            },
            other => other,
        })
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.columns.len()
    }

    /// True for a row without columns.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }
}

/// The rows of a query result, with its column names even when there are no rows.
///
/// It derefs to a slice of [`Row`]s (`rows.len()`, `rows[0]`, `rows.iter()`), and iterates
/// by value or by reference.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rows {
    columns: Arc<[Text]>,
    rows: Vec<Row>,
}

impl Rows {
    /// Builds the rows of a result from its column names and its batches of values.
    pub(crate) fn from_batches(columns: Vec<Text>, batches: Vec<Vec<Value>>) -> Rows {
        let columns: Arc<[Text]> = columns.into();
        let mut rows = Vec::new();
        for values in batches {
            rows.extend(Row::from_batch(&columns, values));
        }
        Rows { columns, rows }
    }

    /// The column names, in order (also for an empty result).
    pub fn columns(&self) -> &[Text] {
        &self.columns
    }

    /// The rows, as a vector.
    pub fn into_vec(self) -> Vec<Row> {
        self.rows
    }
}

impl std::ops::Deref for Rows {
    type Target = [Row];
    fn deref(&self) -> &[Row] {
        &self.rows
    }
}

impl IntoIterator for Rows {
    type Item = Row;
    type IntoIter = std::vec::IntoIter<Row>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}

impl<'a> IntoIterator for &'a Rows {
    type Item = &'a Row;
    type IntoIter = std::slice::Iter<'a, Row>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_and_index() {
        let cols: Arc<[Text]> = vec![Text::from("id"), Text::from("name")].into();
        let row = Row::from_batch(&cols, vec![Value::Integer(1), Value::from("a")])
            .next()
            .unwrap();
        assert_eq!(row.get::<i64, _>("id").unwrap(), 1);
        assert_eq!(row.get::<String, _>(1).unwrap(), "a");
        assert!(matches!(row.get::<i64, _>("nope"), Err(Error::NoSuchColumn(c)) if c == "nope"));
        assert!(matches!(row.get::<i64, _>(2), Err(Error::NoSuchColumn(_))));
        assert!(row.get::<i64, _>("name").is_err());
    }

    #[test]
    fn empty_results_keep_their_columns() {
        let rows = Rows::from_batches(vec![Text::from("id")], vec![Vec::new()]);
        assert!(rows.is_empty());
        assert_eq!(rows.columns(), [Text::from("id")]);
        let rows = Rows::from_batches(
            vec![Text::from("id")],
            vec![vec![Value::Integer(1)], vec![Value::Integer(2)]],
        );
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0).unwrap()).collect();
        assert_eq!(ids, [1, 2]);
    }
}
