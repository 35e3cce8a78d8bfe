//! The axum status routes (feature `axum`) served over a real socket: JSON
//! body, 503 only when critical, no URL or password, and registries of
//! named pools.

#![cfg(feature = "axum")]

use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use pool_runtime::{Health, Pool, PoolRegistry, PoolSettings, http};
use sqlx::Sqlite;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Db {
    dir: tempfile::TempDir,
}

impl Db {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn settings(&self, name: &str, size: u32, overflow: u32) -> PoolSettings {
        let url = format!(
            "sqlite://{}",
            self.dir.path().join(format!("{name}.db")).display()
        );
        PoolSettings::builder(url)
            .name(name)
            .pool_size(size)
            .max_overflow(overflow)
            .pool_timeout(Duration::from_secs(5))
            .metrics(false)
            .build()
            .unwrap()
    }
}

/// Serves `app` on a free port; the server task ends with the runtime.
async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A plain HTTP/1.1 GET: status code, headers (lowercase) and body.
async fn get_raw(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {head}"));
    (code, head.to_ascii_lowercase(), body.to_owned())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn status_route_answers_200_until_critical_then_503() {
    let db = Db::new();
    // Capacity 10: 7 checked out is warning (still 200), 9 is critical.
    let pool: Pool<Sqlite> = Pool::connect(db.settings("main", 5, 5)).await.unwrap();
    let addr =
        serve(Router::new().route("/health/db_pool", http::status_route(pool.clone()))).await;

    let (code, head, body) = get_raw(addr, "/health/db_pool").await;
    assert_eq!(code, 200, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("cache-control: no-store"), "{head}");
    assert_eq!(json(&body)["health"], "healthy");

    let mut held = Vec::new();
    for _ in 0..7 {
        held.push(pool.acquire().await.unwrap());
    }
    let (code, _, body) = get_raw(addr, "/health/db_pool").await;
    assert_eq!(
        (code, json(&body)["health"].as_str()),
        (200, Some("warning")),
        "{body}"
    );

    for _ in 0..2 {
        held.push(pool.acquire().await.unwrap());
    }
    let (code, _, body) = get_raw(addr, "/health/db_pool").await;
    let status = json(&body);
    assert_eq!(
        (code, status["health"].as_str()),
        (503, Some("critical")),
        "{body}"
    );
    assert_eq!(status["checked_out"], 9);
    assert!(
        status["oldest_checkout"]["site"]
            .as_str()
            .unwrap()
            .contains("http_status.rs:"),
        "{body}"
    );

    drop(held);
    let (code, _, _) = get_raw(addr, "/health/db_pool").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn the_body_never_shows_the_url_or_its_password() {
    // Lazy: no server needed to build the pool and read its status.
    let settings =
        PoolSettings::builder("postgres://app:hunter2@db.internal:5432/orders?sslmode=disable")
            .name("orders")
            .metrics(false)
            .build()
            .unwrap();
    let pool: Pool<sqlx::Postgres> = Pool::connect_lazy(settings).unwrap();
    let addr = serve(Router::new().route("/s", http::status_route(pool))).await;
    let (code, _, body) = get_raw(addr, "/s").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["name"], "orders");
    for secret in ["hunter2", "db.internal", "postgres://", "app:"] {
        assert!(!body.contains(secret), "{secret} leaked into {body}");
    }
}

#[derive(Clone)]
struct AppState {
    pool: Pool<Sqlite>,
}

impl FromRef<AppState> for Pool<Sqlite> {
    fn from_ref(state: &AppState) -> Self {
        state.pool.clone()
    }
}

#[tokio::test]
async fn pool_status_handler_takes_the_pool_from_app_state() {
    let db = Db::new();
    let pool: Pool<Sqlite> = Pool::connect(db.settings("state", 1, 0)).await.unwrap();
    let app = Router::new()
        .route("/health", get(http::pool_status::<Sqlite>))
        .with_state(AppState { pool: pool.clone() });
    let addr = serve(app).await;
    let (code, _, body) = get_raw(addr, "/health").await;
    assert_eq!(
        (code, json(&body)["name"].as_str()),
        (200, Some("state")),
        "{body}"
    );

    let _held = pool.acquire().await.unwrap(); // 1 of 1: 100 %
    let (code, _, body) = get_raw(addr, "/health").await;
    assert_eq!(code, 503, "{body}");
}

#[tokio::test]
async fn registry_routes_report_every_pool_and_the_worst_health() {
    let db = Db::new();
    let mut pools = PoolRegistry::<Sqlite>::new();
    pools.connect(db.settings("eu", 1, 1)).await.unwrap();
    pools.connect(db.settings("us", 2, 0)).await.unwrap();
    let app = Router::new()
        .route("/health/db", http::registry_route(pools.clone()))
        .route(
            "/health/db/{name}",
            http::registry_pool_route(pools.clone()),
        );
    let addr = serve(app).await;

    let (code, _, body) = get_raw(addr, "/health/db").await;
    let all = json(&body);
    assert_eq!(
        (code, all["health"].as_str()),
        (200, Some("healthy")),
        "{body}"
    );
    let names: Vec<_> = all["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["eu", "us"]);

    let eu = pools.get("eu").unwrap();
    let _a = eu.acquire().await.unwrap();
    let _b = eu.acquire().await.unwrap(); // 2 of 2
    assert_eq!(pools.health(), Health::Critical);
    let (code, _, body) = get_raw(addr, "/health/db").await;
    assert_eq!(
        (code, json(&body)["health"].as_str()),
        (503, Some("critical")),
        "{body}"
    );

    let (code, _, body) = get_raw(addr, "/health/db/us").await;
    assert_eq!(
        (code, json(&body)["health"].as_str()),
        (200, Some("healthy")),
        "one pool alone: {body}"
    );
    let (code, _, body) = get_raw(addr, "/health/db/eu").await;
    assert_eq!(code, 503, "{body}");
    let (code, _, body) = get_raw(addr, "/health/db/asia").await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(json(&body)["pools"], serde_json::json!(["eu", "us"]));
}

#[tokio::test]
async fn a_registry_refuses_duplicate_names_and_closes_every_pool() {
    let db = Db::new();
    let mut pools = PoolRegistry::<Sqlite>::new();
    pools.connect(db.settings("a", 1, 0)).await.unwrap();
    pools.connect_lazy(db.settings("b", 1, 0)).unwrap();
    let err = pools
        .connect(db.settings("a", 1, 0))
        .await
        .expect_err("duplicate name");
    assert!(
        err.to_string().contains("\"a\" is already registered"),
        "{err}"
    );
    let err = pools.pool("c").expect_err("unknown name");
    assert!(err.to_string().contains("registered: a, b"), "{err}");
    assert_eq!(pools.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(pools.statuses().len(), 2);

    pools.close().await;
    assert!(pools.iter().all(Pool::is_closed));
    assert!(
        pools
            .statuses()
            .iter()
            .all(|s| s.closed && s.health == Health::Critical)
    );
}

#[tokio::test]
async fn a_registry_loads_each_pool_from_its_own_prefix() {
    use pool_runtime::config::{EnvSource, StandardPoolConfig};
    use pool_runtime::registry::RegistryError;

    let db = Db::new();
    let url = |name: &str| {
        format!(
            "sqlite://{}",
            db.dir.path().join(format!("{name}.db")).display()
        )
    };
    let source = EnvSource::from_pairs([
        ("APP_ENV", "production".to_owned()),
        ("EU_DB_URL", url("eu")),
        ("EU_DB_POOL_SIZE", "3".to_owned()),
        ("US_DB_URL", url("us")),
        ("US_DB_POOL_SIZE", "7".to_owned()),
    ]);
    let pools = PoolRegistry::<Sqlite>::from_source::<StandardPoolConfig>(
        &source,
        &[("eu", "EU_DB_"), ("us", "US_DB_")],
    )
    .await
    .unwrap();
    let sizes: Vec<_> = pools
        .statuses()
        .iter()
        .map(|s| (s.name.clone(), s.pool_size))
        .collect();
    assert_eq!(sizes, [("eu".to_owned(), 3), ("us".to_owned(), 7)]);
    pools.close().await;

    // Every bad variable of every prefix at once; nothing connects.
    let source = EnvSource::from_pairs([
        ("EU_DB_POOL_SIZE", "lots"),
        ("US_DB_URL", "sqlite::memory:"),
        ("US_DB_POOL_TIMEOUT", "30x"),
    ]);
    let err = PoolRegistry::<Sqlite>::from_source::<StandardPoolConfig>(
        &source,
        &[("eu", "EU_DB_"), ("us", "US_DB_")],
    )
    .await
    .expect_err("bad variables");
    let RegistryError::Config(errors) = &err else {
        panic!("{err}")
    };
    assert_eq!(errors.len(), 2, "{err}");
    let text = err.to_string();
    for var in ["EU_DB_URL", "EU_DB_POOL_SIZE", "US_DB_POOL_TIMEOUT"] {
        assert!(text.contains(var), "{var} missing from {text}");
    }

    let source = EnvSource::from_pairs([("A_URL", url("a")), ("B_URL", url("b"))]);
    let err = PoolRegistry::<Sqlite>::from_source::<StandardPoolConfig>(
        &source,
        &[("x", "A_"), ("x", "B_")],
    )
    .await
    .expect_err("duplicate name");
    assert!(err.to_string().contains("given to two pools"), "{err}");
}
