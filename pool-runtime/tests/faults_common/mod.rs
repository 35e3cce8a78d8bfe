//! Helpers shared by the `faults_*` suites: fixtures on the testkit's real
//! PostgreSQL (directly or through the fault-injecting proxy), the
//! "nothing leaked" check, and seeded randomness.
//!
//! Named `faults_common` (not `common`) so it never collides with helpers
//! other suites may add.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use pool_runtime::{Pool, PoolSettings, PoolSettingsBuilder, Status};
use pool_testkit::{TcpProxy, TestDatabase, TestServer};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sqlx::{Connection, Postgres};

/// Generous slack on top of a configured timeout: a hang check, never a
/// speed check.
pub const SLACK: Duration = Duration::from_secs(5);

pub fn server() -> &'static TestServer {
    pool_testkit::shared_server()
}

pub struct Fixture {
    pub db: TestDatabase,
    pub app: String,
    pub pool: Pool<Postgres>,
    pub proxy: Option<TcpProxy>,
}

impl Fixture {
    pub fn proxy(&self) -> &TcpProxy {
        self.proxy.as_ref().expect("fixture made with a proxy")
    }
}

pub fn app_name(name: &str) -> String {
    format!("flt_{name}_{}", std::process::id())
}

fn settings(
    url: String,
    app: &str,
    name: &str,
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> PoolSettings {
    configure(PoolSettings::builder(url).application_name(app).name(name))
        .build()
        .expect("valid settings")
}

/// A pool on a fresh database of `on`, connected directly.
pub async fn fixture_on(
    on: &TestServer,
    name: &str,
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> Fixture {
    let db = on.create_database().await.expect("test database");
    let app = app_name(name);
    let pool = Pool::connect(settings(db.url(), &app, name, configure))
        .await
        .expect("pool connects");
    Fixture {
        db,
        app,
        pool,
        proxy: None,
    }
}

/// A pool on a fresh database of the shared server, connected directly.
pub async fn fixture(
    name: &str,
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> Fixture {
    fixture_on(server(), name, configure).await
}

/// A pool whose every connection goes through a [`TcpProxy`]; built lazily
/// (no connection yet) so a test can break the network first.
pub async fn fixture_via_proxy(
    name: &str,
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> Fixture {
    let db = server().create_database().await.expect("test database");
    let proxy = TcpProxy::start(server().addr())
        .await
        .expect("proxy starts");
    let app = app_name(name);
    let pool = Pool::connect_lazy(settings(proxy.url_for(&db.url()), &app, name, configure))
        .expect("settings");
    Fixture {
        db,
        app,
        pool,
        proxy: Some(proxy),
    }
}

/// Runs blocking testkit calls (server stop/start) off the runtime's workers.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// The internal consistency every status snapshot must have, settled or not.
pub fn assert_consistent(s: &Status, capacity: u32) {
    assert!(
        s.size <= capacity,
        "size {} above the cap {capacity}: {s:?}",
        s.size
    );
    assert_eq!(
        s.checked_in + s.checked_out + s.connecting,
        s.size,
        "counts do not add up: {s:?}"
    );
    // Idle may pass pool_size only by connections kept for waiters, which
    // the maintenance tick closes once nobody waits; never past the cap.
    assert!(s.checked_in <= capacity, "more idle than the cap: {s:?}");
}

/// Waits (bounded) until nothing is checked out, connecting or waiting,
/// then checks every count: size within bounds, all idle, and
/// `opened - closed == size` (no connection unaccounted for).
pub async fn settled<DB: pool_runtime::Backend>(pool: &Pool<DB>, within: Duration) -> Status {
    let capacity = pool.settings().capacity();
    let start = Instant::now();
    loop {
        let s = pool.status();
        assert_consistent(&s, capacity);
        // Connections kept for waiters are closed by the next maintenance
        // tick (1 s), so settling includes size falling back to pool_size.
        if s.checked_out == 0 && s.connecting == 0 && s.waiting == 0 && s.size <= s.pool_size {
            assert_eq!(s.checked_in, s.size, "{s:?}");
            let t = s.totals;
            assert_eq!(
                t.opened - t.closed.total(),
                u64::from(s.size),
                "opened - closed != size: {s:?}"
            );
            return s;
        }
        assert!(
            start.elapsed() < within,
            "pool did not settle within {within:?} (a leaked permit, connection or waiter): {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Server-side: eventually exactly as many connections of `app` as the
/// pool says it has open, and none of them idle in a transaction.
pub async fn server_agrees(on: &TestServer, app: &str, pool: &Pool<Postgres>) {
    let size = pool.status().size as usize;
    let conns = pool_testkit::assert::eventually_connections(on, app, size, SLACK).await;
    assert!(
        conns
            .iter()
            .all(|c| c.state.as_deref() != Some("idle in transaction")),
        "a pooled connection is idle in a transaction: {}",
        pool_testkit::assert::describe(&conns)
    );
}

/// Server-side: no client connection to `db` except `app`'s own.
pub async fn only_the_pool_on(on: &TestServer, db: &TestDatabase, app: &str) {
    let all = on.all_connections().await.expect("pg_stat_activity");
    let strangers: Vec<_> = all
        .into_iter()
        .filter(|c| c.database.as_deref() == Some(db.name()) && c.application_name != app)
        .collect();
    assert!(
        strangers.is_empty(),
        "connections to the test database beyond the pool's: {strangers:?}"
    );
}

/// Seed from `FAULTS_SEED` (to replay a failure) or the clock; printed so a
/// failing run can be reproduced.
pub fn seed() -> u64 {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("FAULTS_SEED={seed}");
    seed
}

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Long forms run when `FAULTS_LONG` is set (its value: seconds, default 60).
pub fn long_secs() -> Option<u64> {
    std::env::var("FAULTS_LONG")
        .ok()
        .map(|v| v.parse().unwrap_or(60))
}

/// Opens a probe connection straight to `db` (not through the pool).
pub async fn probe(db: &TestDatabase) -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&db.url())
        .await
        .expect("probe connects")
}

/// Rows in `table` as seen by a fresh connection (committed data only).
pub async fn committed_rows(db: &TestDatabase, table: &str) -> i64 {
    let mut c = probe(db).await;
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&mut c)
        .await
        .expect("count rows");
    let _ = c.close().await;
    n
}

/// What a load run saw.
#[derive(Default)]
pub struct LoadReport {
    pub ok: u64,
    pub errors: u64,
    /// When each error happened, and its message.
    pub error_times: Vec<(Instant, String)>,
    pub samples: Vec<String>,
    /// The longest a single operation took.
    pub slowest: Duration,
}

impl std::fmt::Debug for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadReport")
            .field("ok", &self.ok)
            .field("errors", &self.errors)
            .field("samples", &self.samples)
            .field("slowest", &self.slowest)
            .finish()
    }
}

impl LoadReport {
    /// The errors at or after `t`.
    pub fn errors_after(&self, t: Instant) -> Vec<&str> {
        self.error_times
            .iter()
            .filter(|(e, _)| *e >= t)
            .map(|(_, m)| m.as_str())
            .collect()
    }
}

/// `workers` tasks running `SELECT pg_sleep(0..3 ms)` through `&pool` until
/// `stop` is set; each operation is wrapped in a hang check (`bound`).
pub async fn load(
    pool: &Pool<Postgres>,
    workers: usize,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    bound: Duration,
    seed: u64,
) -> LoadReport {
    use rand::Rng;
    use std::sync::atomic::Ordering;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let (pool, stop) = (pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut rng = rng(seed.wrapping_add(w as u64));
                let mut report = LoadReport::default();
                while !stop.load(Ordering::SeqCst) {
                    let ms: u32 = rng.random_range(0..3);
                    let started = Instant::now();
                    let q = sqlx::query("SELECT pg_sleep($1::float8 / 1000)")
                        .bind(f64::from(ms))
                        .execute(&pool);
                    let result = tokio::time::timeout(bound, q).await;
                    report.slowest = report.slowest.max(started.elapsed());
                    match result {
                        Ok(Ok(_)) => report.ok += 1,
                        Ok(Err(e)) => {
                            report.errors += 1;
                            let msg = e.to_string();
                            if report.samples.len() < 3 {
                                report.samples.push(msg.clone());
                            }
                            report.error_times.push((Instant::now(), msg));
                            // Don't spin on a down server.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(_) => panic!(
                            "an operation hung for {bound:?} (status {:?})",
                            pool.status()
                        ),
                    }
                }
                report
            })
        })
        .collect();
    let mut total = LoadReport::default();
    for t in tasks {
        let r = t.await.expect("load worker");
        total.ok += r.ok;
        total.errors += r.errors;
        total.error_times.extend(r.error_times);
        total.slowest = total.slowest.max(r.slowest);
        for s in r.samples {
            if total.samples.len() < 5 && !total.samples.contains(&s) {
                total.samples.push(s);
            }
        }
    }
    total
}
