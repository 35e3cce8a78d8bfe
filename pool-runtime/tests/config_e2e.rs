//! End to end: a config struct loaded from the process environment
//! connects a real pool: PostgreSQL through pool-testkit (the server sees
//! the configured application_name and pool size), and SQLite.

use std::time::Duration;

use pool_runtime::config::EnvSource;
use pool_runtime::{PoolClass, PoolConfig, Secret};

/// The orders database.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "E2E_DB_")]
pub struct Database {
    #[pool(env = "E2E_DATABASE_URL")]
    pub url: Secret<String>,
    #[pool(default = 20, production = 3, range = 1..=500)]
    pub pool_size: u32,
    #[pool(default = 10, test = 0)]
    pub max_overflow: u32,
    #[pool(default = "30s")]
    pub pool_timeout: Duration,
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    #[pool(default = 0)]
    pub min_idle: u32,
    pub application_name: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_from_the_process_env() {
    let server = pool_testkit::shared_server();
    let db = server.create_database().await.expect("test database");
    let app = format!("cfg_e2e_{}", std::process::id());
    // nextest gives this test its own process; nothing else reads these.
    unsafe {
        std::env::set_var("E2E_DATABASE_URL", db.url());
        std::env::set_var("APP_ENV", "production");
        std::env::set_var("E2E_DB_MIN_IDLE", "2");
        std::env::set_var("E2E_DB_APPLICATION_NAME", &app);
        std::env::set_var("E2E_DB_POOL_TIMEOUT", "5s");
    }
    let cfg = Database::from_env().expect("config loads");
    assert_eq!(cfg.pool_size, 3, "production default");
    assert_eq!(cfg.min_idle, 2);
    let pool = cfg.connect().await.expect("pool connects");
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&pool)
        .await
        .expect("query");
    assert_eq!(one, 1);
    let (name,): (String,) = sqlx::query_as("SELECT current_setting('application_name')")
        .fetch_one(&pool)
        .await
        .expect("query");
    assert_eq!(
        name, app,
        "application_name comes from E2E_DB_APPLICATION_NAME"
    );
    // min_idle = 2 connections are opened at start; the server sees them.
    let mut seen = 0;
    for _ in 0..50 {
        seen = server.count_connections(&app).await.expect("count");
        if seen >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        (2..=3).contains(&seen),
        "server sees {seen} connections for {app}"
    );
    let status = pool.status();
    assert_eq!(status.pool_size, 3, "{status}");
    let password = url::Url::parse(&db.url())
        .unwrap()
        .password()
        .map(str::to_owned);
    if let Some(pw) = password {
        // The testkit's password may equal its user name: look for it in
        // the password position only.
        for shown in [
            format!("{pool:?}"),
            format!("{cfg:?}"),
            Database::load(&EnvSource::process())
                .unwrap()
                .explain()
                .to_string(),
        ] {
            assert!(
                !shown.contains(&format!(":{pw}@")),
                "password shown: {shown}"
            );
            assert!(shown.contains(":***@"), "masked password expected: {shown}");
        }
    }
    drop(pool);
}

#[tokio::test]
async fn sqlite_pool_from_a_map_with_connect_as() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("cfg.db").display());
    let cfg = Database::load(&EnvSource::from_pairs([
        ("E2E_DATABASE_URL", url.as_str()),
        ("APP_ENV", "test"),
        ("E2E_DB_POOL_SIZE", "2"),
    ]))
    .expect("config loads");
    assert_eq!(cfg.pool_class, PoolClass::Null);
    let pool = cfg
        .connect_as::<sqlx::Sqlite>()
        .await
        .expect("pool connects");
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO t VALUES (41), (1)")
        .execute(&pool)
        .await
        .expect("insert");
    let (sum,): (i64,) = sqlx::query_as("SELECT SUM(x) FROM t")
        .fetch_one(&pool)
        .await
        .expect("sum");
    assert_eq!(sum, 42);
    // A SQLite file: one writer, and the configured size for the readers.
    let status = pool.status();
    assert_eq!(
        status.readers.as_ref().map(|r| r.pool_size),
        Some(2),
        "{status}"
    );
}

#[tokio::test]
async fn a_bad_config_never_reaches_connect() {
    let err = Database::from_map([
        ("E2E_DATABASE_URL", "postgres://u:topsecret@nowhere/db"),
        ("E2E_DB_POOL_SIZE", "0"),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("E2E_DB_POOL_SIZE = \"0\" (from env): 0 is outside 1..=500"),
        "{err}"
    );
    assert!(!err.to_string().contains("topsecret"));
}
