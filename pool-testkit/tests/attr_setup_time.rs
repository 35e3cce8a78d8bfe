//! Per-test setup time of `#[pool_testkit::test]`: what a test waits for
//! before its body runs (clone of the migrations + fixtures template and
//! the pool settings), the template already made. Printed, not asserted
//! (machines are noisy): `cargo nextest run -p pool-testkit --test
//! attr_setup_time --no-capture`. Results are in the crate docs.

use std::time::{Duration, Instant};

use pool_testkit::__private::{Fixture, TestContext, TestSpec};

static SPEC: TestSpec = TestSpec {
    name: "attr_setup_time::per_test_setup",
    migrations: Some(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/attr/migrations"
    )),
    fixtures: &[
        Fixture {
            name: "users",
            sql: include_str!("attr/fixtures/users.sql"),
        },
        Fixture {
            name: "orders",
            sql: include_str!("attr/fixtures/orders.sql"),
        },
    ],
    sqlite: false,
    configure: |_| {},
    config: None,
    env: &[],
    profile: None,
    cluster: None,
    pgbouncer: None,
};

const ROUNDS: usize = 30;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test]
async fn per_test_setup_time() {
    let server = pool_testkit::shared_server();
    let started = Instant::now();
    let first = TestContext::setup(&SPEC).await;
    let first_time = started.elapsed();
    drop(first);

    let mut times = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let ctx = TestContext::setup(&SPEC).await;
        times.push(ctx.setup_time());
        drop(ctx); // drops the test's database, as after a passing test
    }
    times.sort();
    println!(
        "per-test setup on the {} backend: first (makes the template) {first_time:?}; \
         then {ROUNDS} rounds: p50 {:?}, p90 {:?}, max {:?}",
        server.backend(),
        percentile(&times, 50),
        percentile(&times, 90),
        times[times.len() - 1],
    );

    // Every database of a passing test is dropped: none is left behind.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut admin = server.connect_admin().await.unwrap();
        let left: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE 'ptk\\_%'")
                .fetch_one(&mut admin)
                .await
                .unwrap();
        sqlx::Connection::close(admin).await.unwrap();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} test databases left behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

static SQLITE_SPEC: TestSpec = TestSpec {
    name: "attr_setup_time::per_sqlite_test_setup",
    sqlite: true,
    ..SPEC
};

/// The same for `sqlite`: a copy of the template file, one per test, with
/// the fixtures in it.
#[tokio::test]
async fn per_sqlite_test_setup_time() {
    let started = Instant::now();
    drop(TestContext::setup(&SQLITE_SPEC).await);
    let first_time = started.elapsed();
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
    let mut urls = std::collections::BTreeSet::new();
    for _ in 0..ROUNDS {
        let ctx = TestContext::setup(&SQLITE_SPEC).await;
        times.push(ctx.setup_time());
        // Each test has its own file, a full copy: both fixtures are in it.
        let url = ctx.settings().url.expose().clone();
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
            .await
            .unwrap();
        let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        sqlx::Connection::close(conn).await.unwrap();
        assert_eq!(orders, 3, "{url}");
        assert!(urls.insert(url.clone()), "{url} handed out twice");
    }
    times.sort();
    println!(
        "per-test setup with `sqlite`: first {first_time:?} (makes the template unless an \
         earlier run did); then {ROUNDS} rounds: p50 {:?}, p90 {:?}, max {:?}",
        percentile(&times, 50),
        percentile(&times, 90),
        times[times.len() - 1],
    );
}
