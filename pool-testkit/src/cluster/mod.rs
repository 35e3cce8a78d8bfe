//! [`Cluster`]: a primary and N streaming standbys (PostgreSQL physical
//! replication: `pg_basebackup -R`, one replication slot per standby), on
//! the local-binaries backend or on Docker.
//!
//! ```no_run
//! # async fn demo() -> pool_testkit::Result<()> {
//! use std::time::Duration;
//! use pool_testkit::Cluster;
//! let cluster = Cluster::builder().standbys(1).start()?; // blocking
//! let db = cluster.create_database().await?;             // on the primary
//! let url = cluster.url_for(cluster.primary(), db.name()); // through the node's proxy
//! // ... write through `url` ...
//! cluster.wait_caught_up(Duration::from_secs(10)).await?;
//! cluster.promote(1)?;      // node 1 becomes writable
//! cluster.rewind(0)?;       // the old primary follows it (pg_rewind)
//! # Ok(()) }
//! ```
//!
//! Addresses. Clients reach each node through a kit [`TcpProxy`] on
//! 127.0.0.1 ([`url`](Cluster::url), [`multi_host_url`](Cluster::multi_host_url)),
//! so a partition is real for them; the kit's own probes
//! ([`node`](Cluster::node) is a [`TestServer`], so every probe and
//! assertion of the kit works per node) go to the node directly and still
//! see a partitioned node.
//!
//! Partitions. Local backend: the node's proxy goes black-hole (connections
//! are accepted, nothing passes, nothing is closed), and so does the link a
//! standby streams through (standbys reach their upstream through its
//! proxy), so a partitioned node neither serves clients nor replicates.
//! Docker: the container is disconnected from the cluster's private network
//! (replication stops both ways; a published port would then refuse
//! connections at once, which is not what a partition looks like), and its
//! host-side proxy goes black-hole. [`heal`](Cluster::heal) undoes both and
//! held data flows again.
//!
//! Roles are booked in an I/O-free state machine ([`Topology`]): a
//! promotion leaves a [`Role::Former`] primary that still runs and still
//! accepts writes (split brain, as in real failovers) until it is stopped
//! or [`rewind`](Cluster::rewind)ed; standbys of the old primary keep
//! streaming from it until rewound.
//!
//! Settings every node gets (besides the kit's defaults): `wal_log_hints`
//! and `full_page_writes` on (pg_rewind needs both), `hot_standby` on,
//! `wal_keep_size` 256MB, `wal_receiver_status_interval` 1s and
//! `wal_sender_timeout`/`wal_receiver_timeout` 10s (a partition is noticed
//! in seconds, not a minute).

mod docker;
mod local;
pub mod state;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::admin;
use crate::database::TestDatabase;
use crate::proxy::{ProxyMode, TcpProxy};
use crate::server::TestServer;
use crate::server_kind::ServerKind;
use crate::{Error, Result};

pub use state::{NodeState, Refused, Role, Topology};

/// Configures and starts a [`Cluster`].
#[derive(Clone, Debug)]
#[must_use]
pub struct ClusterBuilder {
    backend: Option<ServerKind>,
    standbys: usize,
    image: Option<String>,
    settings: Vec<(String, String)>,
    template_sql: Vec<String>,
}

impl Default for ClusterBuilder {
    fn default() -> Self {
        let mut b = Self {
            backend: None,
            standbys: 1,
            image: None,
            settings: Vec::new(),
            template_sql: Vec::new(),
        };
        for (k, v) in [
            ("max_connections", "200"),
            ("fsync", "off"),
            ("synchronous_commit", "off"),
            ("log_connections", "on"),
            ("log_disconnections", "on"),
            ("log_line_prefix", "%m [%p] %q%a@%d "),
            // pg_rewind needs both.
            ("full_page_writes", "on"),
            ("wal_log_hints", "on"),
            ("hot_standby", "on"),
            ("wal_keep_size", "256MB"),
            ("wal_receiver_status_interval", "1s"),
            ("wal_sender_timeout", "10s"),
            ("wal_receiver_timeout", "10s"),
        ] {
            b = b.arg(k, v);
        }
        b
    }
}

