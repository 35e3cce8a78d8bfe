//! Lifecycle hooks: code of the user's run by the pool at three points of a
//! connection's life (sqlx's `after_connect` / `before_acquire` /
//! `after_release`, SQLAlchemy's pool events), each bounded by
//! `network_timeout`. A pool without hooks pays one `Option` check at each
//! point.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::Shared;
use crate::{Backend, Error};

/// What a hook may fail with: any error (`?` on an `sqlx::Error` works).
pub type HookError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future a hook returns, borrowing the connection.
pub type HookFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, HookError>> + Send + 'c>>;

/// What a hook is told about the connection it runs on.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Since the connection was opened.
    pub age: Duration,
    /// Since it last went idle (zero in `after_connect` and
    /// `after_checkin`).
    pub idle_for: Duration,
}

/// Which hook (a label in metrics, errors and logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Runs once on every new connection, before anyone uses it.
    AfterConnect,
    /// Runs on an idle connection about to be handed out; `false` closes
    /// it and another is taken.
    BeforeCheckout,
    /// Runs on a returned connection, after the reset; `false` closes it.
    AfterCheckin,
}

impl Hook {
    /// Every hook, in the order of the metrics' counters.
    pub const ALL: [Hook; 3] = [Self::AfterConnect, Self::BeforeCheckout, Self::AfterCheckin];

    /// `after_connect`, `before_checkout`, `after_checkin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AfterConnect => "after_connect",
            Self::BeforeCheckout => "before_checkout",
            Self::AfterCheckin => "after_checkin",
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Run<DB, T> = dyn for<'c> Fn(&'c mut <DB as sqlx::Database>::Connection, ConnectionInfo) -> HookFuture<'c, T>
    + Send
    + Sync;

/// The hooks a pool was built with.
pub(crate) struct Hooks<DB: Backend> {
    pub after_connect: Option<Arc<Run<DB, ()>>>,
    pub before_checkout: Option<Arc<Run<DB, bool>>>,
    pub after_checkin: Option<Arc<Run<DB, bool>>>,
}

impl<DB: Backend> Default for Hooks<DB> {
    fn default() -> Self {
        Self {
            after_connect: None,
            before_checkout: None,
            after_checkin: None,
        }
    }
}

impl<DB: Backend> Clone for Hooks<DB> {
    fn clone(&self) -> Self {
        Self {
            after_connect: self.after_connect.clone(),
            before_checkout: self.before_checkout.clone(),
            after_checkin: self.after_checkin.clone(),
        }
    }
}

impl<DB: Backend> fmt::Debug for Hooks<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("after_connect", &self.after_connect.is_some())
            .field("before_checkout", &self.before_checkout.is_some())
            .field("after_checkin", &self.after_checkin.is_some())
            .finish()
    }
}

/// Runs one hook bounded by `network_timeout`. A failure or timeout is
/// counted (status totals, metrics), logged and returned as
/// [`Error::Hook`].
pub(crate) async fn run<DB: Backend, T>(
    shared: &Shared<DB>,
    hook: Hook,
    future: HookFuture<'_, T>,
) -> Result<T, Error> {
    let bound = shared.settings.network_timeout;
    let source: HookError = match tokio::time::timeout(bound, future).await {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(error)) => error,
        Err(_) => format!("no result within {bound:?} (network_timeout)").into(),
    };
    shared.lock().totals.hook_failures += 1;
    shared.metrics.hook_failures[hook as usize].increment(1);
    tracing::warn!(
        target: "pool_runtime::events",
        pool = %shared.settings.name,
        hook = hook.as_str(),
        error = %source,
        "hook failed; closing the connection"
    );
    Err(Error::Hook {
        pool: shared.settings.name.clone(),
        hook,
        source,
    })
}

/// Info for a hook on a connection opened at `created`.
pub(crate) fn info(created: Instant, idle_since: Option<Instant>) -> ConnectionInfo {
    let now = Instant::now();
    ConnectionInfo {
        age: now.saturating_duration_since(created),
        idle_for: idle_since.map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
    }
}
