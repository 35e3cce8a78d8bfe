//! A transaction that owns its pooled connection.

use std::ops::{Deref, DerefMut};

use sqlx_core::sql_str::SqlStr;
use sqlx_core::transaction::TransactionManager;

use super::PooledConnection;
use crate::{Backend, Error};

/// A transaction on a pooled connection, from [`Pool::begin`](crate::Pool::begin).
///
/// `&mut *tx` is an executor. Commit or roll back explicitly; a transaction
/// dropped without either is rolled back before its connection is reused.
///
/// Behind PgBouncer in transaction mode (`pgbouncer = transaction`) the
/// whole transaction stays on one server connection, so every statement
/// in it works as sqlx sends it; it begins by closing the statements other
/// clients left on that connection.
///
/// ```no_run
/// # async fn demo(pool: pool_runtime::Pool<sqlx::Postgres>) -> Result<(), pool_runtime::Error> {
/// let mut tx = pool.begin().await?;
/// sqlx::query("INSERT INTO items (name) VALUES ($1)").bind("x").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct Transaction<DB: Backend> {
    conn: PooledConnection<DB>,
    open: bool,
}

impl<DB: Backend> Transaction<DB> {
    pub(crate) async fn begin(mut conn: PooledConnection<DB>) -> Result<Self, Error> {
        begin_on(&mut conn).await?;
        Ok(Self { conn, open: true })
    }

    /// Commits, then the connection goes back to the pool.
    pub async fn commit(mut self) -> Result<(), Error> {
        let result = DB::TransactionManager::commit(&mut self.conn).await;
        self.finish(result)
    }

    /// Rolls back, then the connection goes back to the pool.
    pub async fn rollback(mut self) -> Result<(), Error> {
        let result = DB::TransactionManager::rollback(&mut self.conn).await;
        self.finish(result)
    }

    /// Tells the pool about an error of a statement run on `&mut *tx`;
    /// see [`PooledConnection::report_error`].
    pub fn report_error(&mut self, error: &sqlx::Error) -> bool {
        self.conn.report_error(error)
    }

    fn finish(&mut self, result: Result<(), sqlx::Error>) -> Result<(), Error> {
        match result {
            Ok(()) => {
                self.open = false;
                Ok(())
            }
            Err(error) => {
                self.conn.report_error(&error);
                Err(error.into())
            }
        }
    }
}

impl<DB: Backend> Deref for Transaction<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl<DB: Backend> DerefMut for Transaction<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

impl<DB: Backend> std::fmt::Debug for Transaction<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("conn", &self.conn)
            .field("open", &self.open)
            .finish()
    }
}

impl<DB: Backend> Drop for Transaction<DB> {
    fn drop(&mut self) {
        if self.open {
            // Queues the rollback; the pool's return path sends it and waits
            // for the server before the connection is reused.
            DB::TransactionManager::start_rollback(&mut self.conn);
        }
    }
}

/// How a transaction starts behind PgBouncer in transaction mode: the
/// server connection it gets may hold statements another client prepared
/// and never closed (sqlx names them `sqlx_s_1`, `sqlx_s_2`, … per client,
/// so ours would clash with theirs: "prepared statement "sqlx_s_1" already
/// exists"). Sent as one simple query, both run on the same server
/// connection. Found by `pgbouncer::transaction_mode_mixed_workload_8_pools_x_10`.
pub(crate) const PINNED_BEGIN: &str = "BEGIN; DEALLOCATE ALL";

/// Begins a transaction on `conn` (with [`PINNED_BEGIN`] behind PgBouncer
/// in transaction mode), for [`Transaction`] and for `&Pool`'s pinned
/// statements.
///
/// If this future is dropped (or fails) while BEGIN is in flight, the
/// server may already be in a transaction that sqlx does not count: its
/// depth goes up only once the answer is read, and its own guard then
/// queues no rollback. Neither the reset on return nor the next user would
/// notice, and the next user's autocommit writes would silently never
/// commit. Such a connection is closed, not reused (found by
/// `faults_cancel::a_begin_cancelled_in_flight_does_not_poison_the_next_user`,
/// and for `&Pool` by
/// `pgbouncer::cancelled_statements_leave_no_open_transaction_behind`).
pub(crate) async fn begin_on<DB: Backend>(
    conn: &mut PooledConnection<DB>,
) -> Result<(), sqlx::Error> {
    conn.discard_as(crate::CloseReason::Discarded);
    let statement = (conn.pool().settings.pgbouncer == crate::PgBouncerMode::Transaction)
        .then(|| SqlStr::from_static(PINNED_BEGIN));
    let result = DB::TransactionManager::begin(conn, statement).await;
    match &result {
        Ok(()) => conn.keep(),
        Err(error) => {
            conn.report_error(error);
        }
    }
    result
}