impl ClusterBuilder {
    /// ServerKind: [`ServerKind::Local`] or [`ServerKind::Docker`]; default
    /// [`ServerKind::select`] (an external server cannot be a cluster).
    pub fn backend(mut self, backend: ServerKind) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Number of standbys (default 1).
    pub fn standbys(mut self, n: usize) -> Self {
        self.standbys = n;
        self
    }

    /// Docker image (default `POOL_TESTKIT_IMAGE`, else `pool-testkit/postgres:15`).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Any server setting for every node; a later value for the same key wins.
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        crate::util::set_setting(&mut self.settings, key.into(), value.into());
        self
    }

    /// SQL run once in the template database on the primary (standbys get
    /// it by replication).
    pub fn template_sql(mut self, sql: impl Into<String>) -> Self {
        self.template_sql.push(sql.into());
        self
    }

    /// Starts the primary, then each standby, and waits until every node
    /// accepts connections. Blocking; fine to call from async tests.
    pub fn start(self) -> Result<Cluster> {
        let backend = match self.backend {
            Some(b) => b,
            None => ServerKind::select()?,
        };
        if self.standbys > 16 {
            return Err(Error::Config(format!(
                "a cluster of {} standbys: at most 16 are supported (PostgreSQL's default \
                 max_wal_senders is 10; raise it with .arg(\"max_wal_senders\", ..) below 16)",
                self.standbys
            )));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pool-testkit-cluster")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the cluster's proxy runtime", e))?;
        let engine = match backend {
            ServerKind::Local => Engine::Local,
            ServerKind::Docker => {
                let image = self
                    .image
                    .clone()
                    .unwrap_or_else(crate::docker::image_from_env);
                Engine::Docker(docker::Network::create(image)?)
            }
            ServerKind::External => {
                return Err(Error::Unsupported {
                    operation: "starting a cluster",
                    backend,
                });
            }
        };
        let mut cluster = Cluster {
            backend,
            nodes: Vec::new(),
            topology: Mutex::new(Topology::new(self.standbys + 1)),
            settings: self.settings,
            runtime: Some(runtime),
            engine,
        };
        let started = Instant::now();
        cluster.start_primary(&self.template_sql)?;
        for i in 1..=self.standbys {
            cluster.start_standby(i)?;
        }
        tracing::info!(
            "pool-testkit: {backend} cluster of {} nodes ready in {:.1?}",
            cluster.nodes.len(),
            started.elapsed()
        );
        Ok(cluster)
    }
}

enum Engine {
    Local,
    Docker(docker::Network),
}

/// One node: its server (direct, for the kit's probes), the proxy clients
/// use, and (local standbys) the proxy it streams through.
struct Node {
    server: TestServer,
    proxy: TcpProxy,
    link: Mutex<Option<TcpProxy>>,
    /// Container name (Docker; DNS name on the cluster network).
    name: String,
}

/// A primary plus streaming standbys; see the [module docs](self).
/// Everything is stopped and removed on drop (and by the watchdog if the
/// test process dies).
pub struct Cluster {
    backend: ServerKind,
    nodes: Vec<Node>,
    topology: Mutex<Topology>,
    settings: Vec<(String, String)>,
    runtime: Option<tokio::runtime::Runtime>,
    engine: Engine,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("backend", &self.backend)
            .field("topology", &self.topology())
            .field(
                "proxies",
                &self
                    .nodes
                    .iter()
                    .map(|n| n.proxy.addr())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// How far a standby is behind the primary.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Lag {
    /// The standby's index.
    pub node: usize,
    /// WAL bytes between the primary's current position and what the
    /// standby has replayed.
    pub bytes: u64,
    /// Time since the last transaction the standby replayed was committed
    /// on the primary (`None` before the first one).
    pub replay_delay: Option<Duration>,
    /// Whether its WAL receiver is connected (`pg_stat_wal_receiver`).
    pub streaming: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Proxies and servers first, then the runtime the proxies ran on,
        // then the network the containers were on.
        self.nodes.clear();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        if let Engine::Docker(net) = &self.engine {
            net.remove();
        }
    }
}

