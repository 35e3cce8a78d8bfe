//! How a service tests its own pool configuration with pool-testkit: each
//! assertion is checked from the PostgreSQL server's side
//! (`pg_stat_activity`), not from the pool's counters. The pool comes from
//! `#[pool_testkit::test]`, shaped by `pool(...)` or by the service's own
//! `ServiceConfig`, loaded as production loads it.

use pool_examples::service::ServiceConfig;
use pool_runtime::Pool;
use pool_runtime::config::Profile;
use pool_testkit::{TestServer, assert};
use sqlx::Postgres;

#[pool_testkit::test(pool(size = 2, overflow = 3))]
async fn overflow_closes_on_return(pool: Pool<Postgres>, server: &TestServer) {
    assert::overflow_closes_on_return(server, &pool).await;
}

#[pool_testkit::test(pool(size = 3, overflow = 2))]
async fn never_more_than_size_plus_overflow_under_load(pool: Pool<Postgres>, server: &TestServer) {
    let peak = assert::never_above_capacity(server, &pool, 100).await;
    println!("server-side peak: {peak} connections");
}

#[pool_testkit::test(pool(size = 2, recycle = "400ms"))]
async fn recycled_connections_get_new_backends(pool: Pool<Postgres>, server: &TestServer) {
    assert::recycled_after_max_age(server, &pool).await;
}

#[pool_testkit::test(pool(size = 1, pre_ping = true, pre_ping_bypass = "0s"))]
async fn pre_ping_replaces_a_killed_connection(pool: Pool<Postgres>, server: &TestServer) {
    assert::pre_ping_replaces_killed(server, &pool).await;
}

#[pool_testkit::test(pool(class = "null"))]
async fn null_pool_in_tests(pool: Pool<Postgres>, server: &TestServer) {
    assert::null_pool_one_per_checkout(server, &pool).await;
}

/// The service's own `ServiceConfig`, as production builds it (waits
/// shortened so every behaviour can be watched): every behaviour that
/// applies holds, seen from the server.
#[tokio::test]
async fn service_config_conforms_in_production() {
    let env = [
        ("APP_DB_POOL_SIZE", "2"),
        ("APP_DB_MAX_OVERFLOW", "2"),
        ("APP_DB_POOL_TIMEOUT", "5s"),
        ("APP_DB_POOL_RECYCLE", "1s"),
    ];
    let report = pool_testkit::conformance::check::<ServiceConfig>(Profile::Production, env).await;
    println!("{report}");
    report.assert_no_failures();
}

/// The service's config in a test: `config = ServiceConfig` loads it in
/// the test profile, pointed at the test's database.
#[pool_testkit::test(config = ServiceConfig, env(APP_DB_POOL_SIZE = "2"))]
async fn service_config_in_the_test_profile(pool: Pool<Postgres>, server: &TestServer) {
    let s = pool.settings();
    assert_eq!(
        (s.pool_size, s.pool_timeout),
        (2, std::time::Duration::from_secs(5))
    );
    assert!(
        s.application_name
            .as_deref()
            .unwrap_or("")
            .starts_with("pool-examples-")
    );
    assert::pool_size_held(server, &pool).await;
}
