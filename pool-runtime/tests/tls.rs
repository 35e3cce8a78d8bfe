//! TLS and passwords on the wire, against PostgreSQL servers that accept
//! only TLS with SCRAM passwords (or client certificates), each with a
//! certificate from a CA made for it: the pool's connections are
//! encrypted as `pg_stat_ssl` reports them, plaintext and unknown CAs are
//! refused with errors that say why, and a wrong password fails at once,
//! naming the user and never the password.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pool_runtime::{Error, Pool, PoolSettings};
use pool_testkit::{Auth, ServerKind, TestServer, Tls};
use sqlx::Postgres;
use url::Url;

/// TLS only, SCRAM passwords: what managed databases look like. Local
/// binaries (the kit's own tests/tls.rs covers Docker too).
fn tls_server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        TestServer::builder()
            .backend(ServerKind::Local)
            .tls(Tls::Required)
            .auth(Auth::Scram)
            .start()
            .expect("a TLS-only SCRAM server (local backend)")
    })
}

fn with_query(url: &str, edit: impl FnOnce(&mut Url)) -> String {
    let mut url = Url::parse(url).unwrap();
    edit(&mut url);
    url.to_string()
}

/// `url` with its TLS parameters replaced by `pairs`.
fn tls_params(url: &str, pairs: &[(&str, &str)]) -> String {
    with_query(url, |u| {
        let kept: Vec<(String, String)> = u
            .query_pairs()
            .filter(|(k, _)| !k.starts_with("ssl"))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in kept
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(pairs.iter().copied())
        {
            q.append_pair(k, v);
        }
    })
}

fn settings(url: String, app: &str) -> PoolSettings {
    PoolSettings::builder(url)
        .application_name(app)
        .name(app)
        .pool_size(3)
        .max_overflow(0)
        .pool_timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// (encrypted, TLS version) of every server connection of `app`.
async fn ssl_of(server: &TestServer, app: &str) -> Vec<(bool, Option<String>)> {
    let mut admin = server.connect_admin().await.unwrap();
    let rows: Vec<(bool, Option<String>)> = sqlx::query_as(
        "SELECT s.ssl, s.version FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = $1",
    )
    .bind(app)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    sqlx::Connection::close(admin).await.unwrap();
    rows
}

/// The user a pool on `url` is logged in as.
async fn current_user(url: String, app: &str) -> String {
    let pool = Pool::<Postgres>::connect(settings(url, app)).await.unwrap();
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    user
}

async fn hold_three_and_check(url: String, app: &str) {
    let server = tls_server();
    let pool: Pool<Postgres> = Pool::connect(settings(url, app)).await.unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.acquire().await.unwrap());
    }
    let rows = ssl_of(server, app).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter()
            .all(|(ssl, v)| *ssl && v.as_deref().is_some_and(|v| v.starts_with("TLS"))),
        "every connection encrypted: {rows:?}"
    );
    drop(held);
    pool.close().await;
}

#[tokio::test]
async fn every_connection_is_encrypted_under_verify_full() {
    let db = tls_server().create_database().await.unwrap();
    let url = db.url();
    assert!(url.contains("sslmode=verify-full"), "{url}");
    hold_three_and_check(url, "tls_verify_full").await;
}

#[tokio::test]
async fn every_connection_is_encrypted_under_require() {
    let db = tls_server().create_database().await.unwrap();
    let url = tls_params(&db.url(), &[("sslmode", "require")]);
    hold_three_and_check(url, "tls_require").await;
}

