//! The service's whole configuration: one `#[derive(PoolConfig)]` struct,
//! so every variable is validated together, explained redacted at start and
//! documented by `env-docs`.

use std::net::SocketAddr;
use std::time::Duration;

use pool_runtime::{
    LoadBalanceHosts, PgBouncerMode, PoolConfig, Secret, SslMode, TargetSessionAttrs,
};

/// The example items service: its database pool and where it listens.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "APP_DB_")]
pub struct ServiceConfig {
    /// Database URL: sqlite://path/to/file.db (created on first start) or postgres://user:password@host:5432/db. The password is never printed.
    #[pool(env = "DATABASE_URL", default = "sqlite://data/app.db")]
    pub url: Secret<String>,
    /// Pool name in metrics labels, logs and /health/db_pool.
    #[pool(default = "items", setting = "name")]
    pub pool_name: String,
    /// Connections kept open when idle.
    #[pool(default = 5, range = 1..=100)]
    pub pool_size: u32,
    /// Extra connections opened when all are busy, closed when returned (after APP_DB_OVERFLOW_LINGER).
    #[pool(default = 10, range = 0..=1000)]
    pub max_overflow: u32,
    /// Keep a returned overflow connection idle this long for the next request instead of closing it at once ("off": QueuePool's rule, which reconnected for 1 request in 45 at 8 clients; BENCHMARKS.md).
    #[pool(default = "10s")]
    pub overflow_linger: Option<Duration>,
    /// Close connections idle this long, overflow or not ("off": keep pool_size open; for servers that scale to zero).
    #[pool(default = "off")]
    pub idle_timeout: Option<Duration>,
    /// How long a request waits for a connection before it gets a 503.
    #[pool(default = "30s", test = "5s", range = "1ms"..)]
    pub pool_timeout: Duration,
    /// Maximum connection age ("off" to keep connections forever).
    #[pool(default = "1h")]
    pub pool_recycle: Option<Duration>,
    /// Check an idle connection is alive before handing it out.
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    /// Report a connection held longer than this as a leak, with the line that acquired it ("off" to disable).
    #[pool(default = "10s")]
    pub leak_threshold: Option<Duration>,
    /// Log checkout, checkin, connect and close events.
    #[pool(default = false)]
    pub echo_pool: bool,
    /// Utilization (percent of pool_size + max_overflow in use) at which health turns warning.
    #[pool(default = 70, range = 0..=100)]
    pub health_warning_percent: f64,
    /// Utilization at which health turns critical and /health/db_pool answers 503.
    #[pool(default = 90, range = 0..=100)]
    pub health_critical_percent: f64,
    /// `application_name` shown in PostgreSQL's pg_stat_activity.
    #[pool(default = "pool-examples")]
    pub application_name: Option<String>,
    /// PostgreSQL sslmode: disable, allow, prefer, require, verify-ca or verify-full (unset: the URL's own, else prefer).
    pub sslmode: Option<SslMode>,
    /// PEM file of the CA that signed the server's certificate (RDS, Cloud SQL, Azure publish theirs); unset: the URL's own.
    pub sslrootcert: Option<String>,
    /// PEM file of a client certificate, for servers that authenticate by certificate (with APP_DB_SSLKEY).
    pub sslcert: Option<String>,
    /// PEM file of the client certificate's private key.
    pub sslkey: Option<String>,
    /// PostgreSQL hosts as host:port,host:port in place of DATABASE_URL's own (so the URL can stay one secret while the topology is configuration); unset keeps the URL's.
    pub hosts: Option<String>,
    /// PostgreSQL with several hosts in DATABASE_URL (postgres://u@h1:5432,h2:5432/db): stay on any, read-write, read-only, primary, standby or prefer-standby; read-write follows a failover. The URL's own target_session_attrs wins.
    #[pool(default = "any")]
    pub target_session_attrs: TargetSessionAttrs,
    /// Order in which the hosts of a multi-host DATABASE_URL are tried: disable (as written) or random.
    #[pool(default = "disable")]
    pub load_balance_hosts: LoadBalanceHosts,
    /// PgBouncer between the service and PostgreSQL: off (direct), session, or transaction (statements run so that none spans two server connections).
    #[pool(default = "off")]
    pub pgbouncer: PgBouncerMode,
    /// PgBouncer's pool_size for this database and user, so /health/db_pool's advice checks the connection budget against it; off when unknown.
    pub pgbouncer_pool_size: Option<u32>,
    /// SQLite: one writer connection (writes) and pool_size read-only ones (GET requests), so writes queue in the pool instead of in SQLite's busy handler; false: one pool for everything.
    #[pool(default = true)]
    pub sqlite_single_writer: bool,
    /// Address the HTTP server binds; port 0 picks a free port (printed at start).
    #[pool(env = "SERVICE_ADDR", default = "127.0.0.1:8080", from_str)]
    pub addr: SocketAddr,
    /// Mount /debug/hold and /debug/leak, which hold connections on purpose (for tests; never in production).
    #[pool(env = "SERVICE_DEBUG_ENDPOINTS", default = false)]
    pub debug_endpoints: bool,
}

/// Which pool backend a URL asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl ServiceConfig {
    /// The backend named by the URL scheme, or a message saying which
    /// schemes work (the URL itself is not repeated: it may hold a password).
    pub fn backend(&self) -> Result<BackendKind, String> {
        let url = self.url.expose();
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        match scheme {
            "sqlite" => Ok(BackendKind::Sqlite),
            "postgres" | "postgresql" => Ok(BackendKind::Postgres),
            _ => Err(format!(
                "DATABASE_URL has scheme \"{scheme}\"; use sqlite://path/to/file.db or postgres://…"
            )),
        }
    }

    /// The directory a SQLite file URL lives in, so it can be created
    /// before the first connect; `None` for PostgreSQL and in-memory URLs.
    pub fn sqlite_dir(&self) -> Option<std::path::PathBuf> {
        let url = self.url.expose();
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path.starts_with(":memory:") {
            return None;
        }
        std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(std::path::Path::to_path_buf)
    }
}
