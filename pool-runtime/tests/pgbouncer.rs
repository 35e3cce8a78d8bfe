//! The pool behind the real PgBouncer (Debian's 1.18, `pool_testkit::PgBouncer`
//! as a local process) in front of a real server.
//!
//! Transaction mode gives each transaction whichever server connection is
//! free. sqlx names its prepared statements per client (`sqlx_s_1`, …) and
//! prepares with a Sync before it binds, so through `sqlx::Pool` statements
//! clash with other clients' or lose their second half. With
//! `pgbouncer = transaction` our pool runs the same mixed workload with no
//! error while the server sees at most PgBouncer's pool size. Counts come
//! from the server (pg_stat_activity), never from the pool's own view.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pool_runtime::{Error, PgBouncerMode, Pool, PoolSettings};
use pool_testkit::{PgBouncer, PoolMode, ServerKind, TestDatabase, TestServer};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Postgres, Row};

/// PgBouncer's `default_pool_size` in these tests.
const BOUNCER_POOL: u32 = 10;

fn server() -> TestServer {
    TestServer::builder()
        .backend(ServerKind::Local)
        .start()
        .expect("a local PostgreSQL server")
}

fn bouncer(server: &TestServer, mode: PoolMode) -> PgBouncer {
    PgBouncer::builder()
        .backend(ServerKind::Local)
        .pool_mode(mode)
        .default_pool_size(BOUNCER_POOL)
        .max_client_conn(400)
        .start(server.addr())
        .expect("PgBouncer (scripts/setup.sh installs it)")
}

async fn database(server: &TestServer) -> TestDatabase {
    use sqlx::Connection;
    let db = server.create_database().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL, n int NOT NULL, \
         flag bool NOT NULL, score float8, data bytea)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    db
}

fn settings(url: String, name: &str, mode: PgBouncerMode) -> PoolSettings {
    PoolSettings::builder(url)
        .name(name)
        .application_name(name)
        .pool_size(BOUNCER_POOL)
        .max_overflow(0)
        .pgbouncer(mode)
        .pool_timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Errors of a workload, by kind (SQLSTATE and the start of the message).
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn error(&self, what: &str, error: impl std::fmt::Display) {
        // One kind per statement name would bury the pattern.
        let text = error.to_string();
        let text = match text.find("\"sqlx_s_") {
            Some(at) => {
                let end = text[at + 1..].find('"').map_or(text.len(), |e| at + 2 + e);
                format!("{}\"sqlx_s_N\"{}", &text[..at], &text[end..])
            }
            None => text,
        };
        let short: String = text.chars().take(90).collect();
        *self
            .errors
            .lock()
            .unwrap()
            .entry(format!("{what}: {short}"))
            .or_default() += 1;
    }

    fn total_errors(&self) -> u64 {
        self.errors.lock().unwrap().values().sum()
    }

    fn report(&self) -> String {
        let errors = self.errors.lock().unwrap();
        let mut out = format!(
            "{} operations, {} errors",
            self.ops.load(Ordering::Relaxed),
            errors.values().sum::<u64>()
        );
        for (kind, n) in errors.iter() {
            out.push_str(&format!("\n  {n:>6} × {kind}"));
        }
        out
    }
}

