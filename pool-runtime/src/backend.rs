//! The databases a [`Pool`](crate::Pool) can hold connections to, and how
//! each turns [`PoolSettings`] into connect options.
//!
//! What sqlx cannot do, and so neither can we: TCP keepalive settings
//! (sqlx exposes no socket options; use the server's `tcp_keepalives_*`
//! instead) and a libpq-style `connect_timeout` URL parameter (the pool
//! bounds every connect with [`PoolSettings::connect_timeout`] itself).

use std::future::Future;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection};

use crate::{Error, PoolSettings};

/// What the server allows, read once from the first connection so that
/// [`Status`](crate::Status) can warn about a pool too large for it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerLimits {
    /// Connections the server accepts from ordinary roles
    /// (`max_connections - superuser_reserved_connections`).
    pub max_connections: Option<u32>,
    /// The server closes sessions idle this long (`idle_session_timeout`).
    pub idle_session_timeout: Option<Duration>,
}

/// A database the pool supports: its connect options and server probe.
pub trait Backend: sqlx::Database {
    /// Connect options built once from the settings.
    type Options: Clone + Send + Sync + 'static;

    /// Builds connect options, or says what is wrong with the URL.
    fn options(settings: &PoolSettings) -> Result<Self::Options, Error>;

    /// Options for the read-only connections of a pool split into one
    /// writer and readers, or `None` (the default) for no split.
    fn reader_options(_settings: &PoolSettings, _options: &Self::Options) -> Option<Self::Options> {
        None
    }

    /// Opens one connection, every attempt bounded by `timeout` (the
    /// pool's `connect_timeout`); `url` (password masked) names the
    /// target in errors. A backend with several hosts may make up to
    /// [`max_attempts`](Self::max_attempts) attempts.
    fn connect<'a>(
        options: &'a Self::Options,
        timeout: Duration,
        url: &'a str,
    ) -> impl Future<Output = Result<Self::Connection, Error>> + Send + 'a;

    /// The most attempts one [`connect`](Self::connect) may make, each
    /// bounded by `connect_timeout`: `Pool::connect` waits that long for
    /// its first connection.
    fn max_attempts(_options: &Self::Options) -> u32 {
        1
    }

    /// Whether a lost connection (or a refused write) should make the
    /// pool replace every connection, because the server it reached may
    /// no longer be the one it must reach: PostgreSQL with
    /// `target_session_attrs` read-write or primary.
    fn fails_over(_options: &Self::Options) -> bool {
        false
    }

    /// How many times a connect found a host the pool's connections were
    /// kept on failing its `target_session_attrs` check; a change means
    /// the connections made before are on a host of the wrong role.
    fn role_changes(_options: &Self::Options) -> u64 {
        0
    }

    /// Ends any transaction, including one begun with a raw `BEGIN` that
    /// sqlx does not track (for `ResetOnReturn::RollbackAlways`).
    fn rollback_any(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + '_;

    /// Runs configured SQL text (the `reset_statement`) with the simple
    /// query protocol, so it may hold several statements.
    fn run_statement<'c>(
        conn: &'c mut Self::Connection,
        sql: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;

    /// Reads the server's connection limits; `None` where it has none.
    fn server_limits(
        _conn: &mut Self::Connection,
    ) -> impl Future<Output = Option<ServerLimits>> + Send + '_ {
        async { None }
    }
}

fn bad_url(settings: &PoolSettings, err: sqlx::Error) -> Error {
    Error::InvalidUrl {
        url: settings.url.redacted(),
        reason: format!("cannot be used: {}", crate::error::sqlx_text(&err)),
    }
}

/// One connect bounded by `timeout`, its failure named by `url`.
#[cfg(feature = "sqlite")]
async fn bounded<C>(
    connect: impl Future<Output = Result<C, sqlx::Error>>,
    timeout: Duration,
    url: &str,
) -> Result<C, Error> {
    match tokio::time::timeout(timeout, connect).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(source)) => Err(Error::Connect {
            url: url.to_owned(),
            source,
        }),
        Err(_) => Err(Error::ConnectTimeout {
            url: url.to_owned(),
            timeout,
        }),
    }
}

