//! PgBouncer (the real one, Debian's 1.18) in front of a server of each
//! backend, run the same way (a local process in front of the local
//! server, a container in front of the container): it caps server
//! connections, and its admin console is read as typed probes. Server-side
//! counts come from pg_stat_activity.

mod common;

use std::time::Duration;

use pool_testkit::{PgBouncer, PoolMode, ServerKind, TestServer};
use sqlx::{Connection, PgConnection};

use common::connect_as;

both_backends! {
    transaction_mode_caps_server_connections;
    session_mode_gives_each_client_its_own_backend;
}

/// A builder whose PgBouncer runs on the server's backend; `None` (SKIP)
/// when that is Docker and the PgBouncer image is missing, unless
/// POOL_TESTKIT_REQUIRE_DOCKER=1.
fn bouncer_for(server: &TestServer) -> Option<pool_testkit::PgBouncerBuilder> {
    let builder = PgBouncer::builder().backend(server.backend());
    if server.backend() == ServerKind::Docker {
        let image = pool_testkit::pgbouncer::DEFAULT_IMAGE;
        let present = std::process::Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            let why =
                format!("image {image} missing: run pool-testkit/docker/build-pgbouncer-image.sh");
            if std::env::var("POOL_TESTKIT_REQUIRE_DOCKER").is_ok_and(|v| v == "1") {
                panic!("POOL_TESTKIT_REQUIRE_DOCKER=1 but {why}");
            }
            eprintln!("SKIP (PgBouncer container): {why}");
            return None;
        }
    }
    Some(builder)
}

/// Server connections to database `db`, counted on the server while
/// `work` runs; returns the peak.
async fn peak_backends_during(
    server: &TestServer,
    db: &str,
    work: impl std::future::Future<Output = ()>,
) -> usize {
    pool_testkit::assert::peak_database_connections_during(server, db, work)
        .await
        .unwrap()
        .1
}

async fn transaction_mode_caps_server_connections(server: &TestServer) {
    const CLIENTS: usize = 6;
    const POOL: u32 = 2;
    let Some(builder) = bouncer_for(server) else {
        return;
    };
    let db = server.create_database().await.unwrap();
    let bouncer = builder
        .pool_mode(PoolMode::Transaction)
        .default_pool_size(POOL)
        .max_client_conn(50)
        .start(server.addr())
        .unwrap();
    let url = bouncer.url_for(&db.url());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(connect_as(&url, "tk-bouncer-tx").await);
    }
    // Every client runs a slow statement at once: PgBouncer queues them on
    // its POOL server connections. Simple protocol: 1.18 cannot carry
    // named prepared statements in transaction mode.
    let work = async {
        let runs = clients.iter_mut().map(|c| async move {
            sqlx::raw_sql("SELECT pg_sleep(0.4)")
                .execute(c)
                .await
                .unwrap();
        });
        futures_util::future::join_all(runs).await;
    };
    let peak = peak_backends_during(server, db.name(), work).await;
    assert_eq!(
        peak,
        POOL as usize,
        "{CLIENTS} busy clients over a pool of {POOL}: the server must see exactly {POOL} backends\n\
         PgBouncer log:\n{}",
        bouncer.log_tail(20)
    );
    // The admin console agrees, and PgBouncer's server connections are
    // exactly the backends the server has for this database.
    let pools = bouncer.show_pools().await.unwrap();
    let pool = pools
        .iter()
        .find(|p| p.database == db.name())
        .unwrap_or_else(|| panic!("no pool for {} in {pools:?}", db.name()));
    assert_eq!(pool.pool_mode, "transaction");
    assert_eq!(
        bouncer.container_id().is_some(),
        server.backend() == ServerKind::Docker,
        "PgBouncer runs like the server it fronts"
    );
    assert_eq!(pool.cl_active as usize, CLIENTS, "{pool:?}");
    assert!(pool.servers() <= POOL, "{pool:?}");
    let behind = bouncer.server_backends(server).await.unwrap();
    assert_eq!(behind.len(), pool.servers() as usize, "{behind:?}");
    assert!(
        behind
            .iter()
            .all(|b| b.database.as_deref() == Some(db.name())),
        "{behind:?}"
    );
    let clients_seen = bouncer.show_clients().await.unwrap();
    assert_eq!(
        clients_seen
            .iter()
            .filter(|c| c.database == db.name())
            .count(),
        CLIENTS,
        "{clients_seen:?}"
    );
    for c in clients {
        c.close().await.unwrap();
    }
}