/// One operation of the mixed workload, `i` choosing which, on any pool
/// whose `&pool` is an executor and whose `begin()` gives a transaction
/// (ours and `sqlx::PgPool` alike).
macro_rules! mixed_op {
    ($pool:expr, $i:expr, $tag:expr, $tally:expr) => {{
        let pool = $pool;
        let i: i32 = $i;
        let tag: &str = $tag;
        let tally: &Tally = $tally;
        match i % 6 {
            // `&Pool`, binds of several types.
            0 => match sqlx::query("SELECT $1::int + 1, $2::text, $3::bool, $4::float8, $5::bytea")
                .bind(i)
                .bind(tag)
                .bind(i % 2 == 0)
                .bind(f64::from(i) / 2.0)
                .bind(vec![1u8, 2, 3])
                .fetch_one(pool)
                .await
            {
                Ok(row) => {
                    let n: i32 = row.get(0);
                    let t: String = row.get(1);
                    if n != i + 1 || t != tag {
                        tally.error("wrong answer", format!("{n} {t}"));
                    }
                }
                Err(e) => tally.error("select", e),
            },
            // `&Pool`, a write.
            1 => {
                if let Err(e) = sqlx::query(
                    "INSERT INTO items (name, n, flag, score, data) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(tag)
                .bind(i)
                .bind(true)
                .bind(Some(1.5f64))
                .bind(Some(vec![0u8; 16]))
                .execute(pool)
                .await
                {
                    tally.error("insert", e);
                }
            }
            // `pool.begin()`: several statements, then commit; checked.
            2 => {
                let name = format!("{tag}-tx-{i}");
                let run = async {
                    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
                    for k in 0..2 {
                        sqlx::query("INSERT INTO items (name, n, flag) VALUES ($1, $2, $3)")
                            .bind(&name)
                            .bind(k)
                            .bind(false)
                            .execute(&mut *tx)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let seen: i64 =
                        sqlx::query_scalar("SELECT count(*) FROM items WHERE name = $1")
                            .bind(&name)
                            .fetch_one(&mut *tx)
                            .await
                            .map_err(|e| e.to_string())?;
                    tx.commit().await.map_err(|e| e.to_string())?;
                    if seen != 2 {
                        return Err(format!("saw {seen} rows of 2 in its own transaction"));
                    }
                    Ok::<(), String>(())
                };
                if let Err(e) = run.await {
                    tally.error("transaction", e);
                }
            }
            // A transaction that fails on purpose and rolls back.
            3 => {
                let run = async {
                    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
                    sqlx::query("INSERT INTO items (name, n, flag) VALUES ($1, 0, true)")
                        .bind(format!("{tag}-rolled-back"))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| e.to_string())?;
                    let failed = sqlx::query_scalar::<_, i32>("SELECT 1 / $1")
                        .bind(0i32)
                        .fetch_one(&mut *tx)
                        .await;
                    match failed {
                        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("22012") => {
                        }
                        other => return Err(format!("expected division_by_zero, got {other:?}")),
                    }
                    tx.rollback().await.map_err(|e| e.to_string())?;
                    Ok::<(), String>(())
                };
                if let Err(e) = run.await {
                    tally.error("rollback", e);
                }
            }
            // Rows streamed from a statement with a bind.
            4 => match sqlx::query_scalar::<_, i32>("SELECT generate_series(1, $1)")
                .bind(50i32)
                .fetch_all(pool)
                .await
            {
                Ok(rows) if rows.len() == 50 => {}
                Ok(rows) => tally.error("wrong answer", format!("{} rows of 50", rows.len())),
                Err(e) => tally.error("stream", e),
            },
            // No binds: the simple protocol, one message.
            _ => {
                if let Err(e) = sqlx::raw_sql("SELECT 1").execute(pool).await {
                    tally.error("raw", e);
                }
            }
        }
        tally.ops.fetch_add(1, Ordering::Relaxed);
    }};
}

/// The mixed workload from `tasks` tasks per pool until `until`, all
/// awaited; for our pools and sqlx's alike.
macro_rules! mixed_workload {
    ($pools:expr, $tasks:expr, $until:expr, $tally:expr) => {{
        let mut handles = Vec::new();
        for (p, pool) in $pools.iter().enumerate() {
            for t in 0..$tasks {
                let pool = pool.clone();
                let tally = Arc::clone($tally);
                let until = $until;
                handles.push(tokio::spawn(async move {
                    let tag = format!("p{p}t{t}");
                    let mut i = t;
                    while Instant::now() < until {
                        mixed_op!(&pool, i, &tag, &tally);
                        i += 1;
                    }
                }));
            }
        }
        for handle in handles {
            handle.await.unwrap();
        }
    }};
}

/// The peak of the server's backends for database `db` while `work` runs.
async fn peak_backends_during<F: std::future::Future>(
    server: &TestServer,
    db: &str,
    work: F,
) -> (F::Output, usize) {
    pool_testkit::assert::peak_database_connections_during(server, db, work)
        .await
        .unwrap()
}

/// How long the mixed workloads run: 30 s as the issue asks, or
/// `PGBOUNCER_SOAK_SECS`.
fn soak() -> Duration {
    let secs = std::env::var("PGBOUNCER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// 8 pools × 10 connections through transaction mode with a pool of 10
/// server connections: `&Pool` with binds of several types, writes,
/// `pool.begin()` with commits and failing rollbacks, streamed rows and
/// simple queries, for 30 s. Zero errors, and never more than 10 backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transaction_mode_mixed_workload_8_pools_x_10() {
    let server = server();
    let bouncer = bouncer(&server, PoolMode::Transaction);
    let db = database(&server).await;
    let url = bouncer.url_for(&db.url());
    let mut pools = Vec::new();
    for p in 0..8 {
        let name = format!("txn{p}");
        pools.push(
            Pool::<Postgres>::connect(settings(url.clone(), &name, PgBouncerMode::Transaction))
                .await
                .unwrap(),
        );
    }
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + soak();
    let work = async { mixed_workload!(pools, 10, until, &tally) };
    let ((), peak) = peak_backends_during(&server, db.name(), work).await;
    eprintln!(
        "our pool, PgBouncer transaction mode: {}; peak server backends {peak}",
        tally.report()
    );
    assert_eq!(tally.total_errors(), 0, "{}", tally.report());
    assert!(
        tally.ops.load(Ordering::Relaxed) > 1000,
        "{}",
        tally.report()
    );
    assert!(
        peak <= BOUNCER_POOL as usize,
        "the server saw {peak} backends behind a PgBouncer pool of {BOUNCER_POOL}"
    );
    let rolled_back: i64 =
        sqlx::query_scalar("SELECT count(*) FROM items WHERE name LIKE '%-rolled-back'")
            .fetch_one(&pools[0])
            .await
            .unwrap();
    assert_eq!(rolled_back, 0, "a rolled-back insert was committed");
    for pool in &pools {
        pool.close().await;
    }
}

/// The same workload through `sqlx::PgPool` (8 × 10, its defaults) fails:
/// recorded here for contrast, and so that the test fails if PgBouncer or
/// sqlx ever stop needing our setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_workload_through_sqlx_pool_fails() {
    let server = server();
    let bouncer = bouncer(&server, PoolMode::Transaction);
    let db = database(&server).await;
    let url = bouncer.url_for(&db.url());
    let mut pools = Vec::new();
    for _ in 0..8 {
        pools.push(
            PgPoolOptions::new()
                .max_connections(BOUNCER_POOL)
                .acquire_timeout(Duration::from_secs(20))
                .connect(&url)
                .await
                .unwrap(),
        );
    }
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + Duration::from_secs(5).min(soak());
    mixed_workload!(pools, 10, until, &tally);
    eprintln!(
        "sqlx::PgPool, PgBouncer transaction mode: {}",
        tally.report()
    );
    let errors = tally.errors.lock().unwrap();
    let clashes: u64 = errors
        .iter()
        .filter(|(k, _)| k.contains("prepared statement"))
        .map(|(_, n)| n)
        .sum();
    assert!(
        clashes > 0,
        "sqlx::Pool ran through transaction mode without a prepared-statement error: {}",
        tally.report()
    );
}

/// A pool left at `pgbouncer = off` behind transaction mode: the clashes
/// are counted, logged once, and the status says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clash_without_the_setting_is_explained() {
    let server = server();
    let bouncer = bouncer(&server, PoolMode::Transaction);
    let db = database(&server).await;
    let url = bouncer.url_for(&db.url());
    let a = Pool::<Postgres>::connect(settings(url.clone(), "a", PgBouncerMode::Off))
        .await
        .unwrap();
    let b = Pool::<Postgres>::connect(settings(url, "b", PgBouncerMode::Off))
        .await
        .unwrap();
    let tally = Tally::default();
    let until = Instant::now() + Duration::from_secs(10);
    let mut i = 0;
    while a.status().totals.statement_clashes + b.status().totals.statement_clashes == 0
        && Instant::now() < until
    {
        let (x, y) = tokio::join!(
            sqlx::query_scalar::<_, i32>("SELECT $1::int")
                .bind(i)
                .fetch_one(&a),
            sqlx::query_scalar::<_, i32>("SELECT $1::int * 2")
                .bind(i)
                .fetch_one(&b),
        );
        if let Err(e) = x {
            tally.error("a", e);
        }
        if let Err(e) = y {
            tally.error("b", e);
        }
        i += 1;
    }
    let clashing = if a.status().totals.statement_clashes > 0 {
        a.status()
    } else {
        b.status()
    };
    assert!(
        clashing.totals.statement_clashes > 0,
        "no clash in 10 s: {}",
        tally.report()
    );
    let advice = clashing.recommendations.join("\n");
    assert!(advice.contains("set pgbouncer = transaction"), "{advice}");
}

