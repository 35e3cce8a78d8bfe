//! QueuePool and NullPool semantics checked from a real PostgreSQL server's
//! side: connections are counted in `pg_stat_activity` by the pool's
//! `application_name`, never taken from the pool's own counters alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use pool_runtime::{Error, Pool, PoolClass, PoolSettings, PoolSettingsBuilder, ResetOnReturn};
use pool_testkit::{TestDatabase, TestServer};
use sqlx::{Connection, Postgres};

/// How long the server may take to show a close the pool already booked.
const SETTLE: Duration = Duration::from_secs(5);

fn server() -> &'static TestServer {
    pool_testkit::shared_server()
}

struct Fixture {
    _db: TestDatabase,
    app: String,
    pool: Pool<Postgres>,
}

async fn fixture(
    name: &str,
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> Fixture {
    let db = server().create_database().await.expect("test database");
    let app = format!("rt_{name}_{}", std::process::id());
    let settings = configure(
        PoolSettings::builder(db.url())
            .application_name(&app)
            .name(name),
    )
    .build()
    .expect("valid settings");
    let pool = Pool::connect(settings).await.expect("pool connects");
    Fixture { _db: db, app, pool }
}

async fn server_count(app: &str) -> usize {
    server()
        .count_connections(app)
        .await
        .expect("count connections")
}

async fn backend_pid(pool: &Pool<Postgres>) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn eventually(app: &str, expected: usize) {
    pool_testkit::assert::eventually_connections(server(), app, expected, SETTLE).await;
}

#[tokio::test]
async fn overflow_opens_under_load_and_closes_on_return() {
    let f = fixture("overflow", |b| b.pool_size(2).max_overflow(3)).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(f.pool.acquire().await.unwrap());
    }
    assert_eq!(server_count(&f.app).await, 5);
    drop(held);
    eventually(&f.app, 2).await;
    let s = f.pool.status();
    assert_eq!(
        (s.size, s.checked_in, s.totals.closed.overflow),
        (2, 2, 3),
        "{s}"
    );
}