async fn session_mode_gives_each_client_its_own_backend(server: &TestServer) {
    let Some(builder) = bouncer_for(server) else {
        return;
    };
    let db = server.create_database().await.unwrap();
    let bouncer = builder
        .pool_mode(PoolMode::Session)
        .default_pool_size(5)
        .start(server.addr())
        .unwrap();
    let url = bouncer.url_for(&db.url());
    let mut clients: Vec<PgConnection> = Vec::new();
    for _ in 0..3 {
        let mut c = connect_as(&url, "tk-bouncer-session").await;
        sqlx::raw_sql("SELECT 1").execute(&mut c).await.unwrap();
        clients.push(c);
    }
    let servers = bouncer.show_servers().await.unwrap();
    let ours: Vec<_> = servers.iter().filter(|s| s.database == db.name()).collect();
    assert_eq!(ours.len(), 3, "{servers:?}");
    assert!(ours.iter().all(|s| s.state == "active"), "{ours:?}");
    assert_eq!(bouncer.server_backends(server).await.unwrap().len(), 3);
    for c in clients {
        c.close().await.unwrap();
    }
}

#[test]
fn bad_settings_are_refused_before_starting() {
    let err = PgBouncer::builder()
        .default_pool_size(0)
        .start("127.0.0.1:5432".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("default_pool_size (0) and max_client_conn (100) must be at least 1"),
        "{err}"
    );
}

#[test]
fn a_dead_upstream_is_reported_by_the_client_not_hidden() {
    if !common::available(ServerKind::Local) {
        return;
    }
    // Nothing listens on the upstream: PgBouncer starts (it connects
    // lazily), and a client gets an error instead of hanging.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let bouncer = PgBouncer::builder()
        .arg("server_login_retry", "1")
        .arg("query_wait_timeout", "3")
        .start(addr)
        .unwrap();
    let url = format!("postgres://postgres:postgres@{}/postgres", bouncer.addr());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let mut c = PgConnection::connect(&url).await?;
            sqlx::raw_sql("SELECT 1").execute(&mut c).await.map(drop)
        })
        .await
    });
    let err = result
        .expect("the client must get an answer within 20 s")
        .unwrap_err();
    assert!(err.as_database_error().is_some(), "{err}");
}

/// What 1.18 lacks (documented on `pool_testkit::pgbouncer`): in
/// transaction mode, sqlx's named statements (`sqlx_s_1`, ... counted per
/// client) collide on a shared server connection; unnamed ones work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_1_18_breaks_named_prepared_statements() {
    let Some(server) = common::shared(ServerKind::Local) else {
        return;
    };
    let db = server.create_database().await.unwrap();
    let bouncer = PgBouncer::builder()
        .pool_mode(PoolMode::Transaction)
        .default_pool_size(1)
        .start(server.addr())
        .unwrap();
    let url = bouncer.url_for(&db.url());
    let mut a = connect_as(&url, "tk-bouncer-prep").await;
    let mut b = connect_as(&url, "tk-bouncer-prep").await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert_eq!(one, 1);
    // Same single server connection, same statement name from client b.
    let err = sqlx::query_scalar::<_, i32>("SELECT 2")
        .fetch_one(&mut b)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("42P05"),
        "expected `prepared statement \"sqlx_s_1\" already exists`, got {err}"
    );
    // Unnamed statements are fine through 1.18 in transaction mode.
    let mut c = connect_as(&url, "tk-bouncer-prep").await;
    let two: i32 = sqlx::query_scalar("SELECT 2")
        .persistent(false)
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(two, 2);
    for conn in [a, b, c] {
        let _ = conn.close().await;
    }
}