impl Cluster {
    /// A builder: auto backend, one standby.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// Which backend runs the nodes.
    pub fn backend(&self) -> ServerKind {
        self.backend
    }

    /// Number of nodes (primary included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false (a cluster has its primary).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The cluster's private Docker network (Docker backend only).
    pub fn docker_network(&self) -> Option<&str> {
        match &self.engine {
            Engine::Docker(net) => Some(net.name()),
            Engine::Local => None,
        }
    }

    /// A copy of the books: roles, running, partitioned.
    pub fn topology(&self) -> Topology {
        self.topology
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Index of the current primary.
    pub fn primary(&self) -> usize {
        self.topology().primary()
    }

    /// Standbys of the current primary.
    pub fn standbys(&self) -> Vec<usize> {
        self.topology().standbys()
    }

    /// Node `i` as a [`TestServer`] reached directly (not through its
    /// proxy), for probes and assertions. Panics on a bad index.
    pub fn node(&self, i: usize) -> &TestServer {
        &self.nodes[self.index(i).unwrap_or_else(|e| panic!("{e}"))].server
    }

    /// The proxy clients reach node `i` through.
    pub fn proxy(&self, i: usize) -> &TcpProxy {
        &self.nodes[self.index(i).unwrap_or_else(|e| panic!("{e}"))].proxy
    }

    /// Superuser URL of node `i`'s `postgres` database, through its proxy.
    pub fn url(&self, i: usize) -> String {
        self.url_for(i, "postgres")
    }

    /// Superuser URL of database `db` on node `i`, through its proxy.
    pub fn url_for(&self, i: usize, db: &str) -> String {
        self.proxy(i).url_for(&self.node(i).url_for(db))
    }

    /// libpq multi-host URL of database `db` over every node in index
    /// order (`postgres://postgres:postgres@127.0.0.1:p0,127.0.0.1:p1/db`),
    /// through the proxies. Add `?target_session_attrs=read-write` (or
    /// `primary`, `standby`, ...) for pool-runtime's pools and libpq
    /// clients (sqlx alone takes one host only).
    pub fn multi_host_url(&self, db: &str) -> String {
        let all: Vec<usize> = (0..self.nodes.len()).collect();
        self.multi_host_url_over(&all, db)
    }

    /// [`multi_host_url`](Self::multi_host_url) over `nodes`, in that
    /// order (a standby first, say, to show a read-write client skips it).
    ///
    /// # Panics
    /// On a node index out of range, naming it (as [`proxy`](Self::proxy)).
    pub fn multi_host_url_over(&self, nodes: &[usize], db: &str) -> String {
        let hosts: Vec<String> = nodes
            .iter()
            .map(|&i| self.proxy(i).addr().to_string())
            .collect();
        format!(
            "postgres://{}:{}@{}/{db}",
            admin::USER,
            admin::PASSWORD,
            hosts.join(",")
        )
    }

    /// A fresh database on the primary, copied from the template; standbys
    /// get it by replication.
    pub async fn create_database(&self) -> Result<TestDatabase> {
        self.node(self.primary()).create_database().await
    }

    fn index(&self, i: usize) -> Result<usize> {
        if i < self.nodes.len() {
            Ok(i)
        } else {
            Err(refused(Refused::NoSuchNode {
                node: i,
                len: self.nodes.len(),
            }))
        }
    }

    fn book<T>(&self, f: impl FnOnce(&mut Topology) -> Result<T, Refused>) -> Result<T> {
        f(&mut self.topology.lock().unwrap_or_else(|e| e.into_inner())).map_err(refused)
    }

    fn start_proxy(&self, upstream: std::net::SocketAddr) -> Result<TcpProxy> {
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Config("the cluster is shutting down".into()))?;
        crate::util::off_runtime(|| rt.block_on(TcpProxy::start(upstream)))
    }

