//! Pool semantics on an embedded SQLite file: counts, timeouts, caps,
//! cancellation, transactions and the `Executor` impl. The same semantics
//! are checked from a PostgreSQL server's side in `postgres_pool.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pool_runtime::{Error, Pool, PoolClass, PoolSettings, ResetOnReturn, SqliteSettings};
use sqlx::Sqlite;

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

fn db() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    Db { _dir: dir, url }
}

/// One QueuePool over the file: the semantics under test here. A file
/// database is split into one writer and readers by default; that split is
/// tested in `sqlite_writer.rs`.
fn unsplit() -> SqliteSettings {
    SqliteSettings {
        single_writer: false,
        ..SqliteSettings::default()
    }
}

async fn pool(db: &Db, size: u32, overflow: u32, timeout_ms: u64) -> Pool<Sqlite> {
    let settings = PoolSettings::builder(&db.url)
        .sqlite(unsplit())
        .pool_size(size)
        .max_overflow(overflow)
        .pool_timeout(Duration::from_millis(timeout_ms))
        .build()
        .unwrap();
    Pool::connect(settings).await.expect("connect")
}

/// The status once `size <= size` (or after 10 s, for the caller to
/// assert on): idle connections kept for a queue of callers are closed by
/// the pool's maintenance tick (1 s) once the queue is empty.
async fn settle_to(pool: &Pool<Sqlite>, size: u32) -> pool_runtime::Status {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = pool.status();
        if (s.size <= size && s.connecting == 0) || std::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn overflow_connections_close_on_return_and_size_stays() {
    let db = db();
    let pool = pool(&db, 2, 3, 2_000).await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(pool.acquire().await.unwrap());
    }
    let s = pool.status();
    assert_eq!(
        (s.size, s.checked_out, s.overflow, s.checked_in),
        (5, 5, 3, 0),
        "{s}"
    );
    drop(held);
    let s = pool.status();
    assert_eq!(
        (s.size, s.checked_in, s.checked_out, s.overflow),
        (2, 2, 0, 0),
        "{s}"
    );
    assert_eq!(s.totals.closed.overflow, 3, "{s:?}");
}

#[tokio::test]
async fn timeout_error_names_counts_and_the_oldest_holder() {
    let db = db();
    let pool = pool(&db, 1, 1, 200).await;
    let holder_line = line!() + 1;
    let _a = pool.acquire().await.unwrap();
    let _b = pool.acquire().await.unwrap();
    let err = pool.acquire().await.expect_err("pool is exhausted");
    assert!(err.is_timeout(), "{err}");
    let msg = err.to_string();
    for part in [
        "QueuePool limit of size 1 overflow 1 reached",
        "pool_timeout 0.20s",
        "2 checked out",
        "0 idle",
        "oldest connection held for",
        "sqlite_pool.rs:",
    ] {
        assert!(msg.contains(part), "missing {part:?} in: {msg}");
    }
    // The oldest holder is the first acquire.
    assert!(
        msg.contains(&format!("sqlite_pool.rs:{holder_line}:")),
        "{msg}"
    );
    assert_eq!(pool.status().totals.timeouts, 1);
}

#[tokio::test]
async fn the_cap_holds_under_200_concurrent_tasks() {
    let db = db();
    let pool = pool(&db, 3, 4, 30_000).await;
    let in_use = Arc::new(AtomicU32::new(0));
    let peak = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for i in 0..200u64 {
        let (pool, in_use, peak) = (pool.clone(), in_use.clone(), peak.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let now = in_use.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let s = pool.status();
            assert!(s.size <= 7, "size {} over cap: {s}", s.size);
            sqlx::query("SELECT ?")
                .bind(i as i64)
                .execute(&mut *conn)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(i % 3)).await;
            in_use.fetch_sub(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 7);
    assert_eq!(peak.load(Ordering::SeqCst), 7, "load should reach the cap");
    let s = pool.status();
    assert_eq!((s.checked_out, s.waiting, s.connecting), (0, 0, 0), "{s}");
    assert_eq!(s.totals.acquired, 201, "200 tasks + the connect check");
    // Connections kept for the queue go within a maintenance tick.
    let s = settle_to(&pool, 3).await;
    assert!(s.size <= 3, "{s}");
}

#[tokio::test]
async fn connections_returned_while_callers_wait_go_to_them_not_to_the_bin() {
    let db = db();
    let pool = pool(&db, 1, 3, 10_000).await;
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| pool.acquire())).await;
    let waiters: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut c = pool.acquire().await.unwrap();
                sqlx::query("SELECT 1").execute(&mut *c).await.unwrap();
            })
        })
        .collect();
    while pool.status().waiting < 8 {
        tokio::task::yield_now().await;
    }
    drop(held);
    for w in waiters {
        w.await.unwrap();
    }
    // The four connections served all eight waiters: none was closed as
    // overflow and reopened while callers were queued for it.
    assert_eq!(pool.status().totals.opened, 4, "{:?}", pool.status().totals);
    // Once nobody waits, the extras go within a maintenance tick.
    let s = settle_to(&pool, 1).await;
    assert_eq!((s.size, s.totals.closed.overflow), (1, 3), "{s}");
}

