//! `ReplicaPool` against a real primary and two streaming standbys
//! (`pool_testkit::Cluster`, local binaries): writes and transactions on
//! the primary, reads spread over the standbys (round robin, least busy),
//! a standby down or lagging skipped, fallback to the primary or an error
//! naming each node, a promotion followed. Where a statement ran is
//! counted on the servers (`pg_stat_activity` per node, by
//! `application_name`; the handle's checks name their sessions
//! `<application_name>/check`, so they are not counted).
//!
//! Every test that changes a node (stop, pause, promote) has its own
//! cluster; nextest runs each test in its own process, so there each test
//! has its own anyway.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pool_runtime::config::StandardPoolConfig;
use pool_runtime::{
    Error, Health, NodeRole, PoolConfig, PoolSettings, PooledConnection, ReadBalance, ReplicaPool,
    Status,
};
use pool_testkit::{Cluster, ServerKind, TestDatabase};
use sqlx::{Connection, Postgres};

/// Never a real credential: the kit's servers trust local connections,
/// so any password is accepted, and none may appear in a message.
const PASSWORD: &str = "hunter2-replicas";
const WITHIN: Duration = Duration::from_secs(15);

/// Node 0 the primary, nodes 1 and 2 its standbys; roles never change.
fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Cluster {
    Cluster::builder()
        .backend(ServerKind::Local)
        .standbys(2)
        .start()
        .expect("a primary and two standbys (local backend)")
}

/// A database with a table `t`, replicated to every standby.
async fn database(cluster: &Cluster) -> TestDatabase {
    let db = cluster.create_database().await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&cluster.url_for(cluster.primary(), db.name()))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE t (id bigserial PRIMARY KEY, v int)")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    cluster.wait_caught_up(WITHIN).await.unwrap();
    db
}

/// Settings over every node (the proxies, in index order), with the
/// password that must never show, checks every 100 ms.
fn settings(cluster: &Cluster, db: &TestDatabase, app: &str) -> PoolSettings {
    let hosts: Vec<String> = (0..cluster.len())
        .map(|i| cluster.proxy(i).addr().to_string())
        .collect();
    let url = format!(
        "postgres://postgres:{PASSWORD}@{}/{}",
        hosts.join(","),
        db.name()
    );
    PoolSettings::builder(url)
        .name(app)
        .application_name(app)
        .pool_size(4)
        .max_overflow(0)
        .pool_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .read_check_interval(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// Sessions of `app` per node that match `filter` (SQL on
/// pg_stat_activity), counted on the servers; `None` for a stopped node.
async fn sessions(cluster: &Cluster, app: &str, filter: &str) -> Vec<Option<i64>> {
    let mut out = Vec::new();
    for i in 0..cluster.len() {
        let Ok(mut conn) = sqlx::PgConnection::connect(&cluster.url(i)).await else {
            out.push(None);
            continue;
        };
        let sql = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND ({filter})"
        );
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(app)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        out.push(Some(n));
    }
    out
}

/// Waits until the servers count `expected` sessions of `app` per node
/// (a closed session may be listed a moment longer).
async fn wait_sessions(cluster: &Cluster, app: &str, filter: &str, expected: &[Option<i64>]) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let counts = sessions(cluster, app, filter).await;
        if counts == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sessions of {app} by node where {filter}: {counts:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `ok` holds for the handle's status.
async fn wait_status(db: &ReplicaPool, what: &str, ok: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + WITHIN;
    loop {
        let status = db.status();
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "waited for {what}: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn serving(status: &Status, node: usize) -> bool {
    status.replicas.as_ref().unwrap().nodes[node].serving
}

/// `n` read connections held at once, each having asked its server
/// whether it is in recovery (all must be standbys unless `primary_ok`).
async fn hold_reads(
    db: &ReplicaPool,
    n: usize,
    primary_ok: bool,
) -> Vec<PooledConnection<Postgres>> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut conn = db.acquire_read().await.unwrap_or_else(|e| panic!("{e}"));
        let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert!(standby || primary_ok, "a read ran on the primary");
        held.push(conn);
    }
    held
}

const ALL: &str = "true";

/// The process's Prometheus recorder, installed before any handle
/// connects (handles are registered at connect).
fn prometheus() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("no other recorder in this test binary");
        pool_runtime::observe::metrics::describe();
        handle
    })
}

