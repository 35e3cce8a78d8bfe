//! Nested checkouts (a task acquiring while it holds a connection of the
//! same pool) against a real PostgreSQL server: the warning names both call
//! sites once per pair, `error` refuses the second acquire at once, and a
//! timeout caused by nesting says so.
//!
//! The check keys on the tokio task id of each checkout. A test's own body
//! runs under `block_on`, which has no task id, so every nesting here runs
//! in a spawned task, as a service's handlers do.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pool_runtime::{Error, NestedCheckout, Pool, PoolSettings, PoolSettingsBuilder};
use pool_testkit::{TestDatabase, TestServer};
use sqlx::Postgres;

fn server() -> &'static TestServer {
    pool_testkit::shared_server()
}

struct Fixture {
    _db: TestDatabase,
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
    Fixture { _db: db, pool }
}

/// Everything logged at WARN and above while the guard lives, on this
/// thread (a `#[tokio::test]` runtime runs its spawned tasks here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The captured nested-checkout warnings (not timeouts that mention one).
    fn nested(&self) -> Vec<String> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .filter(|l| l.contains("pool_runtime::events: nested checkout:"))
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn site(line: u32) -> String {
    format!("nested_checkout.rs:{line}:")
}

async fn select_one(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT 1")
        .fetch_one(conn)
        .await
        .expect("query on the held connection")
}

/// In a task of its own: acquires, then acquires again while holding the
/// first, and uses both. Returns the lines of the two `acquire` calls.
async fn nest_twice(pool: Pool<Postgres>) -> (u32, u32) {
    tokio::spawn(async move {
        let outer = line!() + 1;
        let mut first = pool.acquire().await.expect("first");
        let inner = line!() + 1;
        let mut second = pool.acquire().await.expect("nested, allowed in warn mode");
        assert_eq!(
            select_one(&mut first).await + select_one(&mut second).await,
            2
        );
        (outer, inner)
    })
    .await
    .expect("task")
}

#[tokio::test]
async fn warn_names_both_sites_once_per_pair() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let f = fixture("nest_warn", |b| b).await;
    assert_eq!(f.pool.settings().nested_checkout, NestedCheckout::Warn);
    let (outer, inner) = nest_twice(f.pool.clone()).await;
    let warned = logs.nested();
    assert_eq!(warned.len(), 1, "{warned:#?}");
    let line = &warned[0];
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("pool_runtime::events"), "{line}");
    assert!(line.contains("nest_warn"), "the pool's name: {line}");
    let (held, nested) = (line.find(&site(outer)), line.find(&site(inner)));
    assert!(
        held.is_some() && nested.is_some() && held < nested,
        "the held site ({outer}) then the nested one ({inner}): {line}"
    );
    // The same pair again, from the same lines, in another task: counted,
    // not warned again.
    let again = nest_twice(f.pool.clone()).await;
    assert_eq!(again, (outer, inner));
    assert_eq!(logs.nested().len(), 1, "{:#?}", logs.nested());
    let s = f.pool.status();
    assert_eq!(s.totals.nested_checkouts, 2, "{s}");
    assert_eq!(s.checked_out, 0, "{s}");
}

#[tokio::test]
async fn error_refuses_the_nested_acquire_and_the_first_connection_still_works() {
    let f = fixture("nest_error", |b| b.nested_checkout(NestedCheckout::Error)).await;
    let pool = f.pool.clone();
    let (outer, inner, error) = tokio::spawn(async move {
        let outer = line!() + 1;
        let mut first = pool.acquire().await.expect("first");
        let inner = line!() + 1;
        let error = pool.acquire().await.expect_err("nested checkout refused");
        // Refused at once, before taking capacity: the held one still works.
        assert_eq!(select_one(&mut first).await, 1);
        assert_eq!(pool.status().checked_out, 1);
        drop(first);
        (outer, inner, error)
    })
    .await
    .expect("task");
    let Error::NestedCheckout {
        pool,
        held_at,
        acquired_at,
    } = &error
    else {
        panic!("expected NestedCheckout, got {error:?}");
    };
    assert_eq!(pool, "nest_error");
    assert!(held_at.contains(&site(outer)), "{held_at}");
    assert!(acquired_at.contains(&site(inner)), "{acquired_at}");
    let text = error.to_string();
    for part in [
        "nested checkout",
        &site(outer),
        &site(inner),
        "Pass the held connection",
        "nested_checkout = off",
    ] {
        assert!(text.contains(part), "{part:?} missing from: {text}");
    }
    let s = f.pool.status();
    assert_eq!((s.checked_out, s.totals.nested_checkouts), (0, 1), "{s}");
    // The connection went back and serves the next caller.
    let conn = tokio::spawn({
        let pool = f.pool.clone();
        async move { pool.acquire().await.map(drop) }
    });
    conn.await.unwrap().expect("the pool still serves");
}

