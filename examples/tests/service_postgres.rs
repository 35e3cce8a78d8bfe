//! The same service binary against a throwaway PostgreSQL server from
//! pool-testkit: CRUD, health under held connections, and the server's own
//! view of the pool's connections (by application_name). The database
//! comes from `#[pool_testkit::test]`, as a user's own test would get it.

mod support;

use std::time::Duration;

use pool_testkit::{TestDatabase, TestServer};
use serde_json::{Value, json};
use support::Launch;

#[pool_testkit::test(migrations = false)]
async fn service_runs_on_postgres_and_reports_health(db: &TestDatabase, server: &TestServer) {
    let app_name = "pool-examples-test";
    let svc = Launch::url(db.url())
        .debug()
        .env("APP_DB_POOL_SIZE", "2")
        .env("APP_DB_MAX_OVERFLOW", "2")
        .env("APP_DB_APPLICATION_NAME", app_name)
        .start();

    let item: Value = svc
        .post("/items", json!({ "name": "apple", "quantity": 2 }))
        .await
        .json()
        .await
        .unwrap();
    let id = item["id"].as_i64().expect("id");
    let path = format!("/items/{id}");
    assert_eq!(svc.get(&path).await.json::<Value>().await.unwrap(), item);
    let replaced = svc
        .put(&path, json!({ "name": "pear", "quantity": 1 }))
        .await;
    assert_eq!(replaced.status().as_u16(), 200);
    assert_eq!(svc.delete(&path).await.status().as_u16(), 204);

    // 4 held of capacity 4: critical, and the server sees 4 connections.
    svc.hold(4, 600_000).await;
    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (503, Some("critical")),
        "{body}"
    );
    assert!(
        body["server"]["max_connections"].as_u64().is_some(),
        "server limits read: {body}"
    );
    pool_testkit::assert::eventually_connections(server, app_name, 4, Duration::from_secs(30))
        .await;
    let text = body.to_string();
    assert!(
        !text.contains(&db.url()) && !text.contains("postgres://"),
        "{text}"
    );

    // Back to 2 (pool_size) once the overflow connections are returned.
    svc.release().await;
    let (code, body) = svc.health().await;
    assert_eq!(
        (code, body["health"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    pool_testkit::assert::eventually_connections(server, app_name, 2, Duration::from_secs(30))
        .await;
}