/// The value of the one series named `name` whose labels include every
/// `key="value"` of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(&format!("{name}{{"))
                && labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// `GET` a replica handle's route (feature `axum`) over a real socket:
/// the status code and the JSON body.
#[cfg(feature = "axum")]
async fn http_status(pool: &ReplicaPool) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app: axum::Router = axum::Router::new().route(
        "/health/db",
        pool_runtime::http::replicas_route(pool.clone()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = "GET /health/db HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    server.abort();
    assert!(!raw.contains(PASSWORD), "{raw}");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap())
}

/// Writes and a transaction run on the primary; six reads held at once
/// are three on each standby (round robin), and none on the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_to_the_primary_and_reads_alternate_over_the_standbys() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-rr");
    let metrics = prometheus();
    let pool = ReplicaPool::connect(settings(cluster, &db, &app))
        .await
        .unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO t (v) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    wait_sessions(
        cluster,
        &app,
        "state = 'idle in transaction'",
        &[Some(1), Some(0), Some(0)],
    )
    .await;
    tx.commit().await.unwrap();
    sqlx::query("INSERT INTO t (v) VALUES (2)")
        .execute(pool.primary())
        .await
        .unwrap();

    let held = hold_reads(&pool, 6, false).await;
    // The write pool's one connection on the primary, three reads per standby.
    wait_sessions(cluster, &app, ALL, &[Some(1), Some(3), Some(3)]).await;
    drop(held);

    // reader() routes too: a query through it runs on a standby.
    let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(pool.reader().unwrap())
        .await
        .unwrap();
    assert!(standby);

    let status = pool.status();
    let replicas = status.replicas.as_ref().unwrap();
    let roles: Vec<NodeRole> = replicas.nodes.iter().map(|n| n.role).collect();
    assert_eq!(
        roles,
        [NodeRole::Primary, NodeRole::Standby, NodeRole::Standby]
    );
    let reads: Vec<u64> = replicas.nodes.iter().map(|n| n.reads).collect();
    assert_eq!(reads[0], 0, "{status}");
    assert_eq!(reads[1] + reads[2], 7, "{status}");
    assert_eq!(replicas.fallback_reads, 0);
    assert_eq!(status.health, Health::Healthy, "{status}");
    assert_eq!(
        replicas.nodes[1].pool.name,
        format!("{app}@{}", cluster.proxy(1).addr())
    );
    let shown = format!(
        "{status} {pool:?} {}",
        serde_json::to_string(&status).unwrap()
    );
    assert!(!shown.contains(PASSWORD), "{shown}");

    // Per node, labelled pool and node: reads, role, up, serving, lag.
    let text = metrics.render();
    let node = |i: usize| cluster.proxy(i).addr().to_string();
    let get = |name: &str, i: usize, role: Option<&str>| {
        let node = node(i);
        let mut labels = vec![("pool", app.as_str()), ("node", node.as_str())];
        labels.extend(role.map(|r| ("role", r)));
        sample(&text, name, &labels)
    };
    for (i, &routed) in reads.iter().enumerate().skip(1) {
        assert_eq!(get("db_pool_replica_reads_total", i, None), routed as f64);
        assert_eq!(get("db_pool_replica_serving", i, None), 1.0);
        assert_eq!(get("db_pool_replica_role", i, Some("standby")), 1.0);
        assert_eq!(get("db_pool_replica_role", i, Some("primary")), 0.0);
        assert_eq!(get("db_pool_replica_lag_seconds", i, None), 0.0);
    }
    assert_eq!(get("db_pool_replica_role", 0, Some("primary")), 1.0);
    assert_eq!(get("db_pool_replica_serving", 0, None), 0.0);
    assert_eq!(get("db_pool_replica_up", 0, None), 1.0);
    // Each host's read pool publishes the pool series under <name>@host:port.
    let read_pool = format!("{app}@{}", node(1));
    sample(&text, "db_pool_connections_open", &[("pool", &read_pool)]);
    assert!(!text.contains(PASSWORD));

    // In a registry: its name gives the write pool, its status the hosts.
    let mut registry = pool_runtime::PoolRegistry::<Postgres>::new();
    registry.insert_replicas(pool.clone()).unwrap();
    assert!(matches!(
        registry.insert_replicas(pool.clone()),
        Err(Error::DuplicatePoolName(_))
    ));
    assert_eq!(registry.get(&app).unwrap().name(), app);
    assert_eq!(registry.replicas(&app).unwrap().name(), app);
    let listed = registry.statuses();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].replicas.as_ref().unwrap().nodes.len(), 3);
    assert_eq!(registry.health(), Health::Healthy);
    // One check session per node while open, none once closed.
    let checks = format!("{app}/check");
    wait_sessions(cluster, &checks, ALL, &[Some(1), Some(1), Some(1)]).await;
    registry.close().await;
    wait_sessions(cluster, &checks, ALL, &[Some(0), Some(0), Some(0)]).await;
    assert!(pool.primary().is_closed());
    assert!(pool.nodes().all(|(_, p)| p.is_closed()));
}

