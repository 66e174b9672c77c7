//! Statement parameters from ordinary Rust values.

use bytes::Bytes;
use dqlite_proto::{Text, Value};

use crate::error::{Error, Misuse, Result};

/// Something that can be bound as a statement's parameters: `()`, tuples of up to 12 values,
/// slices, arrays and vectors of values, or the [`params!`](crate::params) macro.
///
/// Each element of a tuple or array is a [`Param`]: `i64` and narrower integers, `u64` and
/// `usize` (range-checked), `f64`, `f32`, `bool`, `&str`, `String`, `&[u8]`, `Vec<u8>`,
/// `Option<T>` (None is NULL) and [`Value`] itself; with the cargo features `chrono`, `time`,
/// `uuid` and `json` also those crates' dates and times, `uuid::Uuid` and JSON values (see
/// [`types`](crate::types)).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as statement parameters",
    note = "pass a tuple (a single parameter needs a trailing comma: `(x,)`), an array, a `Vec<Value>`, or `params![..]`"
)]
pub trait IntoParams {
    /// The values, in placeholder order, or [`Misuse::ParamOutOfRange`] for a value the
    /// wire cannot carry.
    fn into_params(self) -> Result<Vec<Value>>;
}

/// One parameter value.
///
/// ```
/// use dqlite_client::{Param, Value};
/// assert_eq!(7u64.into_value(1).unwrap(), Value::Integer(7));
/// assert!(u64::MAX.into_value(1).is_err()); // above i64::MAX: refused, never wrapped
/// assert_eq!(1.5f32.into_value(1).unwrap(), Value::Float(1.5));
/// ```
pub trait Param {
    /// The value to send as parameter number `index` (from 1, for error messages).
    fn into_value(self, index: usize) -> Result<Value>;
}

/// Types that convert to a [`Value`] without loss.
macro_rules! infallible_param {
    ($($t:ty),+ $(,)?) => {$(
        impl Param for $t {
            fn into_value(self, _index: usize) -> Result<Value> {
                Ok(Value::from(self))
            }
        }
    )+};
}

infallible_param!(
    Value,
    i64,
    i32,
    i16,
    i8,
    u32,
    u16,
    u8,
    f64,
    f32,
    bool,
    &str,
    String,
    &String,
    &[u8],
    Vec<u8>,
    &Vec<u8>,
    Text,
    Bytes,
);

impl<const N: usize> Param for &[u8; N] {
    fn into_value(self, _index: usize) -> Result<Value> {
        Ok(Value::from(self))
    }
}

/// Unsigned integers wider than `i64` can hold: refused above `i64::MAX`.
macro_rules! checked_param {
    ($($t:ty),+) => {$(
        impl Param for $t {
            fn into_value(self, index: usize) -> Result<Value> {
                i64::try_from(self).map(Value::Integer).map_err(|_| {
                    Error::Misuse(Misuse::ParamOutOfRange {
                        index,
                        value: self.to_string(),
                    })
                })
            }
        }
    )+};
}

checked_param!(u64, usize);

impl<T: Param> Param for Option<T> {
    fn into_value(self, index: usize) -> Result<Value> {
        self.map_or(Ok(Value::Null), |v| v.into_value(index))
    }
}

impl IntoParams for () {
    fn into_params(self) -> Result<Vec<Value>> {
        Ok(Vec::new())
    }
}

impl IntoParams for Vec<Value> {
    fn into_params(self) -> Result<Vec<Value>> {
        Ok(self)
    }
}

impl IntoParams for &[Value] {
    fn into_params(self) -> Result<Vec<Value>> {
        Ok(self.to_vec())
    }
}

impl<T: Param, const N: usize> IntoParams for [T; N] {
    fn into_params(self) -> Result<Vec<Value>> {
        self.into_iter()
            .enumerate()
            .map(|(i, v)| v.into_value(i + 1))
            .collect()
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: Param),+> IntoParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Result<Vec<Value>> {
                let ($($name,)+) = self;
                let mut index = 0;
                Ok(vec![$({
                    index += 1;
                    $name.into_value(index)?
                }),+])
            }
        }
    };
}

tuple_params!(A);
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);
tuple_params!(A, B, C, D, E, F);
tuple_params!(A, B, C, D, E, F, G);
tuple_params!(A, B, C, D, E, F, G, H);
tuple_params!(A, B, C, D, E, F, G, H, I);
tuple_params!(A, B, C, D, E, F, G, H, I, J);
tuple_params!(A, B, C, D, E, F, G, H, I, J, K);
tuple_params!(A, B, C, D, E, F, G, H, I, J, K, L);

/// Builds a parameter list of mixed types: `params![1, "x", None::<i64>, 2.5]`.
#[macro_export]
macro_rules! params {
    () => { ::std::vec::Vec::<$crate::Value>::new() };
    ($($v:expr),+ $(,)?) => { ::std::vec![$($crate::Value::from($v)),+] };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_slices_and_macro_agree() {
        let expected = vec![
            Value::Integer(1),
            Value::from("a"),
            Value::Null,
            Value::Boolean(true),
        ];
        assert_eq!(
            (1i64, "a", None::<i64>, true).into_params().unwrap(),
            expected
        );
        assert_eq!(crate::params![1i64, "a", None::<i64>, true], expected);
        assert_eq!(expected.as_slice().into_params().unwrap(), expected);
        assert_eq!(
            [1i64, 2].into_params().unwrap(),
            vec![Value::Integer(1), Value::Integer(2)]
        );
        assert!(().into_params().unwrap().is_empty());
    }

    #[test]
    fn unsigned_and_f32_parameters() {
        let max = i64::MAX as u64;
        assert_eq!(
            (max, 2.5f32, Some(3usize)).into_params().unwrap(),
            vec![
                Value::Integer(i64::MAX),
                Value::Float(2.5),
                Value::Integer(3)
            ]
        );
        let e = (1i64, max + 1).into_params().unwrap_err();
        assert!(
            matches!(
                e.misuse(),
                Some(Misuse::ParamOutOfRange { index: 2, value }) if *value == (max + 1).to_string()
            ),
            "{e:?}"
        );
        assert!([u64::MAX].into_params().is_err());
    }
}