#[tokio::test]
async fn waiters_are_served_in_arrival_order() {
    let db = db();
    let pool = pool(&db, 1, 0, 10_000).await;
    let first = pool.acquire().await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (task_pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _c = task_pool.acquire().await.unwrap();
            order.lock().unwrap().push(i);
        }));
        // Let task i queue before task i + 1 starts.
        while pool.status().waiting < i + 1 {
            tokio::task::yield_now().await;
        }
    }
    drop(first);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn dropped_acquires_leak_nothing() {
    let db = db();
    let pool = pool(&db, 2, 2, 5_000).await;
    let mut tasks = Vec::new();
    for i in 0..300u64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let work = async {
                let mut conn = pool.acquire().await?;
                sqlx::query("SELECT 1").execute(&mut *conn).await?;
                tokio::time::sleep(Duration::from_micros(200 * (i % 7))).await;
                Ok::<_, Error>(())
            };
            // Cut short at varied points: while waiting, connecting or holding.
            let _ = tokio::time::timeout(Duration::from_micros(100 * (i % 13)), work).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Connects started by cancelled callers finish in the background, and
    // connections kept for waiters are closed by the next maintenance tick.
    let s = settle_to(&pool, 2).await;
    assert_eq!((s.checked_out, s.waiting, s.connecting), (0, 0, 0), "{s}");
    assert!(s.size <= 2, "{s}");
    // Every permit came back: the full capacity can be checked out again.
    let all: Vec<_> = futures_util::future::join_all((0..4).map(|_| pool.acquire())).await;
    assert!(all.iter().all(Result::is_ok));
}

#[tokio::test]
async fn null_pool_opens_and_closes_per_checkout() {
    let db = db();
    let settings = PoolSettings::builder(&db.url)
        .sqlite(unsplit())
        .pool_class(PoolClass::Null)
        .build()
        .unwrap();
    let pool: Pool<Sqlite> = Pool::connect(settings).await.unwrap();
    for _ in 0..3 {
        let mut c = pool.acquire().await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *c).await.unwrap();
    }
    let s = pool.status();
    assert_eq!(s.totals.opened, 4, "{s:?}");
    assert_eq!(s.totals.closed.null_pool, 4, "{s:?}");
    assert_eq!((s.size, s.checked_in), (0, 0), "{s}");
}

#[tokio::test]
async fn a_dropped_transaction_is_rolled_back_before_reuse() {
    let db = db();
    let pool = pool(&db, 1, 0, 5_000).await;
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT x FROM t")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows, vec![(2,)]);
}

#[tokio::test]
async fn raw_begin_is_rolled_back_with_rollback_always() {
    let db = db();
    let settings = PoolSettings::builder(&db.url)
        .sqlite(unsplit())
        .pool_size(1)
        .max_overflow(0)
        .reset_on_return(ResetOnReturn::RollbackAlways)
        .build()
        .unwrap();
    let pool: Pool<Sqlite> = Pool::connect(settings).await.unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    {
        let mut c = pool.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *c).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *c)
            .await
            .unwrap();
    }
    let count: (i64,) = sqlx::query_as("SELECT count(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count.0, 0);
}

#[tokio::test]
async fn the_pool_is_an_executor() {
    let db = db();
    let pool = pool(&db, 2, 0, 5_000).await;
    let one: (i64,) = sqlx::query_as("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one.0, 1);
    let many: Vec<(i64,)> = sqlx::query_as("SELECT 1 UNION ALL SELECT 2")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(many.len(), 2);
    let none: Option<(i64,)> = sqlx::query_as("SELECT 1 WHERE 0")
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert!(none.is_none());
    assert_eq!(pool.status().checked_out, 0);
}

#[test]
fn dropping_a_connection_outside_a_runtime_does_not_panic() {
    let db = db();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (pool, mut conn) = runtime.block_on(async {
        let pool = pool(&db, 1, 0, 1_000).await;
        let conn = pool.acquire().await.unwrap();
        (pool, conn)
    });
    runtime.block_on(async {
        sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
    });
    drop(runtime);
    drop(conn);
    assert_eq!(pool.status().checked_out, 0);
}

#[tokio::test]
async fn close_refuses_new_checkouts_and_wakes_waiters() {
    let db = db();
    let pool = pool(&db, 1, 0, 10_000).await;
    let held = pool.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.acquire().await.map(drop) }
    });
    while pool.status().waiting == 0 {
        tokio::task::yield_now().await;
    }
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    let err = waiter.await.unwrap().expect_err("closed pool");
    assert!(matches!(err, Error::Closed(_)), "{err}");
    drop(held);
    closing.await.unwrap();
    let s = pool.status();
    assert_eq!((s.size, s.checked_out), (0, 0), "{s}");
    assert!(matches!(pool.acquire().await, Err(Error::Closed(_))));
}

#[tokio::test]
async fn bad_urls_are_refused_with_the_password_masked() {
    let settings = PoolSettings::new("mysql://app:hunter2@db/app");
    let err = Pool::<Sqlite>::connect(settings)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a SQLite URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("app:***@db"), "{err}");
}