/// With `least-busy`, reads go to the standby whose pool has fewer
/// connections checked out: node 1's pool is held busy, so every read
/// lands on node 2 (round robin would put half on node 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_busy_sends_reads_to_the_idle_standby() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-lb");
    let mut s = settings(cluster, &db, &app);
    s.read_balance = ReadBalance::LeastBusy;
    let pool = ReplicaPool::connect(s).await.unwrap();
    let (label, busy) = pool.nodes().nth(1).unwrap();
    assert_eq!(label, cluster.proxy(1).addr().to_string());
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(busy.acquire().await.unwrap());
    }
    let reads = hold_reads(&pool, 3, false).await;
    wait_sessions(cluster, &app, ALL, &[Some(1), Some(3), Some(3)]).await;
    let status = pool.status();
    let nodes = &status.replicas.as_ref().unwrap().nodes;
    assert_eq!((nodes[1].reads, nodes[2].reads), (0, 3), "{status}");
    drop((held, reads));
    // Dropped without close: the checks end with the last handle.
    drop(pool);
    let checks = format!("{app}/check");
    wait_sessions(cluster, &checks, ALL, &[Some(0), Some(0), Some(0)]).await;
}

/// A standby stopped: reads go to the other at once (the failed checkout
/// books it down) and the checks see it down. Both stopped: with
/// fallback the reads go to the primary (health warning), without it they
/// fail with an error naming each node and why (health critical). Started
/// again: they serve again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_standbys_are_skipped_then_fallback_or_a_clear_error() {
    let cluster = start_cluster();
    let db = database(&cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-down");
    let with_fallback = ReplicaPool::connect(settings(&cluster, &db, &app))
        .await
        .unwrap();
    let mut strict = settings(&cluster, &db, &format!("{app}-strict"));
    strict.read_fallback = false;
    let strict = ReplicaPool::connect(strict).await.unwrap();
    // A connection to each standby first, so that node 1's is dead when
    // taken: the checkout, not a check, finds it gone.
    drop(hold_reads(&with_fallback, 2, false).await);

    cluster.stop(1).unwrap();
    let held = hold_reads(&with_fallback, 4, false).await;
    // Node 2's pool: its first connection and three more, four in all.
    wait_sessions(&cluster, &app, ALL, &[Some(1), None, Some(4)]).await;
    drop(held);
    let status = wait_status(&with_fallback, "node 1 down", |s| !serving(s, 1)).await;
    let node1 = &status.replicas.as_ref().unwrap().nodes[1];
    assert!(!node1.reachable, "{status}");
    assert!(
        node1.not_serving.as_deref().unwrap().starts_with("down ("),
        "{status}"
    );
    assert_eq!(status.health, Health::Warning, "{status}");

    cluster.stop(2).unwrap();
    wait_status(&with_fallback, "node 2 down", |s| !serving(s, 2)).await;
    wait_status(&strict, "nodes 1 and 2 down", |s| {
        !serving(s, 1) && !serving(s, 2)
    })
    .await;
    let before = with_fallback.status().replicas.unwrap().fallback_reads;
    let held = hold_reads(&with_fallback, 2, true).await;
    // The write pool's connections on the primary: the first, and one more
    // for the second read held at once.
    wait_sessions(&cluster, &app, ALL, &[Some(2), None, None]).await;
    drop(held);
    let status = with_fallback.status();
    assert_eq!(status.replicas.as_ref().unwrap().fallback_reads, before + 2);
    assert_eq!(status.health, Health::Warning, "{status}");
    assert!(
        status
            .health_reasons
            .iter()
            .any(|r| r.contains("they go to the primary")),
        "{status}"
    );

    let error = strict.reader().unwrap_err();
    assert!(matches!(error, Error::NoReadReplica { .. }), "{error:?}");
    let text = error.to_string();
    let node = |i: usize| cluster.proxy(i).addr().to_string();
    assert!(
        text.starts_with(&format!(
            "pool \"{app}-strict\": no standby can serve reads and read_fallback is off; {}: is a primary; {}: down (",
            node(0),
            node(1)
        )),
        "{text}"
    );
    assert!(text.contains(&format!("; {}: down (", node(2))), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(strict.acquire_read().await.is_err());
    let status = strict.status();
    assert_eq!(status.health, Health::Critical, "{status}");
    assert_eq!(status.replicas.as_ref().unwrap().refused_reads, 2);
    // The health endpoint drains an instance whose reads fail, not one
    // whose reads fall back.
    #[cfg(feature = "axum")]
    {
        let (code, body) = http_status(&strict).await;
        assert_eq!(code, 503, "{body}");
        assert_eq!(body["replicas"]["nodes"][1]["reachable"], false, "{body}");
        let (code, body) = http_status(&with_fallback).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["health"], "warning", "{body}");
        assert_eq!(body["replicas"]["nodes"][0]["role"], "primary", "{body}");
    }

    cluster.start(1).unwrap();
    cluster.start(2).unwrap();
    wait_status(&strict, "both standbys back", |s| {
        serving(s, 1) && serving(s, 2)
    })
    .await;
    drop(hold_reads(&strict, 2, false).await);
    with_fallback.close().await;
    strict.close().await;
}

