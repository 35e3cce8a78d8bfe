//! libpq-style multi-host URLs against a real primary + standby
//! (`pool_testkit::Cluster`, local binaries): `target_session_attrs`
//! chooses the node every connection of the pool is on, a connect that
//! finds no suitable host names each host and why, and a pool writing
//! through a read-write URL follows a promotion by itself.
//!
//! One cluster is shared by the tests that leave its roles alone (a
//! `static`: one start per process; nextest runs each test in its own
//! process, so there it is one per test); the promotion test has its own.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pool_runtime::config::StandardPoolConfig;
use pool_runtime::{Error, Pool, PoolConfig, PoolSettings, TargetSessionAttrs};
use pool_testkit::{Auth, Cluster, ServerKind, TestServer};
use sqlx::{Connection, Postgres};

/// Never a real credential: the kit's servers trust local connections,
/// so any password is accepted, and none may appear in a message.
const PASSWORD: &str = "hunter2-failover";
const WITHIN: Duration = Duration::from_secs(10);

/// Node 0 the primary, node 1 its standby; its roles never change.
fn shared_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

fn start_cluster() -> Cluster {
    let started = Instant::now();
    let cluster = Cluster::builder()
        .backend(ServerKind::Local)
        .standbys(1)
        .start()
        .expect("a primary and a standby (local backend)");
    eprintln!("cluster ready in {:.1?}", started.elapsed());
    cluster
}

/// A libpq multi-host URL over the proxies of `nodes`, in that order.
fn url_over(cluster: &Cluster, nodes: &[usize], db: &str, query: &str) -> String {
    let hosts: Vec<String> = nodes
        .iter()
        .map(|&i| cluster.proxy(i).addr().to_string())
        .collect();
    format!(
        "postgres://postgres:{PASSWORD}@{}/{db}{query}",
        hosts.join(",")
    )
}

fn settings(url: String, app: &str, size: u32) -> PoolSettings {
    PoolSettings::builder(url)
        .name(app)
        .application_name(app)
        .pool_size(size)
        .max_overflow(0)
        .pool_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(1))
        .build()
        .unwrap()
}

/// A database on the primary, replicated to the standby before use.
async fn database(cluster: &Cluster) -> pool_testkit::TestDatabase {
    let db = cluster.create_database().await.unwrap();
    cluster.wait_caught_up(WITHIN).await.unwrap();
    db
}

/// Opens a pool over `url`, holds `size` connections at once (so that
/// each is a connection of its own) and waits until the servers count
/// exactly `expected` of them per node: a rejected session is closed
/// before the next host is tried, but the server may list it a moment
/// longer.
async fn lands_on(cluster: &Cluster, url: String, size: u32, expected: &[Option<usize>]) {
    let app = pool_testkit::fixtures::unique_app_name("failover");
    let pool = Pool::<Postgres>::connect(settings(url.clone(), &app, size))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut held = Vec::new();
    for _ in 0..size {
        held.push(pool.acquire().await.unwrap());
    }
    let deadline = Instant::now() + WITHIN;
    loop {
        let counts = cluster.connections_by_node(&app).await.unwrap();
        if counts == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}: connections by node {counts:?}, expected {expected:?}",
            pool_runtime::secret::redact_url(&url)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(held);
    pool.close().await;
}

/// (a) Hosts listed standby first: read-write and primary skip it,
/// standby, read-only and prefer-standby stay on it; any takes the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_session_attrs_choose_the_node() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    let standby_first = |attrs: &str| {
        url_over(
            cluster,
            &[1, 0],
            db.name(),
            &format!("?target_session_attrs={attrs}"),
        )
    };
    let on_primary = [Some(3), Some(0)];
    let on_standby = [Some(0), Some(3)];
    lands_on(cluster, standby_first("read-write"), 3, &on_primary).await;
    lands_on(cluster, standby_first("primary"), 3, &on_primary).await;
    lands_on(cluster, standby_first("standby"), 3, &on_standby).await;
    lands_on(cluster, standby_first("read-only"), 3, &on_standby).await;
    lands_on(cluster, standby_first("prefer-standby"), 3, &on_standby).await;
    lands_on(cluster, standby_first("any"), 3, &on_standby).await;
    // Primary first: prefer-standby still finds the standby.
    let primary_first = url_over(
        cluster,
        &[0, 1],
        db.name(),
        "?target_session_attrs=prefer-standby",
    );
    lands_on(cluster, primary_first, 3, &on_standby).await;
    // load_balance_hosts=random spreads connections over both nodes (all
    // 16 on one node by chance: 2 in 65536).
    let url = url_over(cluster, &[0, 1], db.name(), "?load_balance_hosts=random");
    let app = pool_testkit::fixtures::unique_app_name("failover-random");
    let pool = Pool::<Postgres>::connect(settings(url, &app, 16))
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(pool.acquire().await.unwrap());
    }
    let counts = cluster.connections_by_node(&app).await.unwrap();
    assert!(
        counts.iter().all(|c| c.is_some_and(|n| n > 0))
            && counts.iter().flatten().sum::<usize>() == 16,
        "random: {counts:?}"
    );
    drop(held);
    pool.close().await;
    // The setting, for a URL without the parameter.
    let app = pool_testkit::fixtures::unique_app_name("failover-setting");
    let mut s = settings(url_over(cluster, &[1, 0], db.name(), ""), &app, 1);
    s.target_session_attrs = TargetSessionAttrs::ReadWrite;
    let pool = Pool::<Postgres>::connect(s).await.unwrap();
    let standby: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!standby, "the read-write setting must skip the standby");
    pool.close().await;
}

