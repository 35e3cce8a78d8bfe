//! Plain-data pool settings: what `#[derive(PoolConfig)]` produces, and what
//! [`Pool::connect`](crate::Pool::connect) consumes. Usable by hand through
//! [`PoolSettings::builder`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::Secret;

/// Which pool implementation serves checkouts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolClass {
    /// SQLAlchemy's QueuePool: `pool_size` kept open, `max_overflow` extra
    /// under load, closed when returned.
    #[default]
    Queue,
    /// Every checkout opens a fresh connection, closed when returned. For
    /// tests and short-lived (serverless) processes.
    Null,
}

impl FromStr for PoolClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "queue" | "queuepool" => Ok(Self::Queue),
            "null" | "nullpool" => Ok(Self::Null),
            _ => Err("one of: queue, null".to_owned()),
        }
    }
}

impl fmt::Display for PoolClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Queue => "queue",
            Self::Null => "null",
        })
    }
}

/// What happens to a connection when it comes back to the pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetOnReturn {
    /// Roll back every transaction sqlx knows is open: one begun through
    /// `begin()`, a dropped `Transaction`, a savepoint. No round trip when
    /// none is open, so it costs nothing on the hot path.
    #[default]
    Rollback,
    /// Send `ROLLBACK` after every checkout that touched the connection,
    /// which also catches a transaction begun with a raw `BEGIN` statement
    /// (SQLAlchemy's behaviour). Costs one round trip per checkout.
    RollbackAlways,
    /// Return the connection as it is.
    None,
}

impl FromStr for ResetOnReturn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "rollback" => Ok(Self::Rollback),
            "rollback_always" | "always" => Ok(Self::RollbackAlways),
            "none" | "off" => Ok(Self::None),
            _ => Err("one of: rollback, rollback_always, none".to_owned()),
        }
    }
}

impl fmt::Display for ResetOnReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Rollback => "rollback",
            Self::RollbackAlways => "rollback_always",
            Self::None => "none",
        })
    }
}

/// PostgreSQL `sslmode`, as libpq spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Allow,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "disable" => Ok(Self::Disable),
            "allow" => Ok(Self::Allow),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" | "verify_ca" => Ok(Self::VerifyCa),
            "verify-full" | "verify_full" => Ok(Self::VerifyFull),
            _ => Err("one of: disable, allow, prefer, require, verify-ca, verify-full".to_owned()),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

/// Utilization thresholds (percent of `pool_size + max_overflow` checked
/// out) at which [`Status::health`](crate::Status) turns warning and critical.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct HealthThresholds {
    /// Warning from this utilization on (default 70 %).
    pub warning_percent: f64,
    /// Critical from this utilization on (default 90 %).
    pub critical_percent: f64,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        Self {
            warning_percent: 70.0,
            critical_percent: 90.0,
        }
    }
}

/// SQLite options for the embedded case.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SqliteSettings {
    /// `PRAGMA journal_mode = WAL` (readers don't block the writer).
    pub wal: bool,
    /// How long a statement waits on a locked database.
    pub busy_timeout: Duration,
    /// `PRAGMA cache_size` (negative: KiB, positive: pages).
    pub cache_size: Option<i64>,
    /// `PRAGMA mmap_size` in bytes.
    pub mmap_size: Option<u64>,
    /// Create the database file when it does not exist.
    pub create_if_missing: bool,
}

impl Default for SqliteSettings {
    fn default() -> Self {
        Self {
            wal: true,
            busy_timeout: Duration::from_secs(5),
            cache_size: None,
            mmap_size: None,
            create_if_missing: true,
        }
    }
}

