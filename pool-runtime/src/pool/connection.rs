//! A checked-out connection. It derefs to the sqlx connection, so
//! `&mut *conn` is an executor, and goes back to its pool when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::ledger::ConnMeta;
use super::shared::Shared;
use crate::observe::signals::Trouble;
use crate::{Backend, CloseReason};

/// A connection checked out of a [`Pool`](crate::Pool).
///
/// Dropping it returns it: rolled back if a transaction is open, kept idle
/// while fewer than `pool_size` are idle, closed otherwise. Dropping it
/// outside a tokio runtime is safe (a dirty connection is then closed
/// rather than reset).
pub struct PooledConnection<DB: Backend> {
    raw: Option<DB::Connection>,
    meta: ConnMeta,
    holder: u64,
    shared: Arc<Shared<DB>>,
    touched: bool,
    discard: Option<CloseReason>,
}

impl<DB: Backend> PooledConnection<DB> {
    pub(crate) fn new(
        shared: Arc<Shared<DB>>,
        raw: DB::Connection,
        meta: ConnMeta,
        holder: u64,
    ) -> Self {
        Self {
            raw: Some(raw),
            meta,
            holder,
            shared,
            touched: false,
            discard: None,
        }
    }

    /// Closes the connection when it is returned instead of keeping it,
    /// for a connection you know is broken or whose session state you
    /// cannot undo (SQLAlchemy's `invalidate()`). For every connection of
    /// the pool, see [`Pool::invalidate_all`](crate::Pool::invalidate_all).
    pub fn invalidate(&mut self) {
        self.discard = Some(CloseReason::Invalidated);
    }

    /// The older name of [`invalidate`](Self::invalidate).
    pub fn close_on_return(&mut self) {
        self.invalidate();
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> std::time::Duration {
        self.meta.created.elapsed()
    }

    /// The pool the connection goes back to.
    pub(crate) fn pool(&self) -> &Arc<Shared<DB>> {
        &self.shared
    }

    pub(crate) fn meta(&self) -> ConnMeta {
        self.meta
    }

    pub(crate) fn raw_mut(&mut self) -> &mut DB::Connection {
        self.raw.as_mut().expect("connection present until drop")
    }

    /// The server just proved the connection alive (a ping answered).
    pub(crate) fn verified(&mut self, now: std::time::Instant) {
        self.meta.verified = now;
    }

    /// Marks the connection to be closed on drop with `reason`.
    pub(crate) fn discard_as(&mut self, reason: CloseReason) {
        self.discard = Some(reason);
    }

    /// Tells the pool about an error a statement on this connection
    /// returned; returns whether it means the connection itself is gone.
    ///
    /// The pool sees errors of statements run through `&Pool` and
    /// [`Transaction`](crate::Transaction) by itself; statements run on
    /// `&mut *conn` bypass it. Those are still caught (a connection is
    /// pinged at checkout at least once per `pre_ping_bypass`), but
    /// reporting the error closes a dead connection at once instead of
    /// within that window.
    ///
    /// "Gone" means I/O, protocol or TLS errors, SQLSTATE class 08, or
    /// 57P01-57P03 (terminated by an administrator, server shutting down):
    /// the connection is then closed on return instead of going back
    /// idle, the other idle connections become suspect (pinged at their
    /// next checkout even inside the bypass window: they likely died with
    /// it), and health counts a connection lost. Without this a dead
    /// connection used more often than `pre_ping_bypass` failed every query
    /// (found by `faults_outage::all_backends_terminated_mid_load`).
    ///
    /// A pool that must stay on a primary (PostgreSQL with
    /// `target_session_attrs` read-write or primary) also treats such an
    /// error, or SQLSTATE 25006 (a write refused by a read-only server: a
    /// demoted primary), as a failover: every connection made until then
    /// is replaced ([`Pool::invalidate_all`](crate::Pool::invalidate_all)),
    /// so the next connects choose a host again. Only once per failover:
    /// connections made after it are kept.
    ///
    /// ```no_run
    /// # async fn demo(pool: pool_runtime::Pool<sqlx::Postgres>) -> Result<(), pool_runtime::Error> {
    /// let mut conn = pool.acquire().await?;
    /// if let Err(error) = sqlx::query("SELECT 1").execute(&mut *conn).await {
    ///     conn.report_error(&error);
    ///     return Err(error.into());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn report_error(&mut self, error: &sqlx::Error) -> bool {
        let code = match error {
            sqlx::Error::Database(db) => db.code(),
            _ => None,
        };
        let gone = match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(_) => code
                .as_deref()
                .is_some_and(|c| c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")),
            _ => false,
        };
        let read_only = code.as_deref() == Some("25006");
        if matches!(code.as_deref(), Some("42P05" | "26000"))
            && self.shared.settings.pgbouncer != crate::PgBouncerMode::Transaction
        {
            self.statement_clash(error);
        }
        if gone {
            self.discard.get_or_insert(CloseReason::Discarded);
            let now = std::time::Instant::now();
            let mut st = self.shared.lock();
            st.suspect_since = Some(now);
            st.signals
                .trouble(now, Trouble::ConnectionLost, crate::error::sqlx_text(error));
        }
        if (gone || read_only) && DB::fails_over(&self.shared.target().options) {
            self.discard.get_or_insert(CloseReason::Invalidated);
            self.shared
                .failover_sign(self.meta.epoch, &crate::error::sqlx_text(error));
        }
        gone
    }

    /// sqlx's own prepared statement clashed with the server's: once per
    /// pool, say what it most likely means.
    fn statement_clash(&self, error: &sqlx::Error) {
        let first = {
            let mut st = self.shared.lock();
            st.totals.statement_clashes += 1;
            st.totals.statement_clashes == 1
        };
        if first {
            tracing::error!(
                target: "pool_runtime::events",
                pool = %self.shared.settings.name,
                error = %crate::error::sqlx_text(error),
                "a prepared statement clashed with another client's: the server connection is \
                 shared between clients, as behind PgBouncer in transaction mode; set \
                 pgbouncer = transaction"
            );
        }
    }

    pub(crate) fn keep(&mut self) {
        self.discard = None;
    }

    /// Takes the connection out without returning it; the caller books it.
    pub(crate) fn into_raw(mut self) -> (DB::Connection, u64) {
        let raw = self.raw.take().expect("connection present until drop");
        (raw, self.holder)
    }
}

impl<DB: Backend> Deref for PooledConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &Self::Target {
        self.raw.as_ref().expect("connection present until drop")
    }
}

impl<DB: Backend> DerefMut for PooledConnection<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.touched = true;
        self.raw.as_mut().expect("connection present until drop")
    }
}

impl<DB: Backend> AsMut<DB::Connection> for PooledConnection<DB> {
    fn as_mut(&mut self) -> &mut DB::Connection {
        self
    }
}

impl<DB: Backend> fmt::Debug for PooledConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("pool", &self.shared.settings.name)
            .field("age", &self.meta.created.elapsed())
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> Drop for PooledConnection<DB> {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.shared
                .check_in(raw, self.meta, self.holder, self.touched, self.discard);
        }
    }
}
