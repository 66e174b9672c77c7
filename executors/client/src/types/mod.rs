//! Everyday types behind cargo features: dates and times from `chrono` and `time`, `uuid`
//! and JSON through `serde_json`. Each converts both ways: [`Param`](crate::Param) to send
//! it, [`FromValue`](crate::FromValue) to read it.
//!
//! # Dates and times
//!
//! Parameters are sent as ISO8601 text in the layout go-dqlite's driver writes for a Go
//! `time.Time`, so Go programs read them back as `time.Time`:
//!
//! | Rust type | written |
//! | --- | --- |
//! | `chrono::DateTime<Utc>`, `chrono::DateTime<FixedOffset>`, `time::OffsetDateTime` | `2006-01-02 15:04:05.999999999-07:00` (`+00:00` for UTC) |
//! | `chrono::NaiveDateTime`, `time::PrimitiveDateTime` | `2006-01-02 15:04:05.999999999` |
//! | `chrono::NaiveDate`, `time::Date` | `2006-01-02` |
//! | `chrono::NaiveTime`, `time::Time` | `15:04:05.999999999` |
//!
//! Go has no time-of-day type: go-dqlite's driver returns a time of day stored in a `TIME` or
//! `TEXT` column as a string, and fails to scan one stored in a date column.
//!
//! The fraction has no trailing zeros and is left out when zero. Years outside 0000 to 9999,
//! leap seconds and offsets that are not whole minutes are refused with
//! [`Misuse::ParamNotRepresentable`](crate::Misuse::ParamNotRepresentable).
//!
//! Results are read from ISO8601 and TEXT values in every layout go-dqlite reads: a date
//! `YYYY-MM-DD`, optionally followed by ` ` or `T` and `HH:MM`, or `HH:MM:SS` with an
//! optional fraction and an optional `±HH:MM` offset, and optionally a final `Z` (UTC). The
//! time-of-day types also read `HH:MM[:SS[.f]]` alone. UNIXTIME values (integers stored in a
//! date column) are seconds since the Unix epoch, UTC.
//!
//! Zones: a value without an offset is UTC for the zoned types, as go-dqlite reads it. The
//! types without a zone (`NaiveDateTime`, `NaiveDate`, `NaiveTime`, `PrimitiveDateTime`,
//! `Date`, `Time`) read the wall time as written, dropping any offset:
//! `2024-03-01 09:30:00+05:30` is `2024-03-01 09:30:00`. Read a zoned type to keep the
//! instant. A UNIXTIME value reads as its UTC wall time.
//!
//! NULL: released servers send a NULL stored in a `DATE`, `DATETIME` or `TIMESTAMP` column
//! as the empty ISO8601 text; `Option<T>` of a date or time type reads it as `None`, like a
//! real NULL (see [`FromValue::reads_as_none`](crate::FromValue::reads_as_none)).
//!
//! # Uuid and JSON
//!
//! A `uuid::Uuid` parameter is hyphenated lowercase TEXT; `UuidBlob` sends the 16 bytes as
//! a BLOB. Either form reads back as `Uuid` (or `UuidBlob`). `serde_json::Value` and
//! `Json<T>` are JSON TEXT both ways; keep them in `TEXT` columns, since a column
//! declared `JSON` has numeric affinity and stores `123` as an integer.

#[cfg(any(feature = "chrono", feature = "time"))]
mod datetime;
#[cfg(feature = "chrono")]
mod with_chrono;
#[cfg(feature = "json")]
mod with_json;
#[cfg(feature = "time")]
mod with_time;
#[cfg(feature = "uuid")]
mod with_uuid;

#[cfg(feature = "json")]
pub use with_json::Json;
#[cfg(feature = "uuid")]
pub use with_uuid::UuidBlob;

/// Implements `FromValue` for date and time types that implement `datetime::FromStamp`.
#[cfg(any(feature = "chrono", feature = "time"))]
macro_rules! stamp_from_value {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::FromValue for $t {
            fn from_value(value: &dqlite_proto::Value) -> $crate::Result<Self> {
                super::datetime::read(value)
            }

            fn reads_as_none(value: &dqlite_proto::Value) -> bool {
                super::datetime::reads_as_none(value)
            }
        }
    )+};
}

#[cfg(any(feature = "chrono", feature = "time"))]
use stamp_from_value;