#[tokio::test]
async fn a_nested_acquire_on_a_full_pool_times_out_naming_the_nesting() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let f = fixture("nest_timeout", |b| {
        b.pool_size(1)
            .max_overflow(0)
            .pool_timeout(Duration::from_millis(300))
    })
    .await;
    let pool = f.pool.clone();
    let (outer, error) = tokio::spawn(async move {
        let outer = line!() + 1;
        let first = pool.acquire().await.expect("first");
        let error = pool.acquire().await.expect_err("waits for itself");
        drop(first);
        (outer, error)
    })
    .await
    .expect("task");
    let Error::Timeout(timeout) = &error else {
        panic!("expected Timeout, got {error:?}");
    };
    let held = timeout.nested.as_deref().expect("names the nesting");
    assert!(held.contains(&site(outer)), "{held}");
    let text = error.to_string();
    assert!(
        text.contains(&format!(
            "this task already holds a connection from this pool, acquired at {held}: \
             a nested checkout waits for itself once the pool is full"
        )),
        "{text}"
    );
    assert!(text.starts_with("pool \"nest_timeout\": QueuePool limit of size 1 overflow 0"));
    assert_eq!(logs.nested().len(), 1, "warned too: {:#?}", logs.nested());
    assert_eq!(f.pool.status().totals.nested_checkouts, 1);
}

#[tokio::test]
async fn tasks_holding_one_each_are_not_nested() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let f = fixture("nest_none", |b| b.pool_size(2)).await;
    // Two tasks, each holding one connection while the other acquires.
    let both = Arc::new(tokio::sync::Barrier::new(2));
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (pool, both) = (f.pool.clone(), Arc::clone(&both));
            tokio::spawn(async move {
                let mut conn = pool.acquire().await.expect("one each");
                both.wait().await;
                assert_eq!(select_one(&mut conn).await, 1);
                both.wait().await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Outside any task (this `block_on` body has no task id): no check.
    let first = f.pool.acquire().await.unwrap();
    let second = f.pool.acquire().await.unwrap();
    drop((first, second));
    assert!(logs.nested().is_empty(), "{:#?}", logs.nested());
    assert_eq!(f.pool.status().totals.nested_checkouts, 0);
}

/// The check is per task id of the checkout, decided and documented on
/// `NestedCheckout`: a connection moved into another task still counts
/// for the task that acquired it. So the acquiring task's next acquire is
/// reported (a false alarm: it no longer holds anything), and the task it
/// was moved to may acquire without a report. Tracking moves would cost
/// every checkout more than the scan this check is.
#[tokio::test]
async fn a_connection_moved_to_another_task_counts_for_the_acquiring_task() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let f = fixture("nest_moved", |b| b.pool_size(2)).await;
    let pool = f.pool.clone();
    tokio::spawn(async move {
        let moved = pool.acquire().await.expect("first");
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (held, holding) = tokio::sync::oneshot::channel::<()>();
        let other = tokio::spawn({
            let pool = pool.clone();
            async move {
                let mut moved = moved;
                held.send(()).unwrap();
                // Its own acquire while holding the moved one: not reported.
                let mut own = pool.acquire().await.expect("own");
                assert_eq!(select_one(&mut moved).await + select_one(&mut own).await, 2);
                drop(own);
                released.await.unwrap();
            }
        });
        holding.await.unwrap();
        let second = pool.acquire().await.expect("warn mode goes on");
        drop(second);
        release.send(()).unwrap();
        other.await.unwrap();
    })
    .await
    .unwrap();
    let warned = logs.nested();
    assert_eq!(warned.len(), 1, "only the acquiring task's: {warned:#?}");
    assert_eq!(f.pool.status().totals.nested_checkouts, 1);
}

/// The setting through config, as `DB_NESTED_CHECKOUT` of the standard
/// config: spellings from the one table, a bad value listed with the others.
#[test]
fn the_setting_loads_from_the_environment() {
    use pool_runtime::PoolConfig;
    use pool_runtime::config::StandardPoolConfig;
    let load = |value: &str| {
        StandardPoolConfig::from_map([
            ("DATABASE_URL", "postgres://app@localhost/app"),
            ("DB_NESTED_CHECKOUT", value),
        ])
    };
    let unset = StandardPoolConfig::from_map([("DATABASE_URL", "postgres://app@localhost/app")]);
    assert_eq!(
        unset.unwrap().settings().nested_checkout,
        NestedCheckout::Warn
    );
    for (text, mode) in [
        ("error", NestedCheckout::Error),
        ("Deny", NestedCheckout::Error),
        ("off", NestedCheckout::Off),
        ("warning", NestedCheckout::Warn),
    ] {
        let cfg = load(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(cfg.settings().nested_checkout, mode, "{text}");
    }
    let error = load("sometimes").unwrap_err().to_string();
    assert!(error.contains("DB_NESTED_CHECKOUT"), "{error}");
    assert!(error.contains("warn, error, off"), "{error}");
}
