//! A black-holed network: the proxy stops forwarding without closing
//! anything, so nothing fails by itself. Every network step of the pool
//! must still end by its own timeout: connect by `connect_timeout`; ping,
//! reset and close by `network_timeout`; acquire as a whole by
//! `pool_timeout`. Each bound is checked with the other timeouts set far
//! larger (30 s), so only the one under test can end the wait, and with a
//! generous slack: a hang check, not a speed check.

mod faults_common;

use std::time::{Duration, Instant};

use faults_common::*;
use pool_runtime::Error;
use pool_testkit::ProxyMode;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(30);
/// pool_timeout where a test only needs it finite and below LONG (setup
/// connects on a loaded CI machine may take a while).
const POOL: Duration = Duration::from_secs(3);

async fn timed<T>(fut: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = fut.await;
    (out, start.elapsed())
}

/// The network comes back, the pool serves and settles, the server agrees.
async fn heals(f: &Fixture) {
    f.proxy().set_mode(ProxyMode::Forward);
    // Connects held by the black hole finish first (they hold permits), so
    // a short pool_timeout may still expire once or twice: retry, bounded.
    let healed_by = Instant::now() + SLACK;
    loop {
        match sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&f.pool)
            .await
        {
            Ok(one) => break assert_eq!(one, 1),
            Err(e) => assert!(
                Instant::now() < healed_by,
                "no service {SLACK:?} after the fault: {e}"
            ),
        }
    }
    settled(&f.pool, SLACK).await;
    server_agrees(server(), &f.app, &f.pool).await;
}

async fn connect_is_bounded_by_connect_timeout() {
    let f = fixture_via_proxy("bh_connect", |b| {
        b.connect_timeout(SHORT)
            .network_timeout(LONG)
            .pool_timeout(LONG)
    })
    .await;
    f.proxy().set_mode(ProxyMode::Blackhole);
    let (result, took) = timed(f.pool.acquire()).await;
    let err = result.expect_err("nothing can connect through a black hole");
    assert!(
        matches!(err, Error::ConnectTimeout { timeout, .. } if timeout == SHORT),
        "{err:?}"
    );
    assert!(
        took < SHORT + SLACK,
        "connect took {took:?} with connect_timeout {SHORT:?}"
    );
    assert!(err.to_string().contains("connect_timeout"), "{err}");
    let s = settled(&f.pool, SLACK).await;
    assert_eq!((s.size, s.totals.connect_errors), (0, 1), "{s:?}");
    heals(&f).await;
}

/// `Pool::connect`'s first connection ends by its own `connect_timeout`,
/// with that error, even when `pool_timeout` is no longer (the race: both
/// 300 ms). A start-up bound of the longer of the two let the acquire's
/// deadline win and report a QueuePool timeout on an empty pool instead.
async fn first_connect_reports_connect_timeout() {
    let f = fixture_via_proxy("bh_first", |b| b.connect_timeout(SHORT).pool_timeout(SHORT)).await;
    f.proxy().set_mode(ProxyMode::Blackhole);
    let (result, took) = timed(pool_runtime::Pool::<sqlx::Postgres>::connect(
        f.pool.settings().clone(),
    ))
    .await;
    let err = result.expect_err("nothing can connect through a black hole");
    assert!(
        matches!(err, Error::ConnectTimeout { timeout, .. } if timeout == SHORT),
        "{err:?}"
    );
    assert!(took < SHORT * 2 + SLACK, "start took {took:?}");
    heals(&f).await;
}

async fn ping_is_bounded_by_network_timeout() {
    let f = fixture_via_proxy("bh_ping", |b| {
        b.pool_size(1)
            .pre_ping_bypass(Duration::ZERO)
            .network_timeout(SHORT)
            .connect_timeout(SHORT)
            .pool_timeout(LONG)
    })
    .await;
    drop(f.pool.acquire().await.expect("first connection"));
    f.proxy().set_mode(ProxyMode::Blackhole);
    // The idle connection's ping hangs until network_timeout; it is then
    // replaced, and the replacement's connect hangs until connect_timeout.
    let (result, took) = timed(f.pool.acquire()).await;
    let err = result.expect_err("black hole");
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(
        took < SHORT * 2 + SLACK,
        "ping + connect took {took:?}, bounds {SHORT:?} each"
    );
    let s = settled(&f.pool, SLACK).await;
    assert_eq!(
        (s.totals.ping_failures, s.totals.closed.ping_failed, s.size),
        (1, 1, 0),
        "{s:?}"
    );
    heals(&f).await;
}