/// Replay paused on node 1 and a write on the primary: once the checks
/// see its lag above `read_max_lag`, it serves no reads (all land on node
/// 2); replay resumed, it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_standby_is_skipped_until_it_catches_up() {
    let cluster = start_cluster();
    let db = database(&cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-lag");
    let mut s = settings(&cluster, &db, &app);
    s.read_max_lag = Some(Duration::from_millis(500));
    let pool = ReplicaPool::connect(s).await.unwrap();
    wait_status(&pool, "both standbys serving", |s| {
        serving(s, 1) && serving(s, 2)
    })
    .await;

    let mut standby = sqlx::PgConnection::connect(&cluster.url(1)).await.unwrap();
    sqlx::raw_sql("SELECT pg_wal_replay_pause()")
        .execute(&mut standby)
        .await
        .unwrap();
    sqlx::query("INSERT INTO t (v) VALUES (1)")
        .execute(pool.primary())
        .await
        .unwrap();
    let status = wait_status(&pool, "node 1 lagging", |s| !serving(s, 1)).await;
    let node1 = &status.replicas.as_ref().unwrap().nodes[1];
    let why = node1.not_serving.as_deref().unwrap();
    assert!(
        why.starts_with("lagging ") && why.ends_with("> read_max_lag 0.5 s"),
        "{status}"
    );
    assert!(node1.lag_seconds.unwrap() > 0.5, "{status}");
    assert!(serving(&status, 2), "{status}");
    assert_eq!(status.health, Health::Warning, "{status}");
    let held = hold_reads(&pool, 4, false).await;
    wait_sessions(&cluster, &app, ALL, &[Some(1), Some(0), Some(4)]).await;
    drop(held);

    sqlx::raw_sql("SELECT pg_wal_replay_resume()")
        .execute(&mut standby)
        .await
        .unwrap();
    standby.close().await.unwrap();
    wait_status(&pool, "node 1 caught up", |s| serving(s, 1)).await;
    let held = hold_reads(&pool, 6, false).await;
    let counts = sessions(&cluster, &app, ALL).await;
    assert!(counts[1].unwrap() >= 1, "node 1 serves again: {counts:?}");
    drop(held);
    pool.close().await;
}

