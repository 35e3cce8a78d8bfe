//! [`PoolBuilder`]: a pool with lifecycle hooks, which are code and so live
//! beside the settings (plain data) rather than in them.

use super::Pool;
use super::hooks::{ConnectionInfo, HookFuture, Hooks};
use crate::{Backend, Error, PoolSettings};

/// Builds a [`Pool`] with lifecycle hooks; [`Pool::builder`] starts one.
///
/// Each hook is bounded by `network_timeout`; a failing one closes the
/// connection it ran on and is counted in [`Totals::hook_failures`](crate::observe::status::Totals::hook_failures)
/// and the `db_pool_hook_failures_total` metric.
///
/// ```no_run
/// use pool_runtime::{Pool, PoolSettings};
/// use sqlx::Executor;
/// # async fn demo() -> Result<(), pool_runtime::Error> {
/// let settings = PoolSettings::new("postgres://app@localhost/app");
/// let pool = Pool::<sqlx::Postgres>::builder(settings)
///     .after_connect(|conn, _info| {
///         Box::pin(async move {
///             conn.execute("SET search_path TO app, public").await?;
///             Ok(())
///         })
///     })
///     .before_checkout(|_conn, info| Box::pin(async move { Ok(info.age.as_secs() < 3600) }))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct PoolBuilder<DB: Backend> {
    settings: PoolSettings,
    hooks: Hooks<DB>,
}

impl<DB: Backend> std::fmt::Debug for PoolBuilder<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("settings", &self.settings)
            .field("hooks", &self.hooks)
            .finish()
    }
}

impl<DB: Backend> PoolBuilder<DB> {
    pub(crate) fn new(settings: PoolSettings) -> Self {
        Self {
            settings,
            hooks: Hooks::default(),
        }
    }

    /// Runs on every new connection before anyone uses it (`SET ROLE`,
    /// `SET search_path`, session settings, `LISTEN`). An error fails the
    /// checkout that opened it at once, with this error
    /// ([`Error::Hook`]), and gives its slot back.
    pub fn after_connect<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(&'c mut DB::Connection, ConnectionInfo) -> HookFuture<'c, ()>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.after_connect = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs on an idle connection about to be handed out, after the
    /// pre-ping. `Ok(false)` or an error closes it and another is taken
    /// (a new connection is vetted by `after_connect` instead).
    pub fn before_checkout<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(&'c mut DB::Connection, ConnectionInfo) -> HookFuture<'c, bool>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.before_checkout = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs on a returned connection after the rollback and
    /// `reset_statement`, in the background (the caller never waits for
    /// it). `Ok(false)` or an error closes it.
    pub fn after_checkin<F>(mut self, hook: F) -> Self
    where
        F: for<'c> Fn(&'c mut DB::Connection, ConnectionInfo) -> HookFuture<'c, bool>
            + Send
            + Sync
            + 'static,
    {
        self.hooks.after_checkin = Some(std::sync::Arc::new(hook));
        self
    }

    /// [`Pool::connect`] with these hooks.
    pub async fn connect(self) -> Result<Pool<DB>, Error> {
        Pool::connect_with_hooks(self.settings, self.hooks).await
    }

    /// [`Pool::connect_lazy`] with these hooks.
    pub fn connect_lazy(self) -> Result<Pool<DB>, Error> {
        Pool::connect_lazy_with_hooks(self.settings, self.hooks)
    }
}
