//! `close()` waits for connections out or being opened; whatever ends a
//! connect must wake it. A failed min_idle connect did not: `close()` then
//! sat out all of `pool_timeout` (the loom model of the reservation,
//! `ledger::model::close_is_woken_by_a_top_up_either_way`, checks the
//! bookkeeping; this checks the pool on a real server).

use std::time::Duration;

use pool_runtime::{Pool, PoolSettings};
use pool_testkit::{ProxyMode, TcpProxy, shared_server};

/// Long enough that a `close()` not woken by the failed connect is told
/// apart from one that is, however slow the machine: the test waits a
/// tenth of it.
const POOL_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_is_woken_by_a_failed_top_up_connect() {
    let server = shared_server();
    let db = server.create_database().await.expect("test database");
    // The proxy holds the min_idle connect in flight until we fail it.
    let proxy = TcpProxy::start(server.addr()).await.expect("proxy starts");
    proxy.set_mode(ProxyMode::Blackhole);
    let settings = PoolSettings::builder(proxy.url_for(&db.url()))
        .name("close-wakeup")
        .pool_size(2)
        .min_idle(1)
        .pool_timeout(POOL_TIMEOUT)
        .connect_timeout(POOL_TIMEOUT)
        .build()
        .expect("settings");
    // Lazy: the maintenance task's first tick starts the top-up connect.
    let pool: Pool<sqlx::Postgres> = Pool::connect_lazy(settings).expect("pool builds");
    while pool.status().connecting == 0 || proxy.accepted_connections() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    while !pool.is_closed() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let close() reach its wait for the connect (ordering, not a limit).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        pool.status().connecting,
        1,
        "the top-up connect is in flight"
    );

    // The connect fails: the server looks unreachable.
    proxy.set_mode(ProxyMode::Drop);
    let woken = tokio::time::timeout(POOL_TIMEOUT / 10, closing).await;
    assert!(
        woken.is_ok(),
        "close() was not woken by the failed top-up connect; it waits out pool_timeout ({POOL_TIMEOUT:?})"
    );
    let status = pool.status();
    assert_eq!(
        (status.size, status.connecting, status.checked_out),
        (0, 0, 0),
        "nothing open after close: {status:?}"
    );
}
