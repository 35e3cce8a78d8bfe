//! A consistent snapshot of a pool: counts read under the same lock that
//! changes them, health from configurable thresholds, and advice in words.

use std::fmt;
use std::time::Duration;

pub use super::signals::DatabaseStatus;
pub use super::wait::WaitSummary;
use crate::backend::ServerLimits;
use crate::{PgBouncerMode, PoolClass, PoolSettings};

/// Why a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Returned while `pool_size` were already idle.
    Overflow,
    /// Older than `pool_recycle`.
    Recycle,
    /// Failed its pre-ping.
    PingFailed,
    /// Rolling back on return failed or timed out.
    ResetFailed,
    /// NullPool: every connection closes on return.
    NullPool,
    /// The pool was closed.
    PoolClosed,
    /// Discarded by its holder, or by a cancelled checkout.
    Discarded,
    /// Made before [`Pool::invalidate_all`](crate::Pool::invalidate_all),
    /// or [`invalidate`](crate::PooledConnection::invalidate)d by its holder.
    Invalidated,
    /// Idle longer than `idle_timeout` (above `min_idle`) or, beyond
    /// `pool_size`, longer than `overflow_linger`.
    IdleTimeout,
    /// A `before_checkout` or `after_checkin` hook refused it or failed.
    HookRejected,
}

impl CloseReason {
    /// Every reason, in the order of [`ClosedCounts`].
    pub const ALL: [CloseReason; 10] = [
        Self::Overflow,
        Self::Recycle,
        Self::PingFailed,
        Self::ResetFailed,
        Self::NullPool,
        Self::PoolClosed,
        Self::Discarded,
        Self::Invalidated,
        Self::IdleTimeout,
        Self::HookRejected,
    ];

    /// The label used in metrics and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overflow => "overflow",
            Self::Recycle => "recycle",
            Self::PingFailed => "ping_failed",
            Self::ResetFailed => "reset_failed",
            Self::NullPool => "null_pool",
            Self::PoolClosed => "pool_closed",
            Self::Discarded => "discarded",
            Self::Invalidated => "invalidated",
            Self::IdleTimeout => "idle_timeout",
            Self::HookRejected => "hook_rejected",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connections closed so far, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClosedCounts {
    /// [`CloseReason::Overflow`].
    pub overflow: u64,
    /// [`CloseReason::Recycle`].
    pub recycle: u64,
    /// [`CloseReason::PingFailed`].
    pub ping_failed: u64,
    /// [`CloseReason::ResetFailed`].
    pub reset_failed: u64,
    /// [`CloseReason::NullPool`].
    pub null_pool: u64,
    /// [`CloseReason::PoolClosed`].
    pub pool_closed: u64,
    /// [`CloseReason::Discarded`].
    pub discarded: u64,
    /// [`CloseReason::Invalidated`].
    pub invalidated: u64,
    /// [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// [`CloseReason::HookRejected`].
    pub hook_rejected: u64,
}

impl ClosedCounts {
    pub(crate) fn add(&mut self, reason: CloseReason) {
        let slot = match reason {
            CloseReason::Overflow => &mut self.overflow,
            CloseReason::Recycle => &mut self.recycle,
            CloseReason::PingFailed => &mut self.ping_failed,
            CloseReason::ResetFailed => &mut self.reset_failed,
            CloseReason::NullPool => &mut self.null_pool,
            CloseReason::PoolClosed => &mut self.pool_closed,
            CloseReason::Discarded => &mut self.discarded,
            CloseReason::Invalidated => &mut self.invalidated,
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::HookRejected => &mut self.hook_rejected,
        };
        *slot += 1;
    }

