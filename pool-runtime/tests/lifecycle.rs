//! Connection lifecycle, checked from a real PostgreSQL server's side:
//! hooks, `reset_statement` (tenant state never reaches the next caller),
//! `invalidate` / `invalidate_all`, `idle_timeout`, `overflow_linger` and
//! live `resize`. Connections are counted in `pg_stat_activity` by the
//! pool's `application_name`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pool_runtime::{Error, Hook, Pool, PoolBuilder, PoolSettings, PoolSettingsBuilder};
use pool_testkit::{TestDatabase, TestServer};
use sqlx::{Executor, Postgres};

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
    hooks: impl FnOnce(PoolBuilder<Postgres>) -> PoolBuilder<Postgres>,
) -> Fixture {
    let db = server().create_database().await.expect("test database");
    let app = format!("lc_{name}_{}", std::process::id());
    let settings = configure(
        PoolSettings::builder(db.url())
            .application_name(&app)
            .name(name),
    )
    .build()
    .expect("valid settings");
    let pool = hooks(Pool::builder(settings))
        .connect_lazy()
        .expect("pool builds");
    Fixture { _db: db, app, pool }
}

fn no_hooks(b: PoolBuilder<Postgres>) -> PoolBuilder<Postgres> {
    b
}

async fn server_count(app: &str) -> usize {
    server().count_connections(app).await.expect("count")
}

async fn server_pids(app: &str) -> HashSet<i32> {
    server()
        .pids(app)
        .await
        .expect("pids")
        .into_iter()
        .collect()
}

async fn eventually(app: &str, expected: usize) {
    pool_testkit::assert::eventually_connections(server(), app, expected, SETTLE).await;
}

/// Waits until the pool holds `n` idle connections (returns that run a
/// reset or a hook finish in the background).
async fn idle_eventually(pool: &Pool<Postgres>, n: u32) {
    let deadline = Instant::now() + SETTLE;
    while pool.status().checked_in != n {
        assert!(Instant::now() < deadline, "{}", pool.status());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn pid(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn after_connect_runs_once_on_every_new_connection() {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let f = fixture(
        "after_connect",
        |b| b.pool_size(3).max_overflow(0),
        move |b| {
            b.after_connect(move |conn, _info| {
                counter.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    conn.execute("SET search_path TO hooked, public").await?;
                    Ok(())
                })
            })
        },
    )
    .await;
    for _ in 0..3 {
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(f.pool.acquire().await.unwrap());
        }
        for conn in &mut held {
            let path: String = sqlx::query_scalar("SHOW search_path")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(path, "hooked, public");
        }
    }
    assert_eq!(server_count(&f.app).await, 3);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "once per connection, not per checkout"
    );
}

/// SQLAlchemy's test_connect_event_fails_invalidates: the checkout fails
/// at once with the hook's own error, and its slot comes back (with
/// `pool_size` 1, a lost slot would make the second checkout time out).
#[tokio::test]
async fn a_failing_after_connect_fails_the_checkout_at_once_and_gives_its_slot_back() {
    let f = fixture(
        "after_connect_fails",
        |b| {
            b.pool_size(1)
                .max_overflow(0)
                .pool_timeout(Duration::from_secs(20))
        },
        |b| {
            b.after_connect(|conn, _info| {
                Box::pin(async move {
                    conn.execute("SET ROLE no_such_role_for_this_test").await?;
                    Ok(())
                })
            })
        },
    )
    .await;
    for attempt in 0..2 {
        let start = Instant::now();
        let error = f.pool.acquire().await.expect_err("the hook fails");
        let waited = start.elapsed();
        match &error {
            Error::Hook { hook, pool, .. } => {
                assert_eq!(
                    (*hook, pool.as_str()),
                    (Hook::AfterConnect, "after_connect_fails")
                );
            }
            other => panic!("attempt {attempt}: expected a hook error, got {other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.contains("after_connect") && text.contains("no_such_role_for_this_test"),
            "{text}"
        );
        // Not a wait for pool_timeout (20 s): it fails as the hook does.
        assert!(
            waited < Duration::from_secs(10),
            "attempt {attempt} took {waited:?}"
        );
    }
    eventually(&f.app, 0).await;
    let s = f.pool.status();
    assert_eq!((s.size, s.totals.hook_failures), (0, 2), "{s}");
}

#[tokio::test]
async fn a_before_checkout_refusal_closes_that_connection_and_takes_another() {
    let refuse_next = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&refuse_next);
    let f = fixture(
        "before_checkout",
        |b| b.pool_size(1).max_overflow(0),
        move |b| {
            b.before_checkout(move |_conn, info| {
                let refuse = flag.swap(false, Ordering::SeqCst);
                assert!(info.age < Duration::from_secs(60));
                Box::pin(async move { Ok(!refuse) })
            })
        },
    )
    .await;
    let first = {
        let mut conn = f.pool.acquire().await.unwrap();
        pid(&mut conn).await
    };
    refuse_next.store(true, Ordering::SeqCst);
    let second = {
        let mut conn = f.pool.acquire().await.unwrap();
        pid(&mut conn).await
    };
    assert_ne!(first, second, "the refused connection was not handed out");
    pool_testkit::assert::pids_gone(server(), &[first], SETTLE).await;
    assert_eq!(server_pids(&f.app).await, HashSet::from([second]));
    assert_eq!(f.pool.status().totals.closed.hook_rejected, 1);
}