    fn start_primary(&mut self, template_sql: &[String]) -> Result<()> {
        let (server, name) = match &self.engine {
            Engine::Local => (
                local::start_primary(&self.settings, template_sql)?,
                String::new(),
            ),
            Engine::Docker(net) => net.start_primary(&self.settings, template_sql)?,
        };
        let proxy = self.start_proxy(server.addr())?;
        self.nodes.push(Node {
            server,
            proxy,
            link: Mutex::new(None),
            name,
        });
        Ok(())
    }

    fn start_standby(&mut self, i: usize) -> Result<()> {
        let upstream = &self.nodes[0];
        let (server, name, link) = match &self.engine {
            Engine::Local => {
                let link = self.start_proxy(upstream.proxy.addr())?;
                let server = local::start_standby(link.addr().port(), &slot(i), &self.settings)?;
                (server, String::new(), Some(link))
            }
            Engine::Docker(net) => {
                let (server, name) =
                    net.start_standby(i, &upstream.name, &slot(i), &self.settings)?;
                (server, name, None)
            }
        };
        let proxy = self.start_proxy(server.addr())?;
        self.nodes.push(Node {
            server,
            proxy,
            link: Mutex::new(link),
            name,
        });
        Ok(())
    }

    /// Promotes standby `i` (`pg_promote`, waiting until it is writable)
    /// and creates replication slots on it for every other node, so they
    /// can be [`rewind`](Self::rewind)ed to follow it. Blocking.
    pub fn promote(&self, i: usize) -> Result<()> {
        self.index(i)?;
        self.book(|t| t.check_promote(i))?;
        let server = &self.nodes[i].server;
        let others: Vec<String> = (0..self.nodes.len())
            .filter(|&n| n != i)
            .map(slot)
            .collect();
        crate::util::block_on_fresh(async {
            let mut conn = server.connect_admin().await?;
            let done: bool = sqlx::query_scalar("SELECT pg_promote(true, 60)")
                .fetch_one(&mut conn)
                .await
                .map_err(|e| Error::sql(format!("promoting node {i}"), e))?;
            if !done {
                return Err(Error::Timeout(format!(
                    "node {i} was not promoted within 60 s\nserver log:\n{}",
                    server_log(server, 20)
                )));
            }
            for name in &others {
                ensure_slot(&mut conn, name).await?;
            }
            let _ = conn.close().await;
            Ok(())
        })?;
        self.book(|t| t.promoted(i))?;
        Ok(())
    }

    /// Re-attaches node `i` (a former primary, or a standby of one) as a
    /// standby of the current primary: clean stop, `pg_rewind
    /// --write-recovery-conf` (crash recovery first if it was killed), its
    /// replication slot, start. Blocking.
    pub fn rewind(&self, i: usize) -> Result<()> {
        self.index(i)?;
        self.book(|t| t.check_rewind(i))?;
        let primary = self.primary();
        let slot_name = slot(i);
        crate::util::block_on_fresh(async {
            let mut conn = self.nodes[primary].server.connect_admin().await?;
            ensure_slot(&mut conn, &slot_name).await?;
            // pg_rewind reads the source's timeline from its control file,
            // which a promotion updates only at its next checkpoint: without
            // one it says "no rewind required" and the node cannot follow
            // (found by tests/cluster.rs `local`).
            sqlx::raw_sql("CHECKPOINT")
                .execute(&mut conn)
                .await
                .map_err(|e| Error::sql(format!("checkpoint on primary {primary}"), e))?;
            let _ = conn.close().await;
            Ok::<_, Error>(())
        })?;
        let node = &self.nodes[i];
        match &self.engine {
            Engine::Local => {
                // The new link goes through the new primary's proxy.
                let link = self.start_proxy(self.nodes[primary].proxy.addr())?;
                let port = link.addr().port();
                node.server
                    .with_local(|s| s.rewind(port, admin::USER, &slot_name, &self.settings))
                    .unwrap_or(Ok(()))?;
                let mut slot_link = node.link.lock().unwrap_or_else(|e| e.into_inner());
                if slot_link
                    .as_ref()
                    .is_some_and(|l| l.mode() == ProxyMode::Blackhole)
                {
                    link.set_mode(ProxyMode::Blackhole);
                }
                *slot_link = Some(link);
            }
            Engine::Docker(net) => {
                net.rewind(&node.server, &self.nodes[primary].name, &slot_name)?;
            }
        }
        node.server.wait_ready_blocking(Duration::from_secs(60))?;
        self.book(|t| t.rewound(i))
    }

