//! Statement parameters from ordinary Rust values.

use dqlite_proto::Value;

/// Something that can be bound as a statement's parameters: `()`, tuples of up to 12 values,
/// slices, arrays and vectors of values, or the [`params!`](crate::params) macro.
///
/// Each element converts with `Into<Value>`: `i64`, `i32`, `u32`, `f64`, `bool`, `&str`,
/// `String`, `&[u8]`, `Vec<u8>`, `Option<T>` (None is NULL) and [`Value`] itself.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as statement parameters",
    note = "pass a tuple (a single parameter needs a trailing comma: `(x,)`), an array, a `Vec<Value>`, or `params![..]`"
)]
pub trait IntoParams {
    /// The values, in placeholder order.
    fn into_params(self) -> Vec<Value>;
}

impl IntoParams for () {
    fn into_params(self) -> Vec<Value> {
        Vec::new()
    }
}

impl IntoParams for Vec<Value> {
    fn into_params(self) -> Vec<Value> {
        self
    }
}

impl IntoParams for &[Value] {
    fn into_params(self) -> Vec<Value> {
        self.to_vec()
    }
}

impl<T: Into<Value>, const N: usize> IntoParams for [T; N] {
    fn into_params(self) -> Vec<Value> {
        self.into_iter().map(Into::into).collect()
    }
}

macro_rules! tuple_params {
    ($($name:ident),+) => {
        impl<$($name: Into<Value>),+> IntoParams for ($($name,)+) {
            #[allow(non_snake_case)]
            fn into_params(self) -> Vec<Value> {
                let ($($name,)+) = self;
                vec![$($name.into()),+]
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
        assert_eq!((1i64, "a", None::<i64>, true).into_params(), expected);
        assert_eq!(crate::params![1i64, "a", None::<i64>, true], expected);
        assert_eq!(expected.as_slice().into_params(), expected);
        assert_eq!(
            [1i64, 2].into_params(),
            vec![Value::Integer(1), Value::Integer(2)]
        );
        assert!(().into_params().is_empty());
    }
}