#[tokio::test]
async fn plaintext_is_refused_by_a_tls_only_server() {
    let db = tls_server().create_database().await.unwrap();
    let url = tls_params(&db.url(), &[("sslmode", "disable")]);
    let err = Pool::<Postgres>::connect(settings(url, "tls_plain"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(
        msg.contains("pg_hba.conf rejects connection") && msg.contains("no encryption"),
        "{msg}"
    );
    assert!(!msg.contains(":postgres@"), "no password: {msg}");
}

/// A certificate signed by another CA than the one in `sslrootcert` is
/// refused under verify-ca and verify-full.
#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let other = TestServer::builder()
        .backend(ServerKind::Local)
        .tls(Tls::Offered)
        .start()
        .expect("a second TLS server");
    let other_ca = other.ca_path().unwrap();
    let db = tls_server().create_database().await.unwrap();
    for mode in ["verify-ca", "verify-full"] {
        let url = tls_params(
            &db.url(),
            &[
                ("sslmode", mode),
                ("sslrootcert", &other_ca.display().to_string()),
            ],
        );
        let err = Pool::<Postgres>::connect(settings(url, "tls_other_ca"))
            .await
            .unwrap_err();
        let msg = err.to_string();
        eprintln!("{mode}: {msg}");
        assert!(
            msg.contains("UnknownIssuer") || msg.contains("unknown issuer"),
            "{mode}: {msg}"
        );
        assert!(
            msg.contains("not signed by a CA this client trusts"),
            "{mode}: the hint: {msg}"
        );
    }
}

#[tokio::test]
async fn a_wrong_password_fails_at_once_naming_the_user() {
    let server = tls_server();
    server.create_user("tls_app", "right-horse").await.unwrap();
    let db = server.create_database().await.unwrap();
    let url = with_query(&db.url(), |u| {
        u.set_username("tls_app").unwrap();
        u.set_password(Some("wrong-battery")).unwrap();
    });
    let pool_timeout = Duration::from_secs(30);
    let start = Instant::now();
    let err = Pool::<Postgres>::connect(settings(url, "tls_wrong_password"))
        .await
        .unwrap_err();
    let took = start.elapsed();
    let msg = err.to_string();
    eprintln!("wrong password: error after {took:?}: {msg}");
    assert!(
        !matches!(err, Error::Timeout(_)),
        "an authentication failure is not a timeout: {msg}"
    );
    assert!(
        took < pool_timeout,
        "not retried until pool_timeout: {took:?}"
    );
    assert!(
        msg.contains("password authentication failed for user \"tls_app\""),
        "{msg}"
    );
    assert!(msg.contains("28P01"), "the SQLSTATE: {msg}");
    assert!(!msg.contains("wrong-battery") && !format!("{err:?}").contains("wrong-battery"));

    // The right password works over the same path.
    let url = with_query(&db.url(), |u| {
        u.set_username("tls_app").unwrap();
        u.set_password(Some("right-horse")).unwrap();
    });
    assert_eq!(current_user(url, "tls_right_password").await, "tls_app");
}

#[tokio::test]
async fn an_unknown_user_fails_naming_the_user() {
    let db = tls_server().create_database().await.unwrap();
    let url = with_query(&db.url(), |u| {
        u.set_username("nobody_here").unwrap();
        u.set_password(Some("s3cret-pw")).unwrap();
    });
    let err = Pool::<Postgres>::connect(settings(url, "tls_unknown_user"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    // PostgreSQL does not tell a client whether the role exists: the
    // message is the wrong-password one, for that user.
    assert!(
        msg.contains("password authentication failed for user \"nobody_here\""),
        "{msg}"
    );
    assert!(!msg.contains("s3cret-pw"));
}

/// Client certificates: the certificate's CN is the user; without one the
/// server refuses the connection.
#[tokio::test]
async fn client_certificates_authenticate() {
    let server = TestServer::builder()
        .backend(ServerKind::Local)
        .tls(Tls::Required)
        .auth(Auth::ClientCert)
        .start()
        .expect("a client-certificate server");
    server.create_user("cert_app", "unused").await.unwrap();
    let db = server.create_database().await.unwrap();
    let (cert, key) = server.client_cert("cert_app").unwrap();
    let url = with_query(&db.url(), |u| {
        u.set_username("cert_app").unwrap();
        u.set_password(None).unwrap();
    });
    let ca = server.ca_path().unwrap().display().to_string();
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let without = tls_params(&url, &[("sslmode", "verify-full"), ("sslrootcert", &ca)]);
    let with_both = tls_params(&without, &[("sslcert", &cert), ("sslkey", &key)]);
    assert_eq!(current_user(with_both, "tls_cert").await, "cert_app");

    // Each file on its own: the certificate as a setting, its key in the URL.
    let mut mixed = settings(tls_params(&without, &[("sslkey", &key)]), "tls_cert_mixed");
    mixed.sslcert = Some(cert);
    let pool: Pool<Postgres> = Pool::connect(mixed).await.unwrap();
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(user, "cert_app");
    pool.close().await;

    let err = Pool::<Postgres>::connect(settings(without, "tls_no_cert"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains("cert_app"), "{msg}");
}

/// libpq's `allow`: plaintext first, TLS when the server refuses it. sqlx
/// alone only tries plaintext, so a TLS-only server was out of reach.
#[tokio::test]
async fn allow_reaches_a_tls_only_server_over_tls() {
    let db = tls_server().create_database().await.unwrap();
    let url = tls_params(&db.url(), &[("sslmode", "allow")]);
    let pool: Pool<Postgres> = Pool::connect(settings(url, "tls_allow")).await.unwrap();
    let _conn = pool.acquire().await.unwrap();
    let rows = ssl_of(tls_server(), "tls_allow").await;
    assert!(
        !rows.is_empty() && rows.iter().all(|(ssl, _)| *ssl),
        "{rows:?}"
    );
}

/// libpq's `require` with a root certificate verifies the chain (as
/// `verify-ca`); sqlx alone accepted any certificate.
#[tokio::test]
async fn require_with_a_root_certificate_checks_the_chain() {
    let other = TestServer::builder()
        .backend(ServerKind::Local)
        .tls(Tls::Offered)
        .start()
        .expect("a second TLS server");
    let db = tls_server().create_database().await.unwrap();
    let url = tls_params(
        &db.url(),
        &[
            ("sslmode", "require"),
            (
                "sslrootcert",
                &other.ca_path().unwrap().display().to_string(),
            ),
        ],
    );
    let err = Pool::<Postgres>::connect(settings(url, "tls_require_ca"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("not signed by a CA this client trusts"),
        "{msg}"
    );
}

/// The files as settings (what `DB_SSLROOTCERT`, `DB_SSLCERT`,
/// `DB_SSLKEY` set through the derive) instead of URL parameters.
#[tokio::test]
async fn tls_files_can_be_settings() {
    let server = tls_server();
    let db = server.create_database().await.unwrap();
    let url = tls_params(&db.url(), &[("sslmode", "verify-full")]);
    let mut s = settings(url.clone(), "tls_settings");
    s.sslrootcert = Some(server.ca_path().unwrap().display().to_string());
    let pool: Pool<Postgres> = Pool::connect(s).await.unwrap();
    let _conn = pool.acquire().await.unwrap();
    assert!(
        ssl_of(server, "tls_settings")
            .await
            .iter()
            .all(|(ssl, _)| *ssl)
    );

    // Without the CA, verify-full fails: the built-in roots don't know it.
    let err = Pool::<Postgres>::connect(settings(url.clone(), "tls_no_root"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not signed by a CA"), "{err}");

    // A missing file and an unpaired client certificate are named before
    // any connect.
    let mut s = settings(url.clone(), "tls_missing");
    s.sslrootcert = Some("/nonexistent/ca.pem".into());
    s.sslcert = Some(server.ca_path().unwrap().display().to_string());
    let Err(Error::InvalidSettings(problems)) = Pool::<Postgres>::connect(s).await else {
        panic!("expected InvalidSettings");
    };
    let msg = problems.to_string();
    assert!(
        msg.contains("sslrootcert: file /nonexistent/ca.pem does not exist")
            && msg.contains("sslcert: is given without sslkey"),
        "{msg}"
    );
}

/// A wrong password under steady traffic: the server is asked once, then
/// again after 1 s, 2 s, …; meanwhile checkouts fail at once with its last
/// answer, and status says so. Once the server accepts the credentials
/// (here: the role's password is changed to the one the pool has), the
/// next attempt connects, with no restart.
#[tokio::test]
async fn repeated_refusals_are_answered_without_asking_the_server() {
    let server = tls_server();
    server
        .create_user("tls_refused", "the-real-one")
        .await
        .unwrap();
    let db = server.create_database().await.unwrap();
    let url = with_query(&db.url(), |u| {
        u.set_username("tls_refused").unwrap();
        u.set_password(Some("an-old-one")).unwrap();
    });
    let pool: Pool<Postgres> = Pool::connect_lazy(settings(url, "tls_refused")).unwrap();
    let asked = || {
        server
            .log_tail(2000)
            .matches("password authentication failed for user \"tls_refused\"")
            .count()
    };
    let mut refused_at_once = 0;
    for _ in 0..20 {
        match pool.acquire().await {
            Err(Error::CredentialsRefused { answer, streak, .. }) => {
                assert!(answer.contains("SQLSTATE 28P01"), "{answer}");
                assert!(streak >= 1);
                refused_at_once += 1;
            }
            Err(Error::Connect { .. }) => {}
            other => panic!("expected a refusal, got {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        refused_at_once >= 10,
        "{refused_at_once} of 20 answered from memory"
    );
    let times_asked = asked();
    assert!(
        (1..=3).contains(&times_asked),
        "the server was asked {times_asked} times for 20 checkouts in ~0.5 s"
    );
    let status = pool.status();
    assert_eq!(status.health, pool_runtime::Health::Critical, "{status:?}");
    assert!(
        status
            .health_reasons
            .iter()
            .any(|r| r.contains("refused the pool's credentials")),
        "{:?}",
        status.health_reasons
    );
    assert!(status.database.credentials_refused.is_some());
    let msg = format!("{status:?} {}", serde_json::to_string(&status).unwrap());
    assert!(!msg.contains("an-old-one") && !msg.contains("the-real-one"));

    // The server now accepts the pool's password: within the back-off
    // (at most 30 s, here a few seconds) a checkout connects.
    let mut admin = server.connect_admin().await.unwrap();
    sqlx::raw_sql("ALTER ROLE tls_refused PASSWORD 'an-old-one'")
        .execute(&mut admin)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match pool.acquire().await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "never recovered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(pool.status().database.credentials_refused, None);
    pool.close().await;
}

/// The server's certificate names `localhost` and `127.0.0.1`; the same
/// server reached as `::ffff:127.0.0.1` (the IPv4-mapped IPv6 address, the
/// same socket) is another host name. verify-full refuses it saying so;
/// verify-ca, which checks the chain only, accepts it.
#[tokio::test]
async fn a_certificate_for_another_host_is_refused_under_verify_full() {
    let db = tls_server().create_database().await.unwrap();
    let ca = tls_server().ca_path().unwrap().display().to_string();
    // sqlx resolves a bracketed URL host by name; libpq's `host`
    // parameter takes the address as it is.
    let elsewhere = |mode: &str| {
        let url = with_query(&db.url(), |u| {
            u.query_pairs_mut().append_pair("host", "::ffff:127.0.0.1");
        });
        tls_params(&url, &[("sslmode", mode), ("sslrootcert", &ca)])
    };
    let err = Pool::<Postgres>::connect(settings(elsewhere("verify-full"), "tls_other_host"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    eprintln!("verify-full, another host name: {msg}");
    assert!(
        msg.contains("the server's certificate is not for this host name"),
        "{msg}"
    );
    assert!(msg.contains("::ffff:127.0.0.1"), "names the host: {msg}");
    hold_three_and_check(elsewhere("verify-ca"), "tls_other_host_ca").await;
}

/// Credential rotation without a restart: the password changes on the
/// server; connections already open keep working (PostgreSQL checks a
/// password only at connect), new ones are refused until the pool gets
/// the new URL, and `invalidate_all` then replaces every old connection.
#[tokio::test]
async fn a_new_password_takes_effect_without_a_restart() {
    let server = tls_server();
    server
        .create_user("tls_rotate", "first-secret")
        .await
        .unwrap();
    let db = server.create_database().await.unwrap();
    let url_with = |password: &str| {
        with_query(&db.url(), |u| {
            u.set_username("tls_rotate").unwrap();
            u.set_password(Some(password)).unwrap();
        })
    };
    let app = "tls_rotate";
    let pool: Pool<Postgres> = Pool::connect(settings(url_with("first-secret"), app))
        .await
        .unwrap();
    let held: Vec<_> = futures_util::future::try_join_all((0..2).map(|_| pool.acquire()))
        .await
        .unwrap();
    drop(held);
    let old_pids = server.pids(app).await.unwrap();
    assert_eq!(old_pids.len(), 2);

    let mut admin = server.connect_admin().await.unwrap();
    sqlx::query("ALTER ROLE tls_rotate PASSWORD 'second-secret'")
        .execute(&mut admin)
        .await
        .unwrap();
    // Open connections are not affected ...
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(user, "tls_rotate");
    // ... but after invalidate_all alone, new connects are refused.
    pool.invalidate_all();
    let refused = pool.acquire().await.unwrap_err();
    assert!(refused.to_string().contains("28P01"), "{refused}");

    // A bad URL is rejected and changes nothing.
    let bad = pool.set_connect_url("mysql://tls_rotate:second-secret@localhost/x");
    let bad = bad.unwrap_err().to_string();
    assert!(!bad.contains("second-secret"), "{bad}");

    // The new URL: the refusal back-off ends at once, no restart.
    pool.set_connect_url(url_with("second-secret")).unwrap();
    let held: Vec<_> = futures_util::future::try_join_all((0..2).map(|_| pool.acquire()))
        .await
        .expect("new connections with the new password");
    let new_pids = server.pids(app).await.unwrap();
    assert_eq!(new_pids.len(), 2, "{new_pids:?}");
    assert!(
        new_pids.iter().all(|p| !old_pids.contains(p)),
        "{old_pids:?} -> {new_pids:?}"
    );
    drop(held);
    let shown = format!("{pool:?} {}", pool.status());
    assert!(
        !shown.contains("second-secret") && !shown.contains("first-secret"),
        "{shown}"
    );
    pool.close().await;
}