/// `acquire` is refused in transaction mode, before any connection is
/// taken, with the reason and what to use instead; `begin` and `&Pool` work.
#[tokio::test]
async fn acquire_is_refused_in_transaction_mode_with_the_reason() {
    let server = server();
    let bouncer = bouncer(&server, PoolMode::Transaction);
    let db = database(&server).await;
    let pool = Pool::<Postgres>::connect(settings(
        bouncer.url_for(&db.url()),
        "refused",
        PgBouncerMode::Transaction,
    ))
    .await
    .unwrap();
    let err = pool.acquire().await.unwrap_err();
    assert!(
        matches!(err, Error::PgBouncerTransactionMode { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    for part in [
        "pool \"refused\": acquire is refused because pgbouncer = transaction",
        "two different server connections",
        "&pool as the executor for single statements and pool.begin() for several",
        "session mode",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    assert_eq!(pool.status().checked_out, 0);
    let mut tx = pool.begin().await.unwrap();
    let one: i32 = sqlx::query_scalar("SELECT $1::int")
        .bind(1)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(one, 1);
}

/// Session mode needs nothing: the default statement cache, held
/// connections and session state work, and each pooled connection is one
/// server backend for its life.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_mode_just_works() {
    let server = server();
    let bouncer = bouncer(&server, PoolMode::Session);
    let db = database(&server).await;
    let url = bouncer.url_for(&db.url());
    let mut pools = Vec::new();
    for p in 0..2 {
        let mut s = settings(url.clone(), &format!("session{p}"), PgBouncerMode::Session);
        s.pool_size = 5;
        pools.push(Pool::<Postgres>::connect(s).await.unwrap());
    }
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + Duration::from_secs(5);
    let work = async {
        let mut tasks = Vec::new();
        for (p, pool) in pools.iter().enumerate() {
            for t in 0..5 {
                let pool = pool.clone();
                let tally = Arc::clone(&tally);
                tasks.push(tokio::spawn(async move {
                    let tag = format!("s{p}t{t}");
                    let mut i = t;
                    while Instant::now() < until {
                        mixed_op!(&pool, i, &tag, &tally);
                        // A held connection keeps its session state.
                        let mut conn = pool.acquire().await.unwrap();
                        let kept = async {
                            sqlx::query("SELECT set_config('app.tag', $1, false)")
                                .bind(&tag)
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query_scalar::<_, String>("SELECT current_setting('app.tag')")
                                .fetch_one(&mut *conn)
                                .await
                        };
                        match kept.await {
                            Ok(seen) if seen == tag => {}
                            Ok(seen) => tally.error("session state", seen),
                            Err(e) => tally.error("held", e),
                        }
                        i += 1;
                    }
                }));
            }
        }
        for task in tasks {
            task.await.unwrap();
        }
    };
    let ((), peak) = peak_backends_during(&server, db.name(), work).await;
    eprintln!("our pool, PgBouncer session mode: {}", tally.report());
    assert_eq!(tally.total_errors(), 0, "{}", tally.report());
    assert!(peak <= 10, "{peak} backends for 2 pools of 5");
    let open: u32 = pools.iter().map(|p| p.status().size).sum();
    let backends = bouncer.server_backends(&server).await.unwrap().len();
    assert_eq!(
        backends as u32, open,
        "session mode: one server backend per pooled connection"
    );
}

/// `pgbouncer` on a SQLite URL, and a bad spelling, are refused up front.
#[test]
fn bad_pgbouncer_settings_are_refused() {
    let err = PoolSettings::builder("sqlite://app.db")
        .pgbouncer(PgBouncerMode::Transaction)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pgbouncer is transaction but the URL is a SQLite database"),
        "{err}"
    );
    let err = "transactoin".parse::<PgBouncerMode>().unwrap_err();
    assert!(err.contains("off, session, transaction"), "{err}");
}

/// `&pool` statements cancelled at every point (inside `BEGIN`, the
/// statement, `COMMIT`) in transaction mode, on a pool of one connection:
/// after each, a statement without binds (one message, no transaction of
/// the pool's around it) must be committed at once, seen from another
/// connection. A connection given back inside a transaction the pool does
/// not know of would swallow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_statements_leave_no_open_transaction_behind() {
    use sqlx::Connection;
    let server = server();
    let bouncer = bouncer(&server, PoolMode::Transaction);
    let db = database(&server).await;
    let mut s = settings(
        bouncer.url_for(&db.url()),
        "cancelled",
        PgBouncerMode::Transaction,
    );
    s.pool_size = 1;
    let pool = Pool::<Postgres>::connect(s).await.unwrap();
    let mut direct = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let mut cancelled = 0;
    for i in 0..400i64 {
        let insert = sqlx::query("INSERT INTO items (name, n, flag) VALUES ($1, 0, true)")
            .bind("storm")
            .execute(&pool);
        let bound = Duration::from_micros((i as u64 * 37) % 900);
        if tokio::time::timeout(bound, insert).await.is_err() {
            cancelled += 1;
        }
        sqlx::raw_sql("INSERT INTO items (name, n, flag) VALUES ('after', 0, true)")
            .execute(&pool)
            .await
            .unwrap();
        let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE name = 'after'")
            .fetch_one(&mut direct)
            .await
            .unwrap();
        assert_eq!(
            seen,
            i + 1,
            "after {cancelled} cancelled statements, a write was not committed: {}",
            pool.status()
        );
    }
    eprintln!("{cancelled} of 400 statements cancelled");
    assert!(cancelled > 0, "no statement was cancelled");
    pool.close().await;
}
