//! The pool's errors. Every message says what happened and the numbers that
//! explain it; none contains a password.

use std::time::Duration;

/// Why a pool operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `acquire` waited `pool_timeout` without getting a connection.
    #[error(transparent)]
    Timeout(Box<TimeoutError>),
    /// Opening a connection failed: the URL (password masked) names the
    /// user and host; the text says why, with the SQLSTATE for a refusal
    /// by the server.
    #[error("could not connect to {url}: {}", connect_text(.source))]
    Connect {
        /// The URL, password masked.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The server refused the pool's credentials (SQLSTATE class 28) at
    /// the last connects; this checkout was not sent to it again. The next
    /// connect is tried after `retry_in` (1 s, doubling, at most 30 s).
    #[error(
        "could not connect to {url}: {answer} (refused {streak} time(s) in a row; the next \
         connect is tried in {:.1}s, meanwhile checkouts fail at once)",
        .retry_in.as_secs_f64()
    )]
    CredentialsRefused {
        /// The URL, password masked.
        url: String,
        /// The server's last answer.
        answer: String,
        /// Refusals in a row.
        streak: u32,
        /// Until the next connect.
        retry_in: Duration,
    },
    /// Opening a connection took longer than `connect_timeout`.
    #[error("connecting to {url} timed out after {timeout:?} (connect_timeout)")]
    ConnectTimeout {
        /// The URL, password masked.
        url: String,
        /// The configured bound.
        timeout: Duration,
    },
    /// No host of a (multi-host) PostgreSQL URL gave a connection that
    /// passed `target_session_attrs`: every attempt, in order, with the
    /// host (`host:port`) and why it failed (refused, timed out, or which
    /// check it failed: "is a standby" …).
    #[error(
        "could not connect to {url}: no host {}; tried {}",
        no_host_because(*.target_session_attrs),
        attempts_list(.attempts)
    )]
    NoSuitableHost {
        /// The URL, password masked.
        url: String,
        /// The `target_session_attrs` the hosts were checked against.
        target_session_attrs: crate::TargetSessionAttrs,
        /// Every failed attempt, in the order made.
        attempts: Vec<crate::hosts::HostAttempt>,
    },
    /// `acquire` on a pool with `pgbouncer = transaction`. PgBouncer gives
    /// each transaction whichever server connection is free, and sqlx
    /// prepares a statement, waits for the server (a Sync), then binds and
    /// runs it: outside a transaction those two halves can reach two
    /// different server connections, which fails, or binds another
    /// client's statement of the same name. A held connection cannot stop
    /// that, so it is refused rather than handed out.
    #[error(
        "pool \"{pool}\": acquire is refused because pgbouncer = transaction: PgBouncer gives \
         each transaction any free server connection, and sqlx prepares a statement and binds \
         it in two steps that can reach two different server connections outside a \
         transaction. Use &pool as the executor for single statements and pool.begin() for \
         several (both are made safe); for session features (LISTEN, advisory locks, SET, \
         temporary tables) connect directly or through PgBouncer in session mode"
    )]
    PgBouncerTransactionMode {
        /// Pool name.
        pool: String,
    },
    /// A read of a [`ReplicaPool`](crate::ReplicaPool) found no standby
    /// that qualifies, and `read_fallback` is off: every host, in the
    /// URL's order, and why it serves no reads (down, with the error; a
    /// primary; lagging beyond `read_max_lag`).
    #[error(
        "pool \"{pool}\": no standby can serve reads and read_fallback is off; {}",
        skipped_list(.nodes)
    )]
    NoReadReplica {
        /// Pool name.
        pool: String,
        /// Every host and why it was skipped.
        nodes: Vec<crate::replicas::SkippedNode>,
    },
    /// With `nested_checkout = error`: the task calling `acquire` already
    /// holds a connection of this pool. Nested checkouts deadlock a full
    /// pool (each holder waits for a connection only another holder can
    /// give back), so the second one fails at once instead.
    #[error(
        "pool \"{pool}\": nested checkout: this task already holds a connection from this pool, \
         acquired at {held_at}, and asked for another at {acquired_at}; once the pool is full, \
         tasks doing this wait for each other until pool_timeout. Pass the held connection \
         (or &mut *conn) down instead of acquiring again, or set nested_checkout = off if the \
         nesting is intended"
    )]
    NestedCheckout {
        /// Pool name.
        pool: String,
        /// `file:line:column` of the `acquire` that got the connection the
        /// task holds.
        held_at: String,
        /// `file:line:column` of the nested `acquire`.
        acquired_at: String,
    },
    /// The pool was closed; no more checkouts.
    #[error("the pool \"{0}\" is closed")]
    Closed(String),
    /// The settings contradict themselves ([`PoolSettings::validate`](crate::PoolSettings::validate)):
    /// every problem, each naming its settings.
    #[error("invalid pool settings: {0}")]
    InvalidSettings(SettingsProblems),
    /// The URL does not suit the backend, or the driver refuses it.
    #[error("invalid pool settings: url {url} {reason}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// A [`PoolRegistry`](crate::PoolRegistry) already has a pool of this name
    /// (or two configured pools share it).
    #[error("{0}")]
    DuplicatePoolName(String),
    /// A [`PoolRegistry`](crate::PoolRegistry) has no pool of this name.
    #[error("no pool named \"{name}\" (registered: {})", registered_list(.registered))]
    UnknownPool {
        /// The name asked for.
        name: String,
        /// The names there are.
        registered: Vec<String>,
    },
    /// A lifecycle hook failed or outlasted `network_timeout`; the
    /// connection it ran on was closed (for `after_connect`, its slot was
    /// given back at once).
    #[error("the {hook} hook of pool \"{pool}\" failed: {source}")]
    Hook {
        /// The pool's name.
        pool: String,
        /// Which hook.
        hook: crate::pool::Hook,
        /// What it returned, or that it timed out.
        #[source]
        source: crate::pool::HookError,
    },
    /// An error from the database while using a connection.
    #[error(transparent)]
    Database(sqlx::Error),
}

