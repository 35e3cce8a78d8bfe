//! The axum status routes (feature `axum`) served over a real socket: JSON
//! body, 503 only when critical, no URL or password, and registries of
//! named pools.

#![cfg(feature = "axum")]

use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use pool_runtime::{Health, Pool, PoolRegistry, PoolSettings, http};
use pool_testkit::TestServer;
use sqlx::{Postgres, Sqlite};
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
        // One pool of `size` + `overflow` for reads and writes (a SQLite
        // file is otherwise split into one writer and readers).
        PoolSettings::builder(url)
            .sqlite(pool_runtime::SqliteSettings {
                single_writer: false,
                ..Default::default()
            })
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
        // SQLite files: one writer each, the configured size is the readers'.
        .map(|s| (s.name.clone(), s.readers.as_ref().map(|r| r.pool_size)))
        .collect();
    assert_eq!(
        sizes,
        [("eu".to_owned(), Some(3)), ("us".to_owned(), Some(7))]
    );
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

/// Polls `path` until `done` holds for the JSON body, for at most `within`;
/// returns how long that took and the last answer.
async fn poll_until(
    addr: std::net::SocketAddr,
    path: &str,
    within: Duration,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) -> (Duration, u16, serde_json::Value) {
    let start = std::time::Instant::now();
    loop {
        let (code, _, body) = get_raw(addr, path).await;
        let body = json(&body);
        if done(code, &body) {
            return (start.elapsed(), code, body);
        }
        assert!(
            start.elapsed() < within,
            "not reached within {within:?}; last answer {code}: {body:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// With PostgreSQL stopped, the health route once answered 200 "healthy"
/// for as long as nobody used the pool. Now the pool checks an idle
/// database every 5 s: it turns critical (503) with the reason, and back
/// once the server is up again, with no traffic at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_database_that_stops_and_comes_back() {
    // Its own server: this test stops it.
    let server = std::sync::Arc::new(
        tokio::task::spawn_blocking(|| TestServer::builder().start())
            .await
            .unwrap()
            .expect("test server"),
    );
    let db = server.create_database().await.unwrap();
    let settings = PoolSettings::builder(db.url())
        .name("stops")
        .pool_size(2)
        .connect_timeout(Duration::from_secs(1))
        .pool_timeout(Duration::from_secs(2))
        .metrics(false)
        .build()
        .unwrap();
    let pool: Pool<Postgres> = Pool::connect(settings).await.unwrap();
    let addr =
        serve(Router::new().route("/health/db_pool", http::status_route(pool.clone()))).await;
    let (_, code, body) = poll_until(addr, "/health/db_pool", Duration::ZERO, |_, _| true).await;
    assert_eq!(
        (code, body["health"].as_str()),
        (200, Some("healthy")),
        "{body:#}"
    );

    let stopping = server.clone();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap()
        .unwrap();
    let (took, _, body) = poll_until(
        addr,
        "/health/db_pool",
        Duration::from_secs(20),
        |code, _| code == 503,
    )
    .await;
    eprintln!("critical {took:?} after the server stopped: {body:#}");
    assert_eq!(body["health"], "critical");
    assert_eq!(body["database"]["reachable"], false, "{body:#}");
    let reasons = body["health_reasons"].to_string();
    assert!(
        reasons.contains("the database cannot be reached"),
        "{reasons}"
    );
    assert!(
        body["recommendations"]
            .to_string()
            .contains("check that the database is up"),
        "{body:#}"
    );
    assert_eq!(body["totals"]["acquired"], 1, "no caller was involved");
    // No password or URL in what the route shows, even in errors.
    assert!(!body.to_string().contains(&db.url()), "{body:#}");

    let starting = server.clone();
    tokio::task::spawn_blocking(move || starting.start())
        .await
        .unwrap()
        .unwrap();
    let (took, code, body) = poll_until(
        addr,
        "/health/db_pool",
        Duration::from_secs(15),
        |code, _| code == 200,
    )
    .await;
    eprintln!("answering {code} {took:?} after the server started: {body:#}");
    assert_eq!(body["database"]["reachable"], true, "{body:#}");
    // The failures still count for 10 s (warning), then it is healthy.
    let (took, _, body) = poll_until(addr, "/health/db_pool", Duration::from_secs(15), |_, b| {
        b["health"] == "healthy"
    })
    .await;
    eprintln!("healthy {took:?} later: {body:#}");
    assert_eq!(body["health_reasons"], serde_json::json!([]));
    pool.close().await;
}

/// One timeout once kept health critical (503) for about 50 s while nothing
/// was in use. A timeout counts for 10 s, and the JSON says so.
#[tokio::test]
async fn one_timeout_is_critical_for_ten_seconds() {
    let db = Db::new();
    let mut settings = db.settings("timeout", 1, 0);
    settings.pool_timeout = Duration::from_millis(100);
    let pool: Pool<Sqlite> = Pool::connect(settings).await.unwrap();
    let held = pool.acquire().await.unwrap();
    assert!(matches!(
        pool.acquire().await,
        Err(pool_runtime::Error::Timeout(_))
    ));
    drop(held);
    let status = pool.status();
    assert_eq!(status.health, Health::Critical, "{status:?}");
    assert_eq!(
        status.health_reasons[0], "1 acquire(s) timed out in the last 10 s",
        "{status:?}"
    );
    assert_eq!(status.wait.p50_ms, 0.0, "the first acquire did not wait");
    let advice = status.recommendations.join("\n");
    assert!(
        advice.starts_with("1 acquire(s) timed out in the last 10 s: raise pool_size"),
        "{advice}"
    );
    assert!(!advice.contains("0 waiting"), "{advice}");
    tokio::time::sleep(Duration::from_millis(10_300)).await;
    let status = pool.status();
    assert_eq!(status.health, Health::Healthy, "{status:?}");
    assert_eq!(status.wait.recent_timeouts, 0);
}
