//! The pool: handles ([`Pool`]), checkout ([`acquire`]), the shared state
//! ([`shared`]), returned connections ([`PooledConnection`]), transactions,
//! the sqlx `Executor` impl and the background upkeep ([`maintain`]).

mod acquire;
mod builder;
mod connection;
mod executor;
mod hooks;
mod ledger;
mod maintain;
mod open;
mod reservation;
mod shared;
mod transaction;

use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use sqlx::Connection;

pub use builder::PoolBuilder;
pub use connection::PooledConnection;
use hooks::Hooks;
pub use hooks::{ConnectionInfo, Hook, HookError, HookFuture};
use shared::Shared;
pub use transaction::Transaction;

use crate::{Backend, CloseReason, Error, PgBouncerMode, PoolSettings, Status};

/// A pool of sqlx connections with QueuePool semantics.
///
/// Cheap to clone (an `Arc`); every clone is the same pool. `&Pool` is an
/// sqlx [`Executor`](sqlx::Executor), so `query.fetch_one(&pool)` works.
///
/// A SQLite file database is split by default (`sqlite_single_writer`):
/// `acquire`, `begin` and `&Pool` use its one writer connection, and
/// [`reader`](Self::reader) its read-only connections.
pub struct Pool<DB: Backend> {
    shared: Arc<Shared<DB>>,
    /// The read-only connections of a split pool.
    readers: Option<Arc<Shared<DB>>>,
}

impl<DB: Backend> Clone for Pool<DB> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            readers: self.readers.clone(),
        }
    }
}

impl<DB: Backend> std::fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.settings.name)
            .field("url", &self.shared.url())
            .field("status", &format_args!("{}", self.status()))
            .finish()
    }
}

impl<DB: Backend> Pool<DB> {
    /// Builds the pool and opens one connection to prove the URL and the
    /// server work (it stays in the pool), plus `min_idle` connections.
    ///
    /// The first connection is bounded by `connect_timeout` (its own
    /// bound, reported as [`Error::ConnectTimeout`]), with `pool_timeout`
    /// on top: a short `pool_timeout` bounds waits for a busy pool, and
    /// must not fail a service's start on a slow first handshake (seen in
    /// CI: postgres_pool's exhaustion test, 200 ms, on a loaded machine),
    /// nor win the race against the connect's own bound
    /// (`faults_blackhole::first_connect_reports_connect_timeout`).
    pub async fn connect(settings: PoolSettings) -> Result<Self, Error> {
        Self::connect_with_hooks(settings, Hooks::default()).await
    }

    /// A [`PoolBuilder`], for a pool with lifecycle hooks.
    pub fn builder(settings: PoolSettings) -> PoolBuilder<DB> {
        PoolBuilder::new(settings)
    }

    async fn connect_with_hooks(settings: PoolSettings, hooks: Hooks<DB>) -> Result<Self, Error> {
        let site = Location::caller();
        let pool = Self::build(settings, hooks)?;
        let settings = &pool.shared.settings;
        // Every host of a multi-host URL may take its own connect_timeout.
        let attempts = DB::max_attempts(&pool.shared.target().options).max(1);
        let limit = settings.connect_timeout * attempts + settings.pool_timeout;
        // The writer first: it creates a fresh SQLite file and its WAL.
        let first = acquire::acquire(Arc::clone(&pool.shared), site, limit).await;
        for shared in pool.parts() {
            shared.started.store(true, Ordering::Relaxed);
        }
        drop(first?);
        for shared in pool.parts() {
            maintain::top_up(shared).await;
        }
        Ok(pool)
    }

    /// Builds the pool without connecting; the first `acquire` connects.
    /// Settings and the URL are still checked now.
    pub fn connect_lazy(settings: PoolSettings) -> Result<Self, Error> {
        Self::connect_lazy_with_hooks(settings, Hooks::default())
    }

    fn connect_lazy_with_hooks(settings: PoolSettings, hooks: Hooks<DB>) -> Result<Self, Error> {
        let pool = Self::build(settings, hooks)?;
        for shared in pool.parts() {
            shared.started.store(true, Ordering::Relaxed);
        }
        Ok(pool)
    }

    fn build(settings: PoolSettings, hooks: Hooks<DB>) -> Result<Self, Error> {
        settings.validate()?;
        let settings = settings.with_hosts_applied()?;
        let options = DB::options(&settings)?;
        let readers = DB::reader_options(&settings, &options).map(|read_only| {
            let mut readers = settings.clone();
            readers.name = format!("{}.readers", settings.name);
            Arc::new(Shared::new(readers, read_only, hooks.clone()))
        });
        let mut writer = settings;
        if readers.is_some() {
            writer.pool_size = 1;
            writer.max_overflow = 0;
            writer.min_idle = writer.min_idle.min(1);
        }
        let shared = Arc::new(Shared::new(writer, options, hooks));
        let pool = Self { shared, readers };
        for shared in pool.parts() {
            maintain::spawn(shared);
        }
        Ok(pool)
    }

