//! Conversions from received values to Rust types, failing with a typed error.

use bytes::Bytes;
use dqlite_proto::{Text, Value};

use crate::error::{Error, Result};

/// A Rust type that a received [`Value`] converts to. Conversions are strict: a TEXT value is
/// not an integer, and NULL is only accepted by `Option<T>` and [`Value`].
///
/// | Rust type | accepted wire types |
/// | --- | --- |
/// | `i64` | INTEGER, UNIXTIME, BOOLEAN (0/1) |
/// | `i8`..`i32`, `u8`..`u64`, `usize` | as `i64`, failing when out of range |
/// | `f64`, `f32` | FLOAT, INTEGER |
/// | `bool` | BOOLEAN, INTEGER (0 is false) |
/// | `String`, [`Text`] | TEXT, ISO8601 |
/// | `Vec<u8>`, [`Bytes`] | BLOB |
/// | `Option<T>` | NULL as `None` ([`reads_as_none`](FromValue::reads_as_none)), else as `T` |
/// | [`Value`] | anything |
/// | `chrono` and `time` dates and times (features `chrono`, `time`) | ISO8601 and TEXT in go-dqlite's layouts, UNIXTIME (see [`types`](crate::types)) |
/// | `uuid::Uuid`, `UuidBlob` (feature `uuid`) | TEXT (hyphenated), BLOB (16 bytes) |
/// | `serde_json::Value`, `Json<T>` (feature `json`) | TEXT holding JSON |
pub trait FromValue: Sized {
    /// Converts, or fails with [`Error::Conversion`].
    fn from_value(value: &Value) -> Result<Self>;

    /// Whether `value` stands for SQL NULL when read as `Option<Self>`. NULL always does; the
    /// date and time types also take the empty ISO8601 text `""` as NULL, which is how
    /// released servers send a NULL stored in a `DATE`, `DATETIME` or `TIMESTAMP` column.
    fn reads_as_none(value: &Value) -> bool {
        matches!(value, Value::Null)
    }
}

pub(crate) fn mismatch<T>(expected: &'static str, v: &Value) -> Result<T> {
    Err(Error::Conversion {
        expected,
        found: v.value_type(),
        column: None,
    })
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self> {
        Ok(v.clone())
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Integer(i) | Value::UnixTime(i) => Ok(*i),
            Value::Boolean(b) => Ok(i64::from(*b)),
            _ => mismatch("i64", v),
        }
    }
}

/// Integers narrower than `i64`, or unsigned: converted from `i64` with a range check.
macro_rules! from_integer {
    ($($t:ty),+) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self> {
                let Ok(wide) = i64::from_value(v) else {
                    return mismatch(stringify!($t), v);
                };
                <$t>::try_from(wide).or_else(|_| mismatch(concat!(stringify!($t), " (value out of range)"), v))
            }
        }
    )+};
}

from_integer!(i8, i16, i32, u8, u16, u32, u64, usize);

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Float(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            _ => mismatch("f64", v),
        }
    }
}

impl FromValue for f32 {
    /// Narrowed from `f64` (precision may be lost, as with `as f32`).
    fn from_value(v: &Value) -> Result<Self> {
        f64::from_value(v)
            .map(|f| f as f32)
            .or_else(|_| mismatch("f32", v))
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Boolean(b) => Ok(*b),
            Value::Integer(i) => Ok(*i != 0),
            _ => mismatch("bool", v),
        }
    }
}

impl FromValue for Text {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(t) | Value::Iso8601(t) => Ok(t.clone()),
            _ => mismatch("text", v),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self> {
        Text::from_value(v).map(String::from)
    }
}

impl FromValue for Bytes {
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            _ => mismatch("bytes", v),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self> {
        Bytes::from_value(v).map(Vec::from)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self> {
        if T::reads_as_none(v) {
            Ok(None)
        } else {
            T::from_value(v).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_conversions() {
        assert_eq!(i64::from_value(&Value::Integer(5)).unwrap(), 5);
        assert!(matches!(
            i64::from_value(&Value::from("5")),
            Err(Error::Conversion {
                expected: "i64",
                ..
            })
        ));
        assert!(i64::from_value(&Value::Null).is_err());
        assert_eq!(Option::<i64>::from_value(&Value::Null).unwrap(), None);
        assert_eq!(String::from_value(&Value::from("x")).unwrap(), "x");
        assert!(i32::from_value(&Value::Integer(1 << 40)).is_err());
        assert!(bool::from_value(&Value::Boolean(true)).unwrap());
        assert_eq!(Vec::<u8>::from_value(&Value::from(vec![1u8])).unwrap(), [1]);
        assert!(Vec::<u8>::from_value(&Value::from("x")).is_err());
        // A mismatch names the type asked for, also when it converts through another.
        for (e, expected) in [
            (u32::from_value(&Value::from("x")).unwrap_err(), "u32"),
            (f32::from_value(&Value::Null).unwrap_err(), "f32"),
        ] {
            assert!(
                matches!(e, Error::Conversion { expected: x, .. } if x == expected),
                "{e:?}"
            );
        }
    }
}
