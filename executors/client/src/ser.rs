//! Statement parameters from serde types (feature `serde`).

use dqlite_proto::Value;
use serde::ser::{self, Impossible, Serialize, Serializer};

use crate::error::{Error, Misuse, Result};

impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error::Misuse(Misuse::Serialize(msg.to_string()))
    }
}

fn refuse<T>(why: impl std::fmt::Display) -> Result<T> {
    Err(Error::Misuse(Misuse::Serialize(why.to_string())))
}

/// Positional parameters from a struct, tuple or sequence (feature `serde`): each field or
/// element becomes one parameter, in order.
///
/// dqlite binds parameters by position, so the struct's field order must match the
/// statement's placeholders (`?` or `?NNN` in that order); field names are not used.
///
/// Each field converts as its serde type: integers to INTEGER (a `u64` above `i64::MAX` is
/// refused, as [`Misuse::ParamOutOfRange`]), floats to FLOAT, `bool` to BOOLEAN, strings and
/// `char` to TEXT, bytes and sequences of `u8` (`Vec<u8>`, `[u8; N]`) to BLOB, `None` and
/// `()` to NULL, a unit enum variant to TEXT (its name); newtype structs are unwrapped.
/// Maps, nested structs, other sequences and enum variants with data are refused
/// ([`Misuse::Serialize`]), before anything is sent.
///
/// ```no_run
/// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
/// #[derive(serde::Serialize)]
/// struct NewItem<'a> {
///     id: i64,
///     name: &'a str,
///     price: Option<f64>,
/// }
/// let item = NewItem { id: 1, name: "pen", price: None };
/// let params = dqlite_client::params_from(&item)?;
/// conn.execute("INSERT INTO items (id, name, price) VALUES (?, ?, ?)", params).await?;
/// # Ok(()) }
/// ```
pub fn params_from<T: Serialize + ?Sized>(value: &T) -> Result<Vec<Value>> {
    value.serialize(ParamsSerializer)
}

/// The top level: a list of parameters.
struct ParamsSerializer;

/// Collects the parameters of a struct, tuple or sequence.
struct ParamList {
    values: Vec<Value>,
}

impl ParamList {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let index = self.values.len() + 1;
        let mut byte = false;
        let v = value.serialize(ValueSerializer {
            index,
            byte: &mut byte,
        })?;
        self.values.push(v);
        Ok(())
    }
}

impl ser::SerializeSeq for ParamList {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Vec<Value>> {
        Ok(self.values)
    }
}

impl ser::SerializeTuple for ParamList {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Vec<Value>> {
        Ok(self.values)
    }
}

impl ser::SerializeTupleStruct for ParamList {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Vec<Value>> {
        Ok(self.values)
    }
}

impl ser::SerializeStruct for ParamList {
    type Ok = Vec<Value>;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Vec<Value>> {
        Ok(self.values)
    }
}

const NOT_A_LIST: &str =
    "parameters come from a struct, a tuple or a sequence (one value: a 1-tuple `(x,)`)";

/// Refuses, at the top level, what is not a list of parameters.
macro_rules! not_a_list {
    ($($method:ident($($arg:ty),*)),+ $(,)?) => {$(
        fn $method(self, $(_: $arg),*) -> Result<Vec<Value>> {
            refuse(NOT_A_LIST)
        }
    )+};
}

impl Serializer for ParamsSerializer {
    type Ok = Vec<Value>;
    type Error = Error;
    type SerializeSeq = ParamList;
    type SerializeTuple = ParamList;
    type SerializeTupleStruct = ParamList;
    type SerializeTupleVariant = Impossible<Vec<Value>, Error>;
    type SerializeMap = Impossible<Vec<Value>, Error>;
    type SerializeStruct = ParamList;
    type SerializeStructVariant = Impossible<Vec<Value>, Error>;

