//! Servers and databases, on both backends.

mod common;

use std::time::Duration;

use pool_testkit::{ServerKind, TestServer};
use sqlx::{Connection, Executor};

both_backends! {
    settings_are_applied;
    databases_are_fresh_and_dropped;
    parallel_tests_are_isolated;
    log_tail_shows_connections;
}

async fn settings_are_applied(server: &TestServer) {
    // The defaults of the builder.
    assert_eq!(server.setting("max_connections").await.unwrap(), "200");
    assert_eq!(server.setting("log_connections").await.unwrap(), "on");
}

async fn databases_are_fresh_and_dropped(server: &TestServer) {
    let a = server.create_database().await.unwrap();
    let b = server.create_database().await.unwrap();
    assert_ne!(a.name(), b.name());
    let mut conn = sqlx::PgConnection::connect(&a.url()).await.unwrap();
    conn.execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&b.url()).await.unwrap();
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass('only_in_a')::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        found, None,
        "a table created in one test database leaked into another"
    );
    // Dropping a database with a connection still open to it works (FORCE).
    let name = b.name().to_owned();
    drop(b);
    // Drop waits briefly, then lets the DROP finish in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut admin = server.connect_admin().await.unwrap();
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        if !exists {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "database {name} still exists after drop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        conn.ping().await.is_err(),
        "the connection to the dropped database should be gone"
    );
}

async fn parallel_tests_are_isolated(server: &'static TestServer) {
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(async move {
                let db = server.create_database().await.unwrap();
                let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
                conn.execute("CREATE TABLE t (x int)").await.unwrap();
                sqlx::query("INSERT INTO t VALUES ($1)")
                    .bind(i)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let rows: Vec<i32> = sqlx::query_scalar("SELECT x FROM t")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                rows
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap(), vec![i as i32]);
    }
}

async fn log_tail_shows_connections(server: &TestServer) {
    let app = common::app_name("log-tail");
    let conn = common::connect_as(&server.url(), &app).await;
    conn.close().await.unwrap();
    // The server writes its log asynchronously.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tail = server.log_tail(200);
        if tail.contains(&app) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "log tail never mentioned {app}:\n{tail}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Custom servers: settings, template SQL, restart, stop/start.
async fn custom_server(backend: ServerKind) {
    if !common::available(backend) {
        return;
    }
    let server = TestServer::builder()
        .backend(backend)
        .max_connections(42)
        .log_connections(false)
        .idle_session_timeout(Duration::from_secs(3600))
        .arg("application_name", "ignored-default")
        .template_sql(
            "CREATE TABLE seeded (id int PRIMARY KEY); INSERT INTO seeded VALUES (1), (2)",
        )
        .start()
        .unwrap();
    assert_eq!(server.backend(), backend);
    assert_eq!(server.setting("max_connections").await.unwrap(), "42");
    assert_eq!(server.setting("log_connections").await.unwrap(), "off");
    assert_eq!(server.setting("idle_session_timeout").await.unwrap(), "1h");

    let db = server.create_database().await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM seeded")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2, "template SQL should be in every test database");
    conn.execute("INSERT INTO seeded VALUES (3)").await.unwrap();

    // Restart: connections are cut, data and URL are kept.
    let url = server.url();
    server.restart().unwrap();
    assert_eq!(server.url(), url);
    assert!(
        conn.ping().await.is_err(),
        "a connection should not survive a restart"
    );
    let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM seeded")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 3, "data should survive a restart");
    conn.close().await.unwrap();

    // Stop: nothing answers; start: back on the same URL.
    server.stop().unwrap();
    assert!(
        sqlx::PgConnection::connect(&db.url()).await.is_err(),
        "server should be down"
    );
    server.start().unwrap();
    sqlx::PgConnection::connect(&db.url())
        .await
        .unwrap()
        .close()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_server_local() {
    custom_server(ServerKind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_server_docker() {
    custom_server(ServerKind::Docker).await;
}

/// The shared server serves one runtime after another (each
/// #[tokio::test] has its own) and plain sync code.
#[test]
fn shared_server_outlives_runtimes() {
    for _ in 0..3 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let server = pool_testkit::shared_server();
            let db = server.create_database().await.unwrap();
            let mut conn = sqlx::PgConnection::connect(&db.url()).await.unwrap();
            conn.ping().await.unwrap();
        });
        drop(rt);
    }
    // The database of the last iteration was dropped outside any runtime.
    assert!(pool_testkit::try_shared_server().is_ok());
}

#[test]
fn external_backend_uses_the_given_url() {
    if !common::available(ServerKind::Local) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let real = TestServer::builder()
        .backend(ServerKind::Local)
        .start()
        .unwrap();
    let external = TestServer::builder()
        .backend(ServerKind::External)
        .external_url(real.url())
        .start()
        .unwrap();
    assert_eq!(external.addr(), real.addr());
    rt.block_on(async {
        let db = external.create_database().await.unwrap();
        sqlx::PgConnection::connect(&db.url())
            .await
            .unwrap()
            .close()
            .await
            .unwrap();
    });
    let err = external.restart().unwrap_err();
    assert!(
        err.to_string()
            .contains("not supported by the external backend"),
        "{err}"
    );
    assert!(external.log_tail(5).contains("not available"));
}

#[test]
fn backend_names_parse() {
    assert_eq!("docker".parse::<ServerKind>().unwrap(), ServerKind::Docker);
    assert_eq!("Local".parse::<ServerKind>().unwrap(), ServerKind::Local);
    assert_eq!(
        "external".parse::<ServerKind>().unwrap(),
        ServerKind::External
    );
    let err = "podman".parse::<ServerKind>().unwrap_err().to_string();
    assert!(
        err.contains("expected docker, local, external or auto"),
        "{err}"
    );
}
