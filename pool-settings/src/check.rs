//! The one validator of a combination of settings, used by
//! `PoolSettings::validate`, the config loader (which points at the
//! variables) and the derive (which points at the attribute literals).

use std::fmt;
use std::time::Duration;

/// The values the rules look at. `None` is "not known here" (a required
/// variable at compile time): a rule that needs it is skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values<'a> {
    /// `url`.
    pub url: Option<&'a str>,
    /// Whether `pool_class` is null.
    pub null_pool: Option<bool>,
    /// `pool_size`.
    pub pool_size: Option<u64>,
    /// `min_idle`.
    pub min_idle: Option<u64>,
    /// `pool_timeout`.
    pub pool_timeout: Option<Duration>,
    /// `connect_timeout`.
    pub connect_timeout: Option<Duration>,
    /// `network_timeout`.
    pub network_timeout: Option<Duration>,
    /// `pool_recycle` (`Some(None)`: off).
    pub pool_recycle: Option<Option<Duration>>,
    /// `read_max_lag` (`Some(None)`: off).
    pub read_max_lag: Option<Option<Duration>>,
    /// `read_check_interval`.
    pub read_check_interval: Option<Duration>,
    /// `health_warning_percent`.
    pub health_warning_percent: Option<f64>,
    /// `health_critical_percent`.
    pub health_critical_percent: Option<f64>,
    /// `hosts` (`Some(None)`: unset).
    pub hosts: Option<Option<&'a str>>,
    /// `pgbouncer`, as config text.
    pub pgbouncer: Option<&'a str>,
    /// `pgbouncer_pool_size` (`Some(None)`: off).
    pub pgbouncer_pool_size: Option<Option<u64>>,
}

/// One problem: which settings it involves (the one to change first) and
/// what is wrong, in one sentence with the values that show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The settings involved; the first is the one to point at.
    pub settings: &'static [&'static str],
    /// What is wrong (`min_idle (9) exceeds pool_size (5)`).
    pub message: String,
    /// What would be right (`at most pool_size`).
    pub expected: &'static str,
}

impl Problem {
    /// The setting to point at.
    pub fn setting(&self) -> &'static str {
        self.settings[0]
    }
}

/// `pool_timeout: must be greater than zero (expected more than zero)`.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (expected {})",
            self.setting(),
            self.message,
            self.expected
        )
    }
}

