//! The [`Dqlite`] database and its row, column, value, argument and statement types.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use dqlite_client::{Value, ValueType};
use sqlx_core::arguments::Arguments;
use sqlx_core::column::{Column, ColumnIndex};
use sqlx_core::database::Database;
use sqlx_core::encode::{Encode, IsNull};
use sqlx_core::error::BoxDynError;
use sqlx_core::ext::ustr::UStr;
use sqlx_core::row::Row;
use sqlx_core::statement::Statement;
use sqlx_core::type_info::TypeInfo;
use sqlx_core::types::Type;
use sqlx_core::value::{Value as SqlxValue, ValueRef};
use sqlx_core::{Either, Error, HashMap};

use crate::connection::DqliteConnection;
use crate::transaction::DqliteTransactionManager;

/// The dqlite database driver: use it as `sqlx::Pool<Dqlite>`, `sqlx::query::<Dqlite>` and so
/// on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dqlite;

impl Database for Dqlite {
    type Connection = DqliteConnection;
    type TransactionManager = DqliteTransactionManager;
    type Row = DqliteRow;
    type QueryResult = DqliteQueryResult;
    type Column = DqliteColumn;
    type TypeInfo = DqliteTypeInfo;
    type Value = DqliteValue;
    type ValueRef<'r> = DqliteValueRef<'r>;
    type Arguments<'q> = DqliteArguments<'q>;
    type ArgumentBuffer<'q> = Vec<Value>;
    type Statement<'q> = DqliteStatement<'q>;

    const NAME: &'static str = "dqlite";
    const URL_SCHEMES: &'static [&'static str] = &["dqlite"];
}

/// The type of a value as dqlite reports it on the wire.
///
/// dqlite sends a type with every value (not with every column): the type of a column is the
/// type of its value in the first row of the result, and [`DqliteTypeInfo::NULL`] when that
/// is NULL or there are no rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DqliteTypeInfo(pub(crate) ValueType);

impl DqliteTypeInfo {
    /// SQL NULL (or a column whose type is not known).
    pub const NULL: DqliteTypeInfo = DqliteTypeInfo(ValueType::Null);
    /// A 64-bit signed integer.
    pub const INTEGER: DqliteTypeInfo = DqliteTypeInfo(ValueType::Integer);
    /// A double.
    pub const FLOAT: DqliteTypeInfo = DqliteTypeInfo(ValueType::Float);
    /// UTF-8 text.
    pub const TEXT: DqliteTypeInfo = DqliteTypeInfo(ValueType::Text);
    /// Raw bytes.
    pub const BLOB: DqliteTypeInfo = DqliteTypeInfo(ValueType::Blob);
    /// An INTEGER stored in a `DATETIME`, `DATE` or `TIMESTAMP` column (seconds since the
    /// epoch).
    pub const UNIXTIME: DqliteTypeInfo = DqliteTypeInfo(ValueType::UnixTime);
    /// TEXT stored in a `DATETIME`, `DATE` or `TIMESTAMP` column.
    pub const ISO8601: DqliteTypeInfo = DqliteTypeInfo(ValueType::Iso8601);
    /// An INTEGER stored in a `BOOLEAN` column.
    pub const BOOLEAN: DqliteTypeInfo = DqliteTypeInfo(ValueType::Boolean);

    /// The wire type.
    pub fn value_type(&self) -> ValueType {
        self.0
    }

    pub(crate) fn of(value: &Value) -> DqliteTypeInfo {
        DqliteTypeInfo(value.value_type())
    }
}

impl fmt::Display for DqliteTypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TypeInfo for DqliteTypeInfo {
    fn is_null(&self) -> bool {
        self.0 == ValueType::Null
    }