#[tokio::test]
async fn a_before_checkout_that_hangs_is_cut_at_network_timeout() {
    let f = fixture(
        "hook_hangs",
        |b| {
            b.pool_size(1)
                .max_overflow(0)
                .network_timeout(Duration::from_millis(300))
        },
        |b| {
            b.before_checkout(|_conn, _info| {
                Box::pin(async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(true)
                })
            })
        },
    )
    .await;
    drop(f.pool.acquire().await.unwrap());
    // The idle one's hook hangs: it is closed and a new one opened.
    drop(
        f.pool
            .acquire()
            .await
            .expect("a fresh connection after the hook timed out"),
    );
    let s = f.pool.status();
    assert_eq!((s.totals.hook_failures, s.totals.opened), (1, 2), "{s}");
    eventually(&f.app, 1).await;
}

#[tokio::test]
async fn after_checkin_may_close_the_returned_connection() {
    let f = fixture(
        "after_checkin",
        |b| b.pool_size(2).max_overflow(0),
        |b| {
            b.after_checkin(|conn, _info| {
                Box::pin(async move {
                    // Keep connections whose session is clean only.
                    let temp: i64 = sqlx::query_scalar(
                        "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()",
                    )
                    .fetch_one(&mut *conn)
                    .await?;
                    Ok(temp == 0)
                })
            })
        },
    )
    .await;
    let clean = {
        let mut conn = f.pool.acquire().await.unwrap();
        pid(&mut conn).await
    };
    // The hook runs in the background after the return.
    idle_eventually(&f.pool, 1).await;
    let dirty = {
        let mut a = f.pool.acquire().await.unwrap();
        let mut b = f.pool.acquire().await.unwrap();
        let dirty = pid(&mut b).await;
        b.execute("CREATE TEMP TABLE scratch (x int)")
            .await
            .unwrap();
        assert_eq!(pid(&mut a).await, clean);
        dirty
    };
    pool_testkit::assert::pids_gone(server(), &[dirty], SETTLE).await;
    assert_eq!(server_pids(&f.app).await, HashSet::from([clean]));
    assert_eq!(f.pool.status().totals.closed.hook_rejected, 1);
}

