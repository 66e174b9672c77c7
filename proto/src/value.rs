//! Values as they travel on the wire, keeping the wire type.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use crate::encoding::Reader;
use crate::error::Malformed;

/// UTF-8 text that shares the received frame's memory (no copy).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Text(Bytes);

impl Text {
    /// Validates `bytes` as UTF-8 and wraps them without copying.
    pub fn from_utf8(bytes: Bytes) -> Result<Text, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Text(bytes))
    }

    /// Wraps bytes the caller has just checked to be UTF-8.
    pub(crate) fn from_validated(bytes: Bytes) -> Text {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Text(bytes)
    }

    /// Text from a static string.
    pub const fn from_static(s: &'static str) -> Text {
        Text(Bytes::from_static(s.as_bytes()))
    }

    /// The text as `&str`.
    pub fn as_str(&self) -> &str {
        #[allow(unsafe_code)]
        // SAFETY: `self.0` is UTF-8 and immutable. `from_utf8` validates; `from_static` and
        // the `From<String>`/`From<&str>` impls start from `str`; `from_validated` has one
        // caller, `Reader::text` in encoding.rs, which validates unless `find_nul_byte` reports
        // every byte before the terminator as ASCII. That flag is what this relies on: the
        // property test `nul_search_and_text_reader_agree_with_the_plain_definitions` (and
        // the exhaustive one beside it) check it against a byte-by-byte reading.
        unsafe {
            std::str::from_utf8_unchecked(&self.0)
        }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s.into_bytes()))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.as_str().to_owned()
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire type codes of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueType {
    /// 64-bit signed integer.
    Integer = 1,
    /// IEEE-754 double.
    Float = 2,
    /// UTF-8 text.
    Text = 3,
    /// Raw bytes.
    Blob = 4,
    /// SQL NULL.
    Null = 5,
    /// Seconds since the epoch: an INTEGER stored in a DATETIME/DATE/TIMESTAMP column.
    UnixTime = 9,
    /// Date/time text: TEXT stored in a DATETIME/DATE/TIMESTAMP column.
    Iso8601 = 10,
    /// An INTEGER stored in a BOOLEAN column.
    Boolean = 11,
}