/// Our own errors come back out of the sqlx errors `&Pool` had to carry
/// them in (see `From<Error> for sqlx::Error`), so `?` from
/// `fetch_one(&pool)` into this type still tells a timeout from a database
/// error. Found when the example service's handlers moved to `&Pool`: an
/// exhausted pool answered 500 "database error" instead of 503.
impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(io) if io.get_ref().is_some_and(|e| e.is::<Error>()) => {
                let kind = io.kind();
                match io.into_inner().map(|inner| inner.downcast::<Error>()) {
                    Some(Ok(ours)) => *ours,
                    Some(Err(other)) => Error::Database(std::io::Error::new(kind, other).into()),
                    None => Error::Database(std::io::Error::from(kind).into()),
                }
            }
            sqlx::Error::Configuration(inner) if inner.is::<Error>() => {
                match inner.downcast::<Error>() {
                    Ok(ours) => *ours,
                    Err(other) => Error::Database(sqlx::Error::Configuration(other)),
                }
            }
            err => Error::Database(err),
        }
    }
}

/// The problems [`Error::InvalidSettings`] carries, one sentence each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblems(pub Vec<pool_settings::Problem>);

impl SettingsProblems {
    /// Every problem, the settings it involves first.
    pub fn problems(&self) -> &[pool_settings::Problem] {
        &self.0
    }
}

impl std::fmt::Display for SettingsProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

fn no_host_because(attrs: crate::TargetSessionAttrs) -> String {
    match attrs {
        crate::TargetSessionAttrs::Any => "accepted the connection".to_owned(),
        other => format!("accepted the connection and passed target_session_attrs={other}"),
    }
}

fn attempts_list(attempts: &[crate::hosts::HostAttempt]) -> String {
    let list: Vec<String> = attempts.iter().map(ToString::to_string).collect();
    list.join("; ")
}

fn skipped_list(nodes: &[crate::replicas::SkippedNode]) -> String {
    let list: Vec<String> = nodes.iter().map(ToString::to_string).collect();
    list.join("; ")
}

fn registered_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Everything known when an acquire timed out: SQLAlchemy's "QueuePool
/// limit of size 10 overflow 20 reached, connection timed out, timeout
/// 30.00", plus who is holding the connections.
#[derive(Debug, Clone)]
pub struct TimeoutError {
    /// Pool name.
    pub pool: String,
    /// `pool_size`.
    pub size: u32,
    /// `max_overflow`.
    pub max_overflow: u32,
    /// Connections checked out when the wait ended.
    pub checked_out: u32,
    /// Idle connections when the wait ended.
    pub idle: u32,
    /// Connections being opened when the wait ended (during an outage,
    /// every slot can be tied up here while nothing is checked out).
    pub connecting: u32,
    /// Other callers still waiting.
    pub waiting: u32,
    /// How long this caller waited.
    pub waited: Duration,
    /// The configured `pool_timeout`.
    pub timeout: Duration,
    /// The call site and hold time of the longest-held connection.
    pub oldest_holder: Option<(String, Duration)>,
    /// When the caller's task already held a connection of this pool (a
    /// nested checkout): the call site that acquired it.
    pub nested: Option<String>,
}

