//! A checked-out connection. It derefs to the sqlx connection, so
//! `&mut *conn` is an executor, and goes back to its pool when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::ledger::ConnMeta;
use super::shared::Shared;
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

    /// Closes the connection instead of returning it to the pool, for a
    /// connection you know is broken or has session state to throw away.
    pub fn close_on_return(&mut self) {
        self.discard = Some(CloseReason::Discarded);
    }

    /// How long ago the connection was opened.
    pub fn age(&self) -> std::time::Duration {
        self.meta.created.elapsed()
    }

    pub(crate) fn meta(&self) -> ConnMeta {
        self.meta
    }

    pub(crate) fn raw_mut(&mut self) -> &mut DB::Connection {
        self.raw.as_mut().expect("connection present until drop")
    }

    /// Marks the connection to be closed on drop with `reason`.
    pub(crate) fn discard_as(&mut self, reason: CloseReason) {
        self.discard = Some(reason);
    }

    /// Looks at an error a query on this connection returned. When it says
    /// the connection itself is gone (I/O, protocol, SQLSTATE class 08, or
    /// 57P01-03: terminated by the server, shutdown), the connection is
    /// closed on return instead of going back idle, and the other idle
    /// connections become suspect, so they are pinged at their next
    /// checkout even inside the pre-ping bypass window (they likely died
    /// with it). Without this a dead connection used more often than
    /// `pre_ping_bypass` was never pinged and failed every query forever
    /// (found by `faults_outage::all_backends_terminated_mid_load`).
    pub(crate) fn note_error(&mut self, error: &sqlx::Error) {
        let gone = match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
            _ => false,
        };
        if gone {
            self.discard.get_or_insert(CloseReason::Discarded);
            self.shared.lock().suspect_since = Some(std::time::Instant::now());
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
