//! Metric names and units published through the [`metrics`] facade.
//!
//! Every series carries a `pool` label with the pool's name. Install your
//! recorder (for example `metrics-exporter-prometheus`) before connecting
//! pools: handles are registered once per pool, so the hot path is a
//! plain atomic update. Turn publishing off with `PoolSettings::metrics`.
//!
//! | name | kind | unit | meaning |
//! |---|---|---|---|
//! | `db_pool_connections_open` | gauge | connections | open (idle + in use + connecting) |
//! | `db_pool_connections_idle` | gauge | connections | idle in the pool |
//! | `db_pool_connections_in_use` | gauge | connections | checked out |
//! | `db_pool_connections_overflow` | gauge | connections | open beyond `pool_size` |
//! | `db_pool_waiters` | gauge | tasks | waiting in `acquire` |
//! | `db_pool_utilization_ratio` | gauge | ratio 0–1 | in use / (size + overflow) |
//! | `db_pool_acquire_wait_seconds` | histogram | seconds | time `acquire` waited |
//! | `db_pool_connections_opened_total` | counter | connections | connections opened |
//! | `db_pool_connections_closed_total` | counter | connections | closed, label `reason` |
//! | `db_pool_connect_errors_total` | counter | errors | failed connects |
//! | `db_pool_timeouts_total` | counter | errors | acquires that hit `pool_timeout` |
//! | `db_pool_pre_ping_failures_total` | counter | events | idle connections found dead |
//! | `db_pool_leaks_total` | counter | events | connections held past `leak_threshold` |
//! | `db_pool_hook_failures_total` | counter | events | lifecycle hooks that failed, label `hook` |
//! | `db_pool_nested_checkouts_total` | counter | events | acquires by a task already holding a connection of the pool |
//!
//! A [`ReplicaPool`](crate::ReplicaPool) named `app` publishes the series
//! above for its write pool (`pool="app"`) and for each host's read pool
//! (`pool="app@host:port"`), and these per host, labelled `pool` (`app`)
//! and `node` (`host:port`):
//!
//! | name | kind | unit | meaning |
//! |---|---|---|---|
//! | `db_pool_replica_up` | gauge | 0/1 | the last check reached the node |
//! | `db_pool_replica_role` | gauge | 0/1 | 1 for the node's role at the last check, label `role` (`primary`, `standby`, `unknown`), 0 for the others |
//! | `db_pool_replica_serving` | gauge | 0/1 | the node serves reads now |
//! | `db_pool_replica_lag_seconds` | gauge | seconds | replay lag at the last check that reached it (0 on a primary) |
//! | `db_pool_replica_reads_total` | counter | reads | reads routed to the node |
//! | `db_pool_replica_role_changes_total` | counter | events | role changes seen (a promotion) |
//!
//! and, labelled `pool` only, `db_pool_replica_fallback_reads_total`
//! (reads sent to the primary because no standby qualified) and
//! `db_pool_replica_refused_reads_total` (reads refused for the same
//! reason with `read_fallback` off).

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::CloseReason;
use crate::observe::status::NodeRole;

/// Gauge: connections open.
pub const CONNECTIONS_OPEN: &str = "db_pool_connections_open";
/// Gauge: connections idle in the pool.
pub const CONNECTIONS_IDLE: &str = "db_pool_connections_idle";
/// Gauge: connections checked out.
pub const CONNECTIONS_IN_USE: &str = "db_pool_connections_in_use";
/// Gauge: connections open beyond `pool_size`.
pub const CONNECTIONS_OVERFLOW: &str = "db_pool_connections_overflow";
/// Gauge: callers waiting in `acquire`.
pub const WAITERS: &str = "db_pool_waiters";
/// Gauge: checked out / (`pool_size` + `max_overflow`).
pub const UTILIZATION: &str = "db_pool_utilization_ratio";
/// Histogram: seconds spent in `acquire`.
pub const ACQUIRE_WAIT: &str = "db_pool_acquire_wait_seconds";
/// Counter: connections opened.
pub const OPENED_TOTAL: &str = "db_pool_connections_opened_total";
/// Counter: connections closed, by reason.
pub const CLOSED_TOTAL: &str = "db_pool_connections_closed_total";
/// Counter: failed connects.
pub const CONNECT_ERRORS_TOTAL: &str = "db_pool_connect_errors_total";
/// Counter: acquires that hit `pool_timeout`.
pub const TIMEOUTS_TOTAL: &str = "db_pool_timeouts_total";
/// Counter: idle connections found dead by pre-ping.
pub const PRE_PING_FAILURES_TOTAL: &str = "db_pool_pre_ping_failures_total";
/// Counter: connections held past `leak_threshold`.
pub const LEAKS_TOTAL: &str = "db_pool_leaks_total";
/// Counter: acquires by a task that already held a connection of the pool.
pub const NESTED_CHECKOUTS_TOTAL: &str = "db_pool_nested_checkouts_total";