    /// All closes.
    pub fn total(&self) -> u64 {
        self.overflow
            + self.recycle
            + self.ping_failed
            + self.reset_failed
            + self.null_pool
            + self.pool_closed
            + self.discarded
            + self.invalidated
            + self.idle_timeout
            + self.hook_rejected
    }
}

/// Cumulative counters since the pool started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    /// Successful checkouts.
    pub acquired: u64,
    /// Connections opened.
    pub opened: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
    /// Failed connection attempts.
    pub connect_errors: u64,
    /// Acquires that hit `pool_timeout`.
    pub timeouts: u64,
    /// Idle connections found dead by pre-ping.
    pub ping_failures: u64,
    /// Connections reported held past `leak_threshold`.
    pub leaks: u64,
    /// Lifecycle hooks (`after_connect`, `before_checkout`,
    /// `after_checkin`) that failed or ran past `network_timeout`.
    pub hook_failures: u64,
    /// Acquires by a task that already held a connection of the pool
    /// (`nested_checkout` warn or error; every one, not only those warned
    /// about).
    pub nested_checkouts: u64,
    /// Statements that failed because a prepared statement of sqlx's
    /// naming already existed or had vanished on the server (SQLSTATE
    /// 42P05, 26000): the sign of a server connection shared between
    /// clients, as behind PgBouncer in transaction mode.
    pub statement_clashes: u64,
}

/// Overall judgement of a pool's state; [`Status::health_reasons`] says
/// which rules applied.
///
/// Events (timeouts, failed connects and pings, connections lost
/// mid-statement) count for 10 seconds after they happen; wait quantiles
/// cover the last 5 to 10 seconds. "The database cannot be reached" lasts
/// until a connect or ping succeeds; while it lasts, the pool's maintenance
/// task tries a connect after 1, 2 and 4 s and then every 5 s, and when the
/// pool sat idle it checks the database every 5 s, so health follows a
/// database that stops or comes back with no traffic at all. A pool that
/// never reached its database makes no attempts of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// None of the rules below applies.
    Healthy,
    /// Busy or troubled: in use at or above `warning_percent`, callers
    /// waiting, acquire p99 at or above a tenth of `pool_timeout`, or a
    /// failed connect, failed ping or connection lost in the last 10 s.
    Warning,
    /// Unusable or nearly: the pool is closed, the database cannot be
    /// reached (the last connect failed and no connection was verified
    /// since), in use at or above `critical_percent`, an acquire timed out
    /// in the last 10 s, or acquire p99 at or above half of `pool_timeout`.
    Critical,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Healthy => "healthy",
            Self::Warning => "warning",
            Self::Critical => "critical",
        })
    }
}

/// A snapshot of a pool. Counts are consistent with each other.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Status {
    /// Pool name.
    pub name: String,
    /// Queue or Null.
    pub pool_class: PoolClass,
    /// Connections open (idle + in use + connecting).
    pub size: u32,
    /// Configured `pool_size`.
    pub pool_size: u32,
    /// Idle connections.
    pub checked_in: u32,
    /// Connections held by callers.
    pub checked_out: u32,
    /// Connections being opened.
    pub connecting: u32,
    /// Open connections beyond `pool_size`.
    pub overflow: u32,
    /// Configured `max_overflow`.
    pub max_overflow: u32,
    /// Callers waiting in `acquire`.
    pub waiting: u32,
    /// Checked out and connecting, as a percentage of size + overflow.
    pub utilization_percent: f64,
    /// Judgement from the database's answers, utilization, waiters and
    /// recent waits.
    pub health: Health,
    /// Why `health` is what it is: one sentence per rule that applied,
    /// worst first; empty when healthy.
    pub health_reasons: Vec<String>,
    /// The database as the pool has seen it: reachable, recent failures,
    /// the last error.
    pub database: DatabaseStatus,
    /// Acquire wait figures.
    pub wait: WaitSummary,
    /// Cumulative counters.
    pub totals: Totals,
    /// The longest-held connection: where it was acquired and for how long.
    pub oldest_checkout: Option<OldestCheckout>,
    /// What the server allows, when known.
    pub server: Option<ServerLimits>,
    /// Advice in plain words; empty when there is nothing to say.
    pub recommendations: Vec<String>,
    /// Whether the pool was closed.
    pub closed: bool,
    /// The read-only connections of a SQLite pool split into one writer
    /// and readers ([`Pool::reader`](crate::Pool::reader)); the fields
    /// above are the writer's, `health` is the worse of the two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readers: Option<Box<Status>>,
    /// The hosts of a [`ReplicaPool`](crate::ReplicaPool): each one's
    /// role, lag, whether it serves reads, and its read pool; the fields
    /// above are the write pool's, `health` takes the nodes in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Box<ReplicaStatus>>,
}

