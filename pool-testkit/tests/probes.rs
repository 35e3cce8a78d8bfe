//! Probes of a pool's server connections, on both backends.

mod common;

use pool_testkit::TestServer;
use sqlx::Connection;

both_backends! {
    connections_are_found_by_application_name;
    terminate_one_and_all;
}

async fn connections_are_found_by_application_name(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let app = common::app_name("find");
    assert_eq!(server.count_connections(&app).await.unwrap(), 0);
    let mut conns = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut c = common::connect_as(&db.url(), &app).await;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut c)
            .await
            .unwrap();
        pids.push(pid);
        conns.push(c);
    }
    pids.sort_unstable();
    // Another application's connection is not counted.
    let _other = common::connect_as(&db.url(), &common::app_name("other")).await;
    assert_eq!(server.count_connections(&app).await.unwrap(), 3);
    assert_eq!(server.pids(&app).await.unwrap(), pids);
    let infos = server.connections(&app).await.unwrap();
    assert_eq!(infos.len(), 3);
    for info in &infos {
        assert_eq!(info.application_name, app);
        assert_eq!(info.database.as_deref(), Some(db.name()));
        assert_eq!(info.state.as_deref(), Some("idle"));
        assert!(info.client_port.is_some());
        assert!(!info.to_string().is_empty());
    }
    // all_connections sees them too (and never the probe's own connection,
    // which it excludes by pid; other tests' probes may show up).
    let all: Vec<i32> = server
        .all_connections()
        .await
        .unwrap()
        .iter()
        .map(|c| c.pid)
        .collect();
    assert!(
        pids.iter().all(|p| all.contains(p)),
        "{pids:?} not all in {all:?}"
    );
}

async fn terminate_one_and_all(server: &'static TestServer) {
    let db = server.create_database().await.unwrap();
    let app = common::app_name("terminate");
    let mut a = common::connect_as(&db.url(), &app).await;
    let mut b = common::connect_as(&db.url(), &app).await;
    let _c = common::connect_as(&db.url(), &app).await;
    let pid_a: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut a)
        .await
        .unwrap();
    assert!(server.terminate(pid_a).await.unwrap());
    // terminate waits until the backend is gone.
    assert_eq!(server.count_connections(&app).await.unwrap(), 2);
    assert!(!server.pids(&app).await.unwrap().contains(&pid_a));
    assert!(
        a.ping().await.is_err(),
        "a terminated connection should fail"
    );
    assert!(
        !server.terminate(pid_a).await.unwrap(),
        "no backend left to terminate"
    );

    assert_eq!(server.terminate_app(&app).await.unwrap(), 2);
    assert_eq!(server.count_connections(&app).await.unwrap(), 0);
    assert!(b.ping().await.is_err());
}
