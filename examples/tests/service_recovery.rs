//! The service over HTTP when its database connection dies under steady
//! traffic. Its handlers run statements on `&mut *conn`, where the pool
//! never sees the error; the service once answered 500 to every request for
//! as long as traffic continued (100 of 100 serial requests over 11.75 s).
//! Now: a request every 40 ms, the service's only backend terminated from
//! the server's side, zero errors from 1.5 s later on.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::Launch;

#[tokio::test]
async fn the_service_recovers_from_a_terminated_backend_under_steady_traffic() {
    let server = pool_testkit::shared_server();
    let db = server
        .create_database()
        .await
        .expect("create a test database");
    let app_name = format!("svc-recovery-{}", std::process::id());
    let svc = Launch::url(db.url())
        .env("APP_DB_POOL_SIZE", "1")
        .env("APP_DB_MAX_OVERFLOW", "0")
        .env("APP_DB_APPLICATION_NAME", &app_name)
        .start();
    let created = svc
        .post("/items", json!({ "name": "apple", "quantity": 2 }))
        .await;
    assert_eq!(created.status().as_u16(), 201);
    let before = server.pids(&app_name).await.unwrap();
    assert_eq!(before.len(), 1, "the service's one backend: {before:?}");

    let start = Instant::now();
    let mut killed_at = None;
    let mut answers = Vec::new();
    while start.elapsed() < Duration::from_secs(4) {
        if killed_at.is_none() && start.elapsed() >= Duration::from_secs(1) {
            assert!(server.terminate(before[0]).await.unwrap());
            killed_at = Some(Instant::now());
        }
        let code = svc.get("/items").await.status().as_u16();
        answers.push((Instant::now(), code));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let killed_at = killed_at.expect("terminated");
    let recovered = killed_at + Duration::from_millis(1500);
    let failed = answers.iter().filter(|(_, code)| *code != 200).count();
    let late: Vec<_> = answers
        .iter()
        .filter(|(at, code)| *at >= recovered && *code != 200)
        .map(|(at, code)| (at.duration_since(killed_at), *code))
        .collect();
    eprintln!(
        "{} requests, {failed} not 200, {} of them 1.5 s or more after the kill",
        answers.len(),
        late.len()
    );
    assert!(
        late.is_empty(),
        "errors 1.5 s or more after the backend was terminated: {late:?}\n{}",
        svc.output()
    );
    let after = server.pids(&app_name).await.unwrap();
    assert_eq!(after.len(), 1, "one backend after: {after:?}");
    assert_ne!(after, before, "the dead backend was replaced");
}
