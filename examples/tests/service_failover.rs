//! The service on a primary and its streaming standby through one libpq
//! multi-host `DATABASE_URL` with `target_session_attrs=read-write`, as a
//! user deploys it in front of Patroni or RDS: the primary stops, the
//! standby is promoted, and `POST /items` succeeds again by itself, on the
//! promoted node, with no restart and no setting changed.

mod support;

use std::time::{Duration, Instant};

use pool_testkit::{Cluster, ServerKind};
use serde_json::json;
use sqlx::Connection;
use support::Launch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_the_service_follow_a_promotion() {
    let cluster = tokio::task::block_in_place(|| {
        Cluster::builder()
            .backend(ServerKind::Local)
            .standbys(1)
            .start()
    })
    .expect("a primary and a standby (local backend)");
    let db = cluster.create_database().await.expect("a database");
    cluster
        .wait_caught_up(Duration::from_secs(10))
        .await
        .expect("the standby has the database");
    // Standby first: a read-write pool must skip it while it is one.
    let url = cluster.multi_host_url_over(&[1, 0], db.name()) + "?target_session_attrs=read-write";
    let svc = Launch::url(url).env("APP_DB_POOL_TIMEOUT", "2s").start();

    let post = |name: String| {
        let svc = &svc;
        async move {
            svc.client
                .post(svc.url("/items"))
                .json(&json!({ "name": name, "quantity": 1 }))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    for i in 0..20 {
        assert_eq!(post(format!("before {i}")).await, 201, "{}", svc.output());
    }

    tokio::task::block_in_place(|| cluster.stop(0)).expect("stop the primary");
    tokio::task::block_in_place(|| cluster.promote(1)).expect("promote the standby");
    let promoted = Instant::now();

    // A write every 20 ms until 25 in a row succeed (or 30 s pass).
    let mut streak = 0;
    let mut failed = 0;
    let mut first_ok = None;
    let mut i = 0;
    while streak < 25 && promoted.elapsed() < Duration::from_secs(30) {
        i += 1;
        if post(format!("after {i}")).await == 201 {
            first_ok.get_or_insert(promoted.elapsed());
            streak += 1;
        } else {
            failed += 1;
            streak = 0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "first write after promote() returned: {first_ok:?}; {failed} failed before the streak"
    );
    assert_eq!(
        streak,
        25,
        "writes did not resume within 30 s of the promotion ({failed} failed):\n{}",
        svc.output()
    );

    // On the promoted node, read directly: the writes made after the
    // promotion are there, and it is no longer a standby.
    let mut node1 = sqlx::PgConnection::connect(&cluster.url_for(1, db.name()))
        .await
        .expect("connect to node 1");
    let (in_recovery, after): (bool, i64) = sqlx::query_as(
        "SELECT pg_is_in_recovery(), (SELECT count(*) FROM items WHERE name LIKE 'after %')",
    )
    .fetch_one(&mut node1)
    .await
    .expect("query node 1");
    assert!(!in_recovery, "node 1 should be the primary now");
    assert!(
        after >= 25,
        "the writes after the promotion are on node 1: {after}"
    );
    let _ = node1.close().await;

    let health = svc.client.get(svc.url("/health/db_pool")).send().await;
    let body: serde_json::Value = health.expect("health").json().await.expect("json");
    assert_eq!(body["database"]["reachable"], json!(true), "{body}");
}
