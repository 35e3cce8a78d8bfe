//! Checkout: wait for a permit (FIFO, bounded by `pool_timeout`), then take
//! an idle connection (recycle and pre-ping checks) or open a new one.
//!
//! Cancel safety: until a permit is attached to a connection, a guard gives
//! it back; a connection being opened is opened by a spawned task that owns
//! the permit, so if the caller gives up, the connection goes to the pool
//! for the next waiter instead of being lost.

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{TryAcquireError, oneshot};

use super::PooledConnection;
use super::ledger::{Checkout, ConnMeta, Order};
use super::shared::Shared;
use crate::observe::signals::Trouble;
use crate::{Backend, CloseReason, Error, PoolClass, TimeoutError};

type Site = &'static Location<'static>;

/// Checks out a connection, waiting at most `limit` in all (`pool_timeout`
/// for every caller but [`Pool::connect`](super::Pool::connect)).
pub(crate) async fn acquire<DB: Backend>(
    shared: Arc<Shared<DB>>,
    site: Site,
    limit: Duration,
) -> Result<PooledConnection<DB>, Error> {
    let start = Instant::now();
    let deadline = start + limit;
    // Fast path: a free permit means no wait, and one clock read serves
    // for the whole checkout.
    let waited = match shared.permits.try_acquire() {
        Ok(permit) => {
            permit.forget();
            false
        }
        Err(TryAcquireError::Closed) => return Err(closed(&shared)),
        Err(TryAcquireError::NoPermits) => {
            wait_for_permit(&shared, start, deadline).await?;
            true
        }
    };
    let mut permit = PermitGuard {
        shared: &shared,
        armed: true,
    };
    let order = match shared.settings.pool_class {
        PoolClass::Null => Order::Never,
        PoolClass::Queue if shared.settings.pool_use_lifo => Order::Lifo,
        PoolClass::Queue => Order::Fifo,
    };
    let mut first = true;
    loop {
        let now = if first && !waited {
            start
        } else {
            Instant::now()
        };
        if !first && now >= deadline {
            return Err(timeout_error(&shared, start, deadline));
        }
        let next = {
            let mut st = shared.lock();
            if st.closed {
                return Err(closed(&shared));
            }
            if first {
                // Zero waits reach the metrics histogram in batches from
                // the maintenance task; only real waits are recorded here.
                st.waits.record(now - start, now);
            }
            st.check_out(order, site, now)
        };
        if first && now > start {
            shared.metrics.acquire_wait.record(now - start);
        }
        first = false;
        match next {
            Checkout::Idle {
                idle,
                holder,
                suspect,
            } => {
                permit.armed = false;
                let conn = PooledConnection::new(Arc::clone(&shared), idle.raw, idle.meta, holder);
                match vet(&shared, conn, suspect, deadline, now).await {
                    Ok(conn) => {
                        echo_checkout(&shared);
                        return Ok(conn);
                    }
                    // The bad connection was closed; its permit is ours again.
                    Err(()) => permit.armed = true,
                }
            }
            Checkout::Open => {
                permit.armed = false;
                let (tx, rx) = oneshot::channel();
                tokio::spawn(open_for_caller(Arc::clone(&shared), site, tx));
                return match tokio::time::timeout_at(deadline.into(), rx).await {
                    Ok(Ok(result)) => {
                        if result.is_ok() {
                            echo_checkout(&shared);
                        }
                        result
                    }
                    Ok(Err(_)) => Err(Error::Database(sqlx::Error::WorkerCrashed)),
                    Err(_) => Err(timeout_error(&shared, start, deadline)),
                };
            }
        }
    }
}

/// Gives an unused permit back unless disarmed.
struct PermitGuard<'a, DB: Backend> {
    shared: &'a Shared<DB>,
    armed: bool,
}

impl<DB: Backend> Drop for PermitGuard<'_, DB> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.permits.add_permits(1);
        }
    }
}