#[cfg(feature = "postgres")]
pub use crate::hosts::PgTargets;

#[cfg(feature = "postgres")]
impl Backend for sqlx::Postgres {
    /// One set of connect options per host of the URL (libpq's multi-host
    /// URLs), with `target_session_attrs` and `load_balance_hosts`.
    type Options = PgTargets;

    fn options(settings: &PoolSettings) -> Result<Self::Options, Error> {
        let url = settings.url.expose();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(Error::InvalidUrl {
                url: settings.url.redacted(),
                reason:
                    "is not a PostgreSQL URL (expected postgres://user:password@host:port/database)"
                        .to_owned(),
            });
        }
        PgTargets::new(settings, |one| {
            one.parse().map_err(|e| bad_url(settings, e))
        })?
        .map(|options| pg_options(options, settings))
    }

    fn connect<'a>(
        options: &'a Self::Options,
        timeout: Duration,
        url: &'a str,
    ) -> impl Future<Output = Result<Self::Connection, Error>> + Send + 'a {
        crate::hosts::connect(options, timeout, url)
    }

    fn max_attempts(options: &Self::Options) -> u32 {
        u32::try_from(options.max_attempts()).unwrap_or(u32::MAX)
    }

    fn fails_over(options: &Self::Options) -> bool {
        use crate::TargetSessionAttrs::{Primary, ReadWrite};
        matches!(options.target_session_attrs(), ReadWrite | Primary)
    }

    fn role_changes(options: &Self::Options) -> u64 {
        options.role_changes()
    }

    fn run_statement<'c>(
        conn: &'c mut Self::Connection,
        sql: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c {
        // Configuration, not user input: asserted safe as SQL text.
        let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        async move { sqlx::Executor::execute(conn, sql).await.map(drop) }
    }

    async fn rollback_any(conn: &mut Self::Connection) -> Result<(), sqlx::Error> {
        // Outside a transaction PostgreSQL only warns.
        sqlx::query("ROLLBACK").execute(&mut *conn).await.map(drop)
    }

    async fn server_limits(conn: &mut Self::Connection) -> Option<ServerLimits> {
        {
            let row: (i32, i32, String) = sqlx::query_as(
                "SELECT current_setting('max_connections')::int, \
                        current_setting('superuser_reserved_connections')::int, \
                        current_setting('idle_session_timeout')",
            )
            .fetch_one(&mut *conn)
            .await
            .ok()?;
            let (max, reserved, idle) = row;
            let idle = match idle.trim() {
                "0" => None,
                text => humantime::parse_duration(text).ok(),
            };
            Some(ServerLimits {
                max_connections: u32::try_from(max - reserved).ok(),
                idle_session_timeout: idle,
            })
        }
    }
}

