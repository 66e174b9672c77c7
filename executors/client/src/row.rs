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

/// One result row. Column names are shared by all rows of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    columns: Arc<[Text]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(columns: Arc<[Text]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    /// Column names, in order.
    pub fn columns(&self) -> &[Text] {
        &self.columns
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, by value.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The raw value of a column, by index or name.
    pub fn value(&self, column: impl ColumnIndex) -> Result<&Value> {
        column
            .position(&self.columns)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| Error::NoSuchColumn(column.describe()))
    }

    /// A column converted to `T`, by index or name.
    ///
    /// The type can usually be inferred: `let id: i64 = row.get("id")?;`.
    pub fn get<T: FromValue, I: ColumnIndex>(&self, column: I) -> Result<T> {
        let value = column
            .position(&self.columns)
            .and_then(|i| self.values.get(i))
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
        self.values.len()
    }

    /// True for a row without columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_name_and_index() {
        let cols: Arc<[Text]> = vec![Text::from("id"), Text::from("name")].into();
        let row = Row::new(cols, vec![Value::Integer(1), Value::from("a")]);
        assert_eq!(row.get::<i64, _>("id").unwrap(), 1);
        assert_eq!(row.get::<String, _>(1).unwrap(), "a");
        assert!(matches!(row.get::<i64, _>("nope"), Err(Error::NoSuchColumn(c)) if c == "nope"));
        assert!(matches!(row.get::<i64, _>(2), Err(Error::NoSuchColumn(_))));
        assert!(row.get::<i64, _>("name").is_err());
    }
}