impl std::fmt::Display for TimeoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pool \"{}\": QueuePool limit of size {} overflow {} reached, connection timed out \
             after waiting {:.2}s (pool_timeout {:.2}s); {} checked out, {} idle, {} connecting, \
             {} other callers waiting",
            self.pool,
            self.size,
            self.max_overflow,
            self.waited.as_secs_f64(),
            self.timeout.as_secs_f64(),
            self.checked_out,
            self.idle,
            self.connecting,
            self.waiting,
        )?;
        if let Some((site, held)) = &self.oldest_holder {
            write!(
                f,
                "; oldest connection held for {:.2}s, acquired at {site}",
                held.as_secs_f64()
            )?;
        }
        if let Some(site) = &self.nested {
            write!(
                f,
                "; this task already holds a connection from this pool, acquired at {site}: \
                 a nested checkout waits for itself once the pool is full"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for TimeoutError {}

impl Error {
    /// True for [`Error::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout(_))
    }
}

impl From<Error> for sqlx::Error {
    /// Keeps the full message: timeouts become an I/O error of kind
    /// `TimedOut` whose source is ours, so `fetch_one(&pool)` callers see
    /// the counts too.
    fn from(err: Error) -> Self {
        match err {
            Error::Database(e) | Error::Connect { source: e, .. } => e,
            Error::Closed(_) => sqlx::Error::PoolClosed,
            Error::Timeout(_) | Error::ConnectTimeout { .. } => {
                sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, err))
            }
            Error::CredentialsRefused { .. } => sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                err,
            )),
            Error::Hook { .. } | Error::NoSuitableHost { .. } | Error::NoReadReplica { .. } => {
                sqlx::Error::Io(std::io::Error::other(err))
            }
            Error::InvalidSettings(_)
            | Error::NestedCheckout { .. }
            | Error::PgBouncerTransactionMode { .. }
            | Error::InvalidUrl { .. }
            | Error::DuplicatePoolName(_)
            | Error::UnknownPool { .. } => sqlx::Error::Configuration(Box::new(err)),
        }
    }
}

/// An sqlx error as one message, each prefix once.
///
/// sqlx wraps its own `Error::Configuration` in another (`sslmode=bogus`
/// reads "error with configuration: error with configuration: unknown
/// value …"); the nested layers are dropped. Issue 10, pinned by
/// `a_bad_url_parameter_is_reported_once` in backend.rs.
/// Why a connect failed, in words a user can act on: a refusal by the
/// server with its SQLSTATE (28P01 a wrong password or unknown user, 28000
/// a `pg_hba.conf` rule; PostgreSQL tells a client no more), a TLS
/// certificate problem named (unknown CA or another host), else sqlx's own
/// text. Found by `tests/tls.rs`: sqlx printed "password authentication
/// failed … at line 334" with no SQLSTATE.
pub(crate) fn connect_text(err: &sqlx::Error) -> String {
    if let sqlx::Error::Database(db) = err {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let reason = match code.as_str() {
            "28P01" => "authentication failed (wrong password, or no such user): ",
            "28000" => "refused by the server's authentication rules (pg_hba.conf): ",
            "3D000" => "no such database: ",
            "53300" => "the server has no connection slots left: ",
            "57P03" => "the server is starting up or shutting down: ",
            _ => "",
        };
        return if code.is_empty() {
            format!("{reason}{}", db.message())
        } else {
            format!("{reason}{} (SQLSTATE {code})", db.message())
        };
    }
    let text = sqlx_text(err);
    // rustls names these as enum variants in older releases and in words
    // in newer ones ("certificate not valid for name …": the hint was
    // missing, found by tls.rs `a_certificate_for_another_host_is_refused_under_verify_full`).
    let words = text.to_ascii_lowercase().replace(' ', "");
    let hint = if words.contains("unknownissuer") || words.contains("badsignature") {
        "the server's certificate is not signed by a CA this client trusts \
         (sslrootcert, or the built-in roots): "
    } else if words.contains("notvalidforname") {
        "the server's certificate is not for this host name (sslmode=verify-full checks it): "
    } else if text.contains("server does not support TLS") {
        "the server does not accept TLS, and sslmode requires it: "
    } else {
        ""
    };
    format!("{hint}{text}")
}

pub(crate) fn sqlx_text(err: &sqlx::Error) -> String {
    let mut err = err;
    while let sqlx::Error::Configuration(inner) = err {
        match inner.downcast_ref::<sqlx::Error>() {
            Some(nested @ sqlx::Error::Configuration(_)) => err = nested,
            _ => break,
        }
    }
    err.to_string()
}

#[cfg(test)]
mod round_trip {
    use super::*;

    /// `fetch_one(&pool)` returns sqlx's error type; converted back, a
    /// timeout is a timeout again, and a database error stays one.
    #[test]
    fn our_errors_survive_a_trip_through_sqlx_error() {
        let closed: sqlx::Error = Error::Closed("p".into()).into();
        assert!(matches!(
            Error::from(closed),
            Error::Database(sqlx::Error::PoolClosed)
        ));
        let refused: sqlx::Error = Error::PgBouncerTransactionMode { pool: "p".into() }.into();
        assert!(matches!(
            Error::from(refused),
            Error::PgBouncerTransactionMode { .. }
        ));
        let timeout = Error::Timeout(Box::new(TimeoutError {
            pool: "p".into(),
            size: 1,
            max_overflow: 0,
            checked_out: 1,
            idle: 0,
            connecting: 0,
            waiting: 0,
            waited: Duration::from_millis(5),
            timeout: Duration::from_millis(5),
            oldest_holder: None,
            nested: None,
        }));
        let as_sqlx: sqlx::Error = timeout.into();
        assert!(Error::from(as_sqlx).is_timeout());
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(matches!(
            Error::from(io),
            Error::Database(sqlx::Error::Io(_))
        ));
    }
}
