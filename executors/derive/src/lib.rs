//! # dqlite-derive: `#[derive(FromRow)]` for dqlite-client
//!
//! This crate holds the derive macro behind `dqlite_client::FromRow` (re-exported by
//! `dqlite-client` and the adapter crates under the trait's own name, with the default
//! feature `derive`). Its documentation, with the attributes it understands, is on
//! [`FromRow`](macro@FromRow).

#![deny(unsafe_code)]
#![warn(missing_docs)]

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, GenericArgument, LitStr, Path, PathArguments, Type, WherePredicate,
};

/// Derives `FromRow` for a struct: each field is read from one column of the row.
///
/// * Named fields read the column of the same name; `#[dqlite(rename = "col")]` reads
///   another one.
/// * Tuple-struct fields read the columns by position: field `0` from column 0, and so on.
/// * A field of any type that implements `FromValue` works; `Option<T>` reads NULL as
///   `None`. A missing column is an error (`Error::NoSuchColumn`), a value of the wrong type
///   too (`Error::Conversion`, naming the column, the Rust type and the wire type).
/// * `#[dqlite(default)]` uses `Default::default()` when the column is missing or NULL.
/// * A field written `Option<Option<T>>` tells a missing column from NULL: `None` when the
///   result has no such column, `Some(None)` for NULL, `Some(Some(v))` for a value.
/// * `#[dqlite(crate = "path")]` on the struct names the crate the generated code uses
///   (by default the `dqlite-client`, `dqlite-tokio`, `dqlite-smol` or `dqlite-async-std`
///   dependency, found in the Cargo manifest, in that order).
///
/// Enums and unions are refused at compile time.
#[proc_macro_derive(FromRow, attributes(dqlite))]
pub fn derive_from_row(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as DeriveInput);
    expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// What `#[dqlite(...)]` says about one field.
#[derive(Default)]
struct FieldAttrs {
    rename: Option<LitStr>,
    default: bool,
}

fn field_attrs(attrs: &[syn::Attribute]) -> syn::Result<FieldAttrs> {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("dqlite")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                if out.rename.is_some() {
                    return Err(meta.error("duplicate `rename`"));
                }
                out.rename = Some(meta.value()?.parse()?);
                Ok(())
            } else if meta.path.is_ident("default") {
                if out.default {
                    return Err(meta.error("duplicate `default`"));
                }
                out.default = true;
                Ok(())
            } else {
                Err(meta
                    .error("unknown field attribute: expected `rename = \"column\"` or `default`"))
            }
        })?;
    }
    Ok(out)
}

/// The crate path from `#[dqlite(crate = "...")]` on the struct, if given.
fn container_crate(attrs: &[syn::Attribute]) -> syn::Result<Option<Path>> {
    let mut out = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("dqlite")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                if out.is_some() {
                    return Err(meta.error("duplicate `crate`"));
                }
                let lit: LitStr = meta.value()?.parse()?;
                out = Some(lit.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error("unknown struct attribute: expected `crate = \"path\"`"))
            }
        })?;
    }
    Ok(out)
}

