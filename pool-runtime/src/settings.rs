//! Plain-data pool settings: what `#[derive(PoolConfig)]` produces, and what
//! [`Pool::connect`](crate::Pool::connect) consumes. Usable by hand through
//! [`PoolSettings::builder`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pool_settings::table::{self, EnumSpec};

use crate::Secret;

/// The variant `text` spells, by the table's spellings; `variants` is in
/// the spec's order (checked by `enum_spellings_follow_the_table`).
fn parse_enum<T: Copy>(spec: &EnumSpec, text: &str, variants: &[T]) -> Result<T, String> {
    spec.parse(text)
        .map(|i| variants[i])
        .ok_or_else(|| format!("one of: {}", spec.listed()))
}

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
        parse_enum(&table::POOL_CLASS, s, &[Self::Queue, Self::Null])
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
        parse_enum(
            &table::RESET_ON_RETURN,
            s,
            &[Self::Rollback, Self::RollbackAlways, Self::None],
        )
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

/// What `acquire` does when the calling task already holds a connection
/// of the same pool (a *nested checkout*).
///
/// A task that holds one connection and waits for a second one waits for
/// itself once the pool is full: with `pool_size + max_overflow` tasks each
/// doing it, none can go on until `pool_timeout` (SQLAlchemy's
/// `AssertionPool` and HikariCP's pool-sizing formula exist for this).
/// Usually the fix is to pass the held connection (or `&mut *conn`) down
/// to the code that acquired the second one.
///
/// The check keys on the tokio task id ([`tokio::task::try_id`]) of each
/// checkout: the body of `block_on` / `#[tokio::main]` has none and is not
/// checked. A connection moved into another task still counts for the
/// task that acquired it. The lookup is a scan of the checked-out
/// connections under the lock the checkout takes anyway, skipped when
/// none is out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NestedCheckout {
    /// Log a warning (target `pool_runtime::events`) naming both call
    /// sites, once per pair of sites per pool, and go on.
    #[default]
    Warn,
    /// Fail the nested `acquire` at once with
    /// [`Error::NestedCheckout`](crate::Error::NestedCheckout).
    Error,
    /// No check (nesting is intended). A timeout still says when the
    /// caller held another connection.
    Off,
}

impl FromStr for NestedCheckout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            &table::NESTED_CHECKOUT,
            s,
            &[Self::Warn, Self::Error, Self::Off],
        )
    }
}

impl fmt::Display for NestedCheckout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Warn => "warn",
            Self::Error => "error",
            Self::Off => "off",
        })
    }
}

/// PostgreSQL `sslmode`, as libpq spells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS only if the server insists.
    Allow,
    /// TLS when the server offers it.
    #[default]
    Prefer,
    /// TLS always, certificate not checked.
    Require,
    /// TLS with a certificate signed by a trusted CA.
    VerifyCa,
    /// TLS with a trusted certificate for this host name.
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            &table::SSL_MODE,
            s,
            &[
                Self::Disable,
                Self::Allow,
                Self::Prefer,
                Self::Require,
                Self::VerifyCa,
                Self::VerifyFull,
            ],
        )
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

/// libpq's `target_session_attrs`: which server a connection may stay on,
/// checked right after connecting to each host of a (multi-host) URL.
/// A host that fails the check is closed and the next one tried; when
/// none passes, [`Error::NoSuitableHost`](crate::Error::NoSuitableHost)
/// names every host and why.
///
/// A pool with `ReadWrite` or `Primary` also invalidates its connections
/// when one of them meets a failover (a lost connection, SQLSTATE 57P01,
/// 57P02, 57P03 or 25006), so new ones find the new primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetSessionAttrs {
    /// The first host that accepts the connection; no check.
    #[default]
    Any,
    /// A session that accepts writes: `SHOW transaction_read_only` is
    /// `off` (a primary, unless `default_transaction_read_only` is on).
    ReadWrite,
    /// A session that refuses writes: `SHOW transaction_read_only` is `on`
    /// (a standby, or a primary with `default_transaction_read_only`).
    ReadOnly,
    /// A server not in recovery: `SELECT pg_is_in_recovery()` is false.
    Primary,
    /// A server in recovery (a hot standby): `pg_is_in_recovery()` is true.
    Standby,
    /// A standby if any host is one; otherwise any host (libpq's two
    /// passes: standbys first, then every host that answered again).
    PreferStandby,
}

