//! Background upkeep, one task per pool, holding only a weak reference so a
//! dropped pool stops it: leak reports, closing idle connections kept for
//! waiters once nobody waits, wait-window rotation, gauges, and keeping
//! `min_idle` connections open.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::ledger::ConnMeta;
use super::shared::Shared;
use crate::Backend;

/// How often wait statistics roll over into "previous".
const WAIT_WINDOW: Duration = Duration::from_secs(30);

pub(crate) fn spawn<DB: Backend>(shared: &Arc<Shared<DB>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let tick = shared
        .settings
        .leak_threshold
        .map(|t| (t / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(1));
    let weak = Arc::downgrade(shared);
    runtime.spawn(run(weak, tick));
}

async fn run<DB: Backend>(weak: Weak<Shared<DB>>, tick: Duration) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut window_start = Instant::now();
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
                st.trim(shared.settings.pool_size),
                st.waits.take_zero_waits(),
            )
        };
        for raw in extra {
            shared.metrics.closed(crate::CloseReason::Overflow);
            shared.close_in_background(raw);
        }
        shared
            .metrics
            .acquire_wait
            .record_many(0.0, zero_waits as usize);
        if window_start.elapsed() >= WAIT_WINDOW {
            shared.lock().waits.rotate();
            window_start = Instant::now();
        }
        if shared.settings.metrics {
            shared.metrics.publish(&shared.status());
        }
        top_up(&shared).await;
    }
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
    loop {
        {
            let st = shared.lock();
            // A NullPool never hands out idle connections: one opened here
            // would sit beyond the cap for ever (found by
            // `faults_stress::randomized_schedules_keep_every_invariant`).
            if st.closed
                || shared.settings.pool_class == crate::PoolClass::Null
                || st.open >= shared.settings.min_idle
            {
                return;
            }
        }
        let Ok(permit) = shared.permits.try_acquire() else {
            return;
        };
        permit.forget();
        shared.lock().reserve();
        let opened = super::acquire::open_raw(shared).await;
        let failed = opened.is_err();
        let surplus = match opened {
            Ok(raw) => {
                let meta = ConnMeta::new(&shared.settings, Instant::now());
                shared.lock().park(raw, meta, shared.settings.pool_size)
            }
            Err(_) => {
                shared.lock().connect_failed();
                None
            }
        };
        shared.permits.add_permits(1);
        if let Some(raw) = surplus {
            shared.close_in_background(raw);
            return;
        }
        if failed {
            // Don't spin against a dead server; the next tick tries again.
            return;
        }
    }
}
