//! The state every handle of a pool shares: one lock around the idle queue,
//! the `pool_size + max_overflow` permits and all counters, and a hand-off
//! semaphore for callers that wait. A checked-out connection owns one
//! permit; giving it back is the last step of every return, so waiters
//! wake only when a connection, or room to open one, is really there.
//!
//! The permits used to live in a tokio semaphore alone: a checkout then
//! took the semaphore and the lock, a return the lock and the semaphore's
//! own lock. Counted in the ledger, each takes the one lock; the semaphore
//! only queues callers that wait (FIFO), fed while they wait.

use std::borrow::Cow;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use sqlx::Connection;
use tokio::sync::{Notify, Semaphore};

use super::hooks::{self, Hook, Hooks};
use super::ledger::{ConnMeta, Idle, Ledger, Lingering};
use super::reservation::Capacity;
use crate::backend::Backend;
use crate::observe::metrics::PoolMetrics;
use crate::observe::status::Counts;
use crate::{CloseReason, PoolClass, PoolSettings, ResetOnReturn, Status};

pub(crate) struct Shared<DB: Backend> {
    pub settings: PoolSettings,
    /// Where new connections go; replaced by `Pool::set_connect_url`.
    target: RwLock<Arc<Target<DB>>>,
    pub hooks: Hooks<DB>,
    /// `pool_size` and `max_overflow` in effect (`Pool::resize`), for status.
    pub sizes: Mutex<(u32, u32)>,
    pub state: Mutex<Ledger<DB::Connection>>,
    /// Callers waiting for a permit queue here; it holds permits only
    /// while callers wait (see [`Ledger::give_permit`]).
    pub handoff: Semaphore,
    pub metrics: PoolMetrics,
    /// Signalled whenever a checked-out connection comes back, for `close`.
    pub returned: Notify,
    /// The server's limits were asked for (by the first connect).
    pub limits_probed: AtomicBool,
    /// `Pool::connect` has returned (or the pool was built lazily): connect
    /// failures are logged from now on rather than only returned.
    pub started: AtomicBool,
}

/// Connect options and the URL they came from, password masked.
pub(crate) struct Target<DB: Backend> {
    pub options: DB::Options,
    pub url: String,
}

impl<DB: Backend> Shared<DB> {
    pub(crate) fn new(settings: PoolSettings, options: DB::Options, hooks: Hooks<DB>) -> Self {
        let capacity = settings.capacity();
        Self {
            target: RwLock::new(Arc::new(Target {
                options,
                url: settings.url.redacted(),
            })),
            hooks,
            sizes: Mutex::new((settings.pool_size, settings.max_overflow)),
            metrics: PoolMetrics::new(&settings.name, settings.metrics),
            state: Mutex::new(Ledger::new(settings.pool_size, capacity)),
            handoff: Semaphore::new(0),
            returned: Notify::new(),
            limits_probed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            settings,
        }
    }