    /// The writer (or only) part, then the readers of a split pool.
    fn parts(&self) -> impl Iterator<Item = &Arc<Shared<DB>>> {
        std::iter::once(&self.shared).chain(&self.readers)
    }

    /// A handle on the pool's read-only connections: `acquire` on it, or
    /// `&pool.reader()` as an executor, reads while the writer writes.
    /// Only a SQLite file database is split; for every other pool this is
    /// the pool itself. A write through it fails with SQLite's "attempt to
    /// write a readonly database".
    ///
    /// ```no_run
    /// # async fn demo(pool: pool_runtime::Pool<sqlx::Sqlite>) -> Result<(), sqlx::Error> {
    /// let names: Vec<String> = sqlx::query_scalar("SELECT name FROM items")
    ///     .fetch_all(&pool.reader())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn reader(&self) -> Pool<DB> {
        Self {
            shared: Arc::clone(self.readers.as_ref().unwrap_or(&self.shared)),
            readers: None,
        }
    }

    /// Checks out a connection, waiting at most `pool_timeout` in all.
    ///
    /// The call site is recorded (`#[track_caller]`) for leak reports and
    /// timeout errors. Cancel-safe: dropping the future leaks nothing.
    ///
    /// With `pgbouncer = transaction` it fails with
    /// [`Error::PgBouncerTransactionMode`]: a held connection's statements
    /// could span two server connections. Use `&pool` and
    /// [`begin`](Self::begin) there.
    #[track_caller]
    pub fn acquire(
        &self,
    ) -> impl Future<Output = Result<PooledConnection<DB>, Error>> + Send + 'static {
        use futures_util::future::{Either, ready};
        if self.shared.settings.pgbouncer == PgBouncerMode::Transaction {
            return Either::Left(ready(Err(Error::PgBouncerTransactionMode {
                pool: self.shared.settings.name.clone(),
            })));
        }
        Either::Right(self.checkout())
    }

    /// `acquire` for the pool's own uses (`&Pool`, `begin`), which are
    /// safe behind PgBouncer in transaction mode.
    #[track_caller]
    pub(crate) fn checkout(
        &self,
    ) -> impl Future<Output = Result<PooledConnection<DB>, Error>> + Send + 'static {
        let site = Location::caller();
        acquire::acquire(
            Arc::clone(&self.shared),
            site,
            self.shared.settings.pool_timeout,
        )
    }

    /// Checks out a connection and begins a transaction on it; the
    /// transaction holds the connection until commit, rollback or drop
    /// (which rolls back).
    #[track_caller]
    pub fn begin(&self) -> impl Future<Output = Result<Transaction<DB>, Error>> + Send + 'static {
        let acquire = self.checkout();
        async move { Transaction::begin(acquire.await?).await }
    }

    /// A consistent snapshot of counts, health and advice.
    pub fn status(&self) -> Status {
        let mut status = self.shared.status();
        self.shared.metrics.publish(&status);
        if let Some(readers) = &self.readers {
            let read = readers.status();
            readers.metrics.publish(&read);
            if read.health > status.health {
                status.health = read.health;
            }
            let reasons = read.health_reasons.iter().map(|r| format!("readers: {r}"));
            status.health_reasons.extend(reasons);
            status.readers = Some(Box::new(read));
        }
        status
    }

    /// Connections checked out or being opened: the cheap count a
    /// `least-busy` [`ReplicaPool`](crate::ReplicaPool) compares.
    pub(crate) fn busy(&self) -> u32 {
        let ledger = self.shared.lock();
        ledger.checked_out + ledger.connecting
    }

    /// The settings the pool was built from. [`resize`](Self::resize) and
    /// [`set_connect_url`](Self::set_connect_url) change the pool, not
    /// these; [`status`](Self::status) shows the sizes in effect.
    pub fn settings(&self) -> &PoolSettings {
        &self.shared.settings
    }

    /// Closes every idle connection now and every checked-out one when it
    /// comes back, so that from now on only connections opened after this
    /// call are handed out (SQLAlchemy's pool-wide invalidation). For new
    /// credentials (after [`set_connect_url`](Self::set_connect_url)), a
    /// manual switchover, or a server you know restarted. Holders are not
    /// interrupted; connections being opened at the call are closed when
    /// returned.
    pub fn invalidate_all(&self) {
        for shared in self.parts() {
            shared.invalidate(None);
        }
    }

    /// Connects new connections to `url` from now on: credential rotation
    /// without a restart. Checked as [`Pool::connect`] checks a URL (the
    /// settings' TLS files and options apply to it too); a refusal back-off
    /// of the old credentials ends at once. Existing connections stay
    /// until [`invalidate_all`](Self::invalidate_all):
    ///
    /// ```no_run
    /// # fn demo(pool: pool_runtime::Pool<sqlx::Postgres>) -> Result<(), pool_runtime::Error> {
    /// pool.set_connect_url("postgres://app:new-password@db/app")?;
    /// pool.invalidate_all();
    /// # Ok(()) }
    /// ```
    pub fn set_connect_url(&self, url: impl Into<String>) -> Result<(), Error> {
        let mut settings = self.shared.settings.clone();
        settings.url = crate::Secret::new(url.into());
        settings.validate()?;
        let options = DB::options(&settings)?;
        if let Some(readers) = &self.readers {
            let read_only = DB::reader_options(&settings, &options).ok_or_else(|| {
                Error::InvalidUrl {
                    url: settings.url.redacted(),
                    reason: "cannot replace a split SQLite file database's URL with one that is not split (in-memory)".to_owned(),
                }
            })?;
            readers.set_target(read_only, settings.url.redacted());
        }
        self.shared.set_target(options, settings.url.redacted());
        Ok(())
    }

    /// Changes `pool_size` and `max_overflow` of the live pool (deadpool's
    /// `resize`). Growing serves waiting callers at once; shrinking closes
    /// idle connections beyond the new `pool_size` now and checked-out ones
    /// beyond the new capacity as they come back. Checked as the settings
    /// are (`min_idle` must still fit). A split SQLite pool resizes its
    /// readers; its writer stays one connection.
    pub fn resize(&self, pool_size: u32, max_overflow: u32) -> Result<(), Error> {
        let shared = self.readers.as_ref().unwrap_or(&self.shared);
        let mut settings = shared.settings.clone();
        settings.pool_size = pool_size;
        settings.max_overflow = max_overflow;
        settings.validate()?;
        let extra = shared.lock().resize(pool_size, settings.capacity(), || {
            shared.handoff.add_permits(1)
        });
        *shared.sizes.lock().unwrap_or_else(|p| p.into_inner()) = (pool_size, max_overflow);
        for raw in extra {
            shared.metrics.closed(CloseReason::Overflow);
            shared.close_in_background(raw);
        }
        Ok(())
    }

    /// The pool's name (metrics label, registry key).
    pub fn name(&self) -> &str {
        &self.shared.settings.name
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Stops checkouts (waiters get [`Error::Closed`]), closes idle
    /// connections, then waits up to `pool_timeout` for checked-out ones to
    /// come back; they are closed on return whenever that happens.
    pub async fn close(&self) {
        // Readers first: the writer's close is the last thing a SQLite
        // file sees (it checkpoints the WAL).
        if let Some(readers) = &self.readers {
            close(readers).await;
        }
        close(&self.shared).await;
    }
}

