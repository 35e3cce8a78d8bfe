//! The fault-injecting proxy, on both backends. Timing checks are lower
//! bounds only (a delay is at least as long as asked); "hangs" are checked
//! as "did not finish within a short wait", then shown to finish after the
//! fault is lifted.

mod common;

use std::time::{Duration, Instant};

use pool_testkit::{ProxyMode, TcpProxy, TestServer};
use sqlx::{Connection, PgConnection};

both_backends! {
    forward_and_delay;
    drop_resets_and_refuses;
    blackhole_hangs_then_heals;
    close_all_resets_open_connections;
}

async fn one(conn: &mut PgConnection) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT 1").fetch_one(conn).await
}

async fn forward_and_delay(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    let url = proxy.url_for(&db.url());
    assert!(url.contains(&format!(":{}/", proxy.addr().port())), "{url}");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    assert_eq!(one(&mut conn).await.unwrap(), 1);
    assert_eq!(proxy.active_connections(), 1);
    assert_eq!(proxy.accepted_connections(), 1);

    proxy.set_mode(ProxyMode::Delay(Duration::from_millis(150)));
    assert_eq!(proxy.mode(), ProxyMode::Delay(Duration::from_millis(150)));
    let start = Instant::now();
    assert_eq!(one(&mut conn).await.unwrap(), 1);
    // Request and response are each held 150 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "delay not applied: {:?}",
        start.elapsed()
    );
    proxy.set_mode(ProxyMode::Forward);
    conn.close().await.unwrap();
}

async fn drop_resets_and_refuses(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    let url = proxy.url_for(&db.url());
    let mut conn = PgConnection::connect(&url).await.unwrap();
    one(&mut conn).await.unwrap();

    proxy.set_mode(ProxyMode::Drop);
    assert!(
        one(&mut conn).await.is_err(),
        "an open connection should be reset"
    );
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "new connections should be refused"
    );

    proxy.set_mode(ProxyMode::Forward);
    let mut again = PgConnection::connect(&url).await.unwrap();
    assert_eq!(one(&mut again).await.unwrap(), 1);
}

async fn blackhole_hangs_then_heals(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    let url = proxy.url_for(&db.url());
    let mut conn = PgConnection::connect(&url).await.unwrap();
    one(&mut conn).await.unwrap();

    proxy.set_mode(ProxyMode::Blackhole);
    let pending = tokio::spawn(async move {
        let r = one(&mut conn).await;
        (r, conn)
    });
    let connecting = tokio::spawn({
        let url = url.clone();
        async move { PgConnection::connect(&url).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "a query through a blackhole should hang"
    );
    assert!(
        !connecting.is_finished(),
        "a connect through a blackhole should hang"
    );

    proxy.set_mode(ProxyMode::Forward);
    let (r, _conn) = pending.await.unwrap();
    assert_eq!(
        r.unwrap(),
        1,
        "the held query completes once traffic flows again"
    );
    let mut late = connecting.await.unwrap().unwrap();
    assert_eq!(one(&mut late).await.unwrap(), 1);
}

async fn close_all_resets_open_connections(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let app = common::app_name("proxy-close-all");
    let proxy = TcpProxy::start(server.addr()).await.unwrap();
    let url = proxy.url_for(&db.url());
    let mut a = common::connect_as(&url, &app).await;
    let mut b = common::connect_as(&url, &app).await;
    one(&mut a).await.unwrap();
    one(&mut b).await.unwrap();
    proxy.close_all();
    assert!(one(&mut a).await.is_err());
    assert!(one(&mut b).await.is_err());
    // The server notices the cut connections.
    pool_testkit::assert::eventually_connections(server, &app, 0, Duration::from_secs(10)).await;
    let mut c = PgConnection::connect(&url).await.unwrap();
    assert_eq!(one(&mut c).await.unwrap(), 1);
}

#[tokio::test]
async fn url_for_keeps_everything_but_the_address() {
    let proxy = TcpProxy::start("127.0.0.1:9".parse().unwrap())
        .await
        .unwrap();
    let url = proxy.url_for("postgres://u:p%40ss@db.example.invalid:5432/app?sslmode=disable");
    assert_eq!(
        url,
        format!(
            "postgres://u:p%40ss@127.0.0.1:{}/app?sslmode=disable",
            proxy.addr().port()
        )
    );
}
