//! A transaction that owns its pooled connection.

use std::ops::{Deref, DerefMut};

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
        // If this future is dropped (or fails) while BEGIN is in flight, the
        // server may already be in a transaction that sqlx does not count:
        // its depth goes up only once the answer is read, and its own guard
        // then queues no rollback. Neither the reset on return nor the next
        // user would notice, and the next user's autocommit writes would
        // silently never commit. Such a connection is closed, not reused
        // (found by `faults_cancel::a_begin_cancelled_in_flight_does_not_poison_the_next_user`).
        conn.discard_as(crate::CloseReason::Discarded);
        if conn.pool().settings.pgbouncer == crate::PgBouncerMode::Transaction {
            super::executor::begin_pinned(&mut conn).await?;
        } else if let Err(error) = DB::TransactionManager::begin(&mut conn, None).await {
            conn.report_error(&error);
            return Err(error.into());
        }
        conn.keep();
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
