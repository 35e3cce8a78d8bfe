//! Probes: what the server sees of a pool, from pg_stat_activity.
//!
//! A pool's connections are found by their `application_name`, which the
//! fixtures make unique per test. Each probe opens its own short-lived
//! connection (never a pool's), and that connection excludes itself.

use std::time::{Duration, SystemTime};

use sqlx::{Connection, Row};

use crate::server::TestServer;
use crate::{Error, Result};

/// One server connection (a row of `pg_stat_activity`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// Backend process id (what `pg_backend_pid()` returns on it).
    pub pid: i32,
    /// Database it is connected to.
    pub database: Option<String>,
    /// Its `application_name`.
    pub application_name: String,
    /// `active`, `idle`, `idle in transaction`, ...
    pub state: Option<String>,
    /// When the connection was opened.
    pub backend_start: SystemTime,
    /// How long it has been open (server clock).
    pub age: Duration,
    /// How long it has been in its current state.
    pub in_state_for: Option<Duration>,
    /// Last (or current) statement.
    pub query: Option<String>,
    /// Client port of the TCP connection (none for Unix sockets).
    pub client_port: Option<i32>,
}

impl std::fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} {} db={} age={:.1?} state={}",
            self.pid,
            self.application_name,
            self.database.as_deref().unwrap_or("-"),
            self.age,
            self.state.as_deref().unwrap_or("-"),
        )?;
        if let Some(d) = self.in_state_for {
            write!(f, " for {d:.1?}")?;
        }
        if let Some(q) = &self.query {
            let q: String = q.chars().take(60).collect();
            write!(f, " last query: {q:?}")?;
        }
        Ok(())
    }
}

const ACTIVITY: &str = "
    SELECT pid, datname::text AS database, application_name, state,
           extract(epoch FROM backend_start)::float8 AS backend_start,
           extract(epoch FROM now() - backend_start)::float8 AS age,
           extract(epoch FROM now() - state_change)::float8 AS in_state_for,
           query, client_port
    FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()";

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}

impl TestServer {
    /// Server connections whose `application_name` is `app_name`, oldest first.
    pub async fn connections(&self, app_name: &str) -> Result<Vec<BackendInfo>> {
        self.activity(Some(app_name)).await
    }

    /// Every client connection to the server except the probe's own.
    pub async fn all_connections(&self) -> Result<Vec<BackendInfo>> {
        self.activity(None).await
    }

    async fn activity(&self, app_name: Option<&str>) -> Result<Vec<BackendInfo>> {
        let sql = format!(
            "{ACTIVITY} {} ORDER BY backend_start, pid",
            if app_name.is_some() {
                "AND application_name = $1"
            } else {
                ""
            }
        );
        let mut conn = self.connect_admin().await?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(app) = app_name {
            query = query.bind(app);
        }
        let rows = query
            .fetch_all(&mut conn)
            .await
            .map_err(|e| Error::sql("reading pg_stat_activity", e));
        let _ = conn.close().await;
        rows?
            .iter()
            .map(|r| {
                Ok(BackendInfo {
                    pid: r.try_get("pid")?,
                    database: r.try_get("database")?,
                    application_name: r
                        .try_get::<Option<String>, _>("application_name")?
                        .unwrap_or_default(),
                    state: r.try_get("state")?,
                    backend_start: SystemTime::UNIX_EPOCH + secs(r.try_get("backend_start")?),
                    age: secs(r.try_get("age")?),
                    in_state_for: r.try_get::<Option<f64>, _>("in_state_for")?.map(secs),
                    query: r
                        .try_get::<Option<String>, _>("query")?
                        .filter(|q| !q.is_empty()),
                    client_port: r.try_get("client_port")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| Error::sql("decoding pg_stat_activity", e))
    }

    /// How many server connections have `application_name` = `app_name`.
    pub async fn count_connections(&self, app_name: &str) -> Result<usize> {
        let mut conn = self.connect_admin().await?;
        let n: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(app_name)
        .fetch_one(&mut conn)
        .await;
        let _ = conn.close().await;
        Ok(usize::try_from(n.map_err(|e| Error::sql("counting connections", e))?).unwrap_or(0))
    }

    /// Backend pids of `app_name`'s connections, sorted.
    pub async fn pids(&self, app_name: &str) -> Result<Vec<i32>> {
        let mut pids: Vec<i32> = self
            .connections(app_name)
            .await?
            .iter()
            .map(|b| b.pid)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Terminates backend `pid` and waits (up to 5 s) until it is gone.
    /// `false` when no such backend existed.
    pub async fn terminate(&self, pid: i32) -> Result<bool> {
        let mut conn = self.connect_admin().await?;
        let done: Result<bool, _> = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        done.map_err(|e| Error::sql(format!("terminating backend {pid}"), e))
    }

    /// Terminates every connection of `app_name`; returns how many.
    pub async fn terminate_app(&self, app_name: &str) -> Result<usize> {
        let mut conn = self.connect_admin().await?;
        let n: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
             WHERE backend_type = 'client backend' AND application_name = $1 AND pid <> pg_backend_pid()",
        )
        .bind(app_name)
        .fetch_one(&mut conn)
        .await;
        let _ = conn.close().await;
        Ok(usize::try_from(n.map_err(|e| Error::sql("terminating connections", e))?).unwrap_or(0))
    }

    /// The current value of a server setting (`SHOW name`).
    pub async fn setting(&self, name: &str) -> Result<String> {
        let mut conn = self.connect_admin().await?;
        let v: Result<String, _> = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        v.map_err(|e| Error::sql(format!("reading setting {name}"), e))
    }
}
