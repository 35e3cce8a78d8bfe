//! `&Pool` as an sqlx `Executor`: each call checks out a connection for the
//! duration of that one query, like sqlx's own `&Pool`.
//!
//! The method set includes the hidden `describe` (sqlx-core's `offline`
//! feature, which sqlx's `macros` feature turns on for the whole build), so
//! `query!` users and everyone else see the same trait.

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::{Database, Either, Execute, Executor};
use sqlx_core::sql_str::SqlStr;

use super::Pool;
use crate::Backend;

impl<'p, DB: Backend> Executor<'p> for &'_ Pool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let acquire = self.acquire();
        Box::pin(
            async_stream::try_stream! {
                let mut conn = acquire.await?;
                let failed = {
                    let mut rows = conn.fetch_many(query);
                    loop {
                        match rows.try_next().await {
                            Ok(Some(row)) => yield row,
                            Ok(None) => break None,
                            Err(error) => break Some(error),
                        }
                    }
                };
                if let Some(error) = failed {
                    // A dead connection is closed, not reused (see `report_error`).
                    conn.report_error(&error);
                    Err(error)?;
                }
            }
            .boxed(),
        )
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let acquire = self.acquire();
        Box::pin(async move {
            let mut conn = acquire.await?;
            let result = conn.fetch_optional(query).await;
            if let Err(error) = &result {
                conn.report_error(error);
            }
            result
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<DB as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<DB as Database>::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let acquire = self.acquire();
        Box::pin(async move {
            let mut conn = acquire.await?;
            let result = conn.prepare_with(sql, parameters).await;
            if let Err(error) = &result {
                conn.report_error(error);
            }
            result
        })
    }

    #[doc(hidden)]
    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx_core::describe::Describe<DB>, sqlx::Error>> {
        let acquire = self.acquire();
        Box::pin(async move {
            let mut conn = acquire.await?;
            let result = conn.describe(sql).await;
            if let Err(error) = &result {
                conn.report_error(error);
            }
            result
        })
    }
}