/// Everything a pool needs, as plain data.
///
/// Defaults follow SQLAlchemy's QueuePool where it has one (size 5,
/// overflow 10, timeout 30 s) and err on the safe side elsewhere (pre-ping
/// on, every network step bounded).
#[derive(Clone, PartialEq, serde::Serialize)]
pub struct PoolSettings {
    /// Connection URL (`postgres://…`, `sqlite://…`); printed redacted.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: Secret<String>,
    /// Name of the pool in metrics, logs and the pool registry.
    pub name: String,
    /// Connections kept open when idle.
    pub pool_size: u32,
    /// Extra connections opened when all are busy; closed on return while
    /// `pool_size` are already idle.
    pub max_overflow: u32,
    /// How long `acquire` may take in all (waiting, connecting, pinging).
    pub pool_timeout: Duration,
    /// Maximum connection age, checked at checkout and at return.
    pub pool_recycle: Option<Duration>,
    /// Ping an idle connection before handing it out.
    pub pool_pre_ping: bool,
    /// No pre-ping for a connection the server verified (connect or ping)
    /// this recently. Counted from the last verification, not the last
    /// use, so a connection in steady use is still pinged once per window
    /// and a dead one stops serving within about that long.
    pub pre_ping_bypass: Duration,
    /// What to do with a returned connection.
    pub reset_on_return: ResetOnReturn,
    /// Hand out the most recently returned idle connection first.
    pub pool_use_lifo: bool,
    /// Queue or Null pool.
    pub pool_class: PoolClass,
    /// Connections opened at start and kept open (≤ `pool_size`).
    pub min_idle: u32,
    /// Bound on a single connect, separate from `pool_timeout`.
    pub connect_timeout: Duration,
    /// Bound on ping, reset and close.
    pub network_timeout: Duration,
    /// Emit checkout/checkin/connect/close events through `tracing`.
    pub echo_pool: bool,
    /// A held connection is reported as a leak after this long.
    pub leak_threshold: Option<Duration>,
    /// `application_name` sent to PostgreSQL.
    pub application_name: Option<String>,
    /// PostgreSQL `statement_timeout` for every connection.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `sslmode`; `None` keeps the URL's own.
    pub sslmode: Option<SslMode>,
    /// Statements cached per connection (0 disables caching).
    pub statement_cache_capacity: usize,
    /// Health thresholds for [`Status`](crate::Status).
    pub health: HealthThresholds,
    /// How many replicas of this service share the database (used by
    /// recommendations about the server's `max_connections`).
    pub replicas: u32,
    /// SQLite options.
    pub sqlite: SqliteSettings,
    /// Publish metrics through the `metrics` facade.
    pub metrics: bool,
}

fn serialize_redacted<S: serde::Serializer>(url: &Secret<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&url.redacted())
}

impl fmt::Debug for PoolSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSettings")
            .field("url", &self.url)
            .field("name", &self.name)
            .field("pool_size", &self.pool_size)
            .field("max_overflow", &self.max_overflow)
            .field("pool_timeout", &self.pool_timeout)
            .field("pool_recycle", &self.pool_recycle)
            .field("pool_pre_ping", &self.pool_pre_ping)
            .field("pre_ping_bypass", &self.pre_ping_bypass)
            .field("reset_on_return", &self.reset_on_return)
            .field("pool_use_lifo", &self.pool_use_lifo)
            .field("pool_class", &self.pool_class)
            .field("min_idle", &self.min_idle)
            .field("connect_timeout", &self.connect_timeout)
            .field("network_timeout", &self.network_timeout)
            .field("echo_pool", &self.echo_pool)
            .field("leak_threshold", &self.leak_threshold)
            .field("application_name", &self.application_name)
            .field("statement_timeout", &self.statement_timeout)
            .field("sslmode", &self.sslmode)
            .field("statement_cache_capacity", &self.statement_cache_capacity)
            .field("health", &self.health)
            .field("replicas", &self.replicas)
            .field("sqlite", &self.sqlite)
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl PoolSettings {
    /// Settings with defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: Secret::new(url.into()),
            name: "default".to_owned(),
            pool_size: 5,
            max_overflow: 10,
            pool_timeout: Duration::from_secs(30),
            pool_recycle: None,
            pool_pre_ping: true,
            pre_ping_bypass: Duration::from_millis(500),
            reset_on_return: ResetOnReturn::Rollback,
            pool_use_lifo: false,
            pool_class: PoolClass::Queue,
            min_idle: 0,
            connect_timeout: Duration::from_secs(10),
            network_timeout: Duration::from_secs(5),
            echo_pool: false,
            leak_threshold: None,
            application_name: None,
            statement_timeout: None,
            sslmode: None,
            statement_cache_capacity: 100,
            health: HealthThresholds::default(),
            replicas: 1,
            sqlite: SqliteSettings::default(),
            metrics: true,
        }
    }

    /// A builder starting from the defaults of [`PoolSettings::new`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use pool_runtime::PoolSettings;
    /// let settings = PoolSettings::builder("postgres://app@localhost/app")
    ///     .pool_size(10)
    ///     .max_overflow(20)
    ///     .pool_timeout(Duration::from_secs(5))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(settings.capacity(), 30);
    /// ```
    pub fn builder(url: impl Into<String>) -> PoolSettingsBuilder {
        PoolSettingsBuilder {
            settings: Self::new(url),
        }
    }

    /// Most connections the pool may hold open at once.
    pub fn capacity(&self) -> u32 {
        match self.pool_class {
            PoolClass::Queue => self.pool_size.saturating_add(self.max_overflow),
            PoolClass::Null => self.pool_size.saturating_add(self.max_overflow).max(1),
        }
    }

    /// Checks the combination of values; every problem is listed.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let mut problems = Vec::new();
        if self.pool_class == PoolClass::Queue && self.pool_size == 0 {
            problems.push("pool_size must be at least 1 for a queue pool (use pool_class = null for no pooling)".to_owned());
        }
        if self.min_idle > self.pool_size {
            problems.push(format!(
                "min_idle ({}) must not exceed pool_size ({})",
                self.min_idle, self.pool_size
            ));
        }
        if self.pool_timeout.is_zero() {
            problems.push("pool_timeout must be greater than zero".to_owned());
        }
        if self.connect_timeout.is_zero() {
            problems.push("connect_timeout must be greater than zero".to_owned());
        }
        if self.network_timeout.is_zero() {
            problems.push("network_timeout must be greater than zero".to_owned());
        }
        if self.pool_recycle.is_some_and(|d| d.is_zero()) {
            problems.push("pool_recycle must be greater than zero (or off)".to_owned());
        }
        let h = self.health;
        if !(0.0..=100.0).contains(&h.warning_percent)
            || !(0.0..=100.0).contains(&h.critical_percent)
            || h.warning_percent > h.critical_percent
        {
            problems.push(format!(
                "health thresholds must satisfy 0 <= warning ({}) <= critical ({}) <= 100",
                h.warning_percent, h.critical_percent
            ));
        }
        if self.url.expose().trim().is_empty() {
            problems.push("url is empty (expected postgres://… or sqlite://…)".to_owned());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::InvalidSettings(problems.join("; ")))
        }
    }
}