/// Each task reads the tenant setting it finds, then sets its own. With
/// `reset_statement` it must always find none.
async fn tenants_seen_by_others(reset: Option<&str>) -> usize {
    let name = if reset.is_some() {
        "tenants_reset"
    } else {
        "tenants_leak"
    };
    let f = fixture(
        name,
        |b| {
            let b = b.pool_size(3).max_overflow(0);
            match reset {
                Some(statement) => b.reset_statement(statement),
                None => b,
            }
        },
        no_hooks,
    )
    .await;
    let leaks = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..24)
        .map(|tenant| {
            let pool = f.pool.clone();
            let leaks = Arc::clone(&leaks);
            tokio::spawn(async move {
                for _ in 0..15 {
                    let mut conn = pool.acquire().await.unwrap();
                    let found: Option<String> =
                        sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
                            .fetch_one(&mut *conn)
                            .await
                            .unwrap();
                    if found.is_some_and(|t| !t.is_empty()) {
                        leaks.fetch_add(1, Ordering::SeqCst);
                    }
                    let own: String =
                        sqlx::query_scalar("SELECT set_config('app.tenant_id', $1, false)")
                            .bind(format!("tenant-{tenant}"))
                            .fetch_one(&mut *conn)
                            .await
                            .unwrap();
                    assert_eq!(own, format!("tenant-{tenant}"));
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        server_count(&f.app).await,
        3,
        "the same 3 connections served everyone"
    );
    leaks.load(Ordering::SeqCst)
}

#[tokio::test]
async fn tenant_state_never_reaches_the_next_caller() {
    // Without a reset the setting leaks (the test can fail) ...
    assert!(
        tenants_seen_by_others(None).await > 0,
        "the control run must leak"
    );
    // ... with one it never does, under 24 tasks on 3 connections.
    assert_eq!(tenants_seen_by_others(Some("RESET ALL")).await, 0);
}

#[tokio::test]
async fn invalidate_closes_that_connection_on_return() {
    let f = fixture("invalidate", |b| b.pool_size(2).max_overflow(0), no_hooks).await;
    let mut conn = f.pool.acquire().await.unwrap();
    let gone = pid(&mut conn).await;
    conn.invalidate();
    drop(conn);
    pool_testkit::assert::pids_gone(server(), &[gone], SETTLE).await;
    assert_eq!(f.pool.status().totals.closed.invalidated, 1);
}

#[tokio::test]
async fn invalidate_all_replaces_every_connection_made_before_it() {
    let f = fixture(
        "invalidate_all",
        |b| b.pool_size(3).max_overflow(0),
        no_hooks,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(f.pool.acquire().await.unwrap());
    }
    let mut kept = held.pop().unwrap();
    drop(held);
    let before = server_pids(&f.app).await;
    assert_eq!(before.len(), 3);
    f.pool.invalidate_all();
    // The two idle ones close at once; the held one keeps working ...
    eventually(&f.app, 1).await;
    let kept_pid = pid(&mut kept).await;
    drop(kept);
    // ... and closes when it comes back.
    pool_testkit::assert::pids_gone(server(), &[kept_pid], SETTLE).await;
    let mut fresh = f.pool.acquire().await.unwrap();
    assert!(
        !before.contains(&pid(&mut fresh).await),
        "a connection from after the call"
    );
    assert_eq!(f.pool.status().totals.closed.invalidated, 3);
}

#[tokio::test]
async fn idle_timeout_closes_idle_connections_down_to_min_idle() {
    let f = fixture(
        "idle_timeout",
        |b| {
            b.pool_size(4)
                .max_overflow(0)
                .min_idle(1)
                .idle_timeout(Some(Duration::from_millis(300)))
        },
        no_hooks,
    )
    .await;
    let held: Vec<_> = futures_util::future::try_join_all((0..4).map(|_| f.pool.acquire()))
        .await
        .unwrap();
    assert_eq!(server_count(&f.app).await, 4);
    drop(held);
    eventually(&f.app, 1).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(server_count(&f.app).await, 1, "never below min_idle");
    assert_eq!(f.pool.status().totals.closed.idle_timeout, 3);
}

#[tokio::test]
async fn without_idle_timeout_pool_size_stays_open() {
    let f = fixture(
        "no_idle_timeout",
        |b| b.pool_size(4).max_overflow(0),
        no_hooks,
    )
    .await;
    let held: Vec<_> = futures_util::future::try_join_all((0..4).map(|_| f.pool.acquire()))
        .await
        .unwrap();
    drop(held);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server_count(&f.app).await, 4, "QueuePool keeps pool_size");
}

#[tokio::test]
async fn overflow_lingers_for_reuse_then_closes() {
    let f = fixture(
        "linger",
        |b| {
            b.pool_size(1)
                .max_overflow(3)
                .overflow_linger(Some(Duration::from_millis(800)))
        },
        no_hooks,
    )
    .await;
    let burst = || futures_util::future::try_join_all((0..4).map(|_| f.pool.acquire()));
    drop(burst().await.unwrap());
    assert_eq!(
        server_count(&f.app).await,
        4,
        "overflow lingers after return"
    );
    // A second burst within the linger reuses them: nothing new opened.
    drop(burst().await.unwrap());
    assert_eq!(f.pool.status().totals.opened, 4);
    eventually(&f.app, 1).await;
    assert_eq!(f.pool.status().totals.closed.idle_timeout, 3);
}

#[tokio::test]
async fn resize_down_closes_extras_as_they_come_back() {
    let f = fixture("resize_down", |b| b.pool_size(4).max_overflow(0), no_hooks).await;
    let held: Vec<_> = futures_util::future::try_join_all((0..4).map(|_| f.pool.acquire()))
        .await
        .unwrap();
    f.pool.resize(1, 0).unwrap();
    assert_eq!(server_count(&f.app).await, 4, "holders are not interrupted");
    drop(held);
    eventually(&f.app, 1).await;
    let s = f.pool.status();
    assert_eq!((s.pool_size, s.size), (1, 1), "{s}");
    // The new cap holds: a second caller waits for the first.
    let _one = f.pool.acquire().await.unwrap();
    let error = tokio::time::timeout(Duration::from_secs(5), async {
        let settings_timeout = Duration::from_millis(200);
        tokio::time::timeout(settings_timeout, f.pool.acquire()).await
    })
    .await
    .unwrap();
    assert!(error.is_err(), "a second checkout must wait under size 1");
}

#[tokio::test]
async fn resize_up_serves_a_waiting_caller_at_once() {
    let f = fixture(
        "resize_up",
        |b| {
            b.pool_size(1)
                .max_overflow(0)
                .pool_timeout(Duration::from_secs(20))
        },
        no_hooks,
    )
    .await;
    let _held = f.pool.acquire().await.unwrap();
    let pool = f.pool.clone();
    let waiter = tokio::spawn(async move { pool.acquire().await.map(drop) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.pool.status().waiting, 1);
    f.pool.resize(2, 0).unwrap();
    tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("served long before pool_timeout")
        .unwrap()
        .expect("the waiter got a connection");
    assert_eq!(server_count(&f.app).await, 2);
}

#[tokio::test]
async fn resize_is_checked_like_the_settings() {
    let f = fixture("resize_bad", |b| b.pool_size(2).min_idle(2), no_hooks).await;
    let error = f
        .pool
        .resize(1, 0)
        .expect_err("min_idle would exceed pool_size");
    let text = error.to_string();
    assert!(
        text.contains("min_idle (2) exceeds pool_size (1)"),
        "{text}"
    );
    assert_eq!(f.pool.status().pool_size, 2, "unchanged");
}

/// The data-like parts come from the environment through the derive; the
/// hooks go on the loaded config's builder.
#[tokio::test]
async fn a_derived_config_takes_hooks_and_lifecycle_settings_from_env() {
    use pool_runtime::PoolConfig;
    use pool_runtime::config::{EnvSource, StandardPoolConfig};

    let db = server().create_database().await.expect("test database");
    let app = format!("lc_derived_{}", std::process::id());
    let source = EnvSource::from_pairs([
        ("DATABASE_URL", db.url()),
        ("DB_APPLICATION_NAME", app.clone()),
        ("DB_POOL_SIZE", "2".to_owned()),
        ("DB_RESET_STATEMENT", "RESET ALL".to_owned()),
        ("DB_IDLE_TIMEOUT", "250ms".to_owned()),
        ("DB_OVERFLOW_LINGER", "2s".to_owned()),
    ]);
    let loaded = StandardPoolConfig::load(&source).expect("config loads");
    let settings = loaded.settings();
    assert_eq!(settings.reset_statement.as_deref(), Some("RESET ALL"));
    assert_eq!(settings.idle_timeout, Some(Duration::from_millis(250)));
    assert_eq!(settings.overflow_linger, Some(Duration::from_secs(2)));
    let pool = loaded
        .builder()
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("SET search_path TO from_the_hook").await?;
                Ok(())
            })
        })
        .connect()
        .await
        .expect("pool connects");
    let path: String = sqlx::query_scalar("SHOW search_path")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(path, "from_the_hook");
    // idle_timeout (min_idle 0): the idle connection goes.
    eventually(&app, 0).await;
    let bad = StandardPoolConfig::load(&EnvSource::from_pairs([
        ("DATABASE_URL", db.url()),
        ("DB_IDLE_TIMEOUT", "soon".to_owned()),
    ]))
    .expect_err("a bad duration");
    assert!(bad.to_string().contains("DB_IDLE_TIMEOUT"), "{bad}");
}
