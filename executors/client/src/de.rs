//! Rows into serde types (feature `serde`): a small `Deserializer` over a [`Row`].
//!
//! A row is a map from column names to values (structs read their fields by column name) and
//! a sequence of values (tuples and sequences read them by position). A value deserializes
//! as its wire type: INTEGER as `i64`, FLOAT as `f64`, TEXT as a string, BLOB as bytes (or a
//! sequence of `u8`, for `Vec<u8>`), BOOLEAN as `bool`, NULL as none or unit. Numbers and
//! booleans convert as [`FromValue`](crate::FromValue) converts them.

use dqlite_proto::Value;
use serde::de::value::{BorrowedStrDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess};

use crate::error::{Error, Result};
use crate::from_row::FromRow;
use crate::row::Row;

impl de::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Deserialize {
            column: None,
            message: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error::NoSuchColumn(field.to_owned())
    }
}

impl Row {
    /// The row deserialized into `T` (feature `serde`): a struct reads its fields by column
    /// name (extra columns are ignored unless it denies unknown fields), a tuple or sequence
    /// reads the columns by position, and a row of one column also reads as that column's
    /// value. A value of the wrong type is [`Error::Conversion`] naming the column; a missing
    /// column is [`Error::NoSuchColumn`].
    ///
    /// ```
    /// # fn demo(row: &dqlite_client::Row) -> dqlite_client::Result<()> {
    /// #[derive(serde::Deserialize)]
    /// struct Item {
    ///     id: i64,
    ///     name: String,
    ///     note: Option<String>, // NULL or a missing column: None
    /// }
    /// let item: Item = row.deserialize()?;
    /// let (id, name): (i64, String) = row.deserialize()?;
    /// # let _ = (item, id, name);
    /// # Ok(()) }
    /// ```
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(RowDeserializer { row: self })
    }
}

/// A row read through serde (feature `serde`): `De<T>` is a [`FromRow`] for any
/// `T: Deserialize`, so every typed query method reads serde types too (see
/// [`Row::deserialize`] for how rows map to them).
///
/// ```no_run
/// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
/// use dqlite_client::De;
/// #[derive(serde::Deserialize)]
/// struct Item {
///     id: i64,
///     name: String,
/// }
/// let items: Vec<De<Item>> = conn.fetch_as("SELECT id, name FROM items", ()).await?;
/// let De(first) = conn.fetch_one_as::<De<Item>>("SELECT id, name FROM items", ()).await?;
/// # let _ = (items, first);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct De<T>(pub T);

impl<T> De<T> {
    /// The deserialized value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned> FromRow for De<T> {
    fn from_row(row: &Row) -> Result<Self> {
        row.deserialize().map(De)
    }
}

/// Names the column in an error that does not name one yet.
fn in_column(e: Error, name: &str) -> Error {
    match e {
        Error::Conversion {
            expected,
            found,
            column: None,
        } => Error::Conversion {
            expected,
            found,
            column: Some(name.to_owned()),
        },
        Error::Deserialize {
            column: None,
            message,
        } => Error::Deserialize {
            column: Some(name.to_owned()),
            message,
        },
        other => other,
    }
}

struct RowDeserializer<'de> {
    row: &'de Row,
}

/// Reads a one-column row as its value, anything else as a map.
macro_rules! single_value {
    ($($method:ident),+) => {$(
        fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            match (self.row.values(), self.row.columns()) {
                ([value], [name]) => ValueDeserializer { value }
                    .$method(visitor)
                    .map_err(|e| in_column(e, name)),
                _ => self.deserialize_any(visitor),
            }
        }
    )+};
}

impl<'de> Deserializer<'de> for RowDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_map(Columns {
            row: self.row,
            next: 0,
        })
    }

    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Columns {
            row: self.row,
            next: 0,
        })
    }

    fn deserialize_tuple<V: de::Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    /// A row is always there; a one-column row whose value is NULL reads as `None`
    /// (`SELECT max(x)` into `Option<i64>`).
    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.row.values() {
            [Value::Null] => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_ignored_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match (self.row.values(), self.row.columns()) {
            ([value], [column]) => ValueDeserializer { value }
                .deserialize_enum(name, variants, visitor)
                .map_err(|e| in_column(e, column)),
            _ => self.deserialize_any(visitor),
        }
    }

    single_value!(
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf
    );

    serde::forward_to_deserialize_any! {
        i128 u128 map struct identifier
    }
}

/// The columns of a row, as a map (name to value) or a sequence (of values).
struct Columns<'de> {
    row: &'de Row,
    next: usize,
}

impl Columns<'_> {
    fn remaining(&self) -> usize {
        self.row.len().saturating_sub(self.next)
    }
}