/// Builds [`PoolSettings`] by hand; [`build`](Self::build) validates.
#[derive(Clone, Debug)]
#[must_use]
pub struct PoolSettingsBuilder {
    settings: PoolSettings,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, value: $ty) -> Self {
                self.settings.$name = value;
                self
            }
        )*
    };
}

impl PoolSettingsBuilder {
    setters! {
        /// See [`PoolSettings::pool_size`].
        pool_size: u32,
        /// See [`PoolSettings::max_overflow`].
        max_overflow: u32,
        /// See [`PoolSettings::pool_timeout`].
        pool_timeout: Duration,
        /// See [`PoolSettings::pool_recycle`].
        pool_recycle: Option<Duration>,
        /// See [`PoolSettings::pool_pre_ping`].
        pool_pre_ping: bool,
        /// See [`PoolSettings::pre_ping_bypass`].
        pre_ping_bypass: Duration,
        /// See [`PoolSettings::reset_on_return`].
        reset_on_return: ResetOnReturn,
        /// See [`PoolSettings::pool_use_lifo`].
        pool_use_lifo: bool,
        /// See [`PoolSettings::pool_class`].
        pool_class: PoolClass,
        /// See [`PoolSettings::min_idle`].
        min_idle: u32,
        /// See [`PoolSettings::connect_timeout`].
        connect_timeout: Duration,
        /// See [`PoolSettings::network_timeout`].
        network_timeout: Duration,
        /// See [`PoolSettings::echo_pool`].
        echo_pool: bool,
        /// See [`PoolSettings::leak_threshold`].
        leak_threshold: Option<Duration>,
        /// See [`PoolSettings::statement_timeout`].
        statement_timeout: Option<Duration>,
        /// See [`PoolSettings::sslmode`].
        sslmode: Option<SslMode>,
        /// See [`PoolSettings::statement_cache_capacity`].
        statement_cache_capacity: usize,
        /// See [`PoolSettings::health`].
        health: HealthThresholds,
        /// See [`PoolSettings::replicas`].
        replicas: u32,
        /// See [`PoolSettings::sqlite`].
        sqlite: SqliteSettings,
        /// See [`PoolSettings::metrics`].
        metrics: bool,
    }

    /// See [`PoolSettings::name`].
    pub fn name(mut self, value: impl Into<String>) -> Self {
        self.settings.name = value.into();
        self
    }

    /// See [`PoolSettings::application_name`].
    pub fn application_name(mut self, value: impl Into<String>) -> Self {
        self.settings.application_name = Some(value.into());
        self
    }

    /// Validated settings.
    pub fn build(self) -> Result<PoolSettings, crate::Error> {
        self.settings.validate()?;
        Ok(self.settings)
    }
}