impl FromStr for TargetSessionAttrs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            &table::TARGET_SESSION_ATTRS,
            s,
            &[
                Self::Any,
                Self::ReadWrite,
                Self::ReadOnly,
                Self::Primary,
                Self::Standby,
                Self::PreferStandby,
            ],
        )
    }
}

impl fmt::Display for TargetSessionAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Any => "any",
            Self::ReadWrite => "read-write",
            Self::ReadOnly => "read-only",
            Self::Primary => "primary",
            Self::Standby => "standby",
            Self::PreferStandby => "prefer-standby",
        })
    }
}

/// libpq's `load_balance_hosts`: the order the hosts of a multi-host URL
/// are tried in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadBalanceHosts {
    /// In the URL's order: the first host that passes gets every connection.
    #[default]
    Disable,
    /// Shuffled for every connect, spreading connections over the hosts
    /// that pass `target_session_attrs`.
    Random,
}

impl FromStr for LoadBalanceHosts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            &table::LOAD_BALANCE_HOSTS,
            s,
            &[Self::Disable, Self::Random],
        )
    }
}

impl fmt::Display for LoadBalanceHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Random => "random",
        })
    }
}

/// What pools the connections between the pool and PostgreSQL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PgBouncerMode {
    /// A direct connection, or a pooler that keeps one server session per
    /// client connection for its life.
    #[default]
    Off,
    /// PgBouncer in session mode: every pooled connection holds one of
    /// PgBouncer's server connections for its life. Nothing changes in
    /// how statements run; the connection budget counts against
    /// PgBouncer's pool size.
    Session,
    /// PgBouncer in transaction mode: a server connection per transaction.
    /// A prepared `&Pool` statement runs unnamed inside `BEGIN` …
    /// `COMMIT` (4 round trips where a cached statement takes 1),
    /// `Pool::begin` clears other clients' prepared statements first, the
    /// statement cache is off, and `Pool::acquire` is refused with
    /// [`Error::PgBouncerTransactionMode`](crate::Error::PgBouncerTransactionMode).
    Transaction,
}

impl FromStr for PgBouncerMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            &table::PGBOUNCER,
            s,
            &[Self::Off, Self::Session, Self::Transaction],
        )
    }
}

impl PgBouncerMode {
    /// Its canonical spelling in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Session => "session",
            Self::Transaction => "transaction",
        }
    }
}

impl fmt::Display for PgBouncerMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a [`ReplicaPool`](crate::ReplicaPool) spreads reads over the
/// standbys that qualify (reachable, in recovery, within `read_max_lag`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadBalance {
    /// Each read to the next standby in turn.
    #[default]
    RoundRobin,
    /// Each read to the standby whose pool has the fewest connections
    /// checked out (or being opened); ties go round robin.
    LeastBusy,
}

impl FromStr for ReadBalance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            &table::READ_BALANCE,
            s,
            &[Self::RoundRobin, Self::LeastBusy],
        )
    }
}

