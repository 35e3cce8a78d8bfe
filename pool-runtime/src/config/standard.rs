//! [`StandardPoolConfig`]: the common pool settings, ready to flatten.

use std::time::Duration;

use crate::{
    LoadBalanceHosts, NestedCheckout, PgBouncerMode, PoolClass, ReadBalance, ResetOnReturn, Secret,
    SslMode, TargetSessionAttrs,
};

/// The common pool settings under `DB_`, with SQLAlchemy's names and
/// defaults. Use it as is, or `#[pool(flatten)]` it into a service's own
/// config struct.
///
/// ```
/// use pool_runtime::PoolConfig;
/// use pool_runtime::config::StandardPoolConfig;
/// let cfg = StandardPoolConfig::from_map([
///     ("DATABASE_URL", "postgres://app:pw@localhost/app"),
///     ("DB_POOL_SIZE", "8"),
///     ("APP_ENV", "test"),
/// ]).unwrap();
/// let s = cfg.settings();
/// assert_eq!(s.pool_size, 8);
/// assert_eq!(s.pool_class, pool_runtime::PoolClass::Null); // test profile
/// ```
#[derive(pool_macros::PoolConfig, Clone, Debug, PartialEq)]
#[pool(prefix = "DB_", crate = "crate")]
pub struct StandardPoolConfig {
    /// Connection URL (postgres://user:password@host:5432/db or sqlite://file.db); the password is never printed.
    #[pool(env = "DATABASE_URL")]
    pub url: Secret<String>,
    /// Connections kept open when idle.
    #[pool(default = 5, range = 0..=10000)]
    pub pool_size: u32,
    /// Extra connections opened when all are busy, closed when returned.
    #[pool(default = 10, test = 0, range = 0..=10000)]
    pub max_overflow: u32,
    /// How long a checkout waits for a connection.
    #[pool(default = "30s", test = "5s", range = "1ms"..)]
    pub pool_timeout: Duration,
    /// Maximum connection age ("off" to keep connections forever).
    #[pool(default = "off", production = "30m")]
    pub pool_recycle: Option<Duration>,
    /// Check an idle connection is alive before handing it out.
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    /// `queue` (pooling) or `null` (a fresh connection per checkout).
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    /// Idle order: last returned first (lets extra connections time out).
    #[pool(default = false)]
    pub pool_use_lifo: bool,
    /// What happens to a returned connection: rollback, rollback_always or none.
    #[pool(default = "rollback")]
    pub reset_on_return: ResetOnReturn,
    /// SQL run on a returned connection that ran statements (RESET ALL, or your own); unset runs nothing.
    pub reset_statement: Option<String>,
    /// Connections opened at start and kept open (at most pool_size).
    #[pool(default = 0)]
    pub min_idle: u32,
    /// Close connections idle this long while more than min_idle are open ("off": keep pool_size).
    #[pool(default = "off")]
    pub idle_timeout: Option<Duration>,
    /// Keep a returned overflow connection idle this long instead of closing it ("off": close at once).
    #[pool(default = "off")]
    pub overflow_linger: Option<Duration>,
    /// Bound on opening one connection.
    #[pool(default = "10s", range = "1ms"..)]
    pub connect_timeout: Duration,
    /// Log checkout, checkin, connect and close events.
    #[pool(default = false, development = true)]
    pub echo_pool: bool,
    /// Report a connection held longer than this as a leak ("off" to disable).
    #[pool(default = "off", development = "30s")]
    pub leak_threshold: Option<Duration>,
    /// A task acquiring while it holds a connection of the same pool (deadlock risk): warn, error or off.
    #[pool(default = "warn")]
    pub nested_checkout: NestedCheckout,
    /// `application_name` shown in pg_stat_activity.
    pub application_name: Option<String>,
    /// PostgreSQL statement_timeout for every connection ("off" for none).
    pub statement_timeout: Option<Duration>,
    /// PostgreSQL sslmode; unset keeps the URL's own.
    pub sslmode: Option<SslMode>,
    /// PEM file of the CA(s) that verify the server (libpq's sslrootcert); unset keeps the URL's own.
    pub sslrootcert: Option<String>,
    /// PEM file of a client certificate (libpq's sslcert), with sslkey.
    pub sslcert: Option<String>,
    /// PEM file of the client certificate's key (libpq's sslkey).
    pub sslkey: Option<String>,
    /// PostgreSQL hosts as host:port,host:port, in place of the URL's own host list; unset keeps the URL's.
    pub hosts: Option<String>,
    /// Which host of a multi-host URL to stay on: any, read-write, read-only, primary, standby or prefer-standby; the URL's own target_session_attrs wins.
    #[pool(default = "any")]
    pub target_session_attrs: TargetSessionAttrs,
    /// Order in which the hosts of a multi-host URL are tried: disable (as written) or random; the URL's own load_balance_hosts wins.
    #[pool(default = "disable")]
    pub load_balance_hosts: LoadBalanceHosts,
    /// PgBouncer between the pool and PostgreSQL: off (direct), session, or transaction (statements run unnamed inside a transaction; acquire is refused).
    #[pool(default = "off")]
    pub pgbouncer: PgBouncerMode,
    /// PgBouncer's pool_size for this database and user, for the connection budget in status advice; off when unknown.
    pub pgbouncer_pool_size: Option<u32>,
    /// ReplicaPool: how reads are spread over the standbys that qualify: round-robin, or least-busy (fewest connections checked out).
    #[pool(default = "round-robin")]
    pub read_balance: ReadBalance,
    /// ReplicaPool: reads go to the primary when no standby qualifies (false: they fail, naming each node and why).
    #[pool(default = true)]
    pub read_fallback: bool,
    /// ReplicaPool: a standby lagging further behind than this serves no reads ("off": no limit).
    #[pool(default = "off")]
    pub read_max_lag: Option<Duration>,
    /// ReplicaPool: how often each host's role, reachability and lag are checked.
    #[pool(default = "1s", range = "1ms"..)]
    pub read_check_interval: Duration,
}
