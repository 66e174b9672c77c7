//! JSON as TEXT (feature `json`): `serde_json::Value` and [`Json<T>`] for any serde type.

use dqlite_proto::{Text, Value};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::convert::{mismatch, FromValue};
use crate::error::{Error, Misuse, Result};
use crate::params::Param;

/// A value stored as JSON TEXT: as a parameter it is serialized with `serde_json`, as a
/// result a TEXT value is deserialized into `T`.
///
/// ```
/// use dqlite_client::{FromValue, Json, Param, Value};
/// let tags = Json(vec!["a".to_owned(), "b".to_owned()]);
/// let sent = tags.clone().into_value(1).unwrap();
/// assert_eq!(sent, Value::from(r#"["a","b"]"#));
/// assert_eq!(Json::<Vec<String>>::from_value(&sent).unwrap(), tags);
/// ```
///
/// A result that is not TEXT, or not JSON that `T` deserializes from, is an
/// [`Error::Conversion`]; a `T` whose serialization fails (a map with non-string keys, a
/// `Serialize` impl that fails) is refused before sending with
/// [`Misuse::ParamNotRepresentable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The wrapped value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: Serialize> Param for Json<T> {
    fn into_value(self, index: usize) -> Result<Value> {
        serde_json::to_string(&self.0)
            .map(|s| Value::Text(Text::from(s)))
            .map_err(|e| {
                Error::Misuse(Misuse::ParamNotRepresentable {
                    index,
                    reason: format!("JSON serialization failed: {e}"),
                })
            })
    }
}

impl<T: DeserializeOwned> FromValue for Json<T> {
    /// From TEXT holding JSON that `T` deserializes from.
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(t) => serde_json::from_str(t.as_str())
                .map(Json)
                .or_else(|_| mismatch("Json<T> (JSON text that T deserializes from)", v)),
            _ => mismatch("Json<T> (JSON text)", v),
        }
    }
}

impl Param for serde_json::Value {
    /// The JSON text.
    fn into_value(self, _index: usize) -> Result<Value> {
        Ok(Value::Text(Text::from(self.to_string())))
    }
}

impl Param for &serde_json::Value {
    /// The JSON text.
    fn into_value(self, _index: usize) -> Result<Value> {
        Ok(Value::Text(Text::from(self.to_string())))
    }
}

impl FromValue for serde_json::Value {
    /// From TEXT holding JSON.
    fn from_value(v: &Value) -> Result<Self> {
        match v {
            Value::Text(t) => serde_json::from_str(t.as_str())
                .or_else(|_| mismatch("serde_json::Value (JSON text)", v)),
            _ => mismatch("serde_json::Value (JSON text)", v),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn json_text_both_ways() {
        let doc = serde_json::json!({"a": [1, 2.5, null], "b": "x"});
        let sent = (&doc).into_value(1).unwrap();
        assert_eq!(sent, Value::from(r#"{"a":[1,2.5,null],"b":"x"}"#));
        assert_eq!(serde_json::Value::from_value(&sent).unwrap(), doc);
        assert!(matches!(
            serde_json::Value::from_value(&Value::from("{")),
            Err(Error::Conversion { .. })
        ));
        assert!(serde_json::Value::from_value(&Value::Integer(1)).is_err());
        assert!(Json::<Vec<i64>>::from_value(&Value::from(r#"{"a":1}"#)).is_err());
        assert_eq!(Option::<Json<i64>>::from_value(&Value::Null).unwrap(), None);

        let bad: BTreeMap<Vec<u8>, i64> = [(vec![1], 1)].into();
        let e = Json(bad).into_value(4).unwrap_err();
        assert!(
            matches!(
                e.misuse(),
                Some(Misuse::ParamNotRepresentable { index: 4, .. })
            ),
            "{e:?}"
        );
    }
}
