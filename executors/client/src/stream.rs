//! Row streams: a query's result read batch by batch.

use std::sync::Arc;

use dqlite_proto::{Reply, RequestId, RowsBatch, Text};

use crate::connection::Connection;
use crate::error::Result;
use crate::from_row::FromRow;
use crate::row::Row;
use crate::runtime::Runtime;
use crate::session::unexpected;

/// A query result read one batch at a time (see [`Connection::stream`]).
///
/// Memory is bounded by one batch (the server cuts batches at about a page) plus what the
/// caller keeps. Dropping the stream before the end is safe: the connection drains the rest
/// of the result (behind an INTERRUPT) before its next request.
pub struct RowStream<'c, R: Runtime> {
    conn: &'c mut Connection<R>,
    id: RequestId,
    columns: Option<Arc<[Text]>>,
    started: bool,
    done: bool,
}

impl<'c, R: Runtime> RowStream<'c, R> {
    pub(crate) fn new(conn: &'c mut Connection<R>, id: RequestId) -> Self {
        RowStream {
            conn,
            id,
            columns: None,
            started: false,
            done: false,
        }
    }

    /// The next batch of rows, or `None` after the last. The first batch must come within
    /// [`Config::request_timeout`](crate::Config::request_timeout), each later one within
    /// [`Config::frame_timeout`](crate::Config::frame_timeout).
    pub async fn next_batch(&mut self) -> Result<Option<RowsBatch>> {
        if self.done {
            return Ok(None);
        }
        let (first, later) = self.conn.timeouts();
        let limit = if self.started { later } else { first };
        self.started = true;
        let result = self.conn.wait(self.id, limit).await;
        match result {
            Ok(Reply::Rows(batch)) => {
                self.done = batch.is_last();
                Ok(Some(batch))
            }
            Ok(other) => {
                self.done = true;
                Err(unexpected(other, "ROWS"))
            }
            Err(e) => {
                self.done = true;
                Err(e)
            }
        }
    }

    /// The rows of the next batch (empty only at the end, or for an empty final batch).
    pub async fn next_rows(&mut self) -> Result<Option<Vec<Row>>> {
        let Some(batch) = self.next_batch().await? else {
            return Ok(None);
        };
        let (cols, values) = batch.into_parts();
        let columns = self.columns.get_or_insert_with(|| cols.into());
        let rows = Row::from_batch(columns, values).collect();
        Ok(Some(rows))
    }
}

impl<'c, R: Runtime> RowStream<'c, R> {
    /// The rows one by one, as a [`futures_util::Stream`]; it ends after the last row or
    /// the first error.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// use futures_util::StreamExt;
    /// let mut rows = std::pin::pin!(conn.stream("SELECT id FROM t", ()).await?.into_rows());
    /// while let Some(row) = rows.next().await {
    ///     let id: i64 = row?.get("id")?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_rows(self) -> impl futures_util::Stream<Item = Result<Row>> + 'c {
        let pending = std::collections::VecDeque::new();
        futures_util::stream::unfold(
            (self, pending, false),
            |(mut s, mut pending, failed)| async move {
                loop {
                    if failed {
                        return None;
                    }
                    if let Some(row) = pending.pop_front() {
                        return Some((Ok(row), (s, pending, false)));
                    }
                    match s.next_rows().await {
                        Ok(Some(rows)) => pending.extend(rows),
                        Ok(None) => return None,
                        Err(e) => return Some((Err(e), (s, pending, true))),
                    }
                }
            },
        )
    }

    /// The rows one by one, each converted to `T` ([`FromRow`]: a derived struct, a tuple),
    /// as a [`futures_util::Stream`]. A row that does not convert yields its error and the
    /// stream goes on with the next; an error reading the result ends it.
    ///
    /// ```no_run
    /// # async fn demo<R: dqlite_client::Runtime>(conn: &mut dqlite_client::Connection<R>) -> dqlite_client::Result<()> {
    /// use futures_util::StreamExt;
    /// #[derive(dqlite_client::FromRow)]
    /// struct Item {
    ///     id: i64,
    ///     name: String,
    /// }
    /// let stream = conn.stream("SELECT id, name FROM items", ()).await?;
    /// let mut items = std::pin::pin!(stream.into_typed::<Item>());
    /// while let Some(item) = items.next().await {
    ///     let item = item?;
    ///     println!("{} {}", item.id, item.name);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_typed<T: FromRow + 'c>(self) -> impl futures_util::Stream<Item = Result<T>> + 'c {
        use futures_util::StreamExt;
        self.into_rows()
            .map(|row| row.and_then(|row| T::from_row(&row)))
    }
}

impl<R: Runtime> Drop for RowStream<'_, R> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.abandon(self.id);
        }
    }
}