/// What a host of a [`ReplicaPool`](crate::ReplicaPool) is, as its last
/// check found (`pg_is_in_recovery()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    /// Not in recovery: takes writes.
    Primary,
    /// In recovery: a hot standby.
    Standby,
    /// Never reached yet.
    Unknown,
}

impl NodeRole {
    /// Every role, for metrics.
    pub const ALL: [NodeRole; 3] = [Self::Primary, Self::Standby, Self::Unknown];

    /// The label used in metrics and status.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NodeRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The read side of a [`ReplicaPool`](crate::ReplicaPool).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReplicaStatus {
    /// `read_balance`.
    pub read_balance: crate::ReadBalance,
    /// `read_fallback`.
    pub read_fallback: bool,
    /// `read_max_lag`, seconds.
    pub read_max_lag_seconds: Option<f64>,
    /// Reads sent to the primary because no standby qualified.
    pub fallback_reads: u64,
    /// Reads refused because no standby qualified and fallback is off.
    pub refused_reads: u64,
    /// Every host of the URL, in its order.
    pub nodes: Vec<NodeStatus>,
}

/// One host of a [`ReplicaPool`](crate::ReplicaPool).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct NodeStatus {
    /// `host:port`, as the URL names it.
    pub node: String,
    /// Its role at the last check.
    pub role: NodeRole,
    /// The last check reached it.
    pub reachable: bool,
    /// Replay lag at the last check that reached it, seconds (0 on a
    /// primary, and on a standby that has replayed all it received).
    pub lag_seconds: Option<f64>,
    /// Whether it serves reads now.
    pub serving: bool,
    /// Why not, in words (`down (…)`, `is a primary`, `lagging 4.2 s >
    /// read_max_lag 1.0 s`).
    pub not_serving: Option<String>,
    /// Reads routed to it.
    pub reads: u64,
    /// Its read pool (named `<name>@host:port`).
    pub pool: Status,
}

/// The call site holding a connection longest.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OldestCheckout {
    /// `file:line:column` of the `acquire` call.
    pub site: String,
    /// How long it has been held, seconds.
    pub held_seconds: f64,
}

/// The raw counts `Status` is computed from.
#[derive(Clone)]
pub(crate) struct Counts {
    pub open: u32,
    pub idle: u32,
    pub checked_out: u32,
    pub connecting: u32,
    pub waiting: u32,
    pub closed: bool,
    pub totals: Totals,
    pub wait: WaitSummary,
    pub oldest: Option<(String, Duration)>,
    pub server: Option<ServerLimits>,
    pub database: DatabaseStatus,
}

impl Status {
    pub(crate) fn compute(settings: &PoolSettings, counts: Counts) -> Self {
        let capacity = settings.capacity().max(1);
        let busy = counts.checked_out + counts.connecting;
        let utilization_percent = f64::from(busy) * 100.0 / f64::from(capacity);
        let mut status = Status {
            name: settings.name.clone(),
            pool_class: settings.pool_class,
            size: counts.open,
            pool_size: settings.pool_size,
            checked_in: counts.idle,
            checked_out: counts.checked_out,
            connecting: counts.connecting,
            overflow: counts.open.saturating_sub(settings.pool_size),
            max_overflow: settings.max_overflow,
            waiting: counts.waiting,
            utilization_percent,
            health: Health::Healthy,
            health_reasons: Vec::new(),
            database: counts.database,
            wait: counts.wait,
            totals: counts.totals,
            oldest_checkout: counts.oldest.map(|(site, held)| OldestCheckout {
                site,
                held_seconds: held.as_secs_f64(),
            }),
            server: counts.server,
            recommendations: Vec::new(),
            closed: counts.closed,
            readers: None,
            replicas: None,
        };
        (status.health, status.health_reasons) = status.judge(settings);
        status.recommendations = status.advise(settings);
        status
    }

