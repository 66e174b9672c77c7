//! sea-query on dqlite: statements built with `SqliteQueryBuilder`, their values bound by a
//! small binder, run through the sqlx driver and through the async client underneath.
//!
//! Start a local cluster, then:
//!
//! ```sh
//! cargo run -p sqlx-dqlite --example sea_query_todo -- dqlite://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003/seaquery
//! ```

use sea_query::{ColumnDef, Expr, ExprTrait, Iden, Order, Query, SqliteQueryBuilder, Table};
use sqlx::{Arguments, Connection};
use sqlx_dqlite::{DqliteArguments, DqliteConnection};

#[derive(Debug, Clone, Copy)]
enum Todos {
    Table,
    Id,
    Title,
    Done,
}

impl Iden for Todos {
    fn unquoted(&self) -> &str {
        match self {
            Todos::Table => "todos",
            Todos::Id => "id",
            Todos::Title => "title",
            Todos::Done => "done",
        }
    }
}

/// Why a sea-query value cannot be bound.
#[derive(Debug)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sea-query value not supported by this binder: {}",
            self.0
        )
    }
}

impl std::error::Error for Unsupported {}

/// One sea-query value as the client's value (NULL for `None`).
pub fn client_value(value: sea_query::Value) -> Result<dqlite_client::Value, Unsupported> {
    use dqlite_client::Value as V;
    use sea_query::Value as S;
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> V) -> V {
        v.map_or(V::Null, f)
    }
    Ok(match value {
        S::Bool(v) => or_null(v, V::from),
        S::TinyInt(v) => or_null(v, |x| V::Integer(x.into())),
        S::SmallInt(v) => or_null(v, |x| V::Integer(x.into())),
        S::Int(v) => or_null(v, |x| V::Integer(x.into())),
        S::BigInt(v) => or_null(v, V::Integer),
        S::TinyUnsigned(v) => or_null(v, |x| V::Integer(x.into())),
        S::SmallUnsigned(v) => or_null(v, |x| V::Integer(x.into())),
        S::Unsigned(v) => or_null(v, |x| V::Integer(x.into())),
        S::BigUnsigned(Some(x)) => {
            V::Integer(i64::try_from(x).map_err(|_| Unsupported(format!("{x} > i64::MAX")))?)
        }
        S::BigUnsigned(None) => V::Null,
        S::Float(v) => or_null(v, |x| V::Float(x.into())),
        S::Double(v) => or_null(v, V::Float),
        S::String(v) => or_null(v, V::from),
        S::Char(v) => or_null(v, |c| V::from(c.to_string())),
        S::Bytes(v) => or_null(v, V::from),
        S::Enum(sea_query::OptionEnum::Some(e)) => V::from(e.value.as_ref()),
        S::Enum(sea_query::OptionEnum::None(_)) => V::Null,
        // Variants other crates' sea-query features may add.
        #[allow(unreachable_patterns)]
        other => return Err(Unsupported(format!("{other:?}"))),
    })
}

/// sea-query's values as the sqlx driver's arguments.
pub fn arguments(values: sea_query::Values) -> Result<DqliteArguments<'static>, sqlx::Error> {
    let mut args = DqliteArguments::default();
    for value in values.0 {
        // The client's value types go through the driver as they are.
        match client_value(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))? {
            dqlite_client::Value::Null => args.add(None::<i64>),
            dqlite_client::Value::Integer(i) => args.add(i),
            dqlite_client::Value::Float(f) => args.add(f),
            dqlite_client::Value::Boolean(b) => args.add(b),
            dqlite_client::Value::Text(t) => args.add(String::from(t)),
            dqlite_client::Value::Blob(b) => args.add(b.to_vec()),
            other => return Err(sqlx::Error::Encode(format!("unexpected {other:?}").into())),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

/// Creates the table, writes through the driver and reads through both the driver and the
/// client; returns the open titles read through each.
pub async fn run(url: &str) -> Result<(Vec<String>, Vec<String>), Box<dyn std::error::Error>> {
    let mut conn = DqliteConnection::connect(url).await?;
    let create = Table::create()
        .table(Todos::Table)
        .if_not_exists()
        .col(ColumnDef::new(Todos::Id).integer().not_null().primary_key())
        .col(ColumnDef::new(Todos::Title).string().not_null())
        .col(
            ColumnDef::new(Todos::Done)
                .boolean()
                .not_null()
                .default(false),
        )
        .build(SqliteQueryBuilder);
    sqlx::query(&create).execute(&mut conn).await?;

    let (sql, values) = Query::insert()
        .into_table(Todos::Table)
        .columns([Todos::Title, Todos::Done])
        .values_panic(["plan".into(), true.into()])
        .values_panic(["build".into(), false.into()])
        .values_panic(["ship".into(), false.into()])
        .build(SqliteQueryBuilder);
    sqlx::query_with(&sql, arguments(values)?)
        .execute(&mut conn)
        .await?;

    let (sql, values) = Query::select()
        .columns([Todos::Title])
        .from(Todos::Table)
        .and_where(Expr::col(Todos::Done).eq(false))
        .order_by(Todos::Id, Order::Asc)
        .build(SqliteQueryBuilder);
    let through_sqlx: Vec<String> = sqlx::query_scalar_with(&sql, arguments(values.clone())?)
        .fetch_all(&mut conn)
        .await?;

    // The same statement on the async client underneath.
    let params = values
        .0
        .into_iter()
        .map(client_value)
        .collect::<Result<Vec<_>, _>>()?;
    let rows = conn.as_client().fetch(&sql, params).await?;
    let through_client = rows
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
    conn.close().await?;
    Ok((through_sqlx, through_client))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| {
        "dqlite://127.0.0.1:9001,127.0.0.1:9002,127.0.0.1:9003/seaquery".to_owned()
    });
    let (through_sqlx, through_client) = run(&url).await?;
    println!("open (sqlx):   {through_sqlx:?}");
    println!("open (client): {through_client:?}");
    Ok(())
}