/// Decrements the waiter count however the wait ends.
struct Waiting<'a, DB: Backend>(&'a Shared<DB>);

impl<DB: Backend> Drop for Waiting<'_, DB> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

async fn wait_for_permit<DB: Backend>(
    shared: &Shared<DB>,
    start: Instant,
    deadline: Instant,
) -> Result<(), Error> {
    shared.lock().waiting += 1;
    let waiting = Waiting(shared);
    let result = tokio::time::timeout_at(deadline.into(), shared.permits.acquire()).await;
    drop(waiting);
    match result {
        Ok(Ok(permit)) => {
            permit.forget();
            Ok(())
        }
        Ok(Err(_closed)) => Err(closed(shared)),
        Err(_elapsed) => Err(timeout_error(shared, start, deadline)),
    }
}

/// Recycle and pre-ping checks on an idle connection. On failure the
/// connection is closed and booked, and the caller keeps its permit.
async fn vet<DB: Backend>(
    shared: &Arc<Shared<DB>>,
    mut conn: PooledConnection<DB>,
    suspect: bool,
    deadline: Instant,
    now: Instant,
) -> Result<PooledConnection<DB>, ()> {
    let meta = conn.meta();
    if meta.expires.is_some_and(|at| now >= at) {
        discard_keeping_permit(shared, conn, CloseReason::Recycle);
        return Err(());
    }
    let settings = &shared.settings;
    let stale = now.saturating_duration_since(meta.verified) >= settings.pre_ping_bypass;
    if !(settings.pool_pre_ping && (stale || suspect)) {
        return Ok(conn);
    }
    // Dropped mid-ping (caller cancelled): close rather than reuse.
    conn.discard_as(CloseReason::Discarded);
    let bound = settings
        .network_timeout
        .min(deadline.saturating_duration_since(now));
    if ping(shared, conn.raw_mut(), bound).await {
        conn.verified(Instant::now());
        conn.keep();
        Ok(conn)
    } else {
        discard_keeping_permit(shared, conn, CloseReason::PingFailed);
        Err(())
    }
}

/// One ping bounded by `bound`, booked either way: a success verifies the
/// database for health; a failure is counted, makes the other idle
/// connections suspect (they likely died with it) and is logged.
pub(crate) async fn ping<DB: Backend>(
    shared: &Shared<DB>,
    raw: &mut DB::Connection,
    bound: Duration,
) -> bool {
    let ping = tokio::time::timeout(bound, crate::backend::ping::<DB>(raw)).await;
    let now = Instant::now();
    let error = match ping {
        Ok(Ok(())) => {
            shared.lock().signals.pinged(now);
            return true;
        }
        Ok(Err(e)) => crate::error::sqlx_text(&e),
        Err(_) => format!("no answer within {bound:?}"),
    };
    {
        let mut st = shared.lock();
        st.suspect_since = Some(now);
        st.totals.ping_failures += 1;
        st.signals.trouble(now, Trouble::PingFailed, error.clone());
    }
    shared.metrics.ping_failures.increment(1);
    tracing::warn!(
        target: "pool_runtime::events",
        pool = %shared.settings.name,
        error = %error,
        "ping failed; replacing the connection"
    );
    false
}

/// Closes a checked-out connection without giving its permit back.
fn discard_keeping_permit<DB: Backend>(
    shared: &Arc<Shared<DB>>,
    conn: PooledConnection<DB>,
    reason: CloseReason,
) {
    let (raw, holder) = conn.into_raw();
    shared.lock().discard_vetted(holder, reason, Instant::now());
    shared.metrics.closed(reason);
    shared.echo_close(reason, None);
    shared.close_in_background(raw);
}

