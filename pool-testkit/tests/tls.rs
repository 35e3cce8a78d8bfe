//! TLS and password servers on both backends: plaintext refused by a
//! TLS-only server, the kit's URL verifies the server's certificate against
//! the CA made for it, SCRAM and client certificates authenticate, and
//! restarts keep it all (the Docker init script runs once).

mod common;

use pool_testkit::{Auth, ServerKind, TestServer, Tls};
use sqlx::{Connection, PgConnection};

async fn ssl_in_use(url: &str) -> bool {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let ssl: bool = sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    ssl
}

fn without_tls(url: &str) -> String {
    let base = url.split_once('?').map_or(url, |(b, _)| b);
    format!("{base}?sslmode=disable")
}

async fn tls_only_with_passwords(backend: ServerKind) {
    if !common::available(backend) {
        return;
    }
    let server = TestServer::builder()
        .backend(backend)
        .tls(Tls::Required)
        .auth(Auth::Scram)
        .start()
        .unwrap();
    let ca = server.ca_path().expect("a CA for clients");
    let db = server.create_database().await.unwrap();
    let url = db.url();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    assert!(
        url.contains(&*ca.display().to_string().replace('/', "%2F")),
        "{url}"
    );
    assert!(ssl_in_use(&url).await, "verify-full against the kit's CA");

    let plain = PgConnection::connect(&without_tls(&url)).await.unwrap_err();
    assert!(plain.to_string().contains("no encryption"), "{plain}");

    server.create_user("tk_app", "pw-1").await.unwrap();
    let wrong = url.replacen("postgres:postgres@", "tk_app:nope@", 1);
    let err = PgConnection::connect(&wrong).await.unwrap_err();
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    let right = url.replacen("postgres:postgres@", "tk_app:pw-1@", 1);
    assert!(ssl_in_use(&right).await);

    // A restart keeps certificates and rules.
    server.restart().unwrap();
    assert!(ssl_in_use(&right).await, "after a restart");
    assert!(PgConnection::connect(&without_tls(&url)).await.is_err());
}

async fn client_certificates(backend: ServerKind) {
    if !common::available(backend) {
        return;
    }
    let server = TestServer::builder()
        .backend(backend)
        .tls(Tls::Required)
        .auth(Auth::ClientCert)
        .start()
        .unwrap();
    // The kit's own URL carries its client certificate.
    let db = server.create_database().await.unwrap();
    assert!(db.url().contains("sslcert="), "{}", db.url());
    assert!(ssl_in_use(&db.url()).await);
    server.create_user("tk_cert", "unused").await.unwrap();
    let (cert, key) = server.client_cert("tk_cert").unwrap();
    let base = db
        .url()
        .split_once('?')
        .unwrap()
        .0
        .replacen("postgres:postgres@", "tk_cert@", 1);
    let ca = server.ca_path().unwrap();
    let with_cert = format!(
        "{base}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        ca.display(),
        cert.display(),
        key.display()
    );
    let mut conn = PgConnection::connect(&with_cert).await.unwrap();
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(user, "tk_cert");
    conn.close().await.unwrap();
    let no_cert = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());
    let err = PgConnection::connect(&no_cert).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn tls_only_with_passwords_local() {
    tls_only_with_passwords(ServerKind::Local).await;
}

#[tokio::test]
async fn tls_only_with_passwords_docker() {
    tls_only_with_passwords(ServerKind::Docker).await;
}

#[tokio::test]
async fn client_certificates_local() {
    client_certificates(ServerKind::Local).await;
}

#[tokio::test]
async fn client_certificates_docker() {
    client_certificates(ServerKind::Docker).await;
}

#[test]
fn client_certificates_need_tls() {
    let err = TestServer::builder()
        .auth(Auth::ClientCert)
        .start()
        .unwrap_err();
    assert!(err.to_string().contains("needs TLS"), "{err}");
}