impl fmt::Display for ReadBalance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::RoundRobin => "round-robin",
            Self::LeastBusy => "least-busy",
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
    /// A file database gets one writer connection, used by `acquire`,
    /// `begin` and `&Pool`, and `pool_size` (+ `max_overflow`) read-only
    /// connections for [`Pool::reader`](crate::Pool::reader). SQLite runs
    /// one write at a time anyway; with one writer, writers queue in the
    /// pool (first come, first served) instead of in SQLite's busy handler,
    /// which sleeps and retries (a p99 of about a second with 15 writers).
    /// In-memory databases are never split (each connection has its own).
    pub single_writer: bool,
    /// `PRAGMA journal_mode = WAL` (readers don't block the writer), with
    /// `synchronous = NORMAL` (WAL's safe setting: a power loss may lose
    /// the last commits, never corrupt the file).
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
            single_writer: true,
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
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
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
    /// A statement run on every returned connection that ran statements,
    /// after the rollback (`RESET ALL`, `DISCARD ALL`, or your own such as
    /// `SELECT set_config('app.tenant_id', '', false)`), so session state
    /// one caller set never reaches the next; a connection whose reset
    /// fails or outlasts `network_timeout` is closed. Costs one round trip
    /// per such return; `None` runs nothing.
    pub reset_statement: Option<String>,
    /// Hand out the most recently returned idle connection first.
    pub pool_use_lifo: bool,
    /// Queue or Null pool.
    pub pool_class: PoolClass,
    /// Connections opened at start and kept open (≤ `pool_size`).
    pub min_idle: u32,
    /// Idle connections close after this long idle while more than
    /// `min_idle` are open (sqlx's, bb8's and HikariCP's idle timeout; for
    /// databases that scale to zero and PgBouncer's server slots). `None`
    /// is QueuePool's rule: `pool_size` stay open.
    pub idle_timeout: Option<Duration>,
    /// A returned overflow connection stays idle this long instead of
    /// closing at once, so a load that hovers near `pool_size` does not
    /// open and close a connection every few requests. `None` is
    /// QueuePool's rule: closed on return while `pool_size` are idle.
    pub overflow_linger: Option<Duration>,
    /// Bound on a single connect, separate from `pool_timeout`.
    pub connect_timeout: Duration,
    /// Bound on ping, reset and close.
    pub network_timeout: Duration,
    /// Emit checkout/checkin/connect/close events through `tracing`.
    pub echo_pool: bool,
    /// A held connection is reported as a leak after this long.
    pub leak_threshold: Option<Duration>,
    /// What an `acquire` by a task that already holds a connection of this
    /// pool does: [`NestedCheckout::Warn`] (default), `Error` or `Off`.
    pub nested_checkout: NestedCheckout,
    /// `application_name` sent to PostgreSQL.
    pub application_name: Option<String>,
    /// PostgreSQL `statement_timeout` for every connection.
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL `sslmode`; `None` keeps the URL's own.
    pub sslmode: Option<SslMode>,
    /// PEM file of the CA(s) that verify the server's certificate
    /// (libpq's `sslrootcert`); `None` keeps the URL's own.
    pub sslrootcert: Option<String>,
    /// PEM file of a client certificate (libpq's `sslcert`), given with
    /// [`sslkey`](Self::sslkey); `None` keeps the URL's own.
    pub sslcert: Option<String>,
    /// PEM file of the client certificate's key (libpq's `sslkey`); `None`
    /// keeps the URL's own.
    pub sslkey: Option<String>,
    /// PostgreSQL hosts, `host:port,host:port`, in place of the URL's own
    /// host list (libpq's multi-host form), so the topology can be set
    /// apart from the URL and its password. `None` keeps the URL's.
    pub hosts: Option<String>,
    /// Which host of a PostgreSQL URL a connection may stay on (libpq's
    /// `target_session_attrs`). The URL's own `?target_session_attrs=`
    /// wins: this applies to URLs without one, and a URL that names a
    /// different value than a setting other than the default `any` is an
    /// error (rather than one of them silently ignored).
    pub target_session_attrs: TargetSessionAttrs,
    /// The order the hosts of a multi-host PostgreSQL URL are tried in
    /// (libpq's `load_balance_hosts`); the URL's own parameter wins as for
    /// [`target_session_attrs`](Self::target_session_attrs).
    pub load_balance_hosts: LoadBalanceHosts,
    /// PgBouncer between the pool and PostgreSQL, and in which pool mode
    /// (see [`PgBouncerMode`]). Session mode needs nothing; transaction
    /// mode changes how statements run so that none spans two server
    /// connections.
    pub pgbouncer: PgBouncerMode,
    /// PgBouncer's `default_pool_size` (or the pool's own `pool_size`)
    /// for this database and user, when known: the status advice then
    /// checks the connection budget against it.
    pub pgbouncer_pool_size: Option<u32>,
    /// How a [`ReplicaPool`](crate::ReplicaPool) spreads reads over the
    /// standbys that qualify.
    pub read_balance: ReadBalance,
    /// A [`ReplicaPool`](crate::ReplicaPool) sends reads to the primary
    /// when no standby qualifies; `false`: such reads fail with
    /// [`Error::NoReadReplica`](crate::Error::NoReadReplica).
    pub read_fallback: bool,
    /// A standby whose replay lags further behind than this serves no
    /// reads of a [`ReplicaPool`](crate::ReplicaPool); `None`: no limit.
    pub read_max_lag: Option<Duration>,
    /// How often a [`ReplicaPool`](crate::ReplicaPool) checks each host's
    /// role, reachability and replication lag.
    pub read_check_interval: Duration,
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
            reset_statement: None,
            pool_use_lifo: false,
            pool_class: PoolClass::Queue,
            min_idle: 0,
            idle_timeout: None,
            overflow_linger: None,
            connect_timeout: Duration::from_secs(10),
            network_timeout: Duration::from_secs(5),
            echo_pool: false,
            leak_threshold: None,
            nested_checkout: NestedCheckout::Warn,
            application_name: None,
            statement_timeout: None,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            hosts: None,
            target_session_attrs: TargetSessionAttrs::Any,
            load_balance_hosts: LoadBalanceHosts::Disable,
            pgbouncer: PgBouncerMode::Off,
            pgbouncer_pool_size: None,
            read_balance: ReadBalance::RoundRobin,
            read_fallback: true,
            read_max_lag: None,
            read_check_interval: Duration::from_secs(1),
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

    /// Checks the combination of values; every problem is listed
    /// ([`pool_settings::check()`], the rules the config loader and the
    /// derive apply too).
    pub fn validate(&self) -> Result<(), crate::Error> {
        let problems = pool_settings::check(&self.values());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::InvalidSettings(crate::SettingsProblems(
                problems,
            )))
        }
    }

    /// What the pool connects to: `url` with [`hosts`](Self::hosts) in
    /// place of its host list when set (and `hosts` then cleared, so the
    /// result is its own truth).
    pub(crate) fn with_hosts_applied(mut self) -> Result<Self, crate::Error> {
        let Some(hosts) = self.hosts.take() else {
            return Ok(self);
        };
        let url = self.url.expose();
        let rewritten = match crate::hosts::url::HostList::parse(url) {
            Ok(Some(list)) => list.with_hosts(&hosts),
            Ok(None) => {
                return Err(crate::Error::InvalidUrl {
                    url: self.url.redacted(),
                    reason: "has no scheme://, so hosts cannot replace its host list".to_owned(),
                });
            }
            Err(reason) => {
                return Err(crate::Error::InvalidUrl {
                    url: self.url.redacted(),
                    reason,
                });
            }
        };
        self.url = rewritten.into();
        Ok(self)
    }

    /// The values the shared validator looks at.
    pub(crate) fn values(&self) -> pool_settings::Values<'_> {
        pool_settings::Values {
            url: Some(self.url.expose()),
            null_pool: Some(self.pool_class == PoolClass::Null),
            pool_size: Some(u64::from(self.pool_size)),
            min_idle: Some(u64::from(self.min_idle)),
            pool_timeout: Some(self.pool_timeout),
            connect_timeout: Some(self.connect_timeout),
            network_timeout: Some(self.network_timeout),
            pool_recycle: Some(self.pool_recycle),
            read_max_lag: Some(self.read_max_lag),
            read_check_interval: Some(self.read_check_interval),
            health_warning_percent: Some(self.health.warning_percent),
            health_critical_percent: Some(self.health.critical_percent),
            hosts: Some(self.hosts.as_deref()),
            pgbouncer: Some(self.pgbouncer.as_str()),
            pgbouncer_pool_size: Some(self.pgbouncer_pool_size.map(u64::from)),
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
        /// See [`PoolSettings::idle_timeout`].
        idle_timeout: Option<Duration>,
        /// See [`PoolSettings::overflow_linger`].
        overflow_linger: Option<Duration>,
        /// See [`PoolSettings::connect_timeout`].
        connect_timeout: Duration,
        /// See [`PoolSettings::network_timeout`].
        network_timeout: Duration,
        /// See [`PoolSettings::echo_pool`].
        echo_pool: bool,
        /// See [`PoolSettings::leak_threshold`].
        leak_threshold: Option<Duration>,
        /// See [`PoolSettings::nested_checkout`].
        nested_checkout: NestedCheckout,
        /// See [`PoolSettings::statement_timeout`].
        statement_timeout: Option<Duration>,
        /// See [`PoolSettings::sslmode`].
        sslmode: Option<SslMode>,
        /// See [`PoolSettings::sslrootcert`].
        sslrootcert: Option<String>,
        /// See [`PoolSettings::sslcert`].
        sslcert: Option<String>,
        /// See [`PoolSettings::sslkey`].
        sslkey: Option<String>,
        /// See [`PoolSettings::hosts`].
        hosts: Option<String>,
        /// See [`PoolSettings::target_session_attrs`].
        target_session_attrs: TargetSessionAttrs,
        /// See [`PoolSettings::load_balance_hosts`].
        load_balance_hosts: LoadBalanceHosts,
        /// See [`PoolSettings::pgbouncer`].
        pgbouncer: PgBouncerMode,
        /// See [`PoolSettings::pgbouncer_pool_size`].
        pgbouncer_pool_size: Option<u32>,
        /// See [`PoolSettings::read_balance`].
        read_balance: ReadBalance,
        /// See [`PoolSettings::read_fallback`].
        read_fallback: bool,
        /// See [`PoolSettings::read_max_lag`].
        read_max_lag: Option<Duration>,
        /// See [`PoolSettings::read_check_interval`].
        read_check_interval: Duration,
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

    /// See [`PoolSettings::reset_statement`].
    pub fn reset_statement(mut self, value: impl Into<String>) -> Self {
        self.settings.reset_statement = Some(value.into());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `PoolSettings` field (nested ones by their `health_`/`sqlite_`
    /// names) has its entry in the one settings table, and every entry is
    /// a field. Destructured without `..`: a new field breaks this test's
    /// compilation until it is listed here and in the table.
    #[test]
    fn every_field_is_in_the_table() {
        let PoolSettings {
            url: _,
            name: _,
            pool_size: _,
            max_overflow: _,
            pool_timeout: _,
            pool_recycle: _,
            pool_pre_ping: _,
            pre_ping_bypass: _,
            reset_on_return: _,
            reset_statement: _,
            pool_use_lifo: _,
            pool_class: _,
            min_idle: _,
            idle_timeout: _,
            overflow_linger: _,
            connect_timeout: _,
            network_timeout: _,
            echo_pool: _,
            leak_threshold: _,
            nested_checkout: _,
            application_name: _,
            statement_timeout: _,
            sslmode: _,
            sslrootcert: _,
            sslcert: _,
            sslkey: _,
            hosts: _,
            target_session_attrs: _,
            load_balance_hosts: _,
            pgbouncer: _,
            pgbouncer_pool_size: _,
            read_balance: _,
            read_fallback: _,
            read_max_lag: _,
            read_check_interval: _,
            statement_cache_capacity: _,
            health:
                HealthThresholds {
                    warning_percent: _,
                    critical_percent: _,
                },
            replicas: _,
            sqlite:
                SqliteSettings {
                    single_writer: _,
                    wal: _,
                    busy_timeout: _,
                    cache_size: _,
                    mmap_size: _,
                    create_if_missing: _,
                },
            metrics: _,
        } = PoolSettings::new("");
        // The same names, from the derived Debug output (which follows the
        // struct), so the list above cannot drift from the fields either.
        let debug = format!("{:#?}", PoolSettings::new(""));
        let mut fields = Vec::new();
        let mut parent = "";
        for line in debug.lines() {
            let indent = line.len() - line.trim_start().len();
            let Some((name, rest)) = line.trim().split_once(':') else {
                continue;
            };
            match indent {
                4 if rest.trim().ends_with('{') => parent = name.trim(),
                4 => fields.push(name.trim().to_owned()),
                8 => fields.push(format!("{parent}_{}", name.trim())),
                _ => {}
            }
        }
        let table: Vec<String> = table::SETTINGS.iter().map(|s| s.name.to_owned()).collect();
        let mut a = fields.clone();
        let mut b = table.clone();
        a.sort();
        b.sort();
        assert_eq!(a, b, "PoolSettings fields vs pool_settings::SETTINGS");
        for s in table::SETTINGS {
            let path = s.path.join(".");
            let flat = s.path.join("_");
            assert_eq!(flat, s.name, "path {path} of {}", s.name);
        }
    }

    /// The variant lists handed to `parse_enum` follow the table's order.
    #[test]
    fn enum_spellings_follow_the_table() {
        let all: Vec<String> = table::POOL_CLASS
            .canonical()
            .chain(table::RESET_ON_RETURN.canonical())
            .chain(table::NESTED_CHECKOUT.canonical())
            .chain(table::SSL_MODE.canonical())
            .chain(table::TARGET_SESSION_ATTRS.canonical())
            .chain(table::LOAD_BALANCE_HOSTS.canonical())
            .chain(table::PGBOUNCER.canonical())
            .chain(table::READ_BALANCE.canonical())
            .map(str::to_owned)
            .collect();
        let parsed: Vec<String> = table::POOL_CLASS
            .canonical()
            .map(|c| c.parse::<PoolClass>().unwrap().to_string())
            .chain(
                table::RESET_ON_RETURN
                    .canonical()
                    .map(|c| c.parse::<ResetOnReturn>().unwrap().to_string()),
            )
            .chain(
                table::NESTED_CHECKOUT
                    .canonical()
                    .map(|c| c.parse::<NestedCheckout>().unwrap().to_string()),
            )
            .chain(
                table::SSL_MODE
                    .canonical()
                    .map(|c| c.parse::<SslMode>().unwrap().to_string()),
            )
            .chain(
                table::TARGET_SESSION_ATTRS
                    .canonical()
                    .map(|c| c.parse::<TargetSessionAttrs>().unwrap().to_string()),
            )
            .chain(
                table::LOAD_BALANCE_HOSTS
                    .canonical()
                    .map(|c| c.parse::<LoadBalanceHosts>().unwrap().to_string()),
            )
            .chain(
                table::PGBOUNCER
                    .canonical()
                    .map(|c| c.parse::<PgBouncerMode>().unwrap().to_string()),
            )
            .chain(
                table::READ_BALANCE
                    .canonical()
                    .map(|c| c.parse::<ReadBalance>().unwrap().to_string()),
            )
            .collect();
        assert_eq!(all, parsed);
        assert_eq!(
            "nul".parse::<PoolClass>(),
            Err("one of: queue, null".to_owned())
        );
    }

    #[test]
    fn defaults_follow_the_table() {
        let s = PoolSettings::new("");
        assert_eq!(
            table::find("pool_size").unwrap().default,
            s.pool_size.to_string()
        );
        assert_eq!(
            table::find("max_overflow").unwrap().default,
            s.max_overflow.to_string()
        );
        assert_eq!(
            table::find("pool_timeout").unwrap().default,
            pool_settings::format_duration(&s.pool_timeout)
        );
        assert_eq!(table::find("name").unwrap().default, s.name);
    }
}
