//! Rust types as parameters and results: `Type`, `Encode` and `Decode` for [`Dqlite`].
//!
//! Parameters are sent as the async client sends them, and results are converted with the
//! client's strict conversions ([`dqlite_client::FromValue`]): a TEXT value is not an
//! integer, NULL is only read by `Option<T>`.
//!
//! | Rust type | sent as | read from |
//! | --- | --- | --- |
//! | `i64`, `i32`, `i16`, `i8`, `u32`, `u16`, `u8` | INTEGER | INTEGER, UNIXTIME, BOOLEAN (narrower types range-checked) |
//! | `bool` | BOOLEAN (0/1) | BOOLEAN, INTEGER |
//! | `f64`, `f32` | FLOAT | FLOAT, INTEGER |
//! | `String`, `&str` | TEXT | TEXT, ISO8601 |
//! | `Vec<u8>`, `&[u8]` | BLOB | BLOB |
//! | `Option<T>` | NULL for `None` | NULL as `None` |
//! | `chrono` types (feature `chrono`) | go-dqlite's date layouts | ISO8601, TEXT, UNIXTIME |
//! | `time` types (feature `time`) | go-dqlite's date layouts | ISO8601, TEXT, UNIXTIME |
//! | `uuid::Uuid` (feature `uuid`) | TEXT, hyphenated | TEXT, 16-byte BLOB |
//! | `serde_json::Value`, [`Json<T>`](dqlite_client::Json) (feature `json`) | TEXT | TEXT |

use dqlite_client::{FromValue, Param, Value, ValueType};
use sqlx_core::decode::Decode;
use sqlx_core::encode::{Encode, IsNull};
use sqlx_core::error::BoxDynError;
use sqlx_core::types::Type;

use crate::database::{Dqlite, DqliteTypeInfo, DqliteValueRef};

/// Appends `param` as the next parameter, converted as the client converts it.
fn push<P: Param>(buf: &mut Vec<Value>, param: P) -> Result<IsNull, BoxDynError> {
    let value = param.into_value(buf.len() + 1)?;
    let null = matches!(value, Value::Null);
    buf.push(value);
    Ok(if null { IsNull::Yes } else { IsNull::No })
}

/// Converts a received value with the client's conversion for `T`.
fn read<T: FromValue>(value: DqliteValueRef<'_>) -> Result<T, BoxDynError> {
    Ok(T::from_value(value.0)?)
}

macro_rules! scalar {
    ($t:ty, $info:expr, [$($compatible:path),*]) => {
        impl Type<Dqlite> for $t {
            fn type_info() -> DqliteTypeInfo {
                $info
            }

            fn compatible(ty: &DqliteTypeInfo) -> bool {
                matches!(ty.0, $($compatible)|*)
            }
        }

        impl<'q> Encode<'q, Dqlite> for $t {
            fn encode_by_ref(&self, buf: &mut Vec<Value>) -> Result<IsNull, BoxDynError> {
                push(buf, self.clone())
            }
        }

        impl<'r> Decode<'r, Dqlite> for $t {
            fn decode(value: DqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                read(value)
            }
        }
    };
}

const INTEGERS: DqliteTypeInfo = DqliteTypeInfo::INTEGER;

scalar!(
    i64,
    INTEGERS,
    [ValueType::Integer, ValueType::UnixTime, ValueType::Boolean]
);
scalar!(
    i32,
    INTEGERS,
    [ValueType::Integer, ValueType::UnixTime, ValueType::Boolean]
);
scalar!(i16, INTEGERS, [ValueType::Integer, ValueType::Boolean]);
scalar!(i8, INTEGERS, [ValueType::Integer, ValueType::Boolean]);
scalar!(
    u32,
    INTEGERS,
    [ValueType::Integer, ValueType::UnixTime, ValueType::Boolean]
);
scalar!(u16, INTEGERS, [ValueType::Integer, ValueType::Boolean]);
scalar!(u8, INTEGERS, [ValueType::Integer, ValueType::Boolean]);
scalar!(
    bool,
    DqliteTypeInfo::BOOLEAN,
    [ValueType::Boolean, ValueType::Integer]
);
scalar!(
    f64,
    DqliteTypeInfo::FLOAT,
    [ValueType::Float, ValueType::Integer]
);
scalar!(
    f32,
    DqliteTypeInfo::FLOAT,
    [ValueType::Float, ValueType::Integer]
);
scalar!(
    String,
    DqliteTypeInfo::TEXT,
    [ValueType::Text, ValueType::Iso8601]
);
scalar!(Vec<u8>, DqliteTypeInfo::BLOB, [ValueType::Blob]);