/// Gauge (0/1), per node: the last check reached it.
pub const REPLICA_UP: &str = "db_pool_replica_up";
/// Gauge (0/1), per node and `role`: 1 for its role at the last check.
pub const REPLICA_ROLE: &str = "db_pool_replica_role";
/// Gauge (0/1), per node: it serves reads now.
pub const REPLICA_SERVING: &str = "db_pool_replica_serving";
/// Gauge, per node: replay lag in seconds at the last check that reached it.
pub const REPLICA_LAG: &str = "db_pool_replica_lag_seconds";
/// Counter, per node: reads routed to it.
pub const REPLICA_READS_TOTAL: &str = "db_pool_replica_reads_total";
/// Counter, per node: role changes seen.
pub const REPLICA_ROLE_CHANGES_TOTAL: &str = "db_pool_replica_role_changes_total";
/// Counter: reads sent to the primary because no standby qualified.
pub const REPLICA_FALLBACK_READS_TOTAL: &str = "db_pool_replica_fallback_reads_total";
/// Counter: reads refused because no standby qualified (`read_fallback` off).
pub const REPLICA_REFUSED_READS_TOTAL: &str = "db_pool_replica_refused_reads_total";

/// Counter: lifecycle hooks that failed or timed out, by hook.
pub const HOOK_FAILURES_TOTAL: &str = "db_pool_hook_failures_total";

/// Registers descriptions and units of every metric with the installed
/// recorder. Call once after installing it.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        CONNECTIONS_OPEN,
        Unit::Count,
        "Open connections (idle + in use + connecting)"
    );
    describe_gauge!(
        CONNECTIONS_IDLE,
        Unit::Count,
        "Idle connections in the pool"
    );
    describe_gauge!(CONNECTIONS_IN_USE, Unit::Count, "Connections checked out");
    describe_gauge!(
        CONNECTIONS_OVERFLOW,
        Unit::Count,
        "Open connections beyond pool_size"
    );
    describe_gauge!(WAITERS, Unit::Count, "Tasks waiting in acquire");
    // A 0-1 ratio: the `metrics` crate has no ratio unit, and
    // `Unit::Percent` would tell exporters 0-100 (a review found it so).
    describe_gauge!(
        UTILIZATION,
        "Checked out / (pool_size + max_overflow), a ratio from 0 to 1"
    );
    describe_histogram!(
        ACQUIRE_WAIT,
        Unit::Seconds,
        "Time acquire waited for a connection"
    );
    describe_counter!(OPENED_TOTAL, Unit::Count, "Connections opened");
    describe_counter!(CLOSED_TOTAL, Unit::Count, "Connections closed, by reason");
    describe_counter!(
        CONNECT_ERRORS_TOTAL,
        Unit::Count,
        "Failed connection attempts"
    );
    describe_counter!(
        TIMEOUTS_TOTAL,
        Unit::Count,
        "Acquires that hit pool_timeout"
    );
    describe_counter!(
        PRE_PING_FAILURES_TOTAL,
        Unit::Count,
        "Idle connections found dead by pre-ping"
    );
    describe_counter!(
        LEAKS_TOTAL,
        Unit::Count,
        "Connections held longer than leak_threshold"
    );
    describe_counter!(
        HOOK_FAILURES_TOTAL,
        Unit::Count,
        "Lifecycle hooks that failed or outlasted network_timeout, by hook"
    );
    describe_counter!(
        NESTED_CHECKOUTS_TOTAL,
        Unit::Count,
        "Acquires by a task that already held a connection of the pool"
    );
    describe_gauge!(REPLICA_UP, "1 when the last check reached the node, else 0");
    describe_gauge!(
        REPLICA_ROLE,
        "1 for the node's role at the last check (label role), 0 for the others"
    );
    describe_gauge!(REPLICA_SERVING, "1 when the node serves reads now, else 0");
    describe_gauge!(
        REPLICA_LAG,
        Unit::Seconds,
        "Replay lag of the node at the last check that reached it"
    );
    describe_counter!(REPLICA_READS_TOTAL, Unit::Count, "Reads routed to the node");
    describe_counter!(
        REPLICA_ROLE_CHANGES_TOTAL,
        Unit::Count,
        "Role changes of the node seen by the checks"
    );
    describe_counter!(
        REPLICA_FALLBACK_READS_TOTAL,
        Unit::Count,
        "Reads sent to the primary because no standby qualified"
    );
    describe_counter!(
        REPLICA_REFUSED_READS_TOTAL,
        Unit::Count,
        "Reads refused because no standby qualified and read_fallback is off"
    );
}

/// One host's series of a replica handle.
pub(crate) struct NodeMetrics {
    pub up: Gauge,
    pub role: [Gauge; NodeRole::ALL.len()],
    pub serving: Gauge,
    pub lag: Gauge,
    pub reads: Counter,
    pub role_changes: Counter,
}

/// A replica handle's own series (no-ops when metrics are off).
pub(crate) struct ReplicaMetrics {
    pub nodes: Vec<NodeMetrics>,
    pub fallback_reads: Counter,
    pub refused_reads: Counter,
}

