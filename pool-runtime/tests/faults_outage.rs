//! Outages under load: every backend of the pool terminated, the server
//! restarted, the server down for longer than `pool_timeout`. The pool must
//! recover by itself, callers get errors (never a hang), and nothing leaks:
//! checked from the pool's status and from `pg_stat_activity`.

mod faults_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faults_common::*;
use pool_runtime::Error;
use pool_testkit::TestServer;

/// Load, `faults` injected by `inject` every `every`, then a quiet tail in
/// which the pool must serve every call again.
async fn survive(
    f: &Fixture,
    on: &'static TestServer,
    faults: usize,
    every: Duration,
    inject: impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) -> LoadReport {
    let stop = Arc::new(AtomicBool::new(false));
    let bound = f.pool.settings().pool_timeout + SLACK;
    let load = tokio::spawn({
        let (pool, stop) = (f.pool.clone(), stop.clone());
        async move { load(&pool, 16, stop, bound, seed()).await }
    });
    for _ in 0..faults {
        tokio::time::sleep(every).await;
        inject().await;
    }
    let last_fault = Instant::now();
    // The pool has this long to heal by itself; then every call must work.
    // Connects begun while the server was coming up may still end by
    // connect_timeout after it is back: allow that twice, plus a margin.
    let heal = f.pool.settings().connect_timeout * 2 + Duration::from_millis(500);
    tokio::time::sleep(heal + Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let report = load.await.unwrap();
    eprintln!("faults={faults} {report:?}");
    assert!(report.ok > 100, "too little work got done: {report:?}");
    let late = report.errors_after(last_fault + heal);
    assert!(
        late.is_empty(),
        "the pool did not recover by itself within {heal:?} of the last fault: {late:?}"
    );
    settled(&f.pool, SLACK).await;
    server_agrees(on, &f.app, &f.pool).await;
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_backends_terminated_mid_load() {
    let f = fixture("terminate", |b| {
        b.pool_size(4)
            .max_overflow(4)
            .connect_timeout(Duration::from_secs(1))
            .pool_timeout(Duration::from_secs(2))
    })
    .await;
    let app = f.app.clone();
    survive(&f, server(), 4, Duration::from_millis(300), move || {
        let app = app.clone();
        Box::pin(async move {
            server().terminate_app(&app).await.expect("terminate");
        })
    })
    .await;
}

/// A server of this test's own: stopping it must not disturb other tests
/// that share the per-binary server.
fn own_server() -> &'static TestServer {
    Box::leak(Box::new(
        TestServer::builder().start().expect("own server starts"),
    ))
}

async fn server_restarted_mid_load() {
    let own = blocking(own_server).await;
    let f = fixture_on(own, "restart", |b| {
        b.pool_size(4)
            .max_overflow(4)
            .pool_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(1))
    })
    .await;
    survive(&f, own, 2, Duration::from_millis(400), move || {
        Box::pin(async move { blocking(move || own.restart().expect("restart")).await })
    })
    .await;
}

async fn server_down_longer_than_pool_timeout_then_back() {
    let own = blocking(own_server).await;
    let pool_timeout = Duration::from_millis(300);
    let f = fixture_on(own, "down", |b| {
        b.pool_size(3)
            .max_overflow(2)
            .pool_timeout(pool_timeout)
            .connect_timeout(Duration::from_millis(500))
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (pool, stop) = (f.pool.clone(), stop.clone());
        // Fewer workers than the cap: a pool Timeout then means the
        // outage, not plain exhaustion on a busy machine.
        async move { load(&pool, 4, stop, pool_timeout + SLACK, seed()).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    blocking(move || own.stop().expect("stop")).await;
    // Down for five pool_timeouts: every call fails clearly and promptly.
    let down = Instant::now();
    let mut failures = 0;
    while down.elapsed() < pool_timeout * 5 {
        let started = Instant::now();
        let err = match sqlx::query("SELECT 1").execute(&f.pool).await {
            Ok(_) => panic!("a query succeeded while the server is down"),
            Err(sqlx::Error::Io(io)) if io.get_ref().is_some_and(|e| e.is::<Error>()) => {
                *io.into_inner().unwrap().downcast::<Error>().unwrap()
            }
            Err(other) => Error::Database(other),
        };
        assert!(
            started.elapsed() < pool_timeout + SLACK,
            "acquire hung: {:?}",
            started.elapsed()
        );
        // Pool errors, or the one query that finds its connection dead.
        assert!(
            matches!(
                err,
                Error::Timeout(_)
                    | Error::Connect { .. }
                    | Error::ConnectTimeout { .. }
                    | Error::Database(_)
            ),
            "unexpected error while the server is down: {err:?}"
        );
        let msg = err.to_string();
        assert!(!msg.contains(":postgres@"), "password in the error: {msg}");
        failures += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    blocking(move || own.start().expect("start")).await;
    let back = Instant::now();
    // Back: the pool serves again by itself.
    loop {
        match sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&f.pool)
            .await
        {
            Ok(1) => break,
            _ if back.elapsed() < SLACK => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the pool did not recover after the server came back: {other:?}"),
        }
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let report = load.await.unwrap();
    eprintln!("failures while down={failures} {report:?}");
    assert!(report.errors > 0, "the load should have seen the outage");
    // A short pool_timeout on a busy 2-core machine may still time out
    // now and then while connecting; anything else is a failure to heal.
    let late: Vec<_> = report
        .errors_after(healed)
        .into_iter()
        .filter(|e| !e.contains("QueuePool limit"))
        .collect();
    assert!(
        late.is_empty(),
        "errors long after the server came back: {late:?}"
    );
    settled(&f.pool, SLACK).await;
    server_agrees(own, &f.app, &f.pool).await;
}

/// The cases above run in one test: under nextest every test is its own
/// process, which starts its own server, and that start-up would dominate.
/// A failure names the case in its message and backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_then_down_for_longer_than_pool_timeout() {
    server_restarted_mid_load().await;
    server_down_longer_than_pool_timeout_then_back().await;
}
