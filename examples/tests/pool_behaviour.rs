//! How a service tests its own pool configuration with pool-testkit: each
//! assertion is checked from the PostgreSQL server's side
//! (`pg_stat_activity`), not from the pool's counters.

use std::time::Duration;

use pool_runtime::PoolClass;
use pool_testkit::{assert, fixtures, shared_server};

#[tokio::test]
async fn overflow_closes_on_return() {
    let (_db, pool) = fixtures::pool(|b| b.pool_size(2).max_overflow(3)).await;
    assert::overflow_closes_on_return(shared_server(), &pool).await;
}

#[tokio::test]
async fn never_more_than_size_plus_overflow_under_load() {
    let (_db, pool) = fixtures::pool(|b| b.pool_size(3).max_overflow(2)).await;
    let peak = assert::never_above_capacity(shared_server(), &pool, 100).await;
    println!("server-side peak: {peak} connections");
}

#[tokio::test]
async fn recycled_connections_get_new_backends() {
    let (_db, pool) = fixtures::pool(|b| {
        b.pool_size(2)
            .pool_recycle(Some(Duration::from_millis(400)))
    })
    .await;
    assert::recycled_after_max_age(shared_server(), &pool).await;
}

#[tokio::test]
async fn pre_ping_replaces_a_killed_connection() {
    let (_db, pool) = fixtures::pool(|b| b.pool_size(1).pre_ping_bypass(Duration::ZERO)).await;
    assert::pre_ping_replaces_killed(shared_server(), &pool).await;
}

#[tokio::test]
async fn null_pool_in_tests() {
    let (_db, pool) = fixtures::pool(|b| b.pool_class(PoolClass::Null)).await;
    assert::null_pool_one_per_checkout(shared_server(), &pool).await;
}