    fn name(&self) -> &str {
        match self.0 {
            ValueType::Integer => "INTEGER",
            ValueType::Float => "FLOAT",
            ValueType::Text => "TEXT",
            ValueType::Blob => "BLOB",
            ValueType::Null => "NULL",
            ValueType::UnixTime => "UNIXTIME",
            ValueType::Iso8601 => "ISO8601",
            ValueType::Boolean => "BOOLEAN",
        }
    }
}

/// A column of a result: its position, name and the type of its first value.
#[derive(Debug, Clone)]
pub struct DqliteColumn {
    pub(crate) ordinal: usize,
    pub(crate) name: UStr,
    pub(crate) type_info: DqliteTypeInfo,
}

impl Column for DqliteColumn {
    type Database = Dqlite;

    fn ordinal(&self) -> usize {
        self.ordinal
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn type_info(&self) -> &DqliteTypeInfo {
        &self.type_info
    }
}

/// The columns of one result, shared by its rows.
#[derive(Debug)]
pub(crate) struct ResultColumns {
    pub(crate) columns: Vec<DqliteColumn>,
    pub(crate) names: Arc<HashMap<UStr, usize>>,
}

impl ResultColumns {
    /// Columns named as in `row`, typed by its values.
    pub(crate) fn from_row(row: &dqlite_client::Row) -> ResultColumns {
        let mut names = HashMap::new();
        let columns = row
            .columns()
            .iter()
            .zip(row.values())
            .enumerate()
            .map(|(ordinal, (name, value))| {
                let name = UStr::new(name.as_str());
                names.entry(name.clone()).or_insert(ordinal);
                DqliteColumn {
                    ordinal,
                    name,
                    type_info: DqliteTypeInfo::of(value),
                }
            })
            .collect();
        ResultColumns {
            columns,
            names: Arc::new(names),
        }
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct DqliteRow {
    pub(crate) row: dqlite_client::Row,
    pub(crate) columns: Arc<ResultColumns>,
}

impl DqliteRow {
    /// The row as the dqlite client sees it (values with their wire types).
    pub fn as_client_row(&self) -> &dqlite_client::Row {
        &self.row
    }
}

impl Row for DqliteRow {
    type Database = Dqlite;

    fn columns(&self) -> &[DqliteColumn] {
        &self.columns.columns
    }

    fn try_get_raw<I>(&self, index: I) -> Result<DqliteValueRef<'_>, Error>
    where
        I: ColumnIndex<Self>,
    {
        let i = index.index(self)?;
        let value = self
            .row
            .values()
            .get(i)
            .ok_or(Error::ColumnIndexOutOfBounds {
                index: i,
                len: self.row.len(),
            })?;
        Ok(DqliteValueRef(value))
    }
}

impl ColumnIndex<DqliteRow> for &'_ str {
    fn index(&self, row: &DqliteRow) -> Result<usize, Error> {
        row.columns
            .names
            .get(*self)
            .copied()
            .ok_or_else(|| Error::ColumnNotFound((*self).into()))
    }
}

/// An owned value of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct DqliteValue(pub(crate) Value);

impl DqliteValue {
    /// The value as the dqlite client sees it.
    pub fn as_client_value(&self) -> &Value {
        &self.0
    }
}

impl SqlxValue for DqliteValue {
    type Database = Dqlite;

    fn as_ref(&self) -> DqliteValueRef<'_> {
        DqliteValueRef(&self.0)
    }

    fn type_info(&self) -> Cow<'_, DqliteTypeInfo> {
        Cow::Owned(DqliteTypeInfo::of(&self.0))
    }

    fn is_null(&self) -> bool {
        is_null(&self.0)
    }
}

/// A borrowed value of a result row.
#[derive(Debug, Clone, Copy)]
pub struct DqliteValueRef<'r>(pub(crate) &'r Value);

impl<'r> DqliteValueRef<'r> {
    /// The value as the dqlite client sees it.
    pub fn as_client_value(&self) -> &'r Value {
        self.0
    }
}

