//! One-line assertions checked from the server's side (pg_stat_activity),
//! not from a pool's own counters.
//!
//! Connections close asynchronously (a pool closes in the background, the
//! server notices a terminated client a moment later), so "eventually"
//! assertions poll until a deadline. On failure they panic with what was
//! expected, what the server showed and the server log lines of that
//! application (else the log tail). Each has a `try_` twin returning
//! [`Failure`] instead, for tests that check the failure itself.
//!
//! With the `runtime` feature, pool behaviour checks that drive a
//! `pool_runtime::Pool` (size held, overflow closed on return, cap under
//! load, recycle, pre-ping, NullPool) live here too.

#[cfg(feature = "runtime")]
mod pool;
#[cfg(feature = "runtime")]
pub use pool::*;
mod topology;
pub use topology::*;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::probe::BackendInfo;
use crate::server::TestServer;

/// How many log lines a failure shows.
const LOG_LINES: usize = 25;

/// A server-side assertion that did not hold.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Failure {
    /// What was checked.
    pub what: String,
    /// What should have been seen.
    pub expected: String,
    /// What the server showed.
    pub seen: String,
    /// Relevant server log lines.
    pub log: String,
}

impl Failure {
    /// A failure with the server's log lines about `app_name` (or its tail).
    pub fn new(
        server: &TestServer,
        app_name: Option<&str>,
        what: impl Into<String>,
        expected: impl Into<String>,
        seen: impl Into<String>,
    ) -> Self {
        Self {
            what: what.into(),
            expected: expected.into(),
            seen: seen.into(),
            log: relevant_log(server, app_name),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pool-testkit assertion failed: {}", self.what)?;
        writeln!(f, "  expected:      {}", self.expected)?;
        writeln!(
            f,
            "  server showed: {}",
            indent(&self.seen, "                 ")
        )?;
        writeln!(f, "  server log:")?;
        write!(f, "{}", indent_all(&self.log, "    "))
    }
}

impl std::error::Error for Failure {}

fn indent(text: &str, pad: &str) -> String {
    text.lines().collect::<Vec<_>>().join(&format!("\n{pad}"))
}

fn indent_all(text: &str, pad: &str) -> String {
    text.lines().map(|l| format!("{pad}{l}\n")).collect()
}

/// Server log lines mentioning `app_name` (the log line prefix carries the
/// application name), else the tail without the probes' own lines.
fn relevant_log(server: &TestServer, app_name: Option<&str>) -> String {
    let tail = server.log_tail(2000);
    if let Some(app) = app_name {
        let lines: Vec<&str> = tail.lines().filter(|l| l.contains(app)).collect();
        if !lines.is_empty() {
            return lines[lines.len().saturating_sub(LOG_LINES)..].join("\n");
        }
    }
    // Without the testkit's own probe connections, which are noise here.
    let lines: Vec<&str> = tail
        .lines()
        .filter(|l| !l.contains(crate::PROBE_APP_NAME) && !l.contains("connection received:"))
        .collect();
    lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
}

/// Lists connections one per line, for failure messages.
pub fn describe(conns: &[BackendInfo]) -> String {
    if conns.is_empty() {
        return "no connections".into();
    }
    let mut s = format!("{} connection(s):", conns.len());
    for c in conns {
        s.push_str(&format!("\n  {c}"));
    }
    s
}

fn fail<T>(r: Result<T, Failure>) -> T {
    r.unwrap_or_else(|f| panic!("{f}"))
}

async fn poll_connections(
    server: &TestServer,
    app_name: &str,
    within: Duration,
    what: String,
    expected: String,
    ok: impl Fn(&[BackendInfo]) -> bool,
) -> Result<Vec<BackendInfo>, Failure> {
    let start = Instant::now();
    loop {
        let seen = server.connections(app_name).await;
        if let Ok(conns) = &seen
            && ok(conns)
        {
            return seen.map_err(|_| unreachable!());
        }
        if start.elapsed() >= within {
            let seen = match seen {
                Ok(conns) => format!("{} (after waiting {within:?})", describe(&conns)),
                Err(e) => format!("probe failed: {e}"),
            };
            return Err(Failure::new(server, Some(app_name), what, expected, seen));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the server shows exactly `expected` connections of
/// `app_name`; returns them.
pub async fn try_eventually_connections(
    server: &TestServer,
    app_name: &str,
    expected: usize,
    within: Duration,
) -> Result<Vec<BackendInfo>, Failure> {
    poll_connections(
        server,
        app_name,
        within,
        format!("connection count of application_name {app_name:?}"),
        format!("{expected} connection(s) within {within:?}"),
        |c| c.len() == expected,
    )
    .await
}

/// Panicking [`try_eventually_connections`].
pub async fn eventually_connections(
    server: &TestServer,
    app_name: &str,
    expected: usize,
    within: Duration,
) -> Vec<BackendInfo> {
    fail(try_eventually_connections(server, app_name, expected, within).await)
}

/// Waits until the server shows at most `max` connections of `app_name`.
pub async fn try_eventually_at_most(
    server: &TestServer,
    app_name: &str,
    max: usize,
    within: Duration,
) -> Result<Vec<BackendInfo>, Failure> {
    poll_connections(
        server,
        app_name,
        within,
        format!("connection count of application_name {app_name:?}"),
        format!("at most {max} connection(s) within {within:?}"),
        |c| c.len() <= max,
    )
    .await
}

/// Panicking [`try_eventually_at_most`].
pub async fn eventually_at_most(
    server: &TestServer,
    app_name: &str,
    max: usize,
    within: Duration,
) -> Vec<BackendInfo> {
    fail(try_eventually_at_most(server, app_name, max, within).await)
}

/// Waits until none of `pids` is connected any more (e.g. after recycle or
/// after closing a pool).
pub async fn try_pids_gone(
    server: &TestServer,
    pids: &[i32],
    within: Duration,
) -> Result<(), Failure> {
    let start = Instant::now();
    loop {
        let seen = server.all_connections().await;
        let still: Vec<BackendInfo> = match &seen {
            Ok(all) => all
                .iter()
                .filter(|c| pids.contains(&c.pid))
                .cloned()
                .collect(),
            Err(_) => Vec::new(),
        };
        if seen.is_ok() && still.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= within {
            let app = still.first().map(|c| c.application_name.clone());
            let seen = match seen {
                Ok(_) => format!("still connected after {within:?}: {}", describe(&still)),
                Err(e) => format!("probe failed: {e}"),
            };
            return Err(Failure::new(
                server,
                app.as_deref(),
                format!("backends {pids:?} to disconnect"),
                "none of them connected".to_owned(),
                seen,
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Panicking [`try_pids_gone`].
pub async fn pids_gone(server: &TestServer, pids: &[i32], within: Duration) {
    fail(try_pids_gone(server, pids, within).await)
}

/// Runs `work` while sampling the server's count of `app_name` connections
/// (every ~2 ms on a dedicated probe connection); returns `work`'s output
/// and the peak seen. Sampling can miss a spike shorter than a sample.
pub async fn peak_connections_during<F: Future>(
    server: &TestServer,
    app_name: &str,
    work: F,
) -> Result<(F::Output, usize), crate::Error> {
    peak_during(server, "application_name", app_name, work).await
}

/// [`peak_connections_during`] for every client backend connected to
/// database `db`, whatever its `application_name`: what a server has open
/// behind a pooler such as PgBouncer, whose server connections carry the
/// name of whichever client used them last.
pub async fn peak_database_connections_during<F: Future>(
    server: &TestServer,
    db: &str,
    work: F,
) -> Result<(F::Output, usize), crate::Error> {
    peak_during(server, "datname", db, work).await
}

/// Samples the count of client backends whose `column` is `value`.
async fn peak_during<F: Future>(
    server: &TestServer,
    column: &'static str,
    value: &str,
    work: F,
) -> Result<(F::Output, usize), crate::Error> {
    let mut conn = server.connect_admin().await?;
    let done = AtomicBool::new(false);
    let count = format!(
        "SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND {column} = $1"
    );
    let sampler = async {
        let mut peak = 0usize;
        loop {
            let finished = done.load(Ordering::SeqCst);
            let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count.as_str()))
                .bind(value)
                .fetch_one(&mut conn)
                .await
                .map_err(|e| crate::Error::sql("sampling pg_stat_activity", e))?;
            peak = peak.max(usize::try_from(n).unwrap_or(0));
            if finished {
                return Ok::<_, crate::Error>(peak);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let work = async {
        let out = work.await;
        done.store(true, Ordering::SeqCst);
        out
    };
    let (out, peak) = tokio::join!(work, sampler);
    let _ = conn.close().await;
    Ok((out, peak?))
}

/// Runs `work` and fails if the server ever showed more than `limit`
/// connections of `app_name` meanwhile; returns `work`'s output and the peak.
pub async fn try_never_above<F: Future>(
    server: &TestServer,
    app_name: &str,
    limit: usize,
    work: F,
) -> Result<(F::Output, usize), Failure> {
    match peak_connections_during(server, app_name, work).await {
        Ok((out, peak)) if peak <= limit => Ok((out, peak)),
        Ok((_, peak)) => Err(Failure::new(
            server,
            Some(app_name),
            format!("connection cap of application_name {app_name:?}"),
            format!("never more than {limit} connection(s)"),
            format!("{peak} connections at the peak"),
        )),
        Err(e) => Err(Failure::new(
            server,
            Some(app_name),
            format!("connection cap of application_name {app_name:?}"),
            format!("never more than {limit} connection(s)"),
            format!("probe failed: {e}"),
        )),
    }
}

/// Panicking [`try_never_above`]; returns `work`'s output and the peak.
pub async fn never_above<F: Future>(
    server: &TestServer,
    app_name: &str,
    limit: usize,
    work: F,
) -> (F::Output, usize) {
    fail(try_never_above(server, app_name, limit, work).await)
}