/// Opens a connection for a caller. Owns the caller's permit; if the caller
/// has gone by the time the connection is ready, returning it to the pool
/// (by dropping it) serves the next waiter.
async fn open_for_caller<DB: Backend>(
    shared: Arc<Shared<DB>>,
    site: Site,
    reply: oneshot::Sender<Result<PooledConnection<DB>, Error>>,
) {
    let result = open_raw(&shared).await;
    let now = Instant::now();
    let reply_value = match result {
        Ok(raw) => {
            let holder = shared.lock().connected(site, now);
            let meta = ConnMeta::new(&shared.settings, now);
            Ok(PooledConnection::new(
                Arc::clone(&shared),
                raw,
                meta,
                holder,
            ))
        }
        Err(error) => {
            shared.lock().connect_failed();
            shared.permits.add_permits(1);
            shared.returned.notify_waiters();
            Err(error)
        }
    };
    // A send error hands the value back and drops it: a connection then
    // goes into the pool.
    let _ = reply.send(reply_value);
}

/// One bounded connect; books opened / failed counts. The first connection
/// also reads the server's limits for status advice.
pub(crate) async fn open_raw<DB: Backend>(shared: &Shared<DB>) -> Result<DB::Connection, Error> {
    let settings = &shared.settings;
    let connect =
        tokio::time::timeout(settings.connect_timeout, DB::connect(&shared.options)).await;
    let error = match connect {
        Ok(Ok(mut raw)) => {
            // Once per pool: a server that refuses the probe is not asked
            // again on every connect.
            let probe = !shared
                .limits_probed
                .swap(true, std::sync::atomic::Ordering::Relaxed);
            if probe {
                let limits =
                    tokio::time::timeout(settings.network_timeout, DB::server_limits(&mut raw))
                        .await;
                if let Ok(Some(limits)) = limits {
                    shared.lock().server = Some(limits);
                }
            }
            shared.lock().signals.connected(Instant::now());
            shared.metrics.opened.increment(1);
            if settings.echo_pool {
                tracing::info!(target: "pool_runtime::events", pool = %settings.name, event = "connect");
            }
            return Ok(raw);
        }
        Ok(Err(source)) => Error::Connect {
            url: shared.url.clone(),
            source,
        },
        Err(_) => Error::ConnectTimeout {
            url: shared.url.clone(),
            timeout: settings.connect_timeout,
        },
    };
    shared
        .lock()
        .signals
        .trouble(Instant::now(), Trouble::ConnectFailed, error.to_string());
    shared.metrics.connect_errors.increment(1);
    // `Pool::connect` returns its own first failure to its caller: logged
    // here too, a service printed it twice at start.
    if shared.started.load(std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(target: "pool_runtime::events", pool = %settings.name, error = %error, "connect failed");
    }
    Err(error)
}

fn closed<DB: Backend>(shared: &Shared<DB>) -> Error {
    Error::Closed(shared.settings.name.clone())
}

fn timeout_error<DB: Backend>(shared: &Shared<DB>, start: Instant, deadline: Instant) -> Error {
    let now = Instant::now();
    let waited = now - start;
    let settings = &shared.settings;
    let error = {
        let mut st = shared.lock();
        st.totals.timeouts += 1;
        st.waits.record(waited, now);
        st.signals.timed_out(now);
        TimeoutError {
            pool: settings.name.clone(),
            size: settings.pool_size,
            max_overflow: settings.max_overflow,
            checked_out: st.checked_out,
            idle: st.idle.len() as u32,
            connecting: st.connecting,
            waiting: st.waiting,
            waited,
            timeout: deadline - start,
            oldest_holder: st.holders.oldest(now),
        }
    };
    shared.metrics.timeouts.increment(1);
    tracing::warn!(target: "pool_runtime::events", pool = %settings.name, "{error}");
    Error::Timeout(Box::new(error))
}

fn echo_checkout<DB: Backend>(shared: &Shared<DB>) {
    if shared.settings.echo_pool {
        tracing::info!(target: "pool_runtime::events", pool = %shared.settings.name, event = "checkout");
    }
}
