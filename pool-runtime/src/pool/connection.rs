//! A checked-out connection. It derefs to the sqlx connection, so
//! `&mut *conn` is an executor, and goes back to its pool when dropped.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use super::shared::{ConnMeta, Shared};
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
    pub(crate) fn new(shared: Arc<Shared<DB>>, raw: DB::Connection, meta: ConnMeta, holder: u64) -> Self {
        Self { raw: Some(raw), meta, holder, shared, touched: false, discard: None }
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
            self.shared.check_in(raw, self.meta, self.holder, self.touched, self.discard);
        }
    }
}
