//! Background upkeep, one task per pool, holding only a weak reference so a
//! dropped pool stops it: leak reports, closing idle connections kept for
//! waiters once nobody waits or idle past `idle_timeout` / `overflow_linger`,
//! gauges, keeping
//! `min_idle` connections open, and the health probe.

use std::panic::Location;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::open;
use super::reservation::Reservation;
use super::shared::Shared;
use crate::{Backend, CloseReason, PoolClass};

/// The health probe checks the database when nothing verified it (a
/// connect or a ping) for this long, so health sees a database that
/// stopped while the pool sat idle. A busy pool verifies itself: its
/// connections are pinged at checkout once per `pre_ping_bypass`.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

pub(crate) fn spawn<DB: Backend>(shared: &Arc<Shared<DB>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    // A quarter of the shortest bound the tick enforces, so a leak or an
    // idle connection is seen within 25 % of its limit.
    let settings = &shared.settings;
    let tick = [
        settings.leak_threshold,
        settings.idle_timeout,
        settings.overflow_linger,
    ]
    .into_iter()
    .flatten()
    .map(|t| (t / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
    .min()
    .unwrap_or(Duration::from_secs(1));
    let weak = Arc::downgrade(shared);
    runtime.spawn(run(weak, tick));
}

async fn run<DB: Backend>(weak: Weak<Shared<DB>>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(shared) = weak.upgrade() else { return };
        if shared.lock().closed {
            return;
        }
        report_leaks(&shared);
        let (extra, zero_waits) = {
            let mut st = shared.lock();
            (
                st.trim(shared.lingering(), Instant::now()),
                st.waits.take_zero_waits(),
            )
        };
        for (raw, reason) in extra {
            shared.metrics.closed(reason);
            shared.echo_close(reason, None);
            shared.close_in_background(raw);
        }
        shared
            .metrics
            .acquire_wait
            .record_many(0.0, zero_waits as usize);
        if shared.settings.metrics {
            shared.metrics.publish(&shared.status());
        }
        top_up(&shared).await;
        probe(&shared).await;
    }
}

/// Checks that the database answers when nothing else did lately: pings
/// the least recently returned idle connection, or opens one when none is
/// idle (it then stays idle, as any QueuePool connection would). When the
/// ping fails, a connect tells one dead connection from a dead database.
/// Never waits for a permit: a pool with none free is verified by its
/// callers. While the database cannot be reached it tries a connect after
/// 1, 2 and 4 s, then every 5 s, so health turns healthy soon after the
/// database is back without hammering a server that is down.
async fn probe<DB: Backend>(shared: &Arc<Shared<DB>>) {
    let now = Instant::now();
    {
        let mut st = shared.lock();
        if st.closed || !st.signals.probe_due(now, PROBE_INTERVAL) {
            return;
        }
        // A NullPool opens a connection only to see a failed database
        // come back, never to check a healthy one.
        if shared.settings.pool_class == PoolClass::Null && !st.signals.unreachable() {
            return;
        }
        if !st.take_permit() {
            return;
        }
    }
    let site = Location::caller();
    let mut reservation = Reservation::adopt(&**shared, false);
    let taken = if shared.settings.pool_class == PoolClass::Null {
        None
    } else {
        shared.lock().check_out_for_probe(site, now)
    };
    if let Some((mut idle, holder)) = taken {
        // The permit goes with the probed connection, and comes back with
        // it or, when it is dead, to us.
        let pool = reservation.into_checked_out();
        let bound = shared.settings.network_timeout;
        let epoch = idle.meta.epoch;
        if super::acquire::ping(shared, &mut idle.raw, epoch, bound).await {
            idle.meta.verified = Instant::now();
            shared.release(holder, Instant::now(), Some(idle), None);
            return;
        }
        shared
            .lock()
            .discard_probed(holder, CloseReason::PingFailed, Instant::now());
        shared.metrics.closed(CloseReason::PingFailed);
        shared.close_in_background(idle.raw);
        reservation = Reservation::adopt(pool, false);
    }
    // Nothing idle, or the idle one was dead: try a fresh connection.
    reservation.reserve_slot();
    open::idle(reservation).await;
}

fn report_leaks<DB: Backend>(shared: &Shared<DB>) {
    let Some(threshold) = shared.settings.leak_threshold else {
        return;
    };
    let leaks = {
        let mut st = shared.lock();
        let leaks = st.holders.new_leaks(threshold, Instant::now());
        st.totals.leaks += leaks.len() as u64;
        leaks
    };
    for leak in leaks {
        shared.metrics.leaks.increment(1);
        tracing::warn!(
            target: "pool_runtime::leak",
            pool = %shared.settings.name,
            site = %leak.site,
            held_ms = leak.held.as_millis() as u64,
            "connection held for {:.1}s (leak_threshold {:.1}s); acquired at {}",
            leak.held.as_secs_f64(),
            threshold.as_secs_f64(),
            leak.site
        );
    }
}

/// Opens connections until `min_idle` are open, using spare permits only,
/// so it never pushes the pool past its cap or ahead of waiting callers.
pub(crate) async fn top_up<DB: Backend>(shared: &Arc<Shared<DB>>) {
    // A NullPool never hands out idle connections: one opened here would
    // sit beyond the cap for ever (found by
    // `faults_stress::randomized_schedules_keep_every_invariant`).
    if shared.settings.pool_class == PoolClass::Null {
        return;
    }
    let min_idle = shared.settings.min_idle;
    while shared.lock().reserve_spare(min_idle) {
        let reservation = Reservation::adopt(&**shared, true);
        if !open::idle(reservation).await {
            // Don't spin against a dead server; the next tick tries again.
            return;
        }
    }
}