/// Node 0 stopped, node 1 promoted: writes through the handle land on
/// node 1 (the write pool's own failover), and node 1 serves no more
/// reads once the checks see it is a primary; node 2 (still a standby,
/// of the old primary) serves them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_takes_the_writes_and_no_more_reads() {
    let cluster = start_cluster();
    let db = database(&cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-promote");
    let pool = ReplicaPool::connect(settings(&cluster, &db, &app))
        .await
        .unwrap();
    drop(hold_reads(&pool, 2, false).await);

    cluster.stop(0).unwrap();
    cluster.promote(1).unwrap();
    let deadline = Instant::now() + WITHIN;
    let port: i32 = loop {
        let written =
            sqlx::query_scalar("INSERT INTO t (v) VALUES (1) RETURNING inet_server_port()")
                .fetch_one(pool.primary())
                .await;
        match written {
            Ok(port) => break port,
            Err(e) => assert!(Instant::now() < deadline, "writes never resumed: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        port,
        i32::from(cluster.node(1).addr().port()),
        "written on node 1"
    );

    let status = wait_status(&pool, "node 1 a primary", |s| {
        s.replicas.as_ref().unwrap().nodes[1].role == NodeRole::Primary
    })
    .await;
    let nodes = &status.replicas.as_ref().unwrap().nodes;
    assert_eq!(
        nodes[1].not_serving.as_deref(),
        Some("is a primary"),
        "{status}"
    );
    assert!(!nodes[0].reachable && nodes[2].serving, "{status}");
    let before = sessions(&cluster, &app, ALL).await;
    let held = hold_reads(&pool, 3, false).await;
    // Node 2's pool: its idle connection and two more; node 1 unchanged.
    wait_sessions(&cluster, &app, ALL, &[None, before[1], Some(3)]).await;
    drop(held);
    pool.close().await;
}

/// A single-host URL: every read goes to that host through the fallback,
/// and health stays healthy (one host is the intended setup, not a
/// standby missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_host_url_reads_from_the_primary() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-one");
    let url = format!(
        "postgres://postgres:{PASSWORD}@{}/{}",
        cluster.proxy(0).addr(),
        db.name()
    );
    let mut s = settings(cluster, &db, &app);
    s.url = url.into();
    let pool = ReplicaPool::connect(s).await.unwrap();
    let held = hold_reads(&pool, 2, true).await;
    wait_sessions(cluster, &app, ALL, &[Some(2), Some(0), Some(0)]).await;
    drop(held);
    let status = pool.status();
    let replicas = status.replicas.as_ref().unwrap();
    assert_eq!((replicas.fallback_reads, replicas.nodes.len()), (2, 1));
    assert_eq!(status.health, Health::Healthy, "{status}");
    pool.close().await;
}

/// Settings a replica handle cannot work with are refused before any
/// connection, each saying why; the env variables parse and name
/// themselves.
#[tokio::test]
async fn bad_settings_are_refused_with_clear_errors() {
    let connect = |url: &str, f: fn(&mut PoolSettings)| {
        let mut s = PoolSettings::new(url);
        f(&mut s);
        async move { ReplicaPool::connect(s).await.unwrap_err().to_string() }
    };
    let one = connect("postgres://app:hunter2@127.0.0.1:1/db", |s| {
        s.read_fallback = false
    })
    .await;
    assert_eq!(
        one,
        "invalid pool settings: url postgres://app:***@127.0.0.1:1/db names one host, and \
         read_fallback is off: a ReplicaPool could serve no read (list the primary and its \
         standbys, h1:5432,h2:5432, or turn read_fallback on)"
    );
    let standby = connect(
        "postgres://app:hunter2@h1:1,h2:2/db?target_session_attrs=standby",
        |_| {},
    )
    .await;
    assert!(
        standby.contains("sets target_session_attrs=standby: a ReplicaPool writes to the primary"),
        "{standby}"
    );
    let setting = connect("postgres://app:hunter2@h1:1,h2:2/db", |s| {
        s.target_session_attrs = pool_runtime::TargetSessionAttrs::PreferStandby;
    })
    .await;
    assert!(
        setting.contains("the target_session_attrs setting is prefer-standby"),
        "{setting}"
    );
    let sqlite = connect("sqlite://app.db", |_| {}).await;
    assert!(sqlite.contains("is not a PostgreSQL URL"), "{sqlite}");
    let zero = connect("postgres://app:hunter2@h1:1,h2:2/db", |s| {
        s.read_check_interval = Duration::ZERO;
        s.read_max_lag = Some(Duration::ZERO);
    })
    .await;
    assert!(
        zero.contains("read_max_lag: must be greater than zero"),
        "{zero}"
    );
    assert!(
        zero.contains("read_check_interval: must be greater than zero"),
        "{zero}"
    );
    for text in [&one, &standby, &setting, &zero] {
        assert!(!text.contains("hunter2"), "{text}");
    }

    let env = |balance: &'static str| {
        StandardPoolConfig::from_map([
            ("DATABASE_URL", "postgres://app:pw@h1,h2/db"),
            ("DB_READ_BALANCE", balance),
            ("DB_READ_FALLBACK", "false"),
            ("DB_READ_MAX_LAG", "2s"),
            ("DB_READ_CHECK_INTERVAL", "250ms"),
        ])
    };
    let s = env("least_busy").unwrap().settings();
    assert_eq!(s.read_balance, ReadBalance::LeastBusy);
    assert!(!s.read_fallback);
    assert_eq!(s.read_max_lag, Some(Duration::from_secs(2)));
    assert_eq!(s.read_check_interval, Duration::from_millis(250));
    let err = env("fastest").unwrap_err().to_string();
    assert!(err.contains("DB_READ_BALANCE"), "{err}");
    assert!(
        err.contains("round-robin") && err.contains("least-busy"),
        "{err}"
    );
}

