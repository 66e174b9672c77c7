//! Typed rows: a whole row converted to a Rust type.

use dqlite_proto::Value;

use crate::convert::FromValue;
use crate::error::Result;
use crate::row::{ColumnIndex, Row, Rows};

/// A Rust type that a whole result row converts to, read by the typed query methods
/// ([`Connection::fetch_as`](crate::Connection::fetch_as), `fetch_one_as`,
/// `fetch_optional_as`, the same on [`Pool`](crate::Pool), and
/// [`RowStream::into_typed`](crate::RowStream::into_typed)).
///
/// Implemented for [`Row`] itself, for tuples of 1 to 12 [`FromValue`] types (element `i`
/// from column `i`), and, with the default feature `derive`, by `#[derive(FromRow)]` for
/// structs:
///
/// ```
/// use dqlite_client::FromRow;
///
/// #[derive(Debug, FromRow)]
/// struct User {
///     id: i64,
///     #[dqlite(rename = "full_name")]
///     name: String,
///     email: Option<String>,     // NULL is None
///     #[dqlite(default)]
///     visits: u32,               // 0 when the column is missing or NULL
///     nickname: Option<Option<String>>, // None: no such column; Some(None): NULL
/// }
///
/// #[derive(FromRow)]
/// struct Pair(i64, String); // by position
/// ```
///
/// What the derive does with each field:
///
/// * a named field reads the column of its name (`#[dqlite(rename = "col")]`: that column);
///   a tuple-struct field reads the column at its position;
/// * the field's type converts the value with [`FromValue`] (strict: see its table), so
///   `Option<T>` reads NULL as `None`;
/// * a missing column is [`Error::NoSuchColumn`](crate::Error::NoSuchColumn), a value that
///   does not convert is [`Error::Conversion`](crate::Error::Conversion) naming the column,
///   the Rust type and the wire type;
/// * `#[dqlite(default)]`: `Default::default()` when the column is missing or NULL;
/// * a field written `Option<Option<T>>` tells the two apart: `None` when the result has
///   no such column, `Some(None)` for NULL, `Some(Some(v))` for a value (with or without
///   `#[dqlite(default)]`);
/// * `#[dqlite(crate = "dqlite_tokio")]` on the struct: the path of the crate that the
///   generated code names (found in the Cargo manifest when not given).
///
/// Enums and unions are refused at compile time:
///
/// ```compile_fail
/// #[derive(dqlite_client::FromRow)]
/// enum Shape { Circle, Square }
/// ```
pub trait FromRow: Sized {
    /// Converts the row, or fails with the first column that does not fit.
    fn from_row(row: &Row) -> Result<Self>;
}

impl FromRow for Row {
    fn from_row(row: &Row) -> Result<Self> {
        Ok(row.clone())
    }
}

macro_rules! tuple_from_row {
    ($($name:ident : $index:tt),+) => {
        impl<$($name: FromValue),+> FromRow for ($($name,)+) {
            fn from_row(row: &Row) -> Result<Self> {
                Ok(($(row.get::<$name, usize>($index)?,)+))
            }
        }
    };
}

tuple_from_row!(A: 0);
tuple_from_row!(A: 0, B: 1);
tuple_from_row!(A: 0, B: 1, C: 2);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8, J: 9);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8, J: 9, K: 10);
tuple_from_row!(A: 0, B: 1, C: 2, D: 3, E: 4, F: 5, G: 6, H: 7, I: 8, J: 9, K: 10, L: 11);

/// Every row converted to `T`, failing at the first that does not convert.
pub(crate) fn rows_as<T: FromRow>(rows: Rows) -> Result<Vec<T>> {
    rows.iter().map(T::from_row).collect()
}

