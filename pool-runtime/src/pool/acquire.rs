//! Checkout: take a permit (at once, or waiting FIFO, bounded by
//! `pool_timeout`), then an idle connection (recycle and pre-ping checks)
//! or a slot to open a new one.
//!
//! The common case, a free permit and an idle connection that needs no
//! ping, takes the pool's lock once and reads the clock once; the waits,
//! pings and connects are boxed futures so that it does not carry their
//! state around.
//!
//! Cancel safety: until a permit goes with a connection, a [`Reservation`]
//! owns it (and the slot of a connection being opened) and gives it back
//! when dropped; a connection being opened is opened by a spawned task
//! that owns the reservation, so if the caller gives up, the connection
//! goes to the pool for the next waiter instead of being lost.

use std::panic::Location;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::PooledConnection;
use super::hooks::{self, Hook};
use super::ledger::{Checkout, Ledger, Nested, Order};
use super::open;
use super::reservation::{self, Reservation};
use super::shared::Shared;
use crate::observe::leak::Task;
use crate::observe::signals::Trouble;
use crate::{Backend, CloseReason, Error, NestedCheckout, PoolClass, PoolSettings, TimeoutError};

type Site = &'static Location<'static>;
type Held<DB> = Reservation<Arc<Shared<DB>>>;

/// Checks out a connection, waiting at most `limit` in all (`pool_timeout`
/// for every caller but [`Pool::connect`](super::Pool::connect)).
pub(crate) async fn acquire<DB: Backend>(
    shared: Arc<Shared<DB>>,
    site: Site,
    limit: Duration,
) -> Result<PooledConnection<DB>, Error> {
    let start = Instant::now();
    let deadline = start + limit;
    let order = order(&shared.settings);
    // The checkout's task (this future runs in the caller's task), for
    // nested-checkout detection; `None` under `block_on`.
    let task = tokio::task::try_id();
    // Fast path: one lock takes a free permit and a connection (or a slot).
    let fast = |st: &mut Ledger<DB::Connection>| {
        if st.closed {
            None
        } else if st.take_permit() {
            // Zero waits reach the metrics histogram in batches from the
            // maintenance task; only real waits are recorded there at once.
            st.waits.record(Duration::ZERO, start);
            Some(Some(st.check_out(order, site, task, start)))
        } else {
            st.start_waiting();
            Some(None)
        }
    };
    let mut nested = None;
    let mut first = {
        let mut st = shared.lock();
        // The nested-checkout scan, under the same lock, only when this
        // task could hold something.
        if task.is_some()
            && st.checked_out > 0
            && shared.settings.nested_checkout != NestedCheckout::Off
        {
            nested = st.nested(task, site);
        }
        if nested.is_none() {
            fast(&mut st)
        } else {
            None
        }
    };
    // Rare: reported outside the lock, then the fast path again (`warn`),
    // or refused before taking anything (`error`).
    if let Some(nested) = nested {
        report_nested(&shared, nested, site)?;
        first = fast(&mut shared.lock());
    }
    let (mut reservation, mut next, mut now) = match first {
        None => return Err(closed(&shared)),
        Some(Some(next)) => {
            let slot = matches!(next, Checkout::Open);
            (Reservation::adopt(shared, slot), next, start)
        }
        Some(None) => Box::pin(after_wait(shared, site, task, order, start, deadline)).await?,
    };
    loop {
        match next {
            Checkout::Idle {
                idle,
                holder,
                suspect,
            } => {
                // The permit goes with the connection from here on.
                let shared = reservation.into_checked_out();
                let since = idle.since;
                let conn = PooledConnection::new(shared, idle.raw, idle.meta, holder);
                let vetted = match vet(conn, suspect, now) {
                    Vetted::Ready(conn) => Ok(conn),
                    Vetted::Check { conn, ping } => {
                        Box::pin(check(conn, ping, since, deadline, now)).await
                    }
                    Vetted::Discarded(shared) => Err(shared),
                };
                match vetted {
                    Ok(conn) => {
                        echo_checkout(conn.pool());
                        return Ok(conn);
                    }
                    // The bad connection was closed; its permit is ours again.
                    Err(shared) => reservation = Reservation::adopt(shared, false),
                }
            }
            Checkout::Open => {
                return Box::pin(open_for_caller(reservation, site, task, start, deadline)).await;
            }
        }
        now = Instant::now();
        if now >= deadline {
            return Err(timeout_error(reservation.pool(), task, start, deadline));
        }
        next = match reservation.check_out(order, site, task, now) {
            Some(next) => next,
            None => return Err(closed(reservation.pool())),
        };
    }
}