impl ReplicaMetrics {
    pub(crate) fn new(pool: &str, nodes: &[String], enabled: bool) -> Self {
        let node = |label: &String| {
            if !enabled {
                return NodeMetrics {
                    up: Gauge::noop(),
                    role: NodeRole::ALL.map(|_| Gauge::noop()),
                    serving: Gauge::noop(),
                    lag: Gauge::noop(),
                    reads: Counter::noop(),
                    role_changes: Counter::noop(),
                };
            }
            let labels = [("pool", pool.to_owned()), ("node", label.clone())];
            NodeMetrics {
                up: metrics::gauge!(REPLICA_UP, &labels),
                role: NodeRole::ALL.map(|role| {
                    metrics::gauge!(REPLICA_ROLE, "pool" => pool.to_owned(), "node" => label.clone(), "role" => role.as_str())
                }),
                serving: metrics::gauge!(REPLICA_SERVING, &labels),
                lag: metrics::gauge!(REPLICA_LAG, &labels),
                reads: metrics::counter!(REPLICA_READS_TOTAL, &labels),
                role_changes: metrics::counter!(REPLICA_ROLE_CHANGES_TOTAL, &labels),
            }
        };
        let (fallback_reads, refused_reads) = if enabled {
            let labels = [("pool", pool.to_owned())];
            (
                metrics::counter!(REPLICA_FALLBACK_READS_TOTAL, &labels),
                metrics::counter!(REPLICA_REFUSED_READS_TOTAL, &labels),
            )
        } else {
            (Counter::noop(), Counter::noop())
        };
        Self {
            nodes: nodes.iter().map(node).collect(),
            fallback_reads,
            refused_reads,
        }
    }
}

/// One pool's registered handles (no-ops when metrics are off).
pub(crate) struct PoolMetrics {
    pub open: Gauge,
    pub idle: Gauge,
    pub in_use: Gauge,
    pub overflow: Gauge,
    pub waiters: Gauge,
    pub utilization: Gauge,
    pub acquire_wait: Histogram,
    pub opened: Counter,
    pub closed: [Counter; CloseReason::ALL.len()],
    pub connect_errors: Counter,
    pub timeouts: Counter,
    pub ping_failures: Counter,
    pub leaks: Counter,
    pub hook_failures: [Counter; crate::pool::Hook::ALL.len()],
    pub nested_checkouts: Counter,
}

impl PoolMetrics {
    pub(crate) fn new(pool: &str, enabled: bool) -> Self {
        if !enabled {
            return Self::noop();
        }
        let pool = pool.to_owned();
        let label = || [("pool", pool.clone())];
        Self {
            open: metrics::gauge!(CONNECTIONS_OPEN, &label()),
            idle: metrics::gauge!(CONNECTIONS_IDLE, &label()),
            in_use: metrics::gauge!(CONNECTIONS_IN_USE, &label()),
            overflow: metrics::gauge!(CONNECTIONS_OVERFLOW, &label()),
            waiters: metrics::gauge!(WAITERS, &label()),
            utilization: metrics::gauge!(UTILIZATION, &label()),
            acquire_wait: metrics::histogram!(ACQUIRE_WAIT, &label()),
            opened: metrics::counter!(OPENED_TOTAL, &label()),
            closed: CloseReason::ALL.map(|reason| {
                metrics::counter!(CLOSED_TOTAL, "pool" => pool.clone(), "reason" => reason.as_str())
            }),
            connect_errors: metrics::counter!(CONNECT_ERRORS_TOTAL, &label()),
            timeouts: metrics::counter!(TIMEOUTS_TOTAL, &label()),
            ping_failures: metrics::counter!(PRE_PING_FAILURES_TOTAL, &label()),
            leaks: metrics::counter!(LEAKS_TOTAL, &label()),
            hook_failures: crate::pool::Hook::ALL.map(|hook| {
                metrics::counter!(HOOK_FAILURES_TOTAL, "pool" => pool.clone(), "hook" => hook.as_str())
            }),
            nested_checkouts: metrics::counter!(NESTED_CHECKOUTS_TOTAL, &label()),
        }
    }

    fn noop() -> Self {
        Self {
            open: Gauge::noop(),
            idle: Gauge::noop(),
            in_use: Gauge::noop(),
            overflow: Gauge::noop(),
            waiters: Gauge::noop(),
            utilization: Gauge::noop(),
            acquire_wait: Histogram::noop(),
            opened: Counter::noop(),
            closed: CloseReason::ALL.map(|_| Counter::noop()),
            connect_errors: Counter::noop(),
            timeouts: Counter::noop(),
            ping_failures: Counter::noop(),
            leaks: Counter::noop(),
            hook_failures: crate::pool::Hook::ALL.map(|_| Counter::noop()),
            nested_checkouts: Counter::noop(),
        }
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed[reason as usize].increment(1);
    }

    pub(crate) fn publish(&self, status: &crate::Status) {
        self.open.set(f64::from(status.size));
        self.idle.set(f64::from(status.checked_in));
        self.in_use.set(f64::from(status.checked_out));
        self.overflow.set(f64::from(status.overflow));
        self.waiters.set(f64::from(status.waiting));
        self.utilization.set(status.utilization_percent / 100.0);
    }
}