/// The path of the crate that defines `FromRow` as the deriving crate sees it.
fn default_crate() -> TokenStream {
    use proc_macro_crate::{crate_name, FoundCrate};
    for package in [
        "dqlite-client",
        "dqlite-tokio",
        "dqlite-smol",
        "dqlite-async-std",
    ] {
        // `Itself`: the package's own tests and examples, which name its library like any
        // dependent does (dqlite-client also names itself with `extern crate self`).
        let name = match crate_name(package) {
            Ok(FoundCrate::Itself) => package.replace('-', "_"),
            Ok(FoundCrate::Name(name)) => name,
            Err(_) => continue,
        };
        if let Ok(ident) = syn::parse_str::<syn::Ident>(&name) {
            return quote!(::#ident);
        }
    }
    quote!(::dqlite_client)
}

/// `T` when `ty` is written `Option<Option<T>>` (with any path to `Option`).
fn nested_option(ty: &Type) -> Option<&Type> {
    fn option_arg(ty: &Type) -> Option<&Type> {
        let Type::Path(p) = ty else { return None };
        if p.qself.is_some() {
            return None;
        }
        let last = p.path.segments.last()?;
        if last.ident != "Option" {
            return None;
        }
        let PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        match args.args.first() {
            Some(GenericArgument::Type(t)) if args.args.len() == 1 => Some(t),
            _ => None,
        }
    }
    option_arg(option_arg(ty)?)
}

/// The `impl FromRow` for `input`, or the error to report.
fn expand(input: &DeriveInput) -> syn::Result<TokenStream> {
    let fields =
        match &input.data {
            Data::Struct(s) => &s.fields,
            Data::Enum(e) => return Err(syn::Error::new(
                e.enum_token.span(),
                "FromRow cannot be derived for an enum: a row maps to a struct (named fields by \
                 column name, tuple fields by position)",
            )),
            Data::Union(u) => return Err(syn::Error::new(
                u.union_token.span(),
                "FromRow cannot be derived for a union: a row maps to a struct (named fields by \
                 column name, tuple fields by position)",
            )),
        };
    let krate = match container_crate(&input.attrs)? {
        Some(path) => quote!(#path),
        None => default_crate(),
    };
    let generic = input.generics.type_params().next().is_some();
    let mut bounds: Vec<WherePredicate> = Vec::new();
    let mut reads = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let attrs = field_attrs(&field.attrs)?;
        let column = match (&field.ident, &attrs.rename) {
            (_, Some(rename)) if field.ident.is_none() => return Err(syn::Error::new(
                rename.span(),
                "`rename` applies to named fields; tuple-struct fields read columns by position",
            )),
            (_, Some(rename)) => quote!(#rename),
            (Some(ident), None) => {
                let name = LitStr::new(ident.to_string().trim_start_matches("r#"), ident.span());
                quote!(#name)
            }
            (None, None) => {
                let index = syn::LitInt::new(&format!("{i}usize"), field.span());
                quote!(#index)
            }
        };
        let ty = &field.ty;
        let span = ty.span();
        let read = if let Some(inner) = nested_option(ty) {
            if generic {
                bounds.push(syn::parse_quote_spanned!(span=> #inner: #krate::FromValue));
            }
            quote_spanned!(span=> #krate::__private::get_nested_option::<#inner, _>(row, #column)?)
        } else if attrs.default {
            if generic {
                bounds.push(syn::parse_quote_spanned!(span=>
                    #ty: #krate::FromValue + ::core::default::Default));
            }
            quote_spanned!(span=> #krate::__private::get_or_default::<#ty, _>(row, #column)?)
        } else {
            if generic {
                bounds.push(syn::parse_quote_spanned!(span=> #ty: #krate::FromValue));
            }
            quote_spanned!(span=> #krate::Row::get::<#ty, _>(row, #column)?)
        };
        reads.push(match &field.ident {
            Some(ident) => quote!(#ident: #read),
            None => read,
        });
    }
    let body = match fields {
        Fields::Named(_) => quote!(Self { #(#reads),* }),
        Fields::Unnamed(_) => quote!(Self(#(#reads),*)),
        Fields::Unit => quote!(Self),
    };
    let name = &input.ident;
    let mut generics = input.generics.clone();
    generics.make_where_clause().predicates.extend(bounds);
    let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
    // A unit struct does not look at the row.
    let row = if fields.is_empty() {
        quote!(_row)
    } else {
        quote!(row)
    };
    Ok(quote! {
        #[automatically_derived]
        impl #impl_generics #krate::FromRow for #name #ty_generics #where_clause {
            fn from_row(#row: &#krate::Row) -> #krate::Result<Self> {
                ::core::result::Result::Ok(#body)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(src: &str) -> String {
        let input: DeriveInput = syn::parse_str(src).unwrap();
        match expand(&input) {
            Ok(tokens) => panic!("expected an error, got {tokens}"),
            Err(e) => e.to_string(),
        }
    }

    fn expansion_of(src: &str) -> String {
        let input: DeriveInput = syn::parse_str(src).unwrap();
        expand(&input).unwrap().to_string()
    }

    #[test]
    fn enums_and_unions_are_refused() {
        assert!(error_of("enum E { A, B }").contains("cannot be derived for an enum"));
        assert!(error_of("union U { a: u32, b: f32 }").contains("cannot be derived for a union"));
    }

    #[test]
    fn bad_attributes_are_refused() {
        assert!(error_of("struct S { #[dqlite(rname = \"x\")] a: i64 }")
            .contains("unknown field attribute"));
        assert!(error_of("struct S(#[dqlite(rename = \"x\")] i64);")
            .contains("tuple-struct fields read columns by position"));
        assert!(error_of("struct S { #[dqlite(default, default)] a: i64 }")
            .contains("duplicate `default`"));
        assert!(error_of("#[dqlite(rename = \"x\")] struct S { a: i64 }")
            .contains("unknown struct attribute"));
        assert!(error_of("struct S { #[dqlite(rename = 1)] a: i64 }").contains("expected string"));
    }

    #[test]
    fn fields_read_their_columns() {
        let out = expansion_of(
            "#[dqlite(crate = \"my::client\")] struct S { id: i64, \
             #[dqlite(rename = \"full_name\")] name: String, #[dqlite(default)] n: u32, \
             gone: Option<Option<String>>, r#type: i64 }",
        );
        assert!(out.contains("impl my :: client :: FromRow for S"), "{out}");
        assert!(out.contains("get :: < i64 , _ > (row , \"id\")"), "{out}");
        assert!(out.contains("(row , \"full_name\")"), "{out}");
        assert!(
            out.contains("get_or_default :: < u32 , _ > (row , \"n\")"),
            "{out}"
        );
        assert!(
            out.contains("get_nested_option :: < String , _ > (row , \"gone\")"),
            "{out}"
        );
        assert!(out.contains("(row , \"type\")"), "{out}");
    }

    #[test]
    fn tuple_structs_read_by_position_and_generics_get_bounds() {
        let out = expansion_of("struct P<T>(i64, #[dqlite(default)] T);");
        assert!(out.contains("(row , 0usize)"), "{out}");
        assert!(out.contains("(row , 1usize)"), "{out}");
        assert!(
            out.contains("T : :: dqlite_client :: FromValue + :: core :: default :: Default"),
            "{out}"
        );
        let unit = expansion_of("struct U;");
        assert!(unit.contains("Ok (Self)"), "{unit}");
    }

    #[test]
    fn nested_options_are_recognized_by_shape() {
        let ty: Type = syn::parse_str("std::option::Option<Option<u8>>").unwrap();
        assert!(nested_option(&ty).is_some());
        for plain in ["Option<u8>", "Vec<Option<u8>>", "Option<Vec<u8>>", "u8"] {
            let ty: Type = syn::parse_str(plain).unwrap();
            assert!(nested_option(&ty).is_none(), "{plain}");
        }
    }
}
