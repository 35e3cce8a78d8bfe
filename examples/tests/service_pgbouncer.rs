//! The service behind the real PgBouncer (1.18) in transaction mode, as
//! many deployments run it: `APP_DB_PGBOUNCER=transaction` and nothing
//! else changed. Concurrent creates, reads, updates and deletes over HTTP
//! all succeed, and the server never sees more backends than PgBouncer's
//! pool, while the service's own pool holds more connections than that.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pool_testkit::{PgBouncer, PoolMode, ServerKind, TestServer};
use serde_json::json;
use support::Launch;

/// PgBouncer's server connections for the service's database.
const BOUNCER_POOL: u32 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_runs_behind_transaction_mode() {
    let server =
        tokio::task::block_in_place(|| TestServer::builder().backend(ServerKind::Local).start())
            .expect("a local server");
    let bouncer = tokio::task::block_in_place(|| {
        PgBouncer::builder()
            .backend(ServerKind::Local)
            .pool_mode(PoolMode::Transaction)
            .default_pool_size(BOUNCER_POOL)
            .start(server.addr())
    })
    .expect("PgBouncer (scripts/setup.sh installs it)");
    let db = server.create_database().await.expect("a database");
    let svc = Launch::url(bouncer.url_for(&db.url()))
        .env("APP_DB_PGBOUNCER", "transaction")
        .env("APP_DB_PGBOUNCER_POOL_SIZE", &BOUNCER_POOL.to_string())
        .env("APP_DB_POOL_SIZE", "8")
        .start();

    let failures = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(5);
    let svc = Arc::new(svc);
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (svc, failures, requests) = (svc.clone(), failures.clone(), requests.clone());
            tokio::spawn(async move {
                let mut i = 0;
                while Instant::now() < until {
                    i += 1;
                    let created = svc
                        .post(
                            "/items",
                            json!({ "name": format!("c{c}-{i}"), "quantity": i }),
                        )
                        .await;
                    let ok = created.status() == 201;
                    let item: serde_json::Value = created.json().await.unwrap_or_default();
                    let id = item["id"].as_i64().unwrap_or(0);
                    let path = format!("/items/{id}");
                    let read = svc.get(&path).await.status() == 200;
                    let put = svc
                        .put(&path, json!({ "name": "renamed", "quantity": 0 }))
                        .await
                        .status()
                        == 200;
                    let list = svc.get("/items?limit=5").await.status() == 200;
                    let gone = svc.delete(&path).await.status() == 204;
                    requests.fetch_add(5, Ordering::Relaxed);
                    if !(ok && read && put && list && gone) {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let work = async {
        for client in clients {
            client.await.unwrap();
        }
    };
    let ((), peak) =
        pool_testkit::assert::peak_database_connections_during(&server, db.name(), work)
            .await
            .unwrap();
    let (_, health) = svc.health().await;
    eprintln!(
        "{} requests, {} failed rounds, peak server backends {peak}; pool {}",
        requests.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
        health["size"]
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed behind transaction mode:\n{}",
        svc.output()
    );
    assert!(requests.load(Ordering::Relaxed) > 100);
    assert!(
        peak <= BOUNCER_POOL as usize,
        "the server saw {peak} backends behind a PgBouncer pool of {BOUNCER_POOL}"
    );
    assert!(
        health["size"].as_u64().unwrap_or(0) > u64::from(BOUNCER_POOL),
        "the service's pool should hold more clients than PgBouncer has server connections \
         (that is what transaction mode is for): {health}"
    );
}
