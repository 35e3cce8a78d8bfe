//! Server-side assertions: they pass when they should, and fail with a
//! message naming what was expected, what the server showed and the log.

mod common;

use std::time::Duration;

use pool_testkit::TestServer;
use pool_testkit::assert as pa;
use sqlx::Connection;

both_backends! {
    eventually_connections_passes_and_fails_clearly;
    never_above_sees_the_peak;
    pids_gone_waits_for_disconnects;
}

async fn eventually_connections_passes_and_fails_clearly(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let app = common::app_name("eventually");
    let a = common::connect_as(&db.url(), &app).await;
    let b = common::connect_as(&db.url(), &app).await;
    let seen = pa::eventually_connections(server, &app, 2, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 2);

    let failure = pa::try_eventually_connections(server, &app, 5, Duration::from_millis(200))
        .await
        .unwrap_err();
    let msg = failure.to_string();
    assert!(msg.contains("pool-testkit assertion failed"), "{msg}");
    assert!(msg.contains("expected:      5 connection(s)"), "{msg}");
    assert!(msg.contains("server showed: 2 connection(s)"), "{msg}");
    assert!(msg.contains("server log:"), "{msg}");
    // The log lines shown are this application's (log_connections is on).
    assert!(
        failure.log.contains(&app),
        "log lines should mention {app}:\n{}",
        failure.log
    );

    a.close().await.unwrap();
    b.close().await.unwrap();
    pa::eventually_connections(server, &app, 0, Duration::from_secs(10)).await;
    pa::eventually_at_most(server, &app, 0, Duration::from_secs(1)).await;
}

async fn never_above_sees_the_peak(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let app = common::app_name("peak");
    let open_three = || async {
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(common::connect_as(&db.url(), &app).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for c in conns {
            c.close().await.unwrap();
        }
        "done"
    };
    let (out, peak) = pa::never_above(server, &app, 3, open_three()).await;
    assert_eq!((out, peak), ("done", 3));
    pa::eventually_connections(server, &app, 0, Duration::from_secs(10)).await;
    let failure = pa::try_never_above(server, &app, 2, open_three())
        .await
        .unwrap_err();
    let msg = failure.to_string();
    assert!(msg.contains("never more than 2 connection(s)"), "{msg}");
    assert!(msg.contains("3 connections at the peak"), "{msg}");
}

async fn pids_gone_waits_for_disconnects(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let app = common::app_name("gone");
    let mut c = common::connect_as(&db.url(), &app).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let failure = pa::try_pids_gone(server, &[pid], Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(failure.seen.contains(&format!("pid {pid}")), "{failure}");
    c.close().await.unwrap();
    pa::pids_gone(server, &[pid], Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "expected:      1 connection(s)")]
async fn panicking_variant_panics_with_the_message() {
    let Some(server) = common::shared(pool_testkit::ServerKind::Local) else {
        panic!("expected:      1 connection(s) (local backend unavailable; nothing to test)");
    };
    pa::eventually_connections(
        server,
        "nobody-uses-this-name",
        1,
        Duration::from_millis(100),
    )
    .await;
}