async fn reset_is_bounded_by_network_timeout() {
    let f = fixture_via_proxy("bh_reset", |b| {
        b.pool_size(2).network_timeout(SHORT).pool_timeout(LONG)
    })
    .await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    let mut tx = f.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    f.proxy().set_mode(ProxyMode::Blackhole);
    let dropped = Instant::now();
    drop(tx); // the rollback on return can't reach the server
    let s = settled(&f.pool, SHORT + SLACK).await;
    assert!(dropped.elapsed() < SHORT + SLACK);
    assert_eq!(
        s.totals.closed.reset_failed, 1,
        "a connection whose reset timed out is closed: {s:?}"
    );
    heals(&f).await;
    assert_eq!(
        committed_rows(&f.db, "t").await,
        0,
        "the unfinished transaction must not commit"
    );
}

async fn close_is_bounded_by_network_timeout_and_pool_timeout() {
    let f = fixture_via_proxy("bh_close", |b| {
        b.pool_size(3).network_timeout(SHORT).pool_timeout(POOL)
    })
    .await;
    let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| f.pool.acquire())).await;
    let mut held: Vec<_> = held.into_iter().map(|c| c.expect("connection")).collect();
    let kept = held.pop().unwrap();
    drop(held); // two idle, one still checked out
    f.proxy().set_mode(ProxyMode::Blackhole);
    // Closing the idle ones is bounded by network_timeout; waiting for the
    // checked-out one by pool_timeout.
    let ((), took) = timed(f.pool.close()).await;
    assert!(took < SHORT + POOL + SLACK, "close took {took:?}");
    drop(kept); // closed on return, in the background, bounded too
    let s = settled(&f.pool, SHORT + SLACK).await;
    assert_eq!((s.size, s.totals.closed.pool_closed), (0, 3), "{s:?}");
    assert!(
        f.pool
            .acquire()
            .await
            .unwrap_err()
            .to_string()
            .contains("closed")
    );
    f.proxy().set_mode(ProxyMode::Forward);
    pool_testkit::assert::eventually_connections(server(), &f.app, 0, SLACK).await;
}

async fn acquire_never_waits_beyond_pool_timeout() {
    let f = fixture_via_proxy("bh_acquire", |b| {
        b.pool_size(2)
            .max_overflow(1)
            .pre_ping_bypass(Duration::ZERO)
            .pool_timeout(SHORT)
            .connect_timeout(LONG)
            .network_timeout(LONG)
    })
    .await;
    drop(f.pool.acquire().await.expect("first connection")); // one idle, to be pinged
    f.proxy().set_mode(ProxyMode::Blackhole);
    // More callers than capacity: some ping, some connect, some only wait.
    let (results, took) = timed(futures_util::future::join_all(
        (0..8).map(|_| timed(f.pool.acquire())),
    ))
    .await;
    for (result, one) in &results {
        let err = result.as_ref().expect_err("black hole");
        assert!(err.is_timeout(), "{err:?}");
        assert!(
            *one < SHORT + SLACK,
            "an acquire waited {one:?} with pool_timeout {SHORT:?}"
        );
    }
    assert!(took < SHORT + SLACK);
    let s = f.pool.status();
    assert_eq!(s.waiting, 0, "no caller may be left waiting: {s:?}");
    assert_eq!(s.totals.timeouts, 8, "{s:?}");
    // The connects still hang (connect_timeout is long); once the network is
    // back they finish, and their connections go to the pool, not astray.
    heals(&f).await;
}

/// The cases above run in one test: under nextest every test is its own
/// process, which starts its own server, and that start-up would dominate.
/// A failure names the case in its message and backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_network_step_is_bounded() {
    connect_is_bounded_by_connect_timeout().await;
    first_connect_reports_connect_timeout().await;
    ping_is_bounded_by_network_timeout().await;
    reset_is_bounded_by_network_timeout().await;
    close_is_bounded_by_network_timeout_and_pool_timeout().await;
    acquire_never_waits_beyond_pool_timeout().await;
}