impl ValueType {
    /// The type for a wire code, if the protocol defines one.
    pub fn from_code(code: u8) -> Option<ValueType> {
        Some(match code {
            1 => ValueType::Integer,
            2 => ValueType::Float,
            3 => ValueType::Text,
            4 => ValueType::Blob,
            5 => ValueType::Null,
            9 => ValueType::UnixTime,
            10 => ValueType::Iso8601,
            11 => ValueType::Boolean,
            _ => return None,
        })
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One value, with the type the server put on the wire.
///
/// # NULL across server generations
/// Released servers (1.11 through 1.18) send a NULL stored in a column declared `BOOLEAN` as
/// `Boolean(false)` and one in a `DATE`/`DATETIME`/`TIMESTAMP` column as `Iso8601("")`; a server
/// with the NULL-type fix sends [`Value::Null`]. The core decodes exactly what was sent; select
/// `+col` instead of `col` to get the stored value (NULL included) from every server.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A double.
    Float(f64),
    /// UTF-8 text (must not contain NUL to be sent).
    Text(#[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_text))] Text),
    /// Raw bytes.
    Blob(#[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_bytes))] Bytes),
    /// Seconds since the epoch (received only; sent as an integer).
    UnixTime(i64),
    /// Date/time text (sent as text with the ISO8601 tag).
    Iso8601(#[cfg_attr(feature = "arbitrary", arbitrary(with = arbitrary_text))] Text),
    /// A boolean (sent as an integer 0/1 with the BOOLEAN tag).
    Boolean(bool),
}

#[cfg(feature = "arbitrary")]
fn arbitrary_text(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Text> {
    Ok(Text::from(<String as arbitrary::Arbitrary>::arbitrary(u)?))
}

#[cfg(feature = "arbitrary")]
fn arbitrary_bytes(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Bytes> {
    Ok(Bytes::from(<Vec<u8> as arbitrary::Arbitrary>::arbitrary(
        u,
    )?))
}

impl Value {
    /// The wire type of this value as received.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Null => ValueType::Null,
            Value::Integer(_) => ValueType::Integer,
            Value::Float(_) => ValueType::Float,
            Value::Text(_) => ValueType::Text,
            Value::Blob(_) => ValueType::Blob,
            Value::UnixTime(_) => ValueType::UnixTime,
            Value::Iso8601(_) => ValueType::Iso8601,
            Value::Boolean(_) => ValueType::Boolean,
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The type code used when this value is sent as a parameter. UNIXTIME is not accepted
    /// by servers as a parameter, so it travels as an INTEGER.
    pub(crate) fn param_type(&self) -> ValueType {
        match self {
            Value::UnixTime(_) => ValueType::Integer,
            v => v.value_type(),
        }
    }

    /// Text inside this value (for the NUL check before sending).
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Value::Text(t) | Value::Iso8601(t) => Some(t.as_str()),
            _ => None,
        }
    }

    /// Appends the value's encoding (no type byte).
    pub(crate) fn encode(&self, buf: &mut Vec<u8>) {
        use crate::encoding::{put_blob, put_text, put_u64};
        match self {
            Value::Null => put_u64(buf, 0),
            Value::Integer(i) | Value::UnixTime(i) => put_u64(buf, *i as u64),
            Value::Float(f) => put_u64(buf, f.to_bits()),
            Value::Text(t) | Value::Iso8601(t) => put_text(buf, t),
            Value::Blob(b) => put_blob(buf, b),
            Value::Boolean(b) => put_u64(buf, u64::from(*b)),
        }
    }

    /// Reads one value of type `ty`.
    pub(crate) fn decode(ty: ValueType, r: &mut Reader) -> Result<Value, Malformed> {
        Ok(match ty {
            ValueType::Integer => Value::Integer(r.u64("integer")? as i64),
            ValueType::Float => Value::Float(f64::from_bits(r.u64("float")?)),
            ValueType::Text => Value::Text(r.text("text")?),
            ValueType::Blob => Value::Blob(r.blob("blob")?),
            ValueType::Null => {
                r.u64("null")?;
                Value::Null
            }
            ValueType::UnixTime => Value::UnixTime(r.u64("unixtime")? as i64),
            ValueType::Iso8601 => Value::Iso8601(r.text("iso8601")?),
            ValueType::Boolean => Value::Boolean(r.u64("boolean")? != 0),
        })
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Integer(v)
    }
}

macro_rules! from_small_int {
    ($($t:ty),+) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Integer(i64::from(v))
            }
        }
    )+};
}

from_small_int!(i8, i16, i32, u8, u16, u32);

impl From<Text> for Value {
    fn from(v: Text) -> Value {
        Value::Text(v)
    }
}

impl From<Bytes> for Value {
    fn from(v: Bytes) -> Value {
        Value::Blob(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Value {
        Value::Float(f64::from(v))
    }
}

impl TryFrom<u64> for Value {
    type Error = std::num::TryFromIntError;

    /// An INTEGER, if `v` fits in SQLite's 64-bit signed integers.
    fn try_from(v: u64) -> Result<Value, Self::Error> {
        i64::try_from(v).map(Value::Integer)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Boolean(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Text::from(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(Text::from(v))
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Value {
        Value::Blob(Bytes::copy_from_slice(v))
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::from(v.as_str())
    }
}

impl<const N: usize> From<&[u8; N]> for Value {
    fn from(v: &[u8; N]) -> Value {
        Value::from(v.as_slice())
    }
}

impl From<&Vec<u8>> for Value {
    fn from(v: &Vec<u8>) -> Value {
        Value::from(v.as_slice())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Value {
        Value::Blob(Bytes::from(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}