impl Type<Dqlite> for str {
    fn type_info() -> DqliteTypeInfo {
        DqliteTypeInfo::TEXT
    }

    fn compatible(ty: &DqliteTypeInfo) -> bool {
        matches!(ty.0, ValueType::Text | ValueType::Iso8601)
    }
}

impl<'q> Encode<'q, Dqlite> for &'q str {
    fn encode_by_ref(&self, buf: &mut Vec<Value>) -> Result<IsNull, BoxDynError> {
        push(buf, *self)
    }
}

impl<'r> Decode<'r, Dqlite> for &'r str {
    fn decode(value: DqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.0 {
            Value::Text(t) | Value::Iso8601(t) => Ok(t.as_str()),
            other => Err(format!("cannot decode {:?} value as &str", other.value_type()).into()),
        }
    }
}

impl Type<Dqlite> for [u8] {
    fn type_info() -> DqliteTypeInfo {
        DqliteTypeInfo::BLOB
    }

    fn compatible(ty: &DqliteTypeInfo) -> bool {
        ty.0 == ValueType::Blob
    }
}

impl<'q> Encode<'q, Dqlite> for &'q [u8] {
    fn encode_by_ref(&self, buf: &mut Vec<Value>) -> Result<IsNull, BoxDynError> {
        push(buf, *self)
    }
}

impl<'r> Decode<'r, Dqlite> for &'r [u8] {
    fn decode(value: DqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.0 {
            Value::Blob(b) => Ok(b),
            other => Err(format!("cannot decode {:?} value as &[u8]", other.value_type()).into()),
        }
    }
}

/// Types whose conversions the client defines behind a feature: sent and read exactly as
/// the client does.
#[allow(unused_macros)]
macro_rules! client_type {
    ($t:ty, $info:expr, [$($compatible:path),*]) => {
        impl Type<Dqlite> for $t {
            fn type_info() -> DqliteTypeInfo {
                $info
            }

            fn compatible(ty: &DqliteTypeInfo) -> bool {
                matches!(ty.0, $($compatible)|*)
            }
        }

        impl<'q> Encode<'q, Dqlite> for $t {
            fn encode_by_ref(&self, buf: &mut Vec<Value>) -> Result<IsNull, BoxDynError> {
                push(buf, self.clone())
            }
        }

        impl<'r> Decode<'r, Dqlite> for $t {
            fn decode(value: DqliteValueRef<'r>) -> Result<Self, BoxDynError> {
                read(value)
            }
        }
    };
}

#[cfg(feature = "chrono")]
mod with_chrono {
    use super::*;
    use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};

    client_type!(
        NaiveDateTime,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
    client_type!(
        NaiveDate,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
    client_type!(
        NaiveTime,
        DqliteTypeInfo::TEXT,
        [ValueType::Iso8601, ValueType::Text]
    );
    client_type!(
        DateTime<FixedOffset>,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
    client_type!(
        DateTime<Utc>,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
}

#[cfg(feature = "time")]
mod with_time {
    use super::*;
    use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

    client_type!(
        PrimitiveDateTime,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
    client_type!(
        Date,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
    client_type!(
        Time,
        DqliteTypeInfo::TEXT,
        [ValueType::Iso8601, ValueType::Text]
    );
    client_type!(
        OffsetDateTime,
        DqliteTypeInfo::ISO8601,
        [ValueType::Iso8601, ValueType::Text, ValueType::UnixTime]
    );
}

#[cfg(feature = "uuid")]
mod with_uuid {
    use super::*;

    client_type!(
        uuid::Uuid,
        DqliteTypeInfo::TEXT,
        [ValueType::Text, ValueType::Blob]
    );
}

#[cfg(feature = "json")]
mod with_json {
    use super::*;
    use dqlite_client::Json;
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    client_type!(serde_json::Value, DqliteTypeInfo::TEXT, [ValueType::Text]);

    impl<T> Type<Dqlite> for Json<T> {
        fn type_info() -> DqliteTypeInfo {
            DqliteTypeInfo::TEXT
        }

        fn compatible(ty: &DqliteTypeInfo) -> bool {
            ty.0 == ValueType::Text
        }
    }

    impl<'q, T: Serialize + Clone> Encode<'q, Dqlite> for Json<T> {
        fn encode_by_ref(&self, buf: &mut Vec<Value>) -> Result<IsNull, BoxDynError> {
            push(buf, self.clone())
        }
    }

    impl<'r, T: DeserializeOwned> Decode<'r, Dqlite> for Json<T> {
        fn decode(value: DqliteValueRef<'r>) -> Result<Self, BoxDynError> {
            read(value)
        }
    }
}