    fn judge(&self, settings: &PoolSettings) -> (Health, Vec<String>) {
        let limits = settings.health;
        let timeout_ms = settings.pool_timeout.as_secs_f64() * 1000.0;
        let in_use = format!(
            "{} of {} connections in use ({:.0}%)",
            self.checked_out + self.connecting,
            settings.capacity(),
            self.utilization_percent
        );
        let db = &self.database;
        let mut critical = Vec::new();
        if self.closed {
            critical.push("the pool is closed".to_owned());
        }
        if let (Some(streak), Some(next)) = (db.credentials_refused, db.next_connect_in_seconds) {
            critical.push(format!(
                "the database refused the pool's credentials {streak} time(s) in a row; \
                 checkouts fail at once until the next connect in {next:.1} s"
            ));
        }
        if !db.reachable {
            critical.push(format!(
                "the database cannot be reached: the last {} connect attempt(s) failed and no \
                 connection was verified since ({})",
                db.consecutive_connect_failures,
                db.last_error.as_deref().unwrap_or("no error recorded")
            ));
        }
        if self.utilization_percent >= limits.critical_percent {
            critical.push(format!(
                "{in_use}, at or above critical_percent {}%",
                limits.critical_percent
            ));
        }
        if self.wait.recent_timeouts > 0 {
            critical.push(format!(
                "{} acquire(s) timed out in the last 10 s",
                self.wait.recent_timeouts
            ));
        }
        if self.wait.p99_ms >= timeout_ms / 2.0 && self.wait.p99_ms > 0.0 {
            critical.push(format!(
                "acquire waits p99 {:.1} ms, at or above half of pool_timeout",
                self.wait.p99_ms
            ));
        }
        if !critical.is_empty() {
            return (Health::Critical, critical);
        }
        let mut warning = Vec::new();
        if db.troubled() {
            warning.push(format!(
                "database trouble in the last 10 s: {} (last: {})",
                db.describe_troubles(),
                db.last_error.as_deref().unwrap_or("no message")
            ));
        }
        if self.utilization_percent >= limits.warning_percent {
            warning.push(format!(
                "{in_use}, at or above warning_percent {}%",
                limits.warning_percent
            ));
        }
        if self.waiting > 0 {
            warning.push(format!(
                "{} caller(s) waiting for a connection",
                self.waiting
            ));
        }
        if self.wait.p99_ms >= timeout_ms / 10.0 && self.wait.p99_ms > 0.0 {
            warning.push(format!(
                "acquire waits p99 {:.1} ms, at or above a tenth of pool_timeout",
                self.wait.p99_ms
            ));
        }
        if warning.is_empty() {
            (Health::Healthy, warning)
        } else {
            (Health::Warning, warning)
        }
    }

    fn advise(&self, settings: &PoolSettings) -> Vec<String> {
        let mut advice = Vec::new();
        let capacity = settings.capacity();
        let timeouts = self.wait.recent_timeouts;
        if timeouts > 0 || (self.waiting > 0 && self.health == Health::Critical) {
            let what = match (self.waiting, timeouts) {
                (0, t) => format!("{t} acquire(s) timed out in the last 10 s"),
                (w, 0) => format!("{w} caller(s) are waiting for a connection"),
                (w, t) => format!(
                    "{w} caller(s) are waiting and {t} acquire(s) timed out in the last 10 s"
                ),
            };
            advice.push(format!(
                "{what}: raise pool_size or max_overflow (now {} + {}), or hold connections for \
                 less time",
                settings.pool_size, settings.max_overflow
            ));
        }
        if !self.database.reachable {
            advice.push(
                "check that the database is up and that the URL, credentials and network allow \
                 a connection; the pool keeps trying"
                    .to_owned(),
            );
        }
        if let Some(oldest) = &self.oldest_checkout
            && let Some(threshold) = settings.leak_threshold
            && oldest.held_seconds >= threshold.as_secs_f64()
        {
            advice.push(format!(
                "a connection has been held for {:.1}s (leak_threshold {:.1}s): look for a leak \
                 at {}",
                oldest.held_seconds,
                threshold.as_secs_f64(),
                oldest.site
            ));
        }
        let acquired = self.totals.acquired.max(1);
        if settings.pool_class == PoolClass::Queue
            && self.totals.closed.overflow * 10 > acquired
            && self.totals.closed.overflow >= 10
        {
            advice.push(format!(
                "{} of {} checkouts opened an overflow connection that was closed on return: \
                 raise pool_size toward the usual peak, or lower max_overflow",
                self.totals.closed.overflow, self.totals.acquired
            ));
        }
        if let Some(server) = self.server {
            if let Some(idle) = server.idle_session_timeout {
                let recycle_ok = settings.pool_recycle.is_some_and(|r| r < idle);
                if !recycle_ok {
                    advice.push(format!(
                        "the server closes sessions idle for {:.0}s: set pool_recycle below that",
                        idle.as_secs_f64()
                    ));
                }
            }
            if let Some(line) = budget(settings, capacity, server.max_connections) {
                advice.push(line);
            }
        } else if let Some(line) = budget(settings, capacity, None) {
            advice.push(line);
        }
        if self.totals.statement_clashes > 0 && settings.pgbouncer != PgBouncerMode::Transaction {
            advice.push(format!(
                "{} statement(s) failed on a prepared statement that already existed or had \
                 vanished (SQLSTATE 42P05 or 26000): the server connections are shared between \
                 clients, as behind PgBouncer in transaction mode; set pgbouncer = transaction",
                self.totals.statement_clashes
            ));
        }
        advice
    }
}

