//! Clusters (primary + streaming standby), on both backends. One cluster
//! per backend walks the whole life cycle in order, because promote,
//! partition and rewind change the topology every later step sees.

mod common;

use std::time::{Duration, Instant};

use pool_testkit::cluster::Role;
use pool_testkit::{Cluster, ServerKind};
use sqlx::{Connection, PgConnection};

use common::{app_name, connect_as};

const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local() {
    if common::available(ServerKind::Local) {
        life_cycle(ServerKind::Local).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker() {
    if common::available(ServerKind::Docker) {
        life_cycle(ServerKind::Docker).await;
    }
}

#[test]
fn bad_node_indexes_and_roles_are_refused_with_the_reason() {
    if !common::available(ServerKind::Local) {
        return;
    }
    let cluster = Cluster::builder()
        .backend(ServerKind::Local)
        .standbys(0)
        .start()
        .unwrap();
    let err = cluster.promote(0).unwrap_err().to_string();
    assert!(
        err.contains("cannot promote node 0: it is the primary, expected a standby"),
        "{err}"
    );
    let err = cluster.partition(3).unwrap_err().to_string();
    assert!(
        err.contains("node 3 does not exist (the cluster has nodes 0..1)"),
        "{err}"
    );
    let err = Cluster::builder()
        .backend(ServerKind::External)
        .start()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("starting a cluster is not supported by the external backend"),
        "{err}"
    );
}

async fn value(conn: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar("SELECT v FROM t ORDER BY v")
        .fetch_all(conn)
        .await
        .unwrap()
}

async fn insert(url: &str, v: i32) {
    let mut conn = connect_as(url, "writer").await;
    sqlx::query("INSERT INTO t VALUES ($1)")
        .bind(v)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

/// Connects through `url` bounded by `within`; `None` when it did not
/// finish (a partition hangs, it does not refuse).
async fn try_connect(url: &str, within: Duration) -> Option<PgConnection> {
    tokio::time::timeout(within, PgConnection::connect(url))
        .await
        .ok()
        .and_then(Result::ok)
}

async fn life_cycle(backend: ServerKind) {
    let started = Instant::now();
    let cluster = Cluster::builder()
        .backend(backend)
        .standbys(1)
        .start()
        .unwrap_or_else(|e| panic!("{backend} cluster: {e}"));
    eprintln!(
        "TIMING {backend}: primary + 1 standby ready in {:.2?}",
        started.elapsed()
    );
    assert_eq!(cluster.primary(), 0);
    assert_eq!(cluster.standbys(), vec![1]);
    let db = cluster.create_database().await.unwrap();
    let (on0, on1) = (cluster.url_for(0, db.name()), cluster.url_for(1, db.name()));

    // Replication replicates: a write on the primary is read on the standby.
    let mut w = connect_as(&on0, "writer").await;
    sqlx::raw_sql("CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
        .execute(&mut w)
        .await
        .unwrap();
    w.close().await.unwrap();
    cluster.wait_caught_up(WITHIN).await.unwrap();
    let app = app_name("cluster-reader");
    let mut reader = connect_as(&on1, &app).await;
    assert_eq!(value(&mut reader).await, vec![1]);
    // The standby is read-only (SQLSTATE 25006).
    let err = sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&mut reader)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("25006"),
        "{err}"
    );
    // Per-node counts, read on each server.
    assert_eq!(
        cluster.connections_by_node(&app).await.unwrap(),
        vec![Some(0), Some(1)]
    );
    pool_testkit::assert::connections_on_node(&cluster, &app, 1, 1, WITHIN).await;
    reader.close().await.unwrap();
    let lag = cluster.replication_lag().await.unwrap();
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert_eq!(lag[0].node, 1);
    assert!(lag[0].streaming, "{lag:?}");

    // A partitioned standby: unreachable through its URL, and replication
    // to it stops; healed, it is reachable and catches up.
    cluster.partition(1).unwrap();
    assert!(
        try_connect(&on1, Duration::from_secs(2)).await.is_none(),
        "a partitioned node must not answer"
    );
    insert(&on0, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut direct = connect_as(&cluster.node(1).url_for(db.name()), "probe").await;
    assert_eq!(
        value(&mut direct).await,
        vec![1],
        "the partitioned standby must not receive new WAL"
    );
    direct.close().await.unwrap();
    cluster.heal(1).unwrap();
    let back = try_connect(&on1, WITHIN)
        .await
        .expect("a healed node answers again");
    back.close().await.unwrap();
    pool_testkit::assert::write_visible_on_standbys(&cluster, db.name(), WITHIN).await;
    let mut reader = connect_as(&on1, "reader").await;
    assert_eq!(value(&mut reader).await, vec![1, 2]);
    reader.close().await.unwrap();

    // A standby killed and started again catches up.
    cluster.kill(1).unwrap();
    insert(&on0, 3).await;
    cluster.start(1).unwrap();
    cluster.wait_caught_up(WITHIN).await.unwrap();

    // Promote makes the standby writable; the old primary is booked former.
    cluster.promote(1).unwrap();
    assert_eq!(cluster.primary(), 1);
    assert_eq!(cluster.topology().node(0).unwrap().role, Role::Former);
    insert(&on1, 4).await;

    // The old primary, rewound, follows the new one.
    let rewind_started = Instant::now();
    cluster.rewind(0).unwrap();
    eprintln!(
        "TIMING {backend}: rewind of the old primary in {:.2?}",
        rewind_started.elapsed()
    );
    assert_eq!(cluster.standbys(), vec![0]);
    insert(&on1, 5).await;
    cluster.wait_caught_up(WITHIN).await.unwrap();
    let mut old = connect_as(&on0, "reader").await;
    assert_eq!(value(&mut old).await, vec![1, 2, 3, 4, 5]);
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut old)
        .await
        .unwrap();
    assert!(in_recovery, "the rewound node must be a standby");
    old.close().await.unwrap();
    // libpq multi-host URL over both proxies.
    let multi = cluster.multi_host_url(db.name());
    assert!(
        multi.starts_with("postgres://postgres:postgres@127.0.0.1:")
            && multi.matches("127.0.0.1:").count() == 2,
        "{multi}"
    );
}

/// Runs in a child process (see `sigkill_leaves_nothing`): starts a cluster
/// and a PgBouncer, prints what they own, and SIGKILLs itself.
#[test]
#[ignore = "run by sigkill_leaves_nothing in a child process"]
fn leak_child() {
    let Ok(backend) = std::env::var("POOL_TESTKIT_LEAK_CHILD") else {
        return;
    };
    let backend: ServerKind = backend.parse().unwrap();
    let cluster = Cluster::builder()
        .backend(backend)
        .standbys(1)
        .start()
        .unwrap();
    let bouncer = pool_testkit::PgBouncer::builder()
        .start(cluster.node(0).addr())
        .unwrap();
    for i in 0..cluster.len() {
        let node = cluster.node(i);
        match (node.log_path(), node.container_id()) {
            (Some(log), _) => println!("DIR={}", log.parent().unwrap().display()),
            (None, Some(id)) => println!("CONTAINER={id}"),
            _ => unreachable!(),
        }
    }
    if let Some(net) = cluster.docker_network() {
        println!("NETWORK={net}");
    }
    println!("PORT={}", bouncer.addr().port());
    let me = std::process::id().to_string();
    std::process::Command::new("kill")
        .args(["-KILL", &me])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

fn sigkill_leaves_nothing(backend: ServerKind) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["leak_child", "--exact", "--ignored", "--nocapture"])
        .env("POOL_TESTKIT_LEAK_CHILD", backend.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
            .collect()
    };
    let (dirs, containers, networks, ports) = (
        field("DIR"),
        field("CONTAINER"),
        field("NETWORK"),
        field("PORT"),
    );
    assert_eq!(
        dirs.len() + containers.len(),
        2,
        "the child did not report its nodes:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docker_has = |what: &str, name: &str| {
        std::process::Command::new("docker")
            .args([what, "inspect", name])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: Vec<String> = dirs
            .iter()
            .filter(|d| std::path::Path::new(d).exists())
            .cloned()
            .chain(
                containers
                    .iter()
                    .filter(|c| docker_has("container", c))
                    .cloned(),
            )
            .chain(
                networks
                    .iter()
                    .filter(|n| docker_has("network", n))
                    .cloned(),
            )
            .chain(
                ports
                    .iter()
                    .filter(|p| std::net::TcpStream::connect(format!("127.0.0.1:{p}")).is_ok())
                    .map(|p| format!("PgBouncer still listening on {p}")),
            )
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind 60 s after SIGKILL: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn sigkill_leaves_nothing_local() {
    if common::available(ServerKind::Local) {
        sigkill_leaves_nothing(ServerKind::Local);
    }
}

#[test]
fn sigkill_leaves_nothing_docker() {
    if common::available(ServerKind::Docker) {
        sigkill_leaves_nothing(ServerKind::Docker);
    }
}