/// The connection budget per node: the write pool (4), a node's read
/// pool (4) and the check connection, times `replicas`, against each
/// node's own `max_connections`. Within it, nothing is said; beyond it,
/// every node is named (the primary too: the write pool is there now,
/// and any standby may be promoted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_checked_on_every_node() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    let app = pool_testkit::fixtures::unique_app_name("replicas-budget");
    let max: i64 = {
        let mut admin = sqlx::PgConnection::connect(&cluster.url(cluster.primary()))
            .await
            .unwrap();
        let max: String = sqlx::query_scalar("SHOW max_connections")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        let reserved: String = sqlx::query_scalar("SHOW superuser_reserved_connections")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        max.parse::<i64>().unwrap() - reserved.parse::<i64>().unwrap()
    };
    let budget_lines = |status: &Status| -> Vec<String> {
        status
            .recommendations
            .iter()
            .filter(|r| r.starts_with("node "))
            .cloned()
            .collect()
    };
    let read_everywhere = |pool: &ReplicaPool| {
        let pool = pool.clone();
        async move {
            for _ in 0..4 {
                let one: i32 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(pool.reader().unwrap())
                    .await
                    .unwrap();
                assert_eq!(one, 1);
            }
        }
    };

    let within = ReplicaPool::connect(settings(cluster, &db, &app))
        .await
        .unwrap();
    read_everywhere(&within).await;
    let lines = budget_lines(&within.status());
    assert!(lines.is_empty(), "9 connections per node fit: {lines:?}");
    within.close().await;

    let mut over = settings(cluster, &db, &app);
    over.replicas = u32::try_from(max / 9 + 1).unwrap();
    let needed = 9 * i64::from(over.replicas);
    let pool = ReplicaPool::connect(over).await.unwrap();
    read_everywhere(&pool).await;
    let lines = budget_lines(&pool.status());
    assert_eq!(lines.len(), 3, "one line per node: {lines:?}");
    for (i, line) in lines.iter().enumerate() {
        let label = cluster.proxy(i).addr().to_string();
        assert!(
            line.starts_with(&format!("node {label}:"))
                && line.contains(&format!("can hold {needed} connections on it"))
                && line.contains(&format!("it allows {max}")),
            "{line}"
        );
    }
    pool.close().await;
}