#[tokio::test]
async fn the_cap_holds_under_200_concurrent_tasks() {
    let f = fixture("cap", |b| b.pool_size(4).max_overflow(4)).await;
    let running = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = tokio::spawn({
        let (app, running, peak) = (f.app.clone(), running.clone(), peak.clone());
        async move {
            while running.load(Ordering::SeqCst) {
                peak.fetch_max(server_count(&app).await, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let pool = f.pool.clone();
            tokio::spawn(async move {
                sqlx::query("SELECT pg_sleep(0.02)")
                    .execute(&pool)
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    running.store(false, Ordering::SeqCst);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 8, "server saw {peak} connections, cap is 8");
    let opened = f.pool.status().totals.opened;
    assert!(
        opened > 4,
        "load should have opened overflow connections, opened {opened}"
    );
    eventually(&f.app, 4).await;
}

#[tokio::test]
async fn recycled_connections_get_a_new_backend() {
    let f = fixture("recycle", |b| {
        b.pool_size(1)
            .max_overflow(0)
            .pool_recycle(Some(Duration::from_millis(300)))
    })
    .await;
    let first = backend_pid(&f.pool).await;
    assert_eq!(
        backend_pid(&f.pool).await,
        first,
        "young connection is reused"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = backend_pid(&f.pool).await;
    assert_ne!(first, second, "an old connection must be replaced");
    eventually(&f.app, 1).await;
    assert!(f.pool.status().totals.closed.recycle >= 1);
}

#[tokio::test]
async fn pre_ping_replaces_a_killed_connection_without_an_error() {
    let f = fixture("preping", |b| {
        b.pool_size(1)
            .max_overflow(0)
            .pre_ping_bypass(Duration::ZERO)
    })
    .await;
    let first = backend_pid(&f.pool).await;
    server().terminate(first).await.unwrap();
    // The caller sees no error: the dead idle connection is replaced.
    let second = backend_pid(&f.pool).await;
    assert_ne!(first, second);
    let s = f.pool.status();
    assert_eq!(
        (s.totals.ping_failures, s.totals.closed.ping_failed),
        (1, 1),
        "{s:?}"
    );
    eventually(&f.app, 1).await;
}

#[tokio::test]
async fn without_pre_ping_a_killed_connection_surfaces_once() {
    let f = fixture("noping", |b| {
        b.pool_size(1).max_overflow(0).pool_pre_ping(false)
    })
    .await;
    let first = backend_pid(&f.pool).await;
    server().terminate(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(sqlx::query("SELECT 1").execute(&f.pool).await.is_err());
}

#[tokio::test]
async fn null_pool_opens_and_closes_one_connection_per_checkout() {
    let f = fixture("null", |b| b.pool_class(PoolClass::Null)).await;
    eventually(&f.app, 0).await;
    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut conn = f.pool.acquire().await.unwrap();
        assert_eq!(server_count(&f.app).await, 1);
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        pids.push(pid);
        drop(conn);
        eventually(&f.app, 0).await;
    }
    pids.dedup();
    assert_eq!(
        pids.len(),
        3,
        "every checkout gets its own backend: {pids:?}"
    );
}

#[tokio::test]
async fn a_transaction_left_open_is_rolled_back_on_return() {
    let f = fixture("txreset", |b| b.pool_size(1).max_overflow(0)).await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    {
        let mut conn = f.pool.acquire().await.unwrap();
        let mut tx = (*conn).begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        // Neither committed nor rolled back, and never dropped.
        std::mem::forget(tx);
    }
    {
        let mut tx = f.pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (2)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let states = server().connections(&f.app).await.unwrap();
    assert!(
        states
            .iter()
            .all(|b| b.state.as_deref() != Some("idle in transaction")),
        "{states:?}"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing uncommitted may survive a return");
}

#[tokio::test]
async fn raw_begin_is_rolled_back_with_rollback_always() {
    let f = fixture("rawbegin", |b| {
        b.pool_size(1)
            .max_overflow(0)
            .reset_on_return(ResetOnReturn::RollbackAlways)
    })
    .await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    {
        let mut conn = f.pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn min_idle_connections_are_opened_at_start() {
    let f = fixture("minidle", |b| b.pool_size(5).min_idle(3)).await;
    assert_eq!(server_count(&f.app).await, 3);
    assert_eq!(f.pool.status().checked_in, 3);
}

#[tokio::test]
async fn lifo_hands_out_the_most_recently_returned_connection() {
    let f = fixture("lifo", |b| {
        b.pool_size(2).max_overflow(0).pool_use_lifo(true)
    })
    .await;
    let mut a = f.pool.acquire().await.unwrap();
    let mut b = f.pool.acquire().await.unwrap();
    let pid_a: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *a)
        .await
        .unwrap();
    let pid_b: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *b)
        .await
        .unwrap();
    drop(a);
    drop(b);
    assert_eq!(backend_pid(&f.pool).await, pid_b);
    assert_ne!(pid_a, pid_b);
}

#[tokio::test]
async fn connection_options_reach_the_server() {
    let f = fixture("options", |b| {
        b.statement_timeout(Some(Duration::from_millis(50)))
    })
    .await;
    let timeout: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    assert_eq!(timeout, "50ms");
    let err = sqlx::query("SELECT pg_sleep(1)")
        .execute(&f.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("statement timeout"), "{err}");
    let status = f.pool.status();
    let limits = status.server.expect("server limits read on first connect");
    assert!(limits.max_connections.is_some_and(|n| n > 0), "{limits:?}");
}

#[tokio::test]
async fn a_dead_server_is_a_clear_error_without_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/app");
    let settings = PoolSettings::builder(url)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = Pool::<Postgres>::connect(settings).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "could not connect to postgres://app:***@127.0.0.1:{port}/app"
        )),
        "{msg}"
    );
    assert!(
        !msg.contains("hunter2") && !format!("{err:?}").contains("hunter2"),
        "{msg}"
    );
}

#[tokio::test]
async fn exhaustion_times_out_then_serves_again() {
    let f = fixture("exhaust", |b| {
        // Long enough for the overflow connect on a loaded CI machine.
        b.pool_size(1)
            .max_overflow(1)
            .pool_timeout(Duration::from_secs(1))
    })
    .await;
    let a = f.pool.acquire().await.unwrap();
    let b = f.pool.acquire().await.unwrap();
    let err = f.pool.acquire().await.unwrap_err();
    assert!(
        err.to_string()
            .contains("QueuePool limit of size 1 overflow 1 reached"),
        "{err}"
    );
    assert_eq!(server_count(&f.app).await, 2);
    drop(a);
    drop(b);
    assert!(
        backend_pid(&f.pool).await > 0,
        "serves again once connections return"
    );
    eventually(&f.app, 1).await;
}