impl<'de> MapAccess<'de> for Columns<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let row: &'de Row = self.row;
        match row.columns().get(self.next) {
            Some(name) => seed
                .deserialize(BorrowedStrDeserializer::new(name.as_str()))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        let row: &'de Row = self.row;
        let i = self.next;
        self.next += 1;
        match (row.values().get(i), row.columns().get(i)) {
            (Some(value), Some(name)) => seed
                .deserialize(ValueDeserializer { value })
                .map_err(|e| in_column(e, name)),
            _ => Err(Error::NoSuchColumn(format!("#{i}"))),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining())
    }
}

impl<'de> SeqAccess<'de> for Columns<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let row: &'de Row = self.row;
        let i = self.next;
        match (row.values().get(i), row.columns().get(i)) {
            (Some(value), Some(name)) => {
                self.next += 1;
                seed.deserialize(ValueDeserializer { value })
                    .map(Some)
                    .map_err(|e| in_column(e, name))
            }
            _ => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.remaining())
    }
}

/// One value, as its wire type.
struct ValueDeserializer<'de> {
    value: &'de Value,
}

impl ValueDeserializer<'_> {
    fn mismatch<T>(&self, expected: &'static str) -> Result<T> {
        Err(Error::Conversion {
            expected,
            found: self.value.value_type(),
            column: None,
        })
    }

    /// The value as an integer, the way [`FromValue`](crate::FromValue) reads `i64`.
    fn integer(&self, expected: &'static str) -> Result<i64> {
        match self.value {
            Value::Integer(i) | Value::UnixTime(i) => Ok(*i),
            Value::Boolean(b) => Ok(i64::from(*b)),
            _ => self.mismatch(expected),
        }
    }
}

/// Integers, range-checked like [`FromValue`](crate::FromValue) checks them.
macro_rules! integer {
    ($($method:ident, $visit:ident, $t:ty);+ $(;)?) => {$(
        fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            let found = self.value.value_type();
            let i = self.integer(stringify!($t))?;
            let v = <$t>::try_from(i).map_err(|_| Error::Conversion {
                expected: concat!(stringify!($t), " (value out of range)"),
                found,
                column: None,
            })?;
            visitor.$visit(v)
        }
    )+};
}