impl<'r> ValueRef<'r> for DqliteValueRef<'r> {
    type Database = Dqlite;

    fn to_owned(&self) -> DqliteValue {
        DqliteValue(self.0.clone())
    }

    fn type_info(&self) -> Cow<'_, DqliteTypeInfo> {
        Cow::Owned(DqliteTypeInfo::of(self.0))
    }

    fn is_null(&self) -> bool {
        is_null(self.0)
    }
}

/// NULL, and the empty ISO8601 text that released servers send for a NULL stored in a
/// `DATE`, `DATETIME` or `TIMESTAMP` column (so `Option<T>` reads it as `None`).
fn is_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Iso8601(t) => t.as_str().is_empty(),
        _ => false,
    }
}

/// The parameters of a query, in placeholder order.
#[derive(Debug, Default, Clone)]
pub struct DqliteArguments<'q> {
    pub(crate) values: Vec<Value>,
    _borrow: PhantomData<&'q ()>,
}

impl DqliteArguments<'_> {
    /// The values, as the client sends them.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub(crate) fn from_values(values: Vec<Value>) -> Self {
        DqliteArguments {
            values,
            _borrow: PhantomData,
        }
    }
}

impl<'q> Arguments<'q> for DqliteArguments<'q> {
    type Database = Dqlite;

    fn reserve(&mut self, additional: usize, _size: usize) {
        self.values.reserve(additional);
    }

    fn add<T>(&mut self, value: T) -> Result<(), BoxDynError>
    where
        T: 'q + Encode<'q, Dqlite> + Type<Dqlite>,
    {
        let before = self.values.len();
        match value.encode(&mut self.values) {
            Ok(IsNull::Yes) => {
                self.values.truncate(before);
                self.values.push(Value::Null);
            }
            Ok(IsNull::No) => {}
            Err(e) => {
                self.values.truncate(before);
                return Err(e);
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.values.len()
    }
}

/// What a statement that returns no rows did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DqliteQueryResult {
    pub(crate) rows_affected: u64,
    pub(crate) last_insert_id: i64,
}

impl DqliteQueryResult {
    /// Rows changed by the statement(s).
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }

    /// SQLite's last inserted rowid on this connection (meaningful after an `INSERT`).
    pub fn last_insert_rowid(&self) -> i64 {
        self.last_insert_id
    }
}

impl Extend<DqliteQueryResult> for DqliteQueryResult {
    fn extend<T: IntoIterator<Item = DqliteQueryResult>>(&mut self, iter: T) {
        for r in iter {
            self.rows_affected += r.rows_affected;
            self.last_insert_id = r.last_insert_id;
        }
    }
}

/// A prepared statement's description: its SQL and parameter count.
///
/// dqlite's `PREPARE` reports how many parameters a statement takes but nothing about the
/// columns it returns, so [`columns`](Statement::columns) is always empty. The statement is
/// finalized on the server once described; executing it prepares it again (through the
/// client's statement cache when the query has parameters).
#[derive(Debug, Clone)]
pub struct DqliteStatement<'q> {
    pub(crate) sql: Cow<'q, str>,
    pub(crate) params: usize,
}

impl<'q> Statement<'q> for DqliteStatement<'q> {
    type Database = Dqlite;

    fn to_owned(&self) -> DqliteStatement<'static> {
        DqliteStatement {
            sql: Cow::Owned(self.sql.clone().into_owned()),
            params: self.params,
        }
    }

    fn sql(&self) -> &str {
        &self.sql
    }

    fn parameters(&self) -> Option<Either<&[DqliteTypeInfo], usize>> {
        Some(Either::Right(self.params))
    }

    fn columns(&self) -> &[DqliteColumn] {
        &[]
    }

    sqlx_core::impl_statement_query!(DqliteArguments<'_>);
}

impl ColumnIndex<DqliteStatement<'_>> for &'_ str {
    fn index(&self, _statement: &DqliteStatement<'_>) -> Result<usize, Error> {
        Err(Error::ColumnNotFound((*self).into()))
    }
}