/// Closes one part of a pool: see [`Pool::close`].
async fn close<DB: Backend>(shared: &Shared<DB>) {
    let idle = shared.lock().close();
    shared.handoff.close();
    let timeout = shared.settings.network_timeout;
    let closing = idle.into_iter().map(|conn| {
        shared.metrics.closed(CloseReason::PoolClosed);
        tokio::time::timeout(timeout, conn.raw.close())
    });
    futures_util::future::join_all(closing).await;
    let deadline = Instant::now() + shared.settings.pool_timeout;
    loop {
        let returned = shared.returned.notified();
        tokio::pin!(returned);
        returned.as_mut().enable();
        if shared.lock().is_drained() {
            break;
        }
        if tokio::time::timeout_at(deadline.into(), returned)
            .await
            .is_err()
        {
            tracing::warn!(
                target: "pool_runtime::events",
                pool = %shared.settings.name,
                "close: connections still checked out after pool_timeout; they close when returned"
            );
            break;
        }
    }
    // Closes started on return run in the background; give them a moment.
    tokio::task::yield_now().await;
}

/// Rolls back whatever sqlx knows is open, or everything when `always`,
/// runs the `reset_statement` if any, and makes sure nothing is left
/// queued on the connection.
pub(crate) async fn reset<DB: Backend>(
    conn: &mut DB::Connection,
    always: bool,
    statement: Option<&str>,
) -> Result<(), sqlx::Error> {
    use sqlx_core::transaction::TransactionManager;
    while conn.is_in_transaction() {
        <DB::TransactionManager as TransactionManager>::rollback(conn).await?;
    }
    if always {
        DB::rollback_any(conn).await?;
    }
    if let Some(statement) = statement {
        DB::run_statement(conn, statement).await?;
    }
    if conn.should_flush() {
        conn.ping().await?;
    }
    Ok(())
}
