//! `sqlx::any` support: [`DRIVER`] for `sqlx::any::install_drivers`.

use std::borrow::Cow;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::StreamExt;
use sqlx_core::any::{
    Any, AnyArguments, AnyColumn, AnyConnectOptions, AnyConnectionBackend, AnyQueryResult, AnyRow,
    AnyStatement, AnyTypeInfo, AnyTypeInfoKind, AnyValueKind,
};
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::database::Database;
use sqlx_core::describe::Describe;
use sqlx_core::executor::Executor;
use sqlx_core::transaction::TransactionManager;
use sqlx_core::{Either, Error};

use dqlite_client::{Value, ValueType};

use crate::database::{
    Dqlite, DqliteArguments, DqliteColumn, DqliteQueryResult, DqliteRow, DqliteTypeInfo,
};
use crate::{DqliteConnectOptions, DqliteConnection, DqliteTransactionManager};

/// The dqlite driver for `sqlx::any`: install it (with any others) once, before the first
/// `AnyPool` or `AnyConnection`:
///
/// ```no_run
/// # async fn demo() -> Result<(), sqlx::Error> {
/// sqlx::any::install_drivers(&[sqlx_dqlite::any::DRIVER]).expect("installed once");
/// let pool = sqlx::AnyPool::connect("dqlite://127.0.0.1:9001/app?nodes=127.0.0.1:9002").await?;
/// let n: i64 = sqlx::query_scalar("SELECT 1").fetch_one(&pool).await?;
/// # let _ = n; Ok(()) }
/// ```
///
/// `sqlx::any`'s URL parser accepts one host only: give the other nodes with the `nodes`
/// parameter. Migrations work through it too (`Migrator::run` on an `AnyPool`).
pub const DRIVER: sqlx_core::any::driver::AnyDriver =
    sqlx_core::any::driver::AnyDriver::with_migrate::<Dqlite>();

impl AnyConnectionBackend for DqliteConnection {
    fn name(&self) -> &str {
        <Dqlite as Database>::NAME
    }

    fn close(self: Box<Self>) -> BoxFuture<'static, sqlx_core::Result<()>> {
        Connection::close(*self)
    }

    fn close_hard(self: Box<Self>) -> BoxFuture<'static, sqlx_core::Result<()>> {
        Connection::close_hard(*self)
    }

    fn ping(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Connection::ping(self)
    }

    fn begin(
        &mut self,
        statement: Option<Cow<'static, str>>,
    ) -> BoxFuture<'_, sqlx_core::Result<()>> {
        DqliteTransactionManager::begin(self, statement)
    }

    fn commit(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        DqliteTransactionManager::commit(self)
    }

    fn rollback(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        DqliteTransactionManager::rollback(self)
    }

    fn start_rollback(&mut self) {
        DqliteTransactionManager::start_rollback(self)
    }

    fn get_transaction_depth(&self) -> usize {
        DqliteTransactionManager::get_transaction_depth(self)
    }

    fn shrink_buffers(&mut self) {}

    fn flush(&mut self) -> BoxFuture<'_, sqlx_core::Result<()>> {
        Connection::flush(self)
    }

    fn should_flush(&self) -> bool {
        Connection::should_flush(self)
    }

    fn as_migrate(
        &mut self,
    ) -> sqlx_core::Result<&mut (dyn sqlx_core::migrate::Migrate + Send + 'static)> {
        Ok(self)
    }

    fn fetch_many<'q>(
        &'q mut self,
        query: &'q str,
        _persistent: bool,
        arguments: Option<AnyArguments<'q>>,
    ) -> BoxStream<'q, sqlx_core::Result<Either<AnyQueryResult, AnyRow>>> {
        let arguments = match arguments.map(map_arguments).transpose() {
            Ok(a) => a,
            Err(e) => return Box::pin(futures_util::stream::once(async move { Err(e) })),
        };
        Box::pin(
            Executor::fetch_many(self, (query, arguments)).map(|step| match step? {
                Either::Left(result) => Ok(Either::Left(map_result(result))),
                Either::Right(row) => Ok(Either::Right(map_row(&row)?)),
            }),
        )
    }

    fn fetch_optional<'q>(
        &'q mut self,
        query: &'q str,
        _persistent: bool,
        arguments: Option<AnyArguments<'q>>,
    ) -> BoxFuture<'q, sqlx_core::Result<Option<AnyRow>>> {
        Box::pin(async move {
            let arguments = arguments.map(map_arguments).transpose()?;
            let row = Executor::fetch_optional(self, (query, arguments)).await?;
            row.as_ref().map(map_row).transpose()
        })
    }

    fn prepare_with<'c, 'q: 'c>(
        &'c mut self,
        sql: &'q str,
        _parameters: &[AnyTypeInfo],
    ) -> BoxFuture<'c, sqlx_core::Result<AnyStatement<'q>>> {
        Box::pin(async move {
            let statement = Executor::prepare_with(self, sql, &[]).await?;
            AnyStatement::try_from_statement(sql, &statement, Default::default())
        })
    }

    fn describe<'q>(&'q mut self, sql: &'q str) -> BoxFuture<'q, sqlx_core::Result<Describe<Any>>> {
        Box::pin(async move { Executor::describe(self, sql).await?.try_into_any() })
    }
}