    /// Stops node `i` cleanly (fast shutdown: clients are disconnected).
    /// Blocking.
    pub fn stop(&self, i: usize) -> Result<()> {
        self.index(i)?;
        self.nodes[i].server.stop()?;
        self.book(|t| t.stopped(i))
    }

    /// Kills node `i` without a clean shutdown (local: `pg_ctl stop -m
    /// immediate`, crash recovery at the next start; Docker: `docker kill`).
    /// Blocking.
    pub fn kill(&self, i: usize) -> Result<()> {
        self.index(i)?;
        let server = &self.nodes[i].server;
        match &self.engine {
            Engine::Local => server
                .with_local(|s| s.stop("immediate"))
                .unwrap_or(Ok(()))?,
            Engine::Docker(net) => net.kill(server)?,
        }
        self.book(|t| t.stopped(i))
    }

    /// Starts a stopped or killed node `i` and waits until it accepts
    /// connections. Blocking.
    pub fn start(&self, i: usize) -> Result<()> {
        self.index(i)?;
        self.nodes[i].server.start()?;
        self.book(|t| t.started(i))
    }

    /// [`stop`](Self::stop) then [`start`](Self::start). Blocking.
    pub fn restart(&self, i: usize) -> Result<()> {
        self.stop(i)?;
        self.start(i)
    }

    /// Cuts node `i` off: its clients (through its proxy) hang, replication
    /// to and from it stops (see the [module docs](self)). The kit's direct
    /// probes still reach it. Blocking.
    pub fn partition(&self, i: usize) -> Result<()> {
        self.index(i)?;
        let node = &self.nodes[i];
        if let Engine::Docker(net) = &self.engine {
            net.disconnect(&node.name)?;
        }
        node.proxy.set_mode(ProxyMode::Blackhole);
        if let Some(link) = &*node.link.lock().unwrap_or_else(|e| e.into_inner()) {
            link.set_mode(ProxyMode::Blackhole);
        }
        self.book(|t| t.set_partitioned(i, true)).map(drop)
    }

    /// Undoes [`partition`](Self::partition): held data flows again.
    /// Blocking.
    pub fn heal(&self, i: usize) -> Result<()> {
        self.index(i)?;
        let node = &self.nodes[i];
        if let Engine::Docker(net) = &self.engine {
            net.connect(&node.name)?;
        }
        node.proxy.set_mode(ProxyMode::Forward);
        if let Some(link) = &*node.link.lock().unwrap_or_else(|e| e.into_inner()) {
            link.set_mode(ProxyMode::Forward);
        }
        self.book(|t| t.set_partitioned(i, false)).map(drop)
    }