/// The connection budget: what this pool's connections, across
/// `replicas` copies of the service, ask of PgBouncer and of the server,
/// or `None` when it fits (or nothing is known to compare with).
fn budget(settings: &PoolSettings, capacity: u32, max_connections: Option<u32>) -> Option<String> {
    let replicas = settings.replicas.max(1);
    let wanted = u64::from(capacity) * u64::from(replicas);
    let bouncer = settings.pgbouncer_pool_size.map(u64::from);
    let max = max_connections.map(u64::from);
    match (settings.pgbouncer, bouncer, max) {
        // PgBouncer's server connections are what the server sees.
        (PgBouncerMode::Session | PgBouncerMode::Transaction, Some(pool), Some(max))
            if pool > max =>
        {
            Some(format!(
                "PgBouncer's pool_size {pool} (pgbouncer_pool_size) is above the server's \
                 max_connections {max}: PgBouncer will fail to open server connections; lower \
                 it to at most {max}, counting every other database and user it serves"
            ))
        }
        // Each pooled connection holds one of PgBouncer's for its life.
        (PgBouncerMode::Session, Some(pool), _) if wanted > pool => Some(format!(
            "pool_size + max_overflow = {capacity} across {replicas} replica(s) holds up to \
             {wanted} PgBouncer server connections in session mode, but its pool_size is \
             {pool}: the rest wait inside PgBouncer (query_wait_timeout), where pool_timeout \
             cannot see them; raise PgBouncer's pool_size or lower max_overflow to at most {} \
             per replica",
            pool / u64::from(replicas)
        )),
        // In transaction mode our connections are PgBouncer's clients.
        (PgBouncerMode::Transaction, ..) => None,
        (PgBouncerMode::Session, ..) => None,
        (PgBouncerMode::Off, _, Some(max)) if wanted > max => {
            let multi = crate::hosts::url::HostList::parse(settings.url.expose())
                .ok()
                .flatten()
                .is_some_and(|hosts| hosts.is_multi());
            let every = if multi {
                " (on every host of the URL: after a failover they all reach one)"
            } else {
                ""
            };
            Some(format!(
                "pool_size + max_overflow = {capacity} across {replicas} replica(s) needs \
                 {wanted} connections but the server allows {max}{every}: lower pool_size or \
                 max_overflow to at most {} per replica",
                max / u64::from(replicas)
            ))
        }
        (PgBouncerMode::Off, ..) => None,
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool \"{}\" ({}): size {} (pool_size {}), checked in {}, checked out {}, overflow \
             {}/{}, waiting {}, utilization {:.0}%, health {}",
            self.name,
            self.pool_class,
            self.size,
            self.pool_size,
            self.checked_in,
            self.checked_out,
            self.overflow,
            self.max_overflow,
            self.waiting,
            self.utilization_percent,
            self.health
        )?;
        if !self.health_reasons.is_empty() {
            write!(f, " ({})", self.health_reasons.join("; "))?;
        }
        if let Some(readers) = &self.readers {
            write!(f, "\n  readers: {readers}")?;
        }
        if let Some(replicas) = &self.replicas {
            for n in &replicas.nodes {
                let lag = n
                    .lag_seconds
                    .map_or_else(String::new, |l| format!(", lag {l:.1} s"));
                let serving = match &n.not_serving {
                    None => "serving reads".to_owned(),
                    Some(why) => format!("not serving: {why}"),
                };
                write!(
                    f,
                    "\n  node {} ({}{lag}): {serving}, {} read(s), checked out {}",
                    n.node, n.role, n.reads, n.pool.checked_out
                )?;
            }
        }
        for line in &self.recommendations {
            write!(f, "\n  - {line}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(checked_out: u32, waiting: u32) -> Counts {
        Counts {
            open: checked_out,
            idle: 0,
            checked_out,
            connecting: 0,
            waiting,
            closed: false,
            totals: Totals::default(),
            wait: WaitSummary::default(),
            oldest: None,
            server: None,
            database: DatabaseStatus {
                reachable: true,
                ..DatabaseStatus::default()
            },
        }
    }

    fn settings() -> PoolSettings {
        PoolSettings::builder("postgres://x@h/db")
            .pool_size(5)
            .max_overflow(5)
            .build()
            .unwrap()
    }

    #[test]
    fn health_follows_the_thresholds() {
        let s = settings();
        assert_eq!(Status::compute(&s, counts(6, 0)).health, Health::Healthy);
        assert_eq!(Status::compute(&s, counts(7, 0)).health, Health::Warning);
        assert_eq!(Status::compute(&s, counts(9, 0)).health, Health::Critical);
        assert_eq!(Status::compute(&s, counts(2, 1)).health, Health::Warning);
    }

    #[test]
    fn a_pool_too_large_for_the_server_is_called_out() {
        let mut s = settings();
        s.replicas = 4;
        let mut c = counts(0, 0);
        c.server = Some(ServerLimits {
            max_connections: Some(30),
            idle_session_timeout: None,
        });
        let status = Status::compute(&s, c.clone());
        let advice = status.recommendations.join("\n");
        assert!(
            advice.contains("needs 40 connections but the server allows 30"),
            "{advice}"
        );
        assert!(advice.contains("at most 7 per replica"), "{advice}");
        s.url = "postgres://x@h1,h2/db".into();
        let advice = Status::compute(&s, c.clone()).recommendations.join("\n");
        assert!(advice.contains("on every host of the URL"), "{advice}");
    }

    /// Behind PgBouncer the budget is PgBouncer's: in session mode each
    /// pooled connection holds one of its server connections; in either
    /// mode its pool must fit the server.
    #[test]
    fn the_budget_behind_pgbouncer_is_its_pool_size() {
        let mut s = settings();
        s.replicas = 4;
        s.pgbouncer = PgBouncerMode::Session;
        s.pgbouncer_pool_size = Some(25);
        let mut c = counts(0, 0);
        c.server = Some(ServerLimits {
            max_connections: Some(100),
            idle_session_timeout: None,
        });
        let advice = Status::compute(&s, c.clone()).recommendations.join("\n");
        assert!(
            advice.contains("holds up to 40 PgBouncer server connections in session mode, but its pool_size is 25")
                && advice.contains("at most 6 per replica"),
            "{advice}"
        );
        s.pgbouncer = PgBouncerMode::Transaction;
        let advice = Status::compute(&s, c.clone()).recommendations.join("\n");
        assert!(
            advice.is_empty(),
            "40 clients over 25 server connections is the point: {advice}"
        );
        s.pgbouncer_pool_size = Some(150);
        let advice = Status::compute(&s, c.clone()).recommendations.join("\n");
        assert!(
            advice.contains("PgBouncer's pool_size 150 (pgbouncer_pool_size) is above the server's max_connections 100"),
            "{advice}"
        );
    }

    #[test]
    fn statement_clashes_point_at_pgbouncer_transaction_mode() {
        let s = settings();
        let mut c = counts(0, 0);
        c.totals.statement_clashes = 3;
        let advice = Status::compute(&s, c).recommendations.join("\n");
        assert!(advice.contains("set pgbouncer = transaction"), "{advice}");
    }
}