impl TryFrom<&DqliteTypeInfo> for AnyTypeInfo {
    type Error = Error;

    fn try_from(t: &DqliteTypeInfo) -> Result<Self, Error> {
        Ok(AnyTypeInfo {
            kind: match t.0 {
                ValueType::Null => AnyTypeInfoKind::Null,
                ValueType::Integer | ValueType::UnixTime => AnyTypeInfoKind::BigInt,
                ValueType::Boolean => AnyTypeInfoKind::Bool,
                ValueType::Float => AnyTypeInfoKind::Double,
                ValueType::Text | ValueType::Iso8601 => AnyTypeInfoKind::Text,
                ValueType::Blob => AnyTypeInfoKind::Blob,
            },
        })
    }
}

impl TryFrom<&DqliteColumn> for AnyColumn {
    type Error = Error;

    fn try_from(c: &DqliteColumn) -> Result<Self, Error> {
        Ok(AnyColumn {
            ordinal: c.ordinal,
            name: c.name.clone(),
            type_info: AnyTypeInfo::try_from(&c.type_info)?,
        })
    }
}

impl TryFrom<&AnyConnectOptions> for DqliteConnectOptions {
    type Error = Error;

    fn try_from(opts: &AnyConnectOptions) -> Result<Self, Error> {
        let mut out = DqliteConnectOptions::from_url(&opts.database_url)?;
        out.log_settings = opts.log_settings.clone();
        Ok(out)
    }
}

fn map_row(row: &DqliteRow) -> Result<AnyRow, Error> {
    AnyRow::map_from(row, row.columns.names.clone())
}

fn map_result(r: DqliteQueryResult) -> AnyQueryResult {
    AnyQueryResult {
        rows_affected: r.rows_affected,
        last_insert_id: Some(r.last_insert_id),
    }
}

fn map_arguments(args: AnyArguments<'_>) -> Result<DqliteArguments<'_>, Error> {
    let values = args
        .values
        .0
        .into_iter()
        .map(|v| match v {
            AnyValueKind::Null(_) => Ok(Value::Null),
            AnyValueKind::Bool(b) => Ok(Value::from(b)),
            AnyValueKind::SmallInt(i) => Ok(Value::Integer(i.into())),
            AnyValueKind::Integer(i) => Ok(Value::Integer(i.into())),
            AnyValueKind::BigInt(i) => Ok(Value::Integer(i)),
            AnyValueKind::Real(r) => Ok(Value::Float(r.into())),
            AnyValueKind::Double(d) => Ok(Value::Float(d)),
            AnyValueKind::Text(t) => Ok(Value::from(&*t)),
            AnyValueKind::Blob(b) => Ok(Value::from(&*b)),
            // A kind this pinned sqlx-core does not have.
            other => Err(Error::Encode(
                format!("unsupported Any value {other:?}").into(),
            )),
        })
        .collect::<Result<_, Error>>()?;
    Ok(DqliteArguments::from_values(values))
}
