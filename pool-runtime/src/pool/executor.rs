//! `&Pool` as an sqlx `Executor`: each call checks out a connection for the
//! duration of that one query, like sqlx's own `&Pool`.
//!
//! With `pgbouncer = transaction`, a prepared statement (`sqlx::query`,
//! even with no binds) runs unnamed inside [`PINNED_BEGIN`](super::transaction::PINNED_BEGIN) … `COMMIT`:
//! sqlx prepares, waits for the server (a Sync), then binds, and outside a
//! transaction PgBouncer may give the second half another server
//! connection. A simple-protocol statement (`sqlx::raw_sql`, a plain
//! `&str`) is one message and runs as it is.
//!
//! The method set includes the hidden `describe` (sqlx-core's `offline`
//! feature, which sqlx's `macros` feature turns on for the whole build), so
//! `query!` users and everyone else see the same trait.

use std::future::Future;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::error::BoxDynError;
use sqlx::{Database, Either, Execute, Executor};
use sqlx_core::sql_str::SqlStr;
use sqlx_core::transaction::TransactionManager;

use super::transaction::begin_on;
use super::{Pool, PooledConnection};
use crate::{Backend, PgBouncerMode};

/// What `fetch_many` returns.
type Rows<'e, DB> = BoxStream<
    'e,
    Result<Either<<DB as Database>::QueryResult, <DB as Database>::Row>, sqlx::Error>,
>;

/// A query whose arguments were taken to see whether it has any, run as
/// the unnamed statement (never cached, nothing left on the server).
struct Unnamed<E, A> {
    query: E,
    arguments: Option<Result<Option<A>, BoxDynError>>,
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Unnamed<E, DB::Arguments> {
    fn sql(self) -> SqlStr {
        self.query.sql()
    }
    fn statement(&self) -> Option<&DB::Statement> {
        self.query.statement()
    }
    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }
    fn persistent(&self) -> bool {
        false
    }
}

/// With `pgbouncer = transaction`: `Ok` with the query to run unnamed and
/// whether it needs a transaction around it (it is prepared, not sent with
/// the simple protocol). `Err(query)` otherwise: run it as it is.
fn pinned<'q, DB: Backend, E: Execute<'q, DB>>(
    pool: &Pool<DB>,
    query: E,
) -> Result<(Unnamed<E, DB::Arguments>, bool), E> {
    if pool.shared.settings.pgbouncer != PgBouncerMode::Transaction {
        return Err(query);
    }
    let mut query = query;
    let arguments = query.take_arguments();
    let prepared = !matches!(arguments, Ok(None));
    Ok((
        Unnamed {
            query,
            arguments: Some(arguments),
        },
        prepared,
    ))
}

/// Commits the transaction a pinned statement ran in.
async fn commit_pinned<DB: Backend>(conn: &mut PooledConnection<DB>) -> Result<(), sqlx::Error> {
    let result = DB::TransactionManager::commit(conn).await;
    if let Err(error) = &result {
        conn.report_error(error);
    }
    result
}

impl<'p, DB: Backend> Executor<'p> for &'_ Pool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> Rows<'e, DB>
    where
        E: 'q + Execute<'q, DB>,
    {
        let acquire = self.checkout();
        match pinned(self, query) {
            Ok((unnamed, prepared)) => rows(acquire, unnamed, prepared),
            Err(query) => rows(acquire, query, false),
        }
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let acquire = self.checkout();
        match pinned(self, query) {
            Ok((unnamed, prepared)) => Box::pin(optional(acquire, unnamed, prepared)),
            Err(query) => Box::pin(optional(acquire, query, false)),
        }
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [<DB as Database>::TypeInfo],
    ) -> BoxFuture<'e, Result<<DB as Database>::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let acquire = self.checkout();
        let pinned = self.shared.settings.pgbouncer == PgBouncerMode::Transaction;
        Box::pin(async move {
            let mut conn = acquire.await?;
            if pinned {
                begin_on(&mut conn).await?;
            }
            let result = conn.prepare_with(sql, parameters).await;
            if pinned && result.is_ok() {
                commit_pinned(&mut conn).await?;
            }
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
        let acquire = self.checkout();
        let pinned = self.shared.settings.pgbouncer == PgBouncerMode::Transaction;
        Box::pin(async move {
            let mut conn = acquire.await?;
            if pinned {
                begin_on(&mut conn).await?;
            }
            let result = conn.describe(sql).await;
            if pinned && result.is_ok() {
                commit_pinned(&mut conn).await?;
            }
            if let Err(error) = &result {
                conn.report_error(error);
            }
            result
        })
    }
}

/// The rows of one statement on a connection checked out for it, inside a
/// transaction when `in_transaction` (a pinned prepared statement).
fn rows<'e, 'q: 'e, DB, E, A>(acquire: A, query: E, in_transaction: bool) -> Rows<'e, DB>
where
    DB: Backend,
    A: Future<Output = Result<PooledConnection<DB>, crate::Error>> + Send + 'static,
    E: 'q + Execute<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    Box::pin(
        async_stream::try_stream! {
            let mut conn = acquire.await?;
            if in_transaction {
                begin_on(&mut conn).await?;
            }
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
                // A dead connection is closed, not reused (see
                // `report_error`); an open transaction is rolled back on
                // return.
                conn.report_error(&error);
                Err(error)?;
            }
            if in_transaction {
                commit_pinned(&mut conn).await?;
            }
        }
        .boxed(),
    )
}

/// `fetch_optional` of one statement, as [`rows`].
async fn optional<'q, DB, E, A>(
    acquire: A,
    query: E,
    in_transaction: bool,
) -> Result<Option<DB::Row>, sqlx::Error>
where
    DB: Backend,
    A: Future<Output = Result<PooledConnection<DB>, crate::Error>>,
    E: 'q + Execute<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut conn = acquire.await?;
    if in_transaction {
        begin_on(&mut conn).await?;
    }
    let result = conn.fetch_optional(query).await;
    match &result {
        Err(error) => {
            conn.report_error(error);
        }
        Ok(_) if in_transaction => commit_pinned(&mut conn).await?,
        Ok(_) => {}
    }
    result
}
