//! Cancellation: acquires, queries and transactions dropped at random
//! points (timeouts, `select!`) under load. Nothing may leak, the cap must
//! hold, and no connection left in an unknown state may be reused.

mod faults_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faults_common::*;
use pool_testkit::ProxyMode;
use rand::Rng;

/// A `pool.begin()` cancelled after BEGIN left but before the server's
/// answer came back: the server is in a transaction, sqlx's depth counter
/// still says none. Reused, the next caller's autocommit writes would run
/// inside that transaction and never commit.
async fn a_begin_cancelled_in_flight_does_not_poison_the_next_user() {
    let f = fixture_via_proxy("cx_begin", |b| b.pool_size(1).max_overflow(0)).await;
    sqlx::query("CREATE TABLE marks (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    f.proxy()
        .set_mode(ProxyMode::Delay(Duration::from_millis(100)));
    let cancelled = tokio::time::timeout(Duration::from_millis(30), f.pool.begin()).await;
    assert!(cancelled.is_err(), "the begin should still be in flight");
    f.proxy().set_mode(ProxyMode::Forward);
    sqlx::query("INSERT INTO marks VALUES (1)")
        .execute(&f.pool)
        .await
        .unwrap();
    settled(&f.pool, SLACK).await;
    server_agrees(server(), &f.app, &f.pool).await;
    assert_eq!(
        committed_rows(&f.db, "marks").await,
        1,
        "an autocommit insert after a cancelled begin was lost"
    );
}

#[derive(Default)]
struct Counts {
    started: AtomicU64,
    cancelled: AtomicU64,
    completed: AtomicU64,
}

async fn one_op(
    pool: &pool_runtime::Pool<sqlx::Postgres>,
    kind: u32,
    ms: f64,
) -> Result<(), sqlx::Error> {
    match kind {
        0 => drop(pool.acquire().await?),
        1 => {
            sqlx::query("SELECT pg_sleep($1 / 1000)")
                .bind(ms)
                .execute(pool)
                .await?;
        }
        2 => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        3 => {
            // Abandoned on purpose: must never commit.
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO t VALUES (-1)")
                .execute(&mut *tx)
                .await?;
            sqlx::query("SELECT pg_sleep($1 / 1000)")
                .bind(ms)
                .execute(&mut *tx)
                .await?;
        }
        _ => {
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT pg_sleep($1 / 1000)")
                .bind(ms)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

async fn thousands_of_cancelled_operations_leak_nothing() {
    let ops: u64 = long_secs().map_or(3_000, |s| s * 1_000);
    let f = fixture("cx_storm", |b| {
        b.pool_size(4)
            .max_overflow(4)
            .pool_timeout(Duration::from_secs(2))
    })
    .await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    let counts = Arc::new(Counts::default());
    let seed = seed();
    let work = async {
        let slots = Arc::new(tokio::sync::Semaphore::new(48));
        let mut tasks = Vec::new();
        for i in 0..ops {
            let slot = slots.clone().acquire_owned().await.unwrap();
            let (pool, counts) = (f.pool.clone(), counts.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slot;
                let mut rng = rng(seed ^ i);
                let (kind, ms) = (
                    rng.random_range(0..5u32),
                    f64::from(rng.random_range(0..4u32)),
                );
                // A quarter run to completion; the rest are cut anywhere
                // from before the acquire to the middle of a commit.
                let cut = if rng.random_bool(0.25) {
                    Duration::from_secs(30)
                } else {
                    Duration::from_micros(rng.random_range(0..15_000))
                };
                counts.started.fetch_add(1, Ordering::Relaxed);
                let op = one_op(&pool, kind, ms);
                let done = if rng.random_bool(0.5) {
                    tokio::time::timeout(cut, op).await.ok()
                } else {
                    tokio::select! {
                        r = op => Some(r),
                        () = tokio::time::sleep(cut) => None,
                    }
                };
                match done {
                    None => counts.cancelled.fetch_add(1, Ordering::Relaxed),
                    Some(_) => counts.completed.fetch_add(1, Ordering::Relaxed),
                };
            }));
        }
        for t in tasks {
            t.await.expect("no task panics");
        }
    };
    let ((), peak) = pool_testkit::assert::never_above(server(), &f.app, 8, work).await;
    let (cancelled, completed) = (
        counts.cancelled.load(Ordering::Relaxed),
        counts.completed.load(Ordering::Relaxed),
    );
    eprintln!(
        "ops={ops} cancelled={cancelled} completed={completed} peak={peak} status={:?}",
        f.pool.status()
    );
    assert_eq!(cancelled + completed, ops);
    assert!(
        cancelled > ops / 10,
        "too few cancellations to mean anything: {cancelled}"
    );
    assert!(
        completed > ops / 10,
        "too few operations completed to mean anything: {completed}"
    );
    settled(&f.pool, SLACK).await;
    server_agrees(server(), &f.app, &f.pool).await;
    // No poisoned connection: autocommit writes through every pooled
    // connection commit, and no abandoned transaction ever did.
    let writes = futures_util::future::join_all((0..100).map(|i| {
        sqlx::query("INSERT INTO t VALUES ($1)")
            .bind(1000 + i)
            .execute(&f.pool)
    }))
    .await;
    assert!(writes.iter().all(Result::is_ok), "{writes:?}");
    f.pool.close().await;
    let mut c = probe(&f.db).await;
    let (late, abandoned): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE x >= 1000), count(*) FILTER (WHERE x = -1) FROM t",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(abandoned, 0, "an abandoned transaction committed");
    assert_eq!(
        late, 100,
        "autocommit writes were lost: a poisoned connection was reused"
    );
}

/// The cases above run in one test: under nextest every test is its own
/// process, which starts its own server, and that start-up would dominate.
/// A failure names the case in its message and backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation() {
    a_begin_cancelled_in_flight_does_not_poison_the_next_user().await;
    thousands_of_cancelled_operations_leak_nothing().await;
}