/// A nested checkout: counted, warned about once per pair of sites
/// (`warn`), or refused (`error`).
fn report_nested<DB: Backend>(
    shared: &Shared<DB>,
    nested: Nested,
    site: Site,
) -> Result<(), Error> {
    shared.metrics.nested_checkouts.increment(1);
    let pool = &shared.settings.name;
    if shared.settings.nested_checkout == NestedCheckout::Error {
        return Err(Error::NestedCheckout {
            pool: pool.clone(),
            held_at: nested.held_at.to_string(),
            acquired_at: site.to_string(),
        });
    }
    if nested.first {
        tracing::warn!(
            target: "pool_runtime::events",
            pool = %pool,
            held_at = %nested.held_at,
            acquired_at = %site,
            "nested checkout: a task that holds a connection acquired at {} asks for another at {}; \
             once the pool is full, tasks doing this wait for each other until pool_timeout. \
             Pass the held connection down instead, or set nested_checkout = off if intended \
             (reported once per pair of call sites)",
            nested.held_at,
            site
        );
    }
    Ok(())
}

/// Which idle connection a checkout takes.
fn order(settings: &PoolSettings) -> Order {
    match settings.pool_class {
        PoolClass::Null => Order::Never,
        PoolClass::Queue if settings.pool_use_lifo => Order::Lifo,
        PoolClass::Queue => Order::Fifo,
    }
}

/// The slow path, for a caller counted as waiting: waits for a permit to be
/// handed off, then takes a connection or a slot.
async fn after_wait<DB: Backend>(
    shared: Arc<Shared<DB>>,
    site: Site,
    task: Task,
    order: Order,
    start: Instant,
    deadline: Instant,
) -> Result<(Held<DB>, Checkout<DB::Connection>, Instant), Error> {
    let waited = {
        let waiting = Waiting(&shared);
        let waited = tokio::time::timeout_at(deadline.into(), shared.handoff.acquire()).await;
        let waited = waited.map(|permit| permit.map(|p| p.forget()));
        drop(waiting);
        waited
    };
    match waited {
        Ok(Ok(())) => {}
        Ok(Err(_closed)) => return Err(closed(&shared)),
        Err(_elapsed) => return Err(timeout_error(&shared, task, start, deadline)),
    }
    let now = Instant::now();
    shared.lock().waits.record(now - start, now);
    shared.metrics.acquire_wait.record(now - start);
    let mut reservation = Reservation::adopt(shared, false);
    match reservation.check_out(order, site, task, now) {
        Some(next) => Ok((reservation, next, now)),
        None => Err(closed(reservation.pool())),
    }
}

/// Stops counting a waiter however the wait ends.
struct Waiting<'a, DB: Backend>(&'a Shared<DB>);

impl<DB: Backend> Drop for Waiting<'_, DB> {
    fn drop(&mut self) {
        reservation::stop_waiting(&self.0);
    }
}

/// What the checks at checkout make of an idle connection.
enum Vetted<DB: Backend> {
    Ready(PooledConnection<DB>),
    /// Checks with I/O are due: the pre-ping (stale, or suspect since a
    /// failure) when `ping`, and the `before_checkout` hook if there is one.
    Check {
        conn: PooledConnection<DB>,
        ping: bool,
    },
    /// Past its recycle time: closed; the permit is the caller's again.
    Discarded(Arc<Shared<DB>>),
}

/// Recycle and pre-ping checks on an idle connection, without I/O.
fn vet<DB: Backend>(conn: PooledConnection<DB>, suspect: bool, now: Instant) -> Vetted<DB> {
    let meta = conn.meta();
    if meta.expires.is_some_and(|at| now >= at) {
        return Vetted::Discarded(discard_keeping_permit(conn, CloseReason::Recycle));
    }
    let settings = &conn.pool().settings;
    let stale = now.saturating_duration_since(meta.verified) >= settings.pre_ping_bypass;
    let ping = settings.pool_pre_ping && (stale || suspect);
    if ping || conn.pool().hooks.before_checkout.is_some() {
        Vetted::Check { conn, ping }
    } else {
        Vetted::Ready(conn)
    }
}

/// The checks of [`Vetted::Check`], in a future of their own so that the
/// common path does not carry their state.
async fn check<DB: Backend>(
    conn: PooledConnection<DB>,
    ping: bool,
    idle_since: Instant,
    deadline: Instant,
    now: Instant,
) -> Result<PooledConnection<DB>, Arc<Shared<DB>>> {
    let conn = if ping {
        ping_checked_out(conn, deadline, now).await?
    } else {
        conn
    };
    if conn.pool().hooks.before_checkout.is_some() {
        before_checkout(conn, idle_since).await
    } else {
        Ok(conn)
    }
}