/// The settings' own options applied to one host's URL options.
#[cfg(feature = "postgres")]
fn pg_options(
    mut options: sqlx::postgres::PgConnectOptions,
    settings: &PoolSettings,
) -> Result<sqlx::postgres::PgConnectOptions, Error> {
    use sqlx::postgres::PgSslMode;
    // Behind PgBouncer in transaction mode a cached statement names one
    // server connection's statement, and the next transaction may get
    // another server connection.
    let cache = match settings.pgbouncer {
        crate::PgBouncerMode::Transaction => 0,
        _ => settings.statement_cache_capacity,
    };
    options = options.statement_cache_capacity(cache);
    if let Some(name) = &settings.application_name {
        options = options.application_name(name);
    }
    if let Some(timeout) = settings.statement_timeout {
        options = options.options([("statement_timeout", timeout.as_millis().to_string())]);
    }
    if let Some(mode) = settings.sslmode {
        options = options.ssl_mode(match mode {
            crate::SslMode::Disable => PgSslMode::Disable,
            crate::SslMode::Allow => PgSslMode::Allow,
            crate::SslMode::Prefer => PgSslMode::Prefer,
            crate::SslMode::Require => PgSslMode::Require,
            crate::SslMode::VerifyCa => PgSslMode::VerifyCa,
            crate::SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    crate::tls::apply(options, settings)
}

#[cfg(feature = "sqlite")]
impl Backend for sqlx::Sqlite {
    type Options = sqlx::sqlite::SqliteConnectOptions;

    fn options(settings: &PoolSettings) -> Result<Self::Options, Error> {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
        let url = settings.url.expose();
        if !url.starts_with("sqlite:") {
            return Err(Error::InvalidUrl {
                url: settings.url.redacted(),
                reason:
                    "is not a SQLite URL (expected sqlite://path/to/file.db or sqlite::memory:)"
                        .to_owned(),
            });
        }
        let lite = &settings.sqlite;
        let mut options: SqliteConnectOptions = url.parse().map_err(|e| bad_url(settings, e))?;
        options = options
            .create_if_missing(lite.create_if_missing)
            .busy_timeout(lite.busy_timeout)
            .statement_cache_capacity(settings.statement_cache_capacity);
        if lite.wal {
            options = options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
        }
        if let Some(pages) = lite.cache_size {
            options = options.pragma("cache_size", pages.to_string());
        }
        if let Some(bytes) = lite.mmap_size {
            options = options.pragma("mmap_size", bytes.to_string());
        }
        Ok(options)
    }

    /// `PRAGMA query_only` rather than a read-only open: a read-only
    /// connection cannot create the WAL's shared-memory file, so it could
    /// not be the first to open a fresh database.
    fn reader_options(settings: &PoolSettings, options: &Self::Options) -> Option<Self::Options> {
        let url = settings.url.expose();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        (settings.sqlite.single_writer && !in_memory)
            .then(|| options.clone().pragma("query_only", "ON"))
    }

    fn connect<'a>(
        options: &'a Self::Options,
        timeout: Duration,
        url: &'a str,
    ) -> impl Future<Output = Result<Self::Connection, Error>> + Send + 'a {
        bounded(options.connect(), timeout, url)
    }

    fn run_statement<'c>(
        conn: &'c mut Self::Connection,
        sql: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c {
        // Configuration, not user input: asserted safe as SQL text.
        let sql = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()));
        async move { sqlx::Executor::execute(conn, sql).await.map(drop) }
    }

    async fn rollback_any(conn: &mut Self::Connection) -> Result<(), sqlx::Error> {
        {
            match sqlx::query("ROLLBACK").execute(&mut *conn).await {
                Ok(_) => Ok(()),
                // SQLite errors when no transaction is active: nothing to undo.
                Err(sqlx::Error::Database(e)) if e.message().contains("no transaction") => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

/// Pings through sqlx's `Connection::ping`; a helper so call sites read well.
pub(crate) async fn ping<DB: Backend>(conn: &mut DB::Connection) -> Result<(), sqlx::Error> {
    conn.ping().await
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;

    /// Issue 10: the message said "error with configuration: error with
    /// configuration: unknown value …" (sqlx nests its own error).
    #[test]
    fn a_bad_url_parameter_is_reported_once() {
        let settings = PoolSettings::new("postgres://app:hunter2@db/app?sslmode=bogus");
        let err = <sqlx::Postgres as Backend>::options(&settings).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid pool settings: url postgres://app:***@db/app?sslmode=bogus cannot be used: \
             error with configuration: unknown value \"bogus\" for `ssl_mode`"
        );
    }

    #[test]
    fn a_connect_error_names_its_cause_once() {
        let nested = sqlx::Error::Configuration(Box::new(sqlx::Error::Configuration(
            "unknown value \"x\" for `ssl_mode`".into(),
        )));
        let err = Error::Connect {
            url: "postgres://app:***@db/app".to_owned(),
            source: nested,
        };
        assert_eq!(
            err.to_string(),
            "could not connect to postgres://app:***@db/app: error with configuration: \
             unknown value \"x\" for `ssl_mode`"
        );
    }
}
