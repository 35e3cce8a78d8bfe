//! Pool behaviour checks against a real `pool_runtime::Pool`, on both
//! backends, and their failure messages when the pool doesn't behave as
//! the check expects.
#![cfg(feature = "runtime")]

mod common;

use std::time::Duration;

use pool_runtime::PoolClass;
use pool_testkit::TestServer;
use pool_testkit::assert as pa;
use pool_testkit::fixtures;

both_backends! {
    size_held;
    overflow_closes;
    capacity_is_a_cap;
    recycle_gives_new_pids;
    pre_ping_replaces;
    null_pool_per_checkout;
    checks_fail_with_a_clear_message;
    fixtures_hand_out_working_settings;
}

async fn size_held(server: &'static TestServer) {
    let (_db, pool) = fixtures::pool_on(server, |s| s.pool_size(3).max_overflow(2)).await;
    pa::pool_size_held(server, &pool).await;
    pool.close().await;
}

async fn overflow_closes(server: &'static TestServer) {
    let (_db, pool) = fixtures::pool_on(server, |s| s.pool_size(2).max_overflow(3)).await;
    pa::overflow_closes_on_return(server, &pool).await;
}

async fn capacity_is_a_cap(server: &'static TestServer) {
    let (_db, pool) = fixtures::pool_on(server, |s| {
        s.pool_size(2)
            .max_overflow(2)
            .pool_timeout(Duration::from_secs(30))
    })
    .await;
    let peak = pa::never_above_capacity(server, &pool, 12).await;
    assert!(peak > 2 && peak <= 4, "peak {peak}");
}

async fn recycle_gives_new_pids(server: &'static TestServer) {
    let (_db, pool) = fixtures::pool_on(server, |s| {
        s.pool_size(1)
            .max_overflow(0)
            .pool_recycle(Some(Duration::from_millis(400)))
    })
    .await;
    pa::recycled_after_max_age(server, &pool).await;
}

async fn pre_ping_replaces(server: &'static TestServer) {
    let (_db, pool) = fixtures::pool_on(server, |s| {
        s.pool_size(2)
            .pool_pre_ping(true)
            .pre_ping_bypass(Duration::from_millis(100))
    })
    .await;
    pa::pre_ping_replaces_killed(server, &pool).await;
}

async fn null_pool_per_checkout(server: &'static TestServer) {
    let (_db, pool) = fixtures::pool_on(server, |s| s.pool_class(PoolClass::Null)).await;
    pa::null_pool_one_per_checkout(server, &pool).await;
}

/// Each check pointed at a pool that can't satisfy it fails, saying what
/// it expected and what the server showed.
async fn checks_fail_with_a_clear_message(server: &'static TestServer) {
    // A NullPool keeps nothing open: "size held" must fail.
    let (_db, null) =
        fixtures::pool_on(server, |s| s.pool_class(PoolClass::Null).pool_size(2)).await;
    let f = pa::try_pool_size_held(server, &null).await.unwrap_err();
    let msg = f.to_string();
    assert!(msg.contains("expected:      2 connection(s)"), "{msg}");
    assert!(msg.contains("server showed: no connections"), "{msg}");

    // A queue pool keeps its connection: "one per checkout" must fail.
    let (_db2, queue) = fixtures::pool_on(server, |s| s.pool_size(1)).await;
    let f = pa::try_null_pool_one_per_checkout(server, &queue)
        .await
        .unwrap_err();
    assert!(f.expected.contains("0 connection(s)"), "{f}");

    // Checks that need a setting say so.
    let f = pa::try_recycled_after_max_age(server, &queue)
        .await
        .unwrap_err();
    assert_eq!(f.seen, "pool_recycle is off", "{f}");
    let (_db3, no_ping) = fixtures::pool_on(server, |s| s.pool_pre_ping(false)).await;
    let f = pa::try_pre_ping_replaces_killed(server, &no_ping)
        .await
        .unwrap_err();
    assert_eq!(f.seen, "pool_pre_ping is off", "{f}");
}

async fn fixtures_hand_out_working_settings(server: &'static TestServer) {
    let (db, settings) = fixtures::settings_on(server, "fixture-settings").await;
    let app = settings.application_name.clone().unwrap();
    assert!(app.starts_with("fixture-settings-"), "{app}");
    assert_eq!(settings.url.expose(), &db.url());
    let pool = pool_runtime::Pool::<sqlx::Postgres>::connect(settings)
        .await
        .unwrap();
    let (one,): (i32,) = sqlx::query_as("SELECT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(one, 1);
    assert_eq!(server.count_connections(&app).await.unwrap(), 1);
    pool.close().await;
    pa::eventually_connections(server, &app, 0, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn shared_server_fixtures() {
    let (_db, url) = fixtures::database_url().await;
    assert!(url.starts_with("postgres://"));
    let (_db, pool) = fixtures::pool(|s| s.pool_size(1)).await;
    let app = pool.settings().application_name.clone().unwrap();
    assert!(app.starts_with("shared_server_fixtures-"), "{app}");
    pa::eventually_connections(
        pool_testkit::shared_server(),
        &app,
        1,
        Duration::from_secs(10),
    )
    .await;
}
