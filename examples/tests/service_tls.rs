//! The service against a PostgreSQL that accepts only TLS with SCRAM
//! passwords, as managed databases do: `APP_DB_SSLMODE=verify-full` and
//! `APP_DB_SSLROOTCERT` (the server's CA, made for this run; the same
//! works as `?sslmode=verify-full&sslrootcert=…` in `DATABASE_URL`), and
//! the server reports every one of the service's connections as encrypted
//! in `pg_stat_ssl`.

mod support;

use pool_testkit::{Auth, ServerKind, TestServer, Tls};
use serde_json::{Value, json};
use support::Launch;

#[tokio::test]
async fn the_service_talks_tls_to_a_tls_only_server() {
    let server = TestServer::builder()
        .backend(ServerKind::Local)
        .tls(Tls::Required)
        .auth(Auth::Scram)
        .start()
        .expect("a TLS-only server (local backend)");
    let db = server.create_database().await.unwrap();
    // The URL without its TLS parameters; they come from the service's
    // own variables instead (the derive maps them to the settings).
    let url = db.url();
    let url = url.split_once('?').map_or(url.as_str(), |(base, _)| base);
    let ca = server.ca_path().expect("the server's CA");
    let app = "pool-examples-tls";
    let svc = Launch::url(url)
        .env("APP_DB_POOL_SIZE", "2")
        .env("APP_DB_APPLICATION_NAME", app)
        .env("APP_DB_SSLMODE", "verify-full")
        .env("APP_DB_SSLROOTCERT", &ca.display().to_string())
        .start();

    let item: Value = svc
        .post("/items", json!({ "name": "lock", "quantity": 1 }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(item["name"], "lock", "{item}");
    let (code, body) = svc.health().await;
    assert_eq!(code, 200, "{body}");

    let mut admin = server.connect_admin().await.unwrap();
    let rows: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = $1",
    )
    .bind(app)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!rows.is_empty(), "the service has connections");
    assert!(rows.iter().all(|(ssl,)| *ssl), "all encrypted: {rows:?}");
    let log = svc.output();
    assert!(
        !log.contains(":postgres@"),
        "no password in the log:\n{log}"
    );

    // The variable reaches the pool: a CA file that isn't there stops the
    // service at start, naming the setting.
    let (status, out) = Launch::url(url)
        .env("APP_DB_SSLMODE", "verify-full")
        .env("APP_DB_SSLROOTCERT", "/nonexistent/ca.pem")
        .run_to_exit();
    assert!(!status.success(), "{out}");
    assert!(
        out.contains("sslrootcert: file /nonexistent/ca.pem does not exist"),
        "{out}"
    );
}