    /// The lock is never held across an await, and nothing under it can
    /// panic, so a poisoned lock still holds consistent counts.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Ledger<DB::Connection>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Where the next connect goes.
    pub(crate) fn target(&self) -> Arc<Target<DB>> {
        Arc::clone(&self.target.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The URL new connections go to, password masked, for messages.
    pub(crate) fn url(&self) -> String {
        self.target().url.clone()
    }

    /// New connect options; ends a refusal back-off of the old ones.
    pub(crate) fn set_target(&self, options: DB::Options, url: String) {
        *self.target.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Target { options, url });
        self.lock().signals.connect_refused(Instant::now(), None);
    }

    /// Closes every idle connection and marks every other one made so far
    /// to close on return ([`Pool::invalidate_all`](crate::Pool::invalidate_all)).
    /// With `made_in = Some(epoch)`, only if nothing was invalidated since a
    /// connection of that epoch was made: a burst of failures after one
    /// failover invalidates once, not again the new connections.
    /// Returns whether it invalidated.
    pub(crate) fn invalidate(&self, made_in: Option<u64>) -> bool {
        let idle = {
            let mut st = self.lock();
            let idle = match made_in {
                Some(epoch) => st.invalidate_for(epoch),
                None => Some(st.invalidate_all()),
            };
            let Some(idle) = idle else {
                return false;
            };
            idle
        };
        for raw in idle {
            self.metrics.closed(CloseReason::Invalidated);
            self.echo_close(CloseReason::Invalidated, None);
            self.close_in_background(raw);
        }
        true
    }

    /// A sign of a failover on a connection made in `epoch` (lost,
    /// terminated, a write refused, a failed pre-ping): in a pool that must
    /// stay on a primary, every connection made until then is replaced,
    /// once per failover, and new ones choose a host again.
    pub(crate) fn failover_sign(&self, epoch: u64, error: &str) {
        if DB::fails_over(&self.target().options) && self.invalidate(Some(epoch)) {
            tracing::warn!(
                target: "pool_runtime::events",
                pool = %self.settings.name,
                error = %error,
                "possible failover: replacing every connection, new ones choose a host again"
            );
        }
    }

    /// How long idle connections stay beyond QueuePool's rule.
    pub(crate) fn lingering(&self) -> Lingering {
        Lingering {
            overflow_linger: self.settings.overflow_linger,
            idle_timeout: self.settings.idle_timeout,
            min_open: self.settings.min_idle,
        }
    }

    pub(crate) fn status(&self) -> Status {
        let now = Instant::now();
        let counts = {
            let st = self.lock();
            Counts {
                open: st.open,
                idle: st.idle.len() as u32,
                checked_out: st.checked_out,
                connecting: st.connecting,
                waiting: st.waiting,
                closed: st.closed,
                totals: st.totals,
                wait: st.waits.summary(now, st.signals.recent_timeouts(now)),
                oldest: st.holders.oldest(now),
                server: st.server,
                database: st.signals.summary(now),
            }
        };
        let sizes = *self.sizes.lock().unwrap_or_else(|p| p.into_inner());
        let settings = if sizes == (self.settings.pool_size, self.settings.max_overflow) {
            Cow::Borrowed(&self.settings)
        } else {
            let mut resized = self.settings.clone();
            (resized.pool_size, resized.max_overflow) = sizes;
            Cow::Owned(resized)
        };
        Status::compute(&settings, counts)
    }

    /// A connection comes back from a caller. Fast path: no reset needed,
    /// straight into the idle queue with no await.
    pub(crate) fn check_in(
        self: &Arc<Self>,
        mut raw: DB::Connection,
        meta: ConnMeta,
        holder: u64,
        touched: bool,
        discard: Option<CloseReason>,
    ) {
        let now = Instant::now();
        let reason = discard.or_else(|| {
            if self.settings.pool_class == PoolClass::Null {
                Some(CloseReason::NullPool)
            } else if meta.expires.is_some_and(|at| now >= at) {
                Some(CloseReason::Recycle)
            } else {
                None
            }
        });
        if let Some(reason) = reason {
            self.release(holder, now, None, Some(reason));
            self.close_in_background(raw);
            return;
        }
        let needs_reset = match self.settings.reset_on_return {
            ResetOnReturn::None => raw.should_flush(),
            ResetOnReturn::Rollback => raw.is_in_transaction() || raw.should_flush(),
            ResetOnReturn::RollbackAlways => {
                touched || raw.is_in_transaction() || raw.should_flush()
            }
        };
        let reset_statement = touched && self.settings.reset_statement.is_some();
        if !needs_reset && !reset_statement && self.hooks.after_checkin.is_none() {
            self.release(holder, now, Some(Idle::new(raw, meta)), None);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to roll back on: never reuse it dirty.
            self.release(holder, now, None, Some(CloseReason::ResetFailed));
            return;
        };
        let shared = Arc::clone(self);
        runtime.spawn(async move {
            let always = shared.settings.reset_on_return == ResetOnReturn::RollbackAlways;
            let statement = shared
                .settings
                .reset_statement
                .as_deref()
                .filter(|_| touched);
            let reset = tokio::time::timeout(
                shared.settings.network_timeout,
                super::reset::<DB>(&mut raw, always, statement),
            )
            .await;
            let reason = match reset {
                Ok(Ok(())) => None,
                Ok(Err(error)) => {
                    shared.echo_close(CloseReason::ResetFailed, Some(&error));
                    Some(CloseReason::ResetFailed)
                }
                // Timed out: the connection is in an unknown state.
                Err(_) => Some(CloseReason::ResetFailed),
            };
            let reason = match (reason, &shared.hooks.after_checkin) {
                (None, Some(hook)) => {
                    let info = hooks::info(meta.created, None);
                    let keep = hooks::run(&shared, Hook::AfterCheckin, hook(&mut raw, info)).await;
                    (!matches!(keep, Ok(true))).then_some(CloseReason::HookRejected)
                }
                (reason, _) => reason,
            };
            let now = Instant::now();
            match reason {
                None => shared.release(holder, now, Some(Idle::new(raw, meta)), None),
                Some(reason) => {
                    shared.release(holder, now, None, Some(reason));
                    shared.close_in_background(raw);
                }
            }
        });
    }

    /// Books a return under the lock: keeps `conn` idle when there is room,
    /// else closes it as overflow, and gives the permit back, all in one
    /// lock.
    pub(crate) fn release(
        self: &Arc<Self>,
        holder: u64,
        now: Instant,
        conn: Option<Idle<DB::Connection>>,
        closing: Option<CloseReason>,
    ) {
        let done = {
            let mut st = self.lock();
            let linger = self.settings.overflow_linger.is_some();
            let done = st.check_in(holder, conn, closing, linger, now);
            st.give_permit(|| self.handoff.add_permits(1));
            done
        };
        if done.pool_closed {
            // Only `close` listens; skip the notify lock on the hot path.
            self.returned.notify_waiters();
        }
        if let Some(leak) = done.leak {
            tracing::warn!(
                target: "pool_runtime::leak",
                pool = %self.settings.name,
                site = %leak.site,
                held_ms = leak.held.as_millis() as u64,
                "leaked connection returned after {:.1}s; it was acquired at {}",
                leak.held.as_secs_f64(),
                leak.site
            );
        }
        if let Some(reason) = closing {
            self.metrics.closed(reason);
            self.echo_close(reason, None);
        }
        if let Some((raw, reason)) = done.close {
            self.metrics.closed(reason);
            self.echo_close(reason, None);
            self.close_in_background(raw);
        } else if self.settings.echo_pool && closing.is_none() {
            tracing::info!(target: "pool_runtime::events", pool = %self.settings.name, event = "checkin");
        }
    }

    /// Closes politely (Terminate) when a runtime is there, bounded by
    /// `network_timeout`; otherwise drops the socket.
    pub(crate) fn close_in_background(&self, raw: DB::Connection) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let timeout = self.settings.network_timeout;
            runtime.spawn(async move {
                let _ = tokio::time::timeout(timeout, raw.close()).await;
            });
        }
    }

    pub(crate) fn echo_close(&self, reason: CloseReason, error: Option<&sqlx::Error>) {
        if self.settings.echo_pool {
            tracing::info!(
                target: "pool_runtime::events",
                pool = %self.settings.name,
                event = "close",
                reason = reason.as_str(),
                error = error.map(tracing::field::display),
            );
        }
    }
}

impl<DB: Backend> Capacity for Shared<DB> {
    type Conn = DB::Connection;

    fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger<DB::Connection>) -> R) -> R {
        f(&mut self.lock())
    }

    fn hand_off(&self) {
        self.handoff.add_permits(1);
    }

    fn take_handed_off(&self) -> bool {
        self.handoff.try_acquire().map(|p| p.forget()).is_ok()
    }

    fn wake_closer(&self) {
        self.returned.notify_waiters();
    }
}