/// (a) prefer-standby with its standby unreachable, partitioned (connects
/// hang until connect_timeout) or stopped (refused): the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_standby_without_a_standby_takes_the_primary() {
    // Its own cluster: it cuts the standby off and stops it.
    let cluster = start_cluster();
    let db = database(&cluster).await;
    let url = url_over(
        &cluster,
        &[1, 0],
        db.name(),
        "?target_session_attrs=prefer-standby",
    );
    cluster.partition(1).unwrap();
    let started = Instant::now();
    lands_on(&cluster, url.clone(), 2, &[Some(2), Some(0)]).await;
    eprintln!(
        "partitioned standby: pool on the primary in {:.1?}",
        started.elapsed()
    );
    cluster.heal(1).unwrap();
    tokio::task::block_in_place(|| cluster.stop(1)).unwrap();
    lands_on(&cluster, url, 2, &[Some(2), None]).await;
}

/// (b) Every host failing: one error naming each host and why (refused,
/// timed out, failed the check), and never the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_host_will_do_the_error_names_each_and_why() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    // Refused: a port nobody listens on (bound, then freed).
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Timed out: a listener that never answers (the kernel completes the
    // handshake, the server's greeting never comes).
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let primary = cluster.proxy(0).addr();
    let url = format!(
        "postgres://postgres:{PASSWORD}@{refused},{silent_addr},{primary}/{}?target_session_attrs=standby",
        db.name()
    );
    let app = pool_testkit::fixtures::unique_app_name("failover-none");
    let mut s = settings(url, &app, 1);
    s.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = Pool::<Postgres>::connect(s).await.unwrap_err();
    let text = err.to_string();
    eprintln!("after {:.1?}: {text}", started.elapsed());
    assert!(
        matches!(
            &err,
            Error::NoSuitableHost { attempts, target_session_attrs: TargetSessionAttrs::Standby, .. }
                if attempts.len() == 3
        ),
        "{err:?}"
    );
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(
        text.contains("no host accepted the connection and passed target_session_attrs=standby"),
        "{text}"
    );
    for (host, why) in [
        (refused.to_string(), "refused"),
        (
            silent_addr.to_string(),
            "timed out after 500ms (connect_timeout)",
        ),
        (
            primary.to_string(),
            "failed target_session_attrs=standby check: is not a standby (pg_is_in_recovery() = false)",
        ),
    ] {
        let at = text
            .find(&format!("{host}: "))
            .unwrap_or_else(|| panic!("{host} not named: {text}"));
        let reason = &text[at..];
        let reason = &reason[..reason.find("; ").unwrap_or(reason.len())];
        assert!(
            reason.contains(why),
            "{host}: expected {why:?} in {reason:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "each host is bounded by connect_timeout: {:.1?}",
        started.elapsed()
    );
    drop(silent);
}

/// A wrong password refused by every host: the first checkout names each
/// host's refusal (SQLSTATE 28P01), and later ones are answered from
/// memory (the refusal back-off), as for a single host, instead of
/// sending the same credentials to every host again.
#[tokio::test]
async fn credentials_refused_by_every_host_are_not_sent_again_at_once() {
    let server = TestServer::builder()
        .backend(ServerKind::Local)
        .auth(Auth::Scram)
        .start()
        .expect("a SCRAM server (local backend)");
    server
        .create_user("failover_app", "the-real-one")
        .await
        .unwrap();
    let db = server.create_database().await.unwrap();
    let addr = server.addr();
    let url = format!(
        "postgres://failover_app:{PASSWORD}@{addr},{addr}/{}?target_session_attrs=read-write",
        db.name()
    );
    let app = pool_testkit::fixtures::unique_app_name("failover-refused");
    let pool = Pool::<Postgres>::connect_lazy(settings(url, &app, 1)).unwrap();
    let first = pool.acquire().await.unwrap_err();
    let text = first.to_string();
    assert!(
        matches!(&first, Error::NoSuitableHost { attempts, .. } if attempts.len() == 2),
        "{first:?}"
    );
    assert_eq!(text.matches("(SQLSTATE 28P01)").count(), 2, "{text}");
    let second = pool.acquire().await.unwrap_err();
    match &second {
        Error::CredentialsRefused { answer, .. } => {
            assert!(
                answer.contains("every host refused the credentials"),
                "{answer}"
            );
            assert!(answer.contains("28P01"), "{answer}");
        }
        other => panic!("expected the refusal from memory, got {other:?}"),
    }
    for msg in [text, second.to_string()] {
        assert!(
            !msg.contains(PASSWORD) && !msg.contains("the-real-one"),
            "{msg}"
        );
    }
}

/// (c) A value that is not one of the six: the setting and the allowed
/// values named, from the URL and from the environment alike.
#[tokio::test]
async fn a_bad_target_session_attrs_names_the_allowed_values() {
    let allowed = "one of: any, read-write, read-only, primary, standby, prefer-standby";
    let url = format!("postgres://app:{PASSWORD}@h1:5432,h2:5433/app?target_session_attrs=master");
    let err = Pool::<Postgres>::connect_lazy(PoolSettings::new(url)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(text.contains("target_session_attrs=\"master\""), "{text}");
    assert!(text.contains(allowed), "{text}");
    assert!(text.contains("h1:5432,h2:5433"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");

    let err = StandardPoolConfig::from_map([
        ("DATABASE_URL", "postgres://app:pw@h1,h2/app"),
        ("DB_TARGET_SESSION_ATTRS", "master"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("DB_TARGET_SESSION_ATTRS"), "{err}");
    assert!(err.contains(allowed), "{err}");

    let err = StandardPoolConfig::from_map([
        ("DATABASE_URL", "postgres://app:pw@h1,h2/app"),
        ("DB_LOAD_BALANCE_HOSTS", "roundrobin"),
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("DB_LOAD_BALANCE_HOSTS"), "{err}");
    assert!(err.contains("one of: disable, random"), "{err}");

    // A good multi-host URL and the variables load, and the URL stays
    // masked in what the config prints.
    let url = format!("postgres://app:{PASSWORD}@h1,h2/app");
    let cfg = StandardPoolConfig::from_map([
        ("DATABASE_URL", url.as_str()),
        ("DB_TARGET_SESSION_ATTRS", "read-write"),
        ("DB_LOAD_BALANCE_HOSTS", "random"),
    ])
    .unwrap();
    let s = cfg.settings();
    assert_eq!(s.target_session_attrs, TargetSessionAttrs::ReadWrite);
    assert_eq!(s.load_balance_hosts, pool_runtime::LoadBalanceHosts::Random);
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains(PASSWORD) && shown.contains("h1,h2"),
        "{shown}"
    );
}

/// Step 3 on its own: in a read-write pool, a write refused as read-only
/// (25006: the server was demoted under the pool) replaces every
/// connection made before it, once; a pool with `any` keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_replaces_the_connections_of_a_read_write_pool() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    for (attrs, replaced) in [("read-write", true), ("any", false)] {
        let url = url_over(
            cluster,
            &[0],
            db.name(),
            &format!("?target_session_attrs={attrs}"),
        );
        let app = pool_testkit::fixtures::unique_app_name("failover-25006");
        let mut s = settings(url, &app, 3);
        s.min_idle = 3;
        let pool = Pool::<Postgres>::connect(s).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        // What a demoted primary answers to a write.
        sqlx::raw_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .execute(&mut *conn)
            .await
            .unwrap();
        for _ in 0..2 {
            let error = sqlx::raw_sql("CREATE TABLE t ()")
                .execute(&mut *conn)
                .await
                .unwrap_err();
            assert_eq!(
                error.as_database_error().and_then(|e| e.code()).as_deref(),
                Some("25006")
            );
            assert!(!conn.report_error(&error), "the connection itself is fine");
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let invalidated = pool.status().totals.closed.invalidated;
        if replaced {
            assert_eq!(
                invalidated, 3,
                "{attrs}: 2 idle now, 1 on return, and only once"
            );
        } else {
            assert_eq!(invalidated, 0, "{attrs}: nothing replaced");
        }
        pool.close().await;
    }
}

/// Which node a server port belongs to.
fn node_of(cluster: &Cluster, port: i32) -> usize {
    (0..cluster.len())
        .find(|&i| i32::from(cluster.node(i).addr().port()) == port)
        .unwrap_or_else(|| panic!("port {port} is no node's"))
}

/// A fresh primary + standby with a `writes` table replicated to the
/// standby, and a read-write URL over both nodes, the primary first.
async fn writes_cluster() -> (Arc<Cluster>, pool_testkit::TestDatabase, String) {
    let cluster = Arc::new(start_cluster());
    let db = database(&cluster).await;
    let mut admin = sqlx::PgConnection::connect(&cluster.url_for(0, db.name()))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE writes (id bigserial PRIMARY KEY, port int NOT NULL)")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    cluster.wait_caught_up(WITHIN).await.unwrap();
    let url = url_over(
        &cluster,
        &[0, 1],
        db.name(),
        "?target_session_attrs=read-write",
    );
    (cluster, db, url)
}

/// Tasks that write steadily through a pool (`INSERT … RETURNING` the
/// server's port), each write booked as (ms since `t0`, node), each
/// failure counted.
struct Writers {
    t0: Instant,
    stop: Arc<AtomicBool>,
    writes: Arc<Mutex<Vec<(u64, usize)>>>,
    failures: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn spawn(pool: &Pool<Postgres>, cluster: &Arc<Cluster>, n: usize) -> Self {
        let mut writers = Writers {
            t0: Instant::now(),
            stop: Arc::default(),
            writes: Arc::default(),
            failures: Arc::default(),
            tasks: Vec::new(),
        };
        for _ in 0..n {
            let (pool, stop, writes, failures, cluster, t0) = (
                pool.clone(),
                writers.stop.clone(),
                writers.writes.clone(),
                writers.failures.clone(),
                cluster.clone(),
                writers.t0,
            );
            writers.tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let written: Result<i32, _> = sqlx::query_scalar(
                        "INSERT INTO writes (port) VALUES (inet_server_port()) RETURNING port",
                    )
                    .fetch_one(&pool)
                    .await;
                    match written {
                        Ok(port) => {
                            let at = t0.elapsed().as_millis() as u64;
                            writes.lock().unwrap().push((at, node_of(&cluster, port)));
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            }));
        }
        writers
    }

    fn elapsed(&self) -> Duration {
        self.t0.elapsed()
    }

    fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Waits for the first write on `node` (time since `t0`); panics if
    /// none comes within `within` of `since` (since `t0`).
    async fn first_on(&self, node: usize, since: Duration, within: Duration) -> Duration {
        loop {
            let first = self
                .writes
                .lock()
                .unwrap()
                .iter()
                .find(|(_, n)| *n == node)
                .map(|(at, _)| *at);
            if let Some(at) = first {
                return Duration::from_millis(at);
            }
            assert!(
                self.elapsed() < since + within,
                "no write reached node {node} within {within:?} ({} failed writes)",
                self.failures()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the tasks; every write made.
    async fn finish(self) -> Vec<(u64, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.writes.lock().unwrap().clone()
    }
}

/// On each running node, straight to the server: whether it is a standby,
/// and how many of the pool's sessions ran anything there beyond
/// connecting and the target_session_attrs check (a session rejected by
/// the check lives a few milliseconds and runs nothing else). A node is
/// sampled in one statement, so the role and the count are of the same
/// instant. Node 0 is skipped once `node0_down` is set.
struct StandbySampler {
    stop: Arc<AtomicBool>,
    node0_down: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<(u64, i64)>,
}

impl StandbySampler {
    fn spawn(cluster: &Arc<Cluster>, app: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let node0_down = Arc::new(AtomicBool::new(false));
        let violations: Arc<Mutex<Vec<String>>> = Arc::default();
        let (cluster, app) = (cluster.clone(), app.to_string());
        let task = {
            let (stop, node0_down, violations) =
                (stop.clone(), node0_down.clone(), violations.clone());
            tokio::spawn(async move {
                let mut samples = 0u64;
                let mut probes_seen = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    for i in 0..cluster.len() {
                        if i == 0 && node0_down.load(Ordering::Relaxed) {
                            continue;
                        }
                        let Ok(mut conn) = cluster.node(i).connect_admin().await else {
                            continue;
                        };
                        let row: Result<(bool, i64, i64), _> = sqlx::query_as(
                            "SELECT pg_is_in_recovery(),
                                    count(*) FILTER (WHERE query NOT IN ('', 'SHOW transaction_read_only')),
                                    count(*)
                             FROM pg_stat_activity WHERE application_name = $1",
                        )
                        .bind(&app)
                        .fetch_one(&mut conn)
                        .await;
                        let _ = conn.close().await;
                        if let Ok((standby, used, all)) = row {
                            samples += 1;
                            if standby {
                                probes_seen += all;
                                if used > 0 {
                                    violations.lock().unwrap().push(format!(
                                        "{used} session(s) of the pool used on node {i} while a standby"
                                    ));
                                }
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (samples, probes_seen)
            })
        };
        StandbySampler {
            stop,
            node0_down,
            violations,
            task,
        }
    }

    /// Stops sampling: (samples, check sessions seen on a standby, violations).
    async fn finish(self) -> (u64, i64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, probes_seen) = self.task.await.unwrap();
        let violations = self.violations.lock().unwrap().clone();
        (samples, probes_seen, violations)
    }
}

/// (d) Tasks write steadily through a read-write pool over both nodes; the
/// primary stops and the standby is promoted. Writes resume on the new
/// primary by themselves, and no connection of the pool ever runs a
/// statement on a node while it is a standby (sampled on the servers).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_follow_a_promotion_by_themselves() {
    let (cluster, _db, url) = writes_cluster().await;
    let app = pool_testkit::fixtures::unique_app_name("failover-promote");
    let mut s = settings(url, &app, 4);
    s.pool_timeout = Duration::from_secs(2);
    let pool = Pool::<Postgres>::connect(s).await.unwrap();

    let writers = Writers::spawn(&pool, &cluster, 4);
    let sampler = StandbySampler::spawn(&cluster, &app);

    tokio::time::sleep(Duration::from_secs(1)).await;
    let stop_at = writers.elapsed();
    tokio::task::block_in_place(|| cluster.stop(0)).unwrap();
    sampler.node0_down.store(true, Ordering::Relaxed);
    let stopped_at = writers.elapsed();
    tokio::task::block_in_place(|| cluster.promote(1)).unwrap();
    let promoted_at = writers.elapsed();
    let resumed = writers.first_on(1, promoted_at, WITHIN).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = writers.failures();
    let writes = writers.finish().await;
    let (samples, probes_seen, violations) = sampler.finish().await;

    let last_on_0 = writes
        .iter()
        .filter(|(_, node)| *node == 0)
        .map(|(at, _)| Duration::from_millis(*at))
        .max()
        .expect("writes on the first primary");
    let after = writes
        .iter()
        .filter(|(at, _)| Duration::from_millis(*at) > resumed)
        .count();
    eprintln!(
        "FAILOVER: stop(0) at {stop_at:.2?} (done {stopped_at:.2?}), promote(1) done at \
         {promoted_at:.2?}; last write on node 0 at {last_on_0:.2?}, first on node 1 at \
         {resumed:.2?}: write gap {:.2?} ({:+.3}s from promote(1) returning); {} writes, \
         {failures} failed; {samples} server samples, {probes_seen} check sessions seen on \
         the standby",
        resumed - last_on_0,
        resumed.as_secs_f64() - promoted_at.as_secs_f64(),
        writes.len(),
    );
    assert!(
        writes
            .iter()
            .all(|(at, node)| *node == 0 || Duration::from_millis(*at) >= stop_at),
        "a write on node 1 before the failover"
    );
    assert!(
        writes
            .iter()
            .all(|(at, node)| *node == 1 || Duration::from_millis(*at) <= stopped_at),
        "a write on the stopped node"
    );
    assert!(after > 10, "writes go on after the failover: {after}");
    assert!(
        resumed.saturating_sub(promoted_at) < Duration::from_secs(3),
        "writes resumed {:.2?} after the promotion",
        resumed.saturating_sub(promoted_at)
    );
    assert!(violations.is_empty(), "{violations:?}");
    assert!(samples > 20, "the servers were sampled: {samples}");
    pool.close().await;
}

/// One failover under 64 writers (see the test below).
struct FailoverRun {
    kill: Duration,
    promote: Duration,
    resumed: Duration,
    writable: Duration,
    last_on_0: Duration,
    writes: usize,
    failures: u64,
    on_standby: usize,
    on_dead: usize,
    violations: Vec<String>,
    invalidated: u64,
    opened_before: u64,
    opened: u64,
    size: u32,
    by_node: Vec<Option<usize>>,
}

/// A fresh cluster, a read-write pool of 10 + 10 over both nodes, 64 tasks
/// writing; after 2 s node 0 is killed (no clean shutdown) and node 1
/// promoted at once. Times are from the start of the kill.
async fn failover_under_writers(tasks: usize) -> FailoverRun {
    let (cluster, db, url) = writes_cluster().await;
    let app = pool_testkit::fixtures::unique_app_name("failover-64");
    let mut s = settings(url, &app, 10);
    s.max_overflow = 10;
    s.pool_timeout = Duration::from_secs(5);
    let pool = Pool::<Postgres>::connect(s).await.unwrap();
    let writers = Writers::spawn(&pool, &cluster, tasks);
    let sampler = StandbySampler::spawn(&cluster, &app);

    tokio::time::sleep(Duration::from_secs(2)).await;
    // When node 1 first answers as a primary, polled straight on the
    // server every 2 ms: what the pool cannot be faster than.
    let mut probe = cluster.node(1).connect_admin().await.unwrap();
    let t0 = writers.t0;
    let writable = tokio::spawn(async move {
        loop {
            let primary: bool = sqlx::query_scalar("SELECT NOT pg_is_in_recovery()")
                .fetch_one(&mut probe)
                .await
                .unwrap();
            if primary {
                let at = t0.elapsed();
                let _ = probe.close().await;
                return at;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let opened_before = pool.status().totals.opened;
    let kill_at = writers.elapsed();
    tokio::task::block_in_place(|| cluster.kill(0)).unwrap();
    sampler.node0_down.store(true, Ordering::Relaxed);
    let killed_at = writers.elapsed();
    let promote_at = writers.elapsed();
    tokio::task::block_in_place(|| cluster.promote(1)).unwrap();
    let promoted_at = writers.elapsed();
    let resumed = writers.first_on(1, kill_at, Duration::from_secs(30)).await;
    let writable = writable.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let failures = writers.failures();
    let writes = writers.finish().await;
    let (_, _, violations) = sampler.finish().await;

    // Everything returned: every connection the pool holds must be one the
    // servers count on node 1, made after the promotion (before it, node 1
    // failed the read-write check).
    let deadline = Instant::now() + WITHIN;
    let (status, by_node) = loop {
        let status = pool.status();
        let by_node = cluster.connections_by_node(&app).await.unwrap();
        if status.checked_out == 0
            && status.connecting == 0
            && by_node == [None, Some(status.size as usize)]
        {
            break (status, by_node);
        }
        assert!(
            Instant::now() < deadline,
            "pool size {} ({} out, {} connecting), servers count {by_node:?}",
            status.size,
            status.checked_out,
            status.connecting
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    pool.close().await;
    drop(db);

    let last_on_0 = writes
        .iter()
        .filter(|(_, node)| *node == 0)
        .map(|(at, _)| *at)
        .max()
        .expect("writes on the first primary");
    FailoverRun {
        kill: killed_at - kill_at,
        promote: promoted_at - promote_at,
        resumed: resumed.saturating_sub(kill_at),
        writable: writable.saturating_sub(kill_at),
        last_on_0: Duration::from_millis(last_on_0).saturating_sub(kill_at),
        writes: writes.len(),
        failures,
        // Node 1 was a standby until its promotion began; node 0 dead
        // once the kill returned.
        on_standby: writes
            .iter()
            .filter(|(at, node)| *node == 1 && Duration::from_millis(*at) < promote_at)
            .count(),
        on_dead: writes
            .iter()
            .filter(|(at, node)| *node == 0 && Duration::from_millis(*at) > killed_at)
            .count(),
        violations,
        invalidated: status.totals.closed.invalidated,
        opened_before,
        opened: status.totals.opened,
        size: status.size,
        by_node,
    }
}

/// The figure: failover under 64 writing tasks, the standby
/// promoted as the primary dies, five times. Time from the kill to the
/// first write on the new primary, p50 and max (RELIABILITY.md,
/// "Failover"); zero writes on a standby or on the dead node; afterwards
/// every connection of the pool is on node 1. Long form:
/// `cargo nextest run -p pool-runtime --test failover --run-ignored only --no-capture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long form: five clusters, about a minute"]
async fn failover_under_64_writers_five_times() {
    const RUNS: usize = 5;
    let mut resumed = Vec::new();
    let mut after_writable = Vec::new();
    for run in 1..=RUNS {
        let r = failover_under_writers(64).await;
        eprintln!(
            "FAILOVER run {run}: first write on node 1 {:.0?} after the kill began (kill took \
             {:.0?}, promote {:.0?}; node 1 answered as a primary at {:.0?}, the first write \
             {:+.1}ms after that); last write on node 0 at {:+.0?}; {} writes, {} failed; on a \
             standby {}, on the dead node {}, sampler violations {}; invalidated {}, opened {} \
             before the kill and {} in all, size after {} = servers {:?}",
            r.resumed,
            r.kill,
            r.promote,
            r.writable,
            (r.resumed.as_secs_f64() - r.writable.as_secs_f64()) * 1000.0,
            r.last_on_0,
            r.writes,
            r.failures,
            r.on_standby,
            r.on_dead,
            r.violations.len(),
            r.invalidated,
            r.opened_before,
            r.opened,
            r.size,
            r.by_node,
        );
        assert_eq!(r.on_standby, 0, "run {run}: writes on a standby");
        assert_eq!(r.on_dead, 0, "run {run}: writes on the dead node");
        assert!(r.violations.is_empty(), "run {run}: {:?}", r.violations);
        assert!(
            r.resumed < Duration::from_secs(30),
            "run {run}: resumed after {:.1?}",
            r.resumed
        );
        resumed.push(r.resumed);
        after_writable.push((r.resumed.as_secs_f64() - r.writable.as_secs_f64()) * 1000.0);
    }
    resumed.sort();
    after_writable.sort_by(f64::total_cmp);
    eprintln!(
        "FAILOVER {RUNS} runs: kill → first write on the new primary p50 {:.0?}, max {:.0?}; \
         node 1 a primary → first write p50 {:+.1}ms, max {:+.1}ms",
        resumed[RUNS / 2],
        resumed[RUNS - 1],
        after_writable[RUNS / 2],
        after_writable[RUNS - 1]
    );
}

/// `DB_HOSTS` replaces the URL's host list: the URL names a port where
/// nothing listens, the setting lists the standby then the primary, and a
/// read-write pool lands on the primary. An empty entry and SQLite are
/// refused, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_setting_replaces_the_urls_host_list() {
    let cluster = shared_cluster();
    let db = database(cluster).await;
    let nothing = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = nothing.local_addr().unwrap();
    drop(nothing);
    let url = format!("postgres://postgres:{PASSWORD}@{closed}/{}", db.name());
    let hosts = format!("{},{}", cluster.proxy(1).addr(), cluster.proxy(0).addr());
    let app = pool_testkit::fixtures::unique_app_name("failover-hosts");
    let config = StandardPoolConfig::from_map([
        ("DATABASE_URL", url.as_str()),
        ("DB_HOSTS", hosts.as_str()),
        ("DB_TARGET_SESSION_ATTRS", "read-write"),
        ("DB_APPLICATION_NAME", app.as_str()),
        ("DB_POOL_SIZE", "2"),
    ])
    .unwrap();
    let pool = Pool::<Postgres>::connect(config.settings()).await.unwrap();
    let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    let counts = cluster.connections_by_node(&app).await.unwrap();
    assert_eq!(counts, [Some(2), Some(0)], "by node");
    drop(held);
    pool.close().await;

    let err = StandardPoolConfig::from_map([
        ("DATABASE_URL", url.as_str()),
        ("DB_HOSTS", "db1:5432,,db2:5432"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("DB_HOSTS") && err.contains("has an empty entry") && !err.contains(PASSWORD),
        "{err}"
    );
    let err = StandardPoolConfig::from_map([
        ("DATABASE_URL", "sqlite://app.db"),
        ("DB_HOSTS", "db1:5432"),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("DB_HOSTS") && err.contains("the URL is a SQLite database"),
        "{err}"
    );
}

/// A failed pre-ping is a sign of a failover too: after the primary stops
/// and the standby is promoted, the first checkout's ping fails on one
/// idle connection, and the other idle ones (all on the dead node) are
/// replaced at once instead of each being pinged in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_ping_replaces_the_connections_of_a_read_write_pool() {
    let (cluster, _db, url) = writes_cluster().await;
    let app = pool_testkit::fixtures::unique_app_name("failover-ping");
    let mut s = settings(url, &app, 4);
    s.pre_ping_bypass = Duration::ZERO;
    let pool = Pool::<Postgres>::connect(s).await.unwrap();
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| pool.acquire()))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    drop(held);
    let idle = pool.status().checked_in;
    assert_eq!(idle, 4, "{}", pool.status());

    let cluster2 = Arc::clone(&cluster);
    tokio::task::spawn_blocking(move || {
        cluster2.stop(0).unwrap();
        cluster2.promote(1).unwrap();
    })
    .await
    .unwrap();

    let mut conn = pool.acquire().await.unwrap();
    let port: i32 =
        sqlx::query_scalar("INSERT INTO writes (port) VALUES (inet_server_port()) RETURNING port")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        node_of(&cluster, port),
        1,
        "the write landed on the promoted node"
    );
    drop(conn);
    let totals = pool.status().totals;
    assert_eq!(
        totals.ping_failures, 1,
        "one ping failed, the rest were replaced: {totals:?}"
    );
    assert_eq!(totals.closed.invalidated, 3, "{totals:?}");
    pool.close().await;
}

/// A host that now fails its check (libpq's words) is a role change for
/// a pool of any `target_session_attrs`: a `standby` pool's connections
/// sit on node 1; node 1 is promoted (no connection is lost: a promotion
/// keeps its sessions); the pool's next connect finds node 1 failing the
/// standby check, and the connections made before are replaced, so the
/// pool ends on node 2, the standby left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_now_fails_its_check_moves_the_pool() {
    let cluster = tokio::task::spawn_blocking(|| {
        Cluster::builder()
            .backend(ServerKind::Local)
            .standbys(2)
            .start()
            .expect("a primary and two standbys (local backend)")
    })
    .await
    .unwrap();
    let db = database(&cluster).await;
    let url = url_over(
        &cluster,
        &[1, 2],
        db.name(),
        "?target_session_attrs=standby",
    );
    let app = pool_testkit::fixtures::unique_app_name("failover-check");
    let mut s = settings(url, &app, 2);
    s.max_overflow = 1;
    let pool = Pool::<Postgres>::connect(s).await.unwrap();
    let held = [pool.acquire().await.unwrap(), pool.acquire().await.unwrap()];
    assert_eq!(
        cluster.connections_by_node(&app).await.unwrap(),
        [Some(0), Some(2), Some(0)]
    );

    tokio::task::block_in_place(|| cluster.promote(1)).expect("promote node 1");
    // The overflow connect tries node 1 first: it is a primary now.
    let extra = pool.acquire().await.unwrap();
    let standby: bool = {
        let mut extra = extra;
        let on = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut *extra)
            .await
            .unwrap();
        drop(extra);
        on
    };
    assert!(standby, "the new connection went to the standby left");
    drop(held);
    let deadline = Instant::now() + WITHIN;
    loop {
        let held: Vec<_> = futures_util::future::join_all((0..2).map(|_| pool.acquire()))
            .await
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let counts = cluster.connections_by_node(&app).await.unwrap();
        drop(held);
        if counts[1] == Some(0) && counts[2] >= Some(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections still on the promoted node 1: {counts:?}; {}",
            pool.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        pool.status().totals.closed.invalidated,
        2,
        "{}",
        pool.status()
    );
    pool.close().await;
}

/// A black-holed primary (it stops answering, as a lost zone does) costs
/// one `connect_timeout`, not one per connect: once a connect found it
/// unreachable, the next ones try the promoted standby first for a while.
/// Counted at node 0's proxy: one connection attempt for five connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_host_costs_one_connect_timeout_not_one_per_connect() {
    let (cluster, _db, url) = writes_cluster().await;
    let app = pool_testkit::fixtures::unique_app_name("failover-blackhole");
    let mut s = settings(url, &app, 1);
    s.connect_timeout = Duration::from_millis(500);
    let pool = Pool::<Postgres>::connect(s).await.unwrap();
    tokio::task::block_in_place(|| {
        cluster.partition(0)?;
        cluster.promote(1)
    })
    .expect("partition node 0, promote node 1");
    let before = cluster.proxy(0).accepted_connections();
    for _ in 0..5 {
        // Every connection made so far goes: the next write connects.
        pool.invalidate_all();
        let port: i32 = sqlx::query_scalar(
            "INSERT INTO writes (port) VALUES (inet_server_port()) RETURNING port",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(node_of(&cluster, port), 1);
    }
    let tried = cluster.proxy(0).accepted_connections() - before;
    assert_eq!(
        tried, 1,
        "connects sent to the black-holed node 0: {tried} for 5 connects"
    );
    pool.close().await;
}