    not_a_list!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<Value>> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<Vec<Value>> {
        Ok(Vec::new())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<Vec<Value>> {
        Ok(Vec::new())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Vec<Value>> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Vec<Value>> {
        refuse(NOT_A_LIST)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<ParamList> {
        Ok(ParamList {
            values: Vec::with_capacity(len.unwrap_or(0)),
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<ParamList> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<ParamList> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        refuse(NOT_A_LIST)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        refuse("a map has no order that placeholders could follow: use a struct or a tuple")
    }

    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<ParamList> {
        self.serialize_seq(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        refuse(NOT_A_LIST)
    }
}

/// One parameter. `byte` is set when the value came from a `u8`, so that a sequence of
/// them can become a BLOB.
struct ValueSerializer<'a> {
    index: usize,
    byte: &'a mut bool,
}

impl ValueSerializer<'_> {
    fn nested<T>(&self, what: &str) -> Result<T> {
        refuse(format!(
            "parameter {} is {what}, which is not one value",
            self.index
        ))
    }
}

/// The bytes of a sequence of `u8`, bound as a BLOB.
struct BlobParam {
    index: usize,
    bytes: Vec<u8>,
}

impl BlobParam {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let mut byte = false;
        let v = value.serialize(ValueSerializer {
            index: self.index,
            byte: &mut byte,
        })?;
        match (byte, v) {
            (true, Value::Integer(b)) => {
                self.bytes.push(u8::try_from(b).unwrap_or_default());
                Ok(())
            }
            _ => refuse(format!(
                "parameter {} is a sequence, which binds (as a BLOB) only when its elements \
                 are u8",
                self.index
            )),
        }
    }
}

impl ser::SerializeSeq for BlobParam {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Value> {
        Ok(Value::from(self.bytes))
    }
}

impl ser::SerializeTuple for BlobParam {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.push(value)
    }
    fn end(self) -> Result<Value> {
        Ok(Value::from(self.bytes))
    }
}

impl Serializer for ValueSerializer<'_> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = BlobParam;
    type SerializeTuple = BlobParam;
    type SerializeTupleStruct = Impossible<Value, Error>;
    type SerializeTupleVariant = Impossible<Value, Error>;
    type SerializeMap = Impossible<Value, Error>;
    type SerializeStruct = Impossible<Value, Error>;
    type SerializeStructVariant = Impossible<Value, Error>;

    fn serialize_bool(self, v: bool) -> Result<Value> {
        Ok(Value::Boolean(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value> {
        Ok(Value::Integer(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value> {
        *self.byte = true;
        Ok(Value::Integer(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value> {
        Ok(Value::Integer(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value> {
        i64::try_from(v).map(Value::Integer).map_err(|_| {
            Error::Misuse(Misuse::ParamOutOfRange {
                index: self.index,
                value: v.to_string(),
            })
        })
    }
    fn serialize_f32(self, v: f32) -> Result<Value> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value> {
        Ok(Value::from(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value> {
        Ok(Value::from(v))
    }
    fn serialize_none(self) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<Value> {
        Ok(Value::from(variant))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Value> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Value> {
        self.nested("an enum variant with data")
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<BlobParam> {
        Ok(BlobParam {
            index: self.index,
            bytes: Vec::with_capacity(len.unwrap_or(0)),
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<BlobParam> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        self.nested("a tuple struct")
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        self.nested("an enum variant with data")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        self.nested("a map")
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct> {
        self.nested("a struct")
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        self.nested("an enum variant with data")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    enum Color {
        Red,
    }

    #[derive(Serialize)]
    struct Id(i64);

    #[derive(Serialize)]
    struct Item<'a> {
        id: Id,
        name: &'a str,
        price: Option<f64>,
        data: Vec<u8>,
        raw: [u8; 2],
        done: bool,
        color: Color,
        small: u8,
        initial: char,
    }

    #[test]
    fn struct_fields_in_order() {
        let item = Item {
            id: Id(1),
            name: "pen",
            price: None,
            data: vec![1, 2],
            raw: [3, 4],
            done: true,
            color: Color::Red,
            small: 9,
            initial: 'p',
        };
        assert_eq!(
            params_from(&item).unwrap(),
            vec![
                Value::Integer(1),
                Value::from("pen"),
                Value::Null,
                Value::from(vec![1u8, 2]),
                Value::from(vec![3u8, 4]),
                Value::Boolean(true),
                Value::from("red"),
                Value::Integer(9),
                Value::from("p"),
            ]
        );
        assert_eq!(
            params_from(&(1i64, "a", 2.5f32)).unwrap(),
            vec![Value::Integer(1), Value::from("a"), Value::Float(2.5)]
        );
        assert_eq!(
            params_from(&[1u32, 2]).unwrap(),
            vec![Value::Integer(1), Value::Integer(2)]
        );
        assert!(params_from(&()).unwrap().is_empty());
    }

    #[test]
    fn what_is_not_a_parameter_list_is_refused() {
        let is_serialize = |e: Error| matches!(e.misuse(), Some(Misuse::Serialize(_)));
        assert!(is_serialize(params_from(&5i64).unwrap_err()));
        let mut map = BTreeMap::new();
        map.insert("a", 1);
        assert!(is_serialize(params_from(&map).unwrap_err()));
        let e = params_from(&(1i64, vec![1i32, 2])).unwrap_err();
        assert!(e.to_string().contains("parameter 2"), "{e}");
        assert!(is_serialize(e));
        assert!(is_serialize(params_from(&((1i64,),)).unwrap_err()));
        let e = params_from(&(1i64, u64::MAX)).unwrap_err();
        assert!(
            matches!(e.misuse(), Some(Misuse::ParamOutOfRange { index: 2, .. })),
            "{e:?}"
        );
    }
}