/// The pre-ping. On failure the connection is closed and booked, and the
/// caller keeps its permit.
async fn ping_checked_out<DB: Backend>(
    mut conn: PooledConnection<DB>,
    deadline: Instant,
    now: Instant,
) -> Result<PooledConnection<DB>, Arc<Shared<DB>>> {
    // Dropped mid-ping (caller cancelled): close rather than reuse.
    conn.discard_as(CloseReason::Discarded);
    let shared = Arc::clone(conn.pool());
    let bound = shared
        .settings
        .network_timeout
        .min(deadline.saturating_duration_since(now));
    let epoch = conn.meta().epoch;
    if ping(&shared, conn.raw_mut(), epoch, bound).await {
        conn.verified(Instant::now());
        conn.keep();
        Ok(conn)
    } else {
        Err(discard_keeping_permit(conn, CloseReason::PingFailed))
    }
}

/// One ping bounded by `bound`, booked either way: a success verifies the
/// database for health; a failure is counted, makes the other idle
/// connections suspect (they likely died with it) and is logged. A ping
/// that failed (rather than ran out of time, which a busy server can do)
/// is a sign of a failover, as a lost connection is for a statement.
pub(crate) async fn ping<DB: Backend>(
    shared: &Shared<DB>,
    raw: &mut DB::Connection,
    epoch: u64,
    bound: Duration,
) -> bool {
    let ping = tokio::time::timeout(bound, crate::backend::ping::<DB>(raw)).await;
    let now = Instant::now();
    let error = match ping {
        Ok(Ok(())) => {
            shared.lock().signals.pinged(now);
            return true;
        }
        Ok(Err(e)) => {
            let error = crate::error::sqlx_text(&e);
            shared.failover_sign(epoch, &error);
            error
        }
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

/// The `before_checkout` hook: a refusal or failure closes the connection,
/// and the caller keeps its permit to try another.
async fn before_checkout<DB: Backend>(
    mut conn: PooledConnection<DB>,
    since: Instant,
) -> Result<PooledConnection<DB>, Arc<Shared<DB>>> {
    // Dropped mid-hook (caller cancelled): close rather than reuse.
    conn.discard_as(CloseReason::HookRejected);
    let shared = Arc::clone(conn.pool());
    let Some(hook) = &shared.hooks.before_checkout else {
        conn.keep();
        return Ok(conn);
    };
    let info = hooks::info(conn.meta().created, Some(since));
    let keep = hooks::run(&shared, Hook::BeforeCheckout, hook(conn.raw_mut(), info)).await;
    if matches!(keep, Ok(true)) {
        conn.keep();
        Ok(conn)
    } else {
        Err(discard_keeping_permit(conn, CloseReason::HookRejected))
    }
}

/// Closes a checked-out connection without giving its permit back; returns
/// the pool, whose permit the caller holds again.
fn discard_keeping_permit<DB: Backend>(
    conn: PooledConnection<DB>,
    reason: CloseReason,
) -> Arc<Shared<DB>> {
    let shared = Arc::clone(conn.pool());
    let (raw, holder) = conn.into_raw();
    shared.lock().discard_vetted(holder, reason, Instant::now());
    shared.metrics.closed(reason);
    shared.echo_close(reason, None);
    shared.close_in_background(raw);
    shared
}

/// Opens a connection in a task of its own that owns the reservation, and
/// waits for it until `deadline`.
async fn open_for_caller<DB: Backend>(
    reservation: Held<DB>,
    site: Site,
    task: Task,
    start: Instant,
    deadline: Instant,
) -> Result<PooledConnection<DB>, Error> {
    let shared = Arc::clone(reservation.pool());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(open::for_caller(reservation, site, task, tx));
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(result)) => {
            if result.is_ok() {
                echo_checkout(&shared);
            }
            result
        }
        Ok(Err(_)) => Err(Error::Database(sqlx::Error::WorkerCrashed)),
        Err(_) => Err(timeout_error(&shared, task, start, deadline)),
    }
}

fn closed<DB: Backend>(shared: &Shared<DB>) -> Error {
    Error::Closed(shared.settings.name.clone())
}

/// The timeout error, naming the connection the caller's task holds
/// already, if any (whatever `nested_checkout` says: it explains the wait).
fn timeout_error<DB: Backend>(
    shared: &Shared<DB>,
    task: Task,
    start: Instant,
    deadline: Instant,
) -> Error {
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
            nested: task
                .and_then(|task| st.holders.held_by(task))
                .map(|site| site.to_string()),
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
