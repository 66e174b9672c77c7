//! `uuid::Uuid` (feature `uuid`): TEXT by default, a 16-byte BLOB with [`UuidBlob`].

use bytes::Bytes;
use dqlite_proto::{Text, Value};
use uuid::Uuid;

use crate::convert::{mismatch, FromValue};
use crate::error::Result;
use crate::params::Param;

/// A [`Uuid`] sent as a 16-byte BLOB (its bytes in order, as [`Uuid::as_bytes`]) instead of
/// the hyphenated TEXT that a `Uuid` parameter is. Reads like `Uuid`, from either form.
///
/// ```
/// use dqlite_client::{Param, UuidBlob, Value};
/// let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
/// assert_eq!(UuidBlob(id).into_value(1).unwrap(), Value::from(id.as_bytes()));
/// assert_eq!(
///     id.into_value(1).unwrap(),
///     Value::from("01234567-89ab-cdef-0123-456789abcdef")
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UuidBlob(pub Uuid);

impl From<Uuid> for UuidBlob {
    fn from(id: Uuid) -> Self {
        UuidBlob(id)
    }
}

impl From<UuidBlob> for Uuid {
    fn from(id: UuidBlob) -> Self {
        id.0
    }
}

impl Param for Uuid {
    /// Hyphenated lowercase TEXT, `01234567-89ab-cdef-0123-456789abcdef`.
    fn into_value(self, _index: usize) -> Result<Value> {
        Ok(Value::Text(Text::from(self.hyphenated().to_string())))
    }
}

impl Param for UuidBlob {
    /// A 16-byte BLOB.
    fn into_value(self, _index: usize) -> Result<Value> {
        Ok(Value::Blob(Bytes::copy_from_slice(self.0.as_bytes())))
    }
}

impl FromValue for Uuid {
    /// From hyphenated TEXT (either case, 36 characters) or a 16-byte BLOB.
    fn from_value(v: &Value) -> Result<Self> {
        let id = match v {
            Value::Text(t) if t.as_str().len() == 36 => Uuid::try_parse(t.as_str()).ok(),
            Value::Blob(b) => Uuid::from_slice(b).ok(),
            _ => None,
        };
        id.map_or_else(|| mismatch("uuid::Uuid", v), Ok)
    }
}

impl FromValue for UuidBlob {
    /// As [`Uuid`]: hyphenated TEXT or a 16-byte BLOB.
    fn from_value(v: &Value) -> Result<Self> {
        Uuid::from_value(v).map(UuidBlob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn text_and_blob_forms() {
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let text = id.into_value(1).unwrap();
        let blob = UuidBlob(id).into_value(1).unwrap();
        assert_eq!(Uuid::from_value(&text).unwrap(), id);
        assert_eq!(Uuid::from_value(&blob).unwrap(), id);
        assert_eq!(UuidBlob::from_value(&text).unwrap(), UuidBlob(id));
        assert_eq!(
            Uuid::from_value(&Value::from("01234567-89AB-CDEF-0123-456789ABCDEF")).unwrap(),
            id
        );
        for bad in [
            Value::from("0123456789abcdef0123456789abcdef"),
            Value::from("{01234567-89ab-cdef-0123-456789abcdef}"),
            Value::from("01234567-89ab-cdef-0123-456789abcdeg"),
            Value::from(&[0u8; 15][..]),
            Value::Integer(1),
        ] {
            assert!(
                matches!(
                    Uuid::from_value(&bad),
                    Err(Error::Conversion {
                        expected: "uuid::Uuid",
                        ..
                    })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(Option::<Uuid>::from_value(&Value::Null).unwrap(), None);
    }
}