impl<'de> Deserializer<'de> for ValueDeserializer<'de> {
    type Error = Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Integer(i) | Value::UnixTime(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Text(t) | Value::Iso8601(t) => visitor.visit_borrowed_str(t.as_str()),
            Value::Blob(b) => visitor.visit_borrowed_bytes(b),
            Value::Boolean(b) => visitor.visit_bool(*b),
        }
    }

    fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Integer(i) => visitor.visit_bool(*i != 0),
            _ => self.mismatch("bool"),
        }
    }

    integer! {
        deserialize_i8, visit_i8, i8;
        deserialize_i16, visit_i16, i16;
        deserialize_i32, visit_i32, i32;
        deserialize_i64, visit_i64, i64;
        deserialize_u8, visit_u8, u8;
        deserialize_u16, visit_u16, u16;
        deserialize_u32, visit_u32, u32;
        deserialize_u64, visit_u64, u64;
    }

    fn deserialize_f64<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Integer(i) => visitor.visit_f64(*i as f64),
            _ => self.mismatch("f64"),
        }
    }

    fn deserialize_f32<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Float(f) => visitor.visit_f32(*f as f32),
            Value::Integer(i) => visitor.visit_f32(*i as f32),
            _ => self.mismatch("f32"),
        }
    }

    fn deserialize_char<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Text(t) | Value::Iso8601(t) => visitor.visit_borrowed_str(t.as_str()),
            _ => self.mismatch("char"),
        }
    }

    fn deserialize_str<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Text(t) | Value::Iso8601(t) => visitor.visit_borrowed_str(t.as_str()),
            _ => self.mismatch("string"),
        }
    }

    fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Blob(b) => visitor.visit_borrowed_bytes(b),
            _ => self.mismatch("bytes"),
        }
    }

    fn deserialize_byte_buf<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            _ => self.mismatch("unit"),
        }
    }

    fn deserialize_unit_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    /// A BLOB reads as a sequence of its bytes (`Vec<u8>`, `[u8; N]`).
    fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Blob(b) => {
                let mut bytes = SeqDeserializer::<_, Error>::new(b.iter().copied());
                let out = visitor.visit_seq(&mut bytes)?;
                bytes.end()?;
                Ok(out)
            }
            _ => self.mismatch("sequence"),
        }
    }

    fn deserialize_tuple<V: de::Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        self.mismatch("map")
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value> {
        self.mismatch("struct")
    }

    /// A TEXT reads as the unit variant of that name.
    fn deserialize_enum<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.value {
            Value::Text(t) => visitor.visit_enum(BorrowedStrDeserializer::new(t.as_str())),
            _ => self.mismatch("enum"),
        }
    }

    fn deserialize_ignored_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i128 u128
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use dqlite_proto::{Text, ValueType};
    use serde::Deserialize;

    use super::*;

    fn row(columns: &[&str], values: Vec<Value>) -> Row {
        let columns: Arc<[Text]> = columns.iter().map(|c| Text::from(*c)).collect();
        let row = Row::from_batch(&columns, values).next().unwrap();
        row
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Color {
        Red,
        Blue,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Item {
        id: i64,
        #[serde(rename = "label")]
        name: String,
        price: f64,
        data: Vec<u8>,
        done: bool,
        note: Option<String>,
        missing: Option<i64>,
        #[serde(default)]
        count: u32,
        color: Color,
    }

    fn item_row() -> Row {
        row(
            &[
                "id", "label", "price", "data", "done", "note", "color", "extra",
            ],
            vec![
                Value::Integer(1),
                Value::from("pen"),
                Value::Integer(2),
                Value::from(vec![1u8, 2]),
                Value::Boolean(true),
                Value::Null,
                Value::from("blue"),
                Value::Float(0.5),
            ],
        )
    }

    #[test]
    fn structs_read_columns_by_name() {
        let item: Item = item_row().deserialize().unwrap();
        assert_eq!(
            item,
            Item {
                id: 1,
                name: "pen".into(),
                price: 2.0,
                data: vec![1, 2],
                done: true,
                note: None,
                missing: None,
                count: 0,
                color: Color::Blue,
            }
        );
        let De(again) = De::<Item>::from_row(&item_row()).unwrap();
        assert_eq!(again.color, Color::Blue);
        let _ = Color::Red;
    }

    #[test]
    fn tuples_sequences_maps_and_single_values() {
        let r = row(
            &["a", "b", "c"],
            vec![Value::Integer(1), Value::from("x"), Value::Null],
        );
        let t: (u8, String, Option<bool>) = r.deserialize().unwrap();
        assert_eq!(t, (1, "x".into(), None));
        let (a,): (i64,) = r.deserialize().unwrap();
        assert_eq!(a, 1);
        let all: Vec<Option<String>> = row(&["x", "y"], vec![Value::from("a"), Value::Null])
            .deserialize()
            .unwrap();
        assert_eq!(all, [Some("a".into()), None]);
        let map: BTreeMap<String, i64> = row(&["x", "y"], vec![1.into(), 2.into()])
            .deserialize()
            .unwrap();
        assert_eq!(map["y"], 2);
        let n: i64 = row(&["count(*)"], vec![Value::Integer(3)])
            .deserialize()
            .unwrap();
        assert_eq!(n, 3);
        let c: Color = row(&["c"], vec![Value::from("red")]).deserialize().unwrap();
        assert_eq!(c, Color::Red);
        let max: Option<i64> = row(&["max(x)"], vec![Value::Null]).deserialize().unwrap();
        assert_eq!(max, None);
        let max: Option<i64> = row(&["max(x)"], vec![Value::Integer(4)])
            .deserialize()
            .unwrap();
        assert_eq!(max, Some(4));
        let item: Option<Item> = item_row().deserialize().unwrap();
        assert_eq!(item.map(|i| i.id), Some(1));
    }

    #[test]
    fn errors_name_the_column_and_both_types() {
        let r = row(&["id", "name"], vec![Value::from("one"), Value::from("x")]);
        let e = r.deserialize::<(i64, String)>().unwrap_err();
        assert!(
            matches!(&e, Error::Conversion { expected: "i64", found: ValueType::Text, column: Some(c) } if c == "id"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "cannot convert Text value of column id to i64"
        );
        let e = row(&["n"], vec![Value::Integer(300)])
            .deserialize::<(u8,)>()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot convert Integer value of column n to u8 (value out of range)"
        );
        let e = row(&["id"], vec![Value::Integer(1)])
            .deserialize::<Item>()
            .unwrap_err();
        assert!(
            matches!(&e, Error::NoSuchColumn(c) if c == "label"),
            "{e:?}"
        );
        let e = row(&["c"], vec![Value::from("green")])
            .deserialize::<(Color,)>()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Deserialize { column: Some(c), message } if c == "c" && message.contains("green")),
            "{e:?}"
        );
        let e = row(&["a"], vec![Value::Integer(1)])
            .deserialize::<(i64, i64)>()
            .unwrap_err();
        assert!(
            matches!(&e, Error::Deserialize { column: None, .. }),
            "{e:?}"
        );
        let e = row(&["b"], vec![Value::Null])
            .deserialize::<(bool,)>()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot convert Null value of column b to bool"
        );
    }
}