/// Helpers called by the code `#[derive(FromRow)]` generates; not a stable API.
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// The column converted to `T`, or `T::default()` when it is missing or NULL.
    pub fn get_or_default<T: FromValue + Default, I: ColumnIndex>(
        row: &Row,
        column: I,
    ) -> Result<T> {
        match column.position(row.columns()).map(|i| row.values().get(i)) {
            None | Some(None) | Some(Some(Value::Null)) => Ok(T::default()),
            Some(Some(_)) => row.get(column),
        }
    }

    /// `None` when the column is missing, `Some(None)` for NULL, else `Some(Some(value))`.
    pub fn get_nested_option<T: FromValue, I: ColumnIndex>(
        row: &Row,
        column: I,
    ) -> Result<Option<Option<T>>> {
        match column.position(row.columns()) {
            None => Ok(None),
            Some(_) => row.get::<Option<T>, I>(column).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dqlite_proto::{Text, ValueType};

    use super::*;
    use crate::Error;

    fn row(columns: &[&str], values: Vec<Value>) -> Row {
        let columns: Arc<[Text]> = columns.iter().map(|c| Text::from(*c)).collect();
        let row = Row::from_batch(&columns, values).next().unwrap();
        row
    }

    #[test]
    fn tuples_read_by_position() {
        let r = row(
            &["a", "b", "c"],
            vec![Value::Integer(1), Value::from("x"), Value::Null],
        );
        let t: (i64, String, Option<f64>) = FromRow::from_row(&r).unwrap();
        assert_eq!(t, (1, "x".to_owned(), None));
        let (a,): (u8,) = FromRow::from_row(&r).unwrap();
        assert_eq!(a, 1);
        let e = <(i64, i64)>::from_row(&r).unwrap_err();
        assert!(
            matches!(&e, Error::Conversion { expected: "i64", found: ValueType::Text, column: Some(c) } if c == "#1"),
            "{e:?}"
        );
        assert!(matches!(
            <(i64, String, Value, Value)>::from_row(&r),
            Err(Error::NoSuchColumn(c)) if c == "#3"
        ));
        assert_eq!(Row::from_row(&r).unwrap(), r);
    }

    #[cfg(feature = "derive")]
    mod derive {
        use super::*;
        use crate::FromRow;

        #[derive(Debug, PartialEq, FromRow)]
        struct User {
            id: i64,
            #[dqlite(rename = "full_name")]
            name: String,
            email: Option<String>,
            #[dqlite(default)]
            visits: u32,
            #[dqlite(default)]
            tags: String,
            nickname: Option<Option<String>>,
            #[dqlite(default)]
            alias: Option<Option<String>>,
            r#type: bool,
        }

        #[derive(Debug, PartialEq, FromRow)]
        struct Pair(i64, #[dqlite(default)] String);

        #[derive(Debug, PartialEq, FromRow)]
        struct Wrapper<T> {
            value: T,
        }

        #[derive(Debug, PartialEq, FromRow)]
        struct Nothing;

        fn user_row(visits: Value) -> Row {
            row(
                &["id", "full_name", "email", "visits", "nickname", "type"],
                vec![
                    Value::Integer(7),
                    Value::from("Ada"),
                    Value::Null,
                    visits,
                    Value::Null,
                    Value::Boolean(true),
                ],
            )
        }

        #[test]
        fn named_fields_read_their_columns() {
            let u = User::from_row(&user_row(Value::Integer(3))).unwrap();
            assert_eq!(
                u,
                User {
                    id: 7,
                    name: "Ada".into(),
                    email: None,
                    visits: 3,
                    tags: String::new(),
                    nickname: Some(None),
                    alias: None,
                    r#type: true,
                }
            );
            // default: NULL as well as missing.
            let u = User::from_row(&user_row(Value::Null)).unwrap();
            assert_eq!(u.visits, 0);
        }

        #[test]
        fn errors_name_the_column_and_both_types() {
            let e = User::from_row(&user_row(Value::from("many"))).unwrap_err();
            assert!(
                matches!(&e, Error::Conversion { expected: "u32", found: ValueType::Text, column: Some(c) } if c == "visits"),
                "{e:?}"
            );
            assert_eq!(
                e.to_string(),
                "cannot convert Text value of column visits to u32"
            );
            let missing = row(&["id"], vec![Value::Integer(1)]);
            assert!(
                matches!(User::from_row(&missing), Err(Error::NoSuchColumn(c)) if c == "full_name")
            );
            let null_id = row(&["value"], vec![Value::Null]);
            let e = Wrapper::<i64>::from_row(&null_id).unwrap_err();
            assert_eq!(
                e.to_string(),
                "cannot convert Null value of column value to i64"
            );
        }

        #[test]
        fn tuple_generic_and_unit_structs() {
            let r = row(&["a"], vec![Value::Integer(1)]);
            assert_eq!(Pair::from_row(&r).unwrap(), Pair(1, String::new()));
            assert_eq!(
                Wrapper::<Option<i64>>::from_row(&row(&["value"], vec![Value::Null])).unwrap(),
                Wrapper { value: None }
            );
            assert_eq!(Nothing::from_row(&r).unwrap(), Nothing);
        }
    }
}