/// Every problem of the combination, in table order.
///
/// ```
/// use pool_settings::{Values, check};
/// let problems = check(&Values { pool_size: Some(5), min_idle: Some(9), ..Values::default() });
/// assert_eq!(problems[0].to_string(), "min_idle: min_idle (9) exceeds pool_size (5) (expected at most pool_size)");
/// ```
pub fn check(v: &Values<'_>) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |settings, message: String, expected| {
        out.push(Problem {
            settings,
            message,
            expected,
        });
    };
    if v.url.is_some_and(|u| u.trim().is_empty()) {
        push(
            &["url"],
            "no database URL".to_owned(),
            "a URL such as postgres://user@host/db or sqlite://app.db",
        );
    }
    if v.pool_size == Some(0) && v.null_pool == Some(false) {
        push(
            &["pool_size", "pool_class"],
            "a queue pool needs at least 1 connection".to_owned(),
            "at least 1 (or pool_class = null for no pooling)",
        );
    }
    if let (Some(min_idle), Some(size)) = (v.min_idle, v.pool_size)
        && min_idle > size
    {
        push(
            &["min_idle", "pool_size"],
            format!("min_idle ({min_idle}) exceeds pool_size ({size})"),
            "at most pool_size",
        );
    }
    let timeouts: [(&'static [&'static str], Option<Duration>, &'static str); 6] = [
        (&["pool_timeout"], v.pool_timeout, "more than zero"),
        (
            &["pool_recycle"],
            v.pool_recycle.flatten(),
            "more than zero, or off",
        ),
        (&["connect_timeout"], v.connect_timeout, "more than zero"),
        (&["network_timeout"], v.network_timeout, "more than zero"),
        (
            &["read_max_lag"],
            v.read_max_lag.flatten(),
            "more than zero, or off",
        ),
        (
            &["read_check_interval"],
            v.read_check_interval,
            "more than zero",
        ),
    ];
    for (settings, value, expected) in timeouts {
        if value.is_some_and(|d| d.is_zero()) {
            push(settings, "must be greater than zero".to_owned(), expected);
        }
    }
    if let (Some(warning), Some(critical)) = (v.health_warning_percent, v.health_critical_percent)
        && !(0.0 <= warning && warning <= critical && critical <= 100.0)
    {
        push(
            &["health_warning_percent", "health_critical_percent"],
            format!("health thresholds warning {warning} / critical {critical} are inconsistent"),
            "0 <= warning <= critical <= 100",
        );
    }
    let behind_pgbouncer = v
        .pgbouncer
        .is_some_and(|t| crate::table::PGBOUNCER.parse(t).is_some_and(|i| i > 0));
    if behind_pgbouncer && v.url.is_some_and(|u| u.trim_start().starts_with("sqlite:")) {
        push(
            &["pgbouncer", "url"],
            format!(
                "pgbouncer is {} but the URL is a SQLite database",
                v.pgbouncer.unwrap_or_default()
            ),
            "off for SQLite (PgBouncer pools PostgreSQL connections)",
        );
    }
    if let Some(Some(hosts)) = v.hosts {
        if v.url.is_some_and(|u| u.trim_start().starts_with("sqlite:")) {
            push(
                &["hosts", "url"],
                "hosts are set but the URL is a SQLite database".to_owned(),
                "no hosts for SQLite",
            );
        } else if hosts.split(',').any(|h| h.trim().is_empty()) {
            push(
                &["hosts"],
                format!("{hosts:?} has an empty entry"),
                "host:port entries separated by commas (db1:5432,db2:5432)",
            );
        }
    }
    if v.pgbouncer_pool_size == Some(Some(0)) {
        push(
            &["pgbouncer_pool_size"],
            "must be at least 1".to_owned(),
            "at least 1, or off",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_skip_their_rules() {
        assert!(check(&Values::default()).is_empty());
        let v = Values {
            pool_size: Some(0),
            ..Values::default()
        };
        assert!(check(&v).is_empty(), "pool class unknown");
    }

    #[test]
    fn every_rule_fires() {
        let v = Values {
            url: Some(" "),
            null_pool: Some(false),
            pool_size: Some(0),
            min_idle: Some(1),
            pool_timeout: Some(Duration::ZERO),
            connect_timeout: Some(Duration::ZERO),
            network_timeout: Some(Duration::ZERO),
            pool_recycle: Some(Some(Duration::ZERO)),
            read_max_lag: Some(Some(Duration::ZERO)),
            read_check_interval: Some(Duration::ZERO),
            health_warning_percent: Some(95.0),
            health_critical_percent: Some(90.0),
            hosts: Some(Some("db1:5432,")),
            pgbouncer: Some("Transaction"),
            pgbouncer_pool_size: Some(Some(0)),
        };
        let named: Vec<_> = check(&v).iter().map(Problem::setting).collect();
        assert_eq!(
            named,
            [
                "url",
                "pool_size",
                "min_idle",
                "pool_timeout",
                "pool_recycle",
                "connect_timeout",
                "network_timeout",
                "read_max_lag",
                "read_check_interval",
                "health_warning_percent",
                "hosts",
                "pgbouncer_pool_size"
            ]
        );
        let off = Values {
            pool_recycle: Some(None),
            health_warning_percent: Some(f64::NAN),
            health_critical_percent: Some(90.0),
            ..Values::default()
        };
        assert_eq!(check(&off).len(), 1, "NaN is inconsistent, off is fine");
    }

    #[test]
    fn pgbouncer_is_for_postgres() {
        let v = Values {
            url: Some("sqlite://app.db"),
            pgbouncer: Some("Transaction"),
            ..Values::default()
        };
        assert_eq!(
            check(&v)[0].to_string(),
            "pgbouncer: pgbouncer is Transaction but the URL is a SQLite database \
             (expected off for SQLite (PgBouncer pools PostgreSQL connections))"
        );
        let off = Values {
            pgbouncer: Some("off"),
            ..v
        };
        assert!(check(&off).is_empty());
    }
}
