//! A dead connection stops serving within about a second however a
//! checked-out connection is used (`&Pool`, `&mut *conn`, the pool's
//! `Transaction`, sqlx's own `begin()` on `&mut *conn`), and no usage keeps
//! one alive: one statement every 40 ms, the pool's only backend terminated
//! from the server's side, zero errors from 1.5 s later on.
//!
//! Before the fix, the pre-ping bypass restarted at every return, so a
//! connection used every 40 ms through `&mut *conn` was never pinged and
//! failed every statement for as long as traffic continued (the example
//! service answered 500 for 11.75 s of steady requests).

mod faults_common;

use std::time::{Duration, Instant};

use faults_common::*;
use pool_runtime::Pool;
use sqlx::{Connection, Postgres};

const EVERY: Duration = Duration::from_millis(40);
const KILL_AFTER: Duration = Duration::from_secs(1);
const TRAFFIC_FOR: Duration = Duration::from_secs(4);
const RECOVERED_WITHIN: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, Debug)]
enum Usage {
    /// `sqlx::query(..).execute(&mut *conn)` on a `PooledConnection`: the
    /// pool never sees the error.
    Deref,
    /// `execute(&pool)`.
    Pool,
    /// `pool.begin()`, a statement on `&mut *tx`, commit.
    Transaction,
    /// `sqlx::Connection::begin(&mut *conn)`: sqlx's transaction on a
    /// pooled connection.
    SqlxBegin,
}

async fn one_statement(pool: &Pool<Postgres>, usage: Usage) -> Result<(), String> {
    let select = || sqlx::query("SELECT 1");
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match usage {
        Usage::Deref => {
            let mut conn = pool.acquire().await.map_err(|e| text(&e))?;
            select().execute(&mut *conn).await.map_err(|e| text(&e))?;
        }
        Usage::Pool => {
            select().execute(pool).await.map_err(|e| text(&e))?;
        }
        Usage::Transaction => {
            let mut tx = pool.begin().await.map_err(|e| text(&e))?;
            select().execute(&mut *tx).await.map_err(|e| text(&e))?;
            tx.commit().await.map_err(|e| text(&e))?;
        }
        Usage::SqlxBegin => {
            let mut conn = pool.acquire().await.map_err(|e| text(&e))?;
            let mut tx = (*conn).begin().await.map_err(|e| text(&e))?;
            select().execute(&mut *tx).await.map_err(|e| text(&e))?;
            tx.commit().await.map_err(|e| text(&e))?;
        }
    }
    Ok(())
}

async fn steady_traffic_recovers(usage: Usage) {
    let name = format!("dead_{usage:?}").to_lowercase();
    let f = fixture(&name, |b| {
        b.pool_size(1)
            .max_overflow(0)
            .pool_timeout(Duration::from_secs(5))
    })
    .await;
    let before = server().pids(&f.app).await.unwrap();
    assert_eq!(before.len(), 1, "one backend before: {before:?}");

    let start = Instant::now();
    let mut killed_at = None;
    let mut results = Vec::new();
    while start.elapsed() < TRAFFIC_FOR {
        if killed_at.is_none() && start.elapsed() >= KILL_AFTER {
            assert!(server().terminate(before[0]).await.unwrap(), "terminated");
            killed_at = Some(Instant::now());
        }
        let result = one_statement(&f.pool, usage).await;
        results.push((Instant::now(), result));
        tokio::time::sleep(EVERY).await;
    }
    let killed_at = killed_at.expect("the backend was terminated");
    let late: Vec<_> = results
        .iter()
        .filter(|(at, r)| *at >= killed_at + RECOVERED_WITHIN && r.is_err())
        .map(|(at, r)| (at.duration_since(killed_at), r.clone().unwrap_err()))
        .collect();
    let failed: Vec<_> = results
        .iter()
        .filter(|(at, r)| *at >= killed_at && r.is_err())
        .map(|(at, _)| at.duration_since(killed_at))
        .collect();
    eprintln!(
        "{usage:?}: {} statements, {} failed after the kill (the last {:?} after it), {} of them \
         {RECOVERED_WITHIN:?} or later",
        results.len(),
        failed.len(),
        failed.last(),
        late.len()
    );
    assert!(
        late.is_empty(),
        "{usage:?}: errors {RECOVERED_WITHIN:?} or more after the backend was terminated: {late:?}"
    );
    // From the server's side: the pool runs on one new backend, not the dead
    // one, and nothing else is left.
    let after = server().pids(&f.app).await.unwrap();
    assert_eq!(after.len(), 1, "{usage:?}: one backend after: {after:?}");
    assert_ne!(after, before, "{usage:?}: the dead backend was replaced");
    let status = f.pool.status();
    // Closed by whichever check met it first: the pre-ping, a reported
    // error, or the rollback on return of sqlx's own transaction.
    assert_eq!(
        status.totals.closed.total(),
        1,
        "{usage:?}: the dead connection was closed by the pool: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_through_deref_recovers() {
    steady_traffic_recovers(Usage::Deref).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_through_the_pool_recovers() {
    steady_traffic_recovers(Usage::Pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_through_transactions_recovers() {
    steady_traffic_recovers(Usage::Transaction).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_through_sqlx_begin_recovers() {
    steady_traffic_recovers(Usage::SqlxBegin).await;
}

/// A caller that reports the error closes the dead connection at once: the
/// very next statement works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_error_closes_the_connection_at_once() {
    let f = fixture("dead_reported", |b| b.pool_size(1).max_overflow(0)).await;
    let before = server().pids(&f.app).await.unwrap();
    // Checked out first, so no pre-ping stands between it and the kill.
    let mut conn = f.pool.acquire().await.unwrap();
    assert!(server().terminate(before[0]).await.unwrap());
    let error = sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .expect_err("the backend is gone");
    assert!(
        conn.report_error(&error),
        "{error} means the connection is gone"
    );
    drop(conn);
    let mut conn = f.pool.acquire().await.unwrap();
    sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .expect("a new connection serves the next statement");
    drop(conn);
    let status = f.pool.status();
    assert_eq!(status.database.recent_connections_lost, 1, "{status:?}");
    assert_eq!(status.totals.closed.discarded, 1, "{status:?}");
    // Health saw it: warning for 10 s, and says why.
    assert_eq!(status.health, pool_runtime::Health::Warning, "{status:?}");
    assert!(
        status.health_reasons[0].contains("1 connection lost mid-statement"),
        "{:?}",
        status.health_reasons
    );

    // An ordinary SQL error is not a dead connection.
    let mut conn = f.pool.acquire().await.unwrap();
    let error = sqlx::query("SELECT * FROM no_such_table")
        .execute(&mut *conn)
        .await
        .expect_err("no such table");
    assert!(
        !conn.report_error(&error),
        "{error} leaves the connection usable"
    );
}