    /// How far each running standby of the current primary is behind it.
    pub async fn replication_lag(&self) -> Result<Vec<Lag>> {
        let topo = self.topology();
        let target = self.primary_lsn(&topo).await?;
        let mut lags = Vec::new();
        for i in topo.standbys() {
            if !topo.node(i).map_err(refused)?.running {
                continue;
            }
            let mut conn = self.nodes[i].server.connect_admin().await?;
            let row: Result<(f64, Option<f64>, bool), _> = sqlx::query_as(
                "SELECT greatest(pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()), 0)::float8,
                        extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,
                        EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')",
            )
            .bind(&target)
            .fetch_one(&mut conn)
            .await;
            let _ = conn.close().await;
            let (bytes, delay, streaming) =
                row.map_err(|e| Error::sql(format!("reading the replay position of node {i}"), e))?;
            lags.push(Lag {
                node: i,
                bytes: bytes as u64,
                replay_delay: delay.map(|s| Duration::from_secs_f64(s.max(0.0))),
                streaming,
            });
        }
        Ok(lags)
    }

    /// Waits until every standby that can catch up (running, not
    /// partitioned, streaming from the current primary) has replayed
    /// everything the primary had written when this was called.
    pub async fn wait_caught_up(&self, within: Duration) -> Result<()> {
        let topo = self.topology();
        let target = self.primary_lsn(&topo).await?;
        let deadline = Instant::now() + within;
        for i in topo.streaming() {
            loop {
                let mut conn = self.nodes[i].server.connect_admin().await?;
                let done: Result<Option<bool>, _> =
                    sqlx::query_scalar("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn")
                        .bind(&target)
                        .fetch_one(&mut conn)
                        .await;
                let _ = conn.close().await;
                let done = done.map_err(|e| {
                    Error::sql(format!("reading the replay position of node {i}"), e)
                })?;
                if done == Some(true) {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(Error::Timeout(format!(
                        "standby {i} did not replay up to {target} within {within:?}\n\
                         its log:\n{}",
                        server_log(&self.nodes[i].server, 15)
                    )));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    async fn primary_lsn(&self, topo: &Topology) -> Result<String> {
        let primary = topo.primary();
        let mut conn = self.nodes[primary].server.connect_admin().await?;
        // The insert position, not the write position: with
        // synchronous_commit off a commit returns before its WAL is written,
        // and waiting for the write position missed it (found by
        // tests/cluster.rs `local`: the last insert was not on the standby).
        let lsn: Result<String, _> = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&mut conn)
            .await;
        let _ = conn.close().await;
        lsn.map_err(|e| Error::sql(format!("reading the WAL position of primary {primary}"), e))
    }

    /// How many connections of `application_name` each node has (index =
    /// node; `None` for a stopped node), counted on the servers.
    pub async fn connections_by_node(&self, app_name: &str) -> Result<Vec<Option<usize>>> {
        let topo = self.topology();
        let mut counts = Vec::with_capacity(self.nodes.len());
        for (i, node) in self.nodes.iter().enumerate() {
            if topo.node(i).map_err(refused)?.running {
                counts.push(Some(node.server.count_connections(app_name).await?));
            } else {
                counts.push(None);
            }
        }
        Ok(counts)
    }
}

/// The last `n` lines of a node's log, without the kit's probe connections.
fn server_log(server: &TestServer, n: usize) -> String {
    let tail = server.log_tail(2000);
    let lines: Vec<&str> = tail
        .lines()
        .filter(|l| {
            !l.contains(admin::PROBE_APP_NAME)
                && !l.contains("connection received:")
                && !l.contains("[unknown]@")
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Replication slot name of node `i`.
fn slot(i: usize) -> String {
    format!("pool_testkit_node_{i}")
}

async fn ensure_slot(conn: &mut sqlx::PgConnection, name: &str) -> Result<()> {
    sqlx::query(
        "SELECT pg_create_physical_replication_slot($1, true)
         WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)",
    )
    .bind(name)
    .execute(conn)
    .await
    .map(drop)
    .map_err(|e| Error::sql(format!("creating replication slot {name}"), e))
}

fn refused(r: Refused) -> Error {
    Error::Topology(r.to_string())
}
