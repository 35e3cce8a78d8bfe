//! One handle over a PostgreSQL primary and its streaming standbys:
//! [`ReplicaPool`]. Writes and transactions go to the primary; reads are
//! spread over the standbys that are reachable and within `read_max_lag`.
//!
//! Three parts: [`router`] keeps the books and decides where a read goes
//! (no I/O, unit tests and a loom model), [`probe`] checks every host in
//! the background, and the handle here ties them to the pools.

mod router;

pub use router::{NotServing, SkippedNode};

#[cfg(feature = "postgres")]
mod probe;

#[cfg(feature = "postgres")]
pub use handle::ReplicaPool;

#[cfg(feature = "postgres")]
mod handle {
    use std::sync::{Arc, Mutex, MutexGuard, Weak};
    use std::time::Duration;

    use sqlx::Postgres;
    use tokio::sync::Notify;

    use super::probe::Checker;
    use super::router::{Observation, Route, Router};
    use crate::hosts::url::{host_urls, query_pairs};
    use crate::observe::metrics::ReplicaMetrics;
    use crate::observe::status::{NodeRole, NodeStatus, ReplicaStatus};
    use crate::{
        Backend, Error, Health, LoadBalanceHosts, Pool, PoolSettings, PooledConnection, Status,
        TargetSessionAttrs, Transaction,
    };

    /// A primary and its read replicas behind one handle, from one
    /// multi-host URL (`postgres://app:pw@db1:5432,db2:5432,db3:5432/app`).
    ///
    /// * Writes: [`primary`](Self::primary) (and [`begin`](Self::begin)) is
    ///   a pool over every host with `target_session_attrs=read-write`, so
    ///   it follows a failover as any such pool does.
    /// * Reads: [`reader`](Self::reader) picks one host's read pool
    ///   (named `<name>@host:port`) by `read_balance`, among the standbys
    ///   the last check found reachable and within `read_max_lag`; when
    ///   none qualifies, the primary (`read_fallback`, on by default) or
    ///   [`Error::NoReadReplica`], which names every host and why it was
    ///   skipped. [`acquire_read`](Self::acquire_read) checks a connection
    ///   out and tries the next host when the chosen one cannot be reached.
    /// * Checks: every `read_check_interval`, each host is asked
    ///   `pg_is_in_recovery()` and its replay lag, bounded by
    ///   `connect_timeout`; a promoted standby stops serving reads at the
    ///   next check, a demoted primary that streams again starts.
    /// * [`status`](Self::status): the write pool's [`Status`] with a
    ///   [`ReplicaStatus`] (role, lag, reads and pool of every host);
    ///   health takes the hosts in (a standby down or lagging is a
    ///   warning; no standby with fallback off is critical).
    ///
    /// A single-host URL is accepted (every read goes to that host through
    /// the fallback: the same code runs against one development database),
    /// unless `read_fallback` is off, which could serve no read.
    ///
    /// ```no_run
    /// use pool_runtime::{PoolSettings, ReadBalance, ReplicaPool};
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let settings = PoolSettings::builder("postgres://app:pw@db1:5432,db2:5432,db3:5432/app")
    ///     .name("app")
    ///     .read_balance(ReadBalance::LeastBusy)
    ///     .read_max_lag(Some(std::time::Duration::from_secs(1)))
    ///     .build()?;
    /// let db = ReplicaPool::connect(settings).await?;
    /// sqlx::query("INSERT INTO items (name) VALUES ('a')").execute(db.primary()).await?;
    /// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
    ///     .fetch_one(db.reader()?)
    ///     .await?;
    /// println!("{n} items\n{}", db.status());
    /// db.close().await;
    /// # Ok(()) }
    /// ```
    #[derive(Clone)]
    pub struct ReplicaPool {
        inner: Arc<Inner>,
    }

    struct Inner {
        settings: PoolSettings,
        writer: Pool<Postgres>,
        nodes: Vec<Node>,
        router: Mutex<Router>,
        metrics: ReplicaMetrics,
        /// Ends the check task (it closes its connections on the way out).
        shutdown: Arc<Notify>,
        task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    }

    struct Node {
        label: String,
        pool: Pool<Postgres>,
    }

    impl Drop for Inner {
        fn drop(&mut self) {
            if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
                task.abort();
            }
        }
    }

    impl std::fmt::Debug for ReplicaPool {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("ReplicaPool")
                .field("name", &self.inner.settings.name)
                .field(
                    "nodes",
                    &self
                        .inner
                        .nodes
                        .iter()
                        .map(|n| &n.label)
                        .collect::<Vec<_>>(),
                )
                .finish()
        }
    }

    impl ReplicaPool {
        /// Connects the write pool (one connection, as [`Pool::connect`]:
        /// the primary must be up), builds one lazy read pool per host,
        /// checks every host once, and starts the background checks.
        pub async fn connect(settings: PoolSettings) -> Result<Self, Error> {
            settings.validate()?;
            let settings = settings.with_hosts_applied()?;
            let (writer_settings, node_settings) = split(&settings)?;
            let mut checkers = Vec::new();
            let mut nodes = Vec::new();
            for mut s in node_settings {
                let options = <Postgres as Backend>::options(&s)?;
                let (Some(one), Some(label)) = (options.hosts().next(), options.labels().next())
                else {
                    return Err(bad(&settings, "has no host"));
                };
                checkers.push(Checker::new(one.clone()));
                let label = label.to_owned();
                s.name = format!("{}@{label}", settings.name);
                nodes.push(Node {
                    label,
                    pool: Pool::connect_lazy(s)?,
                });
            }
            let writer = Pool::connect(writer_settings).await?;
            let labels: Vec<String> = nodes.iter().map(|n| n.label.clone()).collect();
            let inner = Arc::new(Inner {
                router: Mutex::new(Router::new(labels.clone(), &settings)),
                metrics: ReplicaMetrics::new(&settings.name, &labels, settings.metrics),
                settings,
                writer,
                nodes,
                shutdown: Arc::default(),
                task: Mutex::new(None),
            });
            inner.check_all(&mut checkers).await;
            let task = tokio::spawn(run_checks(
                Arc::downgrade(&inner),
                Arc::clone(&inner.shutdown),
                checkers,
            ));
            *lock(&inner.task) = Some(task);
            Ok(Self { inner })
        }

        /// The write pool: every host of the URL, `target_session_attrs =
        /// read-write`. Writes, transactions, and reads that must see the
        /// latest writes.
        pub fn primary(&self) -> &Pool<Postgres> {
            &self.inner.writer
        }

        /// A transaction on the primary.
        #[track_caller]
        pub fn begin(
            &self,
        ) -> impl Future<Output = Result<Transaction<Postgres>, Error>> + Send + 'static {
            self.inner.writer.begin()
        }

        /// The pool the next read should use: a standby's by `read_balance`,
        /// else the primary's (`read_fallback`), else
        /// [`Error::NoReadReplica`]. Every call is one routed read (metrics
        /// and status count it): call it per query or unit of work, not once.
        pub fn reader(&self) -> Result<&Pool<Postgres>, Error> {
            self.route().map(|(pool, _)| pool)
        }

        /// Checks out a connection for reads, as [`reader`](Self::reader)
        /// routes them; when the chosen standby cannot be reached (the
        /// checks have not seen it go yet), it is booked down and the next
        /// host that qualifies is tried, then the fallback.
        pub async fn acquire_read(&self) -> Result<PooledConnection<Postgres>, Error> {
            let mut left = self.inner.nodes.len();
            loop {
                let (pool, node) = self.route()?;
                let result = pool.acquire().await;
                match (result, node) {
                    (Err(error), Some(i)) if left > 0 && unreachable(&error) => {
                        tracing::warn!(
                            target: "pool_runtime::events",
                            pool = %self.inner.settings.name,
                            node = %self.inner.nodes[i].label,
                            %error,
                            "read replica unreachable; trying the next"
                        );
                        self.inner.observe(i, Observation::Down(error.to_string()));
                        left -= 1;
                    }
                    (result, _) => return result,
                }
            }
        }

        fn route(&self) -> Result<(&Pool<Postgres>, Option<usize>), Error> {
            let inner = &*self.inner;
            let busy: Vec<u32> = match inner.settings.read_balance {
                crate::ReadBalance::LeastBusy => {
                    inner.nodes.iter().map(|n| n.pool.busy()).collect()
                }
                crate::ReadBalance::RoundRobin => Vec::new(),
            };
            let route = lock(&inner.router).pick(&busy);
            match route {
                Ok(Route::Standby(i)) => {
                    inner.metrics.nodes[i].reads.increment(1);
                    Ok((&inner.nodes[i].pool, Some(i)))
                }
                Ok(Route::Primary) => {
                    inner.metrics.fallback_reads.increment(1);
                    Ok((&inner.writer, None))
                }
                Err(nodes) => {
                    inner.metrics.refused_reads.increment(1);
                    Err(Error::NoReadReplica {
                        pool: inner.settings.name.clone(),
                        nodes,
                    })
                }
            }
        }

        /// The read pool of each host, with its `host:port`, in the URL's
        /// order (the primary's too: it serves reads if it becomes a
        /// standby).
        pub fn nodes(&self) -> impl Iterator<Item = (&str, &Pool<Postgres>)> {
            self.inner.nodes.iter().map(|n| (n.label.as_str(), &n.pool))
        }

        /// The handle's name (`PoolSettings::name`; the write pool's too).
        pub fn name(&self) -> &str {
            &self.inner.settings.name
        }

        /// The write pool's [`Status`] with [`Status::replicas`]: every
        /// host's role, lag, reads and pool. Health is the worst of the
        /// write pool's and the read side's: a standby down or lagging,
        /// or a serving standby's pool in trouble, is a warning; no
        /// standby serving is a warning with fallback (reads load the
        /// primary) and critical without (reads fail); a single-host URL
        /// reads from its host by design, which is no warning.
        pub fn status(&self) -> Status {
            let inner = &*self.inner;
            let mut status = inner.writer.status();
            let router = lock(&inner.router).clone();
            let mut critical = Vec::new();
            let mut warning = Vec::new();
            let nodes: Vec<NodeStatus> = router
                .nodes()
                .iter()
                .zip(&inner.nodes)
                .enumerate()
                .map(|(i, (books, node))| {
                    let pool = node.pool.status();
                    let not_serving = router.not_serving(i);
                    match &not_serving {
                        None => warning.extend(
                            pool.health_reasons
                                .iter()
                                .map(|r| format!("node {}: {r}", node.label)),
                        ),
                        Some(super::NotServing::Primary) => {}
                        Some(why) => {
                            warning.push(format!("node {} serves no reads: {why}", node.label))
                        }
                    }
                    NodeStatus {
                        node: node.label.clone(),
                        role: books.role,
                        reachable: books.reachable,
                        lag_seconds: books.lag.map(|l| l.as_secs_f64()),
                        serving: not_serving.is_none(),
                        not_serving: not_serving.map(|w| w.to_string()),
                        reads: books.reads,
                        pool,
                    }
                })
                .collect();
            // One host is a setup of its own (a development database): its
            // reads go to it by design, not for want of a standby.
            if !router.any_serving() && inner.nodes.len() > 1 {
                if inner.settings.read_fallback {
                    warning.push(
                        "no standby serves reads: they go to the primary (read_fallback)"
                            .to_owned(),
                    );
                } else {
                    critical.push(
                        "no standby serves reads and read_fallback is off: reads fail".to_owned(),
                    );
                }
            }
            let read_health = if !critical.is_empty() {
                Health::Critical
            } else if !warning.is_empty() {
                Health::Warning
            } else {
                Health::Healthy
            };
            status.health = status.health.max(read_health);
            status.health_reasons.extend(critical);
            status.health_reasons.extend(warning);
            let writer = inner.writer.settings().capacity();
            let primary_limits = status.server;
            for node in &nodes {
                if let Some(line) = node_budget(&inner.settings, writer, node, primary_limits) {
                    status.recommendations.push(line);
                }
            }
            status.replicas = Some(Box::new(ReplicaStatus {
                read_balance: inner.settings.read_balance,
                read_fallback: inner.settings.read_fallback,
                read_max_lag_seconds: inner.settings.read_max_lag.map(|d| d.as_secs_f64()),
                fallback_reads: router.fallback_reads,
                refused_reads: router.refused_reads,
                nodes,
            }));
            status
        }

        /// Stops the checks and closes the write pool and every read pool
        /// (concurrently; each as [`Pool::close`]).
        pub async fn close(&self) {
            let inner = &*self.inner;
            inner.shutdown.notify_one();
            let task = lock(&inner.task).take();
            if let Some(task) = task {
                drop(task.await);
            }
            let pools = std::iter::once(&inner.writer).chain(inner.nodes.iter().map(|n| &n.pool));
            futures_util::future::join_all(pools.map(Pool::close)).await;
        }
    }

    impl Inner {
        /// Checks every host at once and books the answers.
        async fn check_all(&self, checkers: &mut [Checker]) {
            let timeout = self.settings.connect_timeout;
            let seen =
                futures_util::future::join_all(checkers.iter_mut().map(|c| c.check(timeout))).await;
            for (i, seen) in seen.into_iter().enumerate() {
                self.observe(i, seen);
            }
        }

        /// Books one answer, logs what changed and publishes the node's gauges.
        fn observe(&self, i: usize, seen: Observation) {
            let label = &self.nodes[i].label;
            let name = &self.settings.name;
            let mut router = lock(&self.router);
            let was_up = router.nodes()[i].reachable;
            let was_serving = router.not_serving(i).is_none();
            if let Some(change) = router.observe(i, seen) {
                self.metrics.nodes[i].role_changes.increment(1);
                tracing::info!(
                    target: "pool_runtime::events",
                    pool = %name, node = %label, from = %change.from, to = %change.to,
                    "read replica changed role"
                );
            }
            let node = &router.nodes()[i];
            if was_up && !node.reachable {
                tracing::warn!(
                    target: "pool_runtime::events",
                    pool = %name, node = %label,
                    error = node.last_error.as_deref().unwrap_or(""),
                    "read replica down"
                );
            }
            let not_serving = router.not_serving(i);
            if was_serving != not_serving.is_none() {
                match &not_serving {
                    None => tracing::info!(
                        target: "pool_runtime::events",
                        pool = %name, node = %label, "read replica serves reads"
                    ),
                    Some(why) => tracing::info!(
                        target: "pool_runtime::events",
                        pool = %name, node = %label, reason = %why, "read replica stops serving reads"
                    ),
                }
            }
            let m = &self.metrics.nodes[i];
            m.up.set(if node.reachable { 1.0 } else { 0.0 });
            for (gauge, role) in m.role.iter().zip(NodeRole::ALL) {
                gauge.set(if node.role == role { 1.0 } else { 0.0 });
            }
            m.serving.set(if not_serving.is_none() { 1.0 } else { 0.0 });
            if let Some(lag) = node.lag {
                m.lag.set(lag.as_secs_f64());
            }
        }
    }

    /// The check loop: one round per `read_check_interval` until the
    /// handle is closed or dropped. It holds the handle only during a
    /// round, so dropping every clone ends it at the next one.
    async fn run_checks(inner: Weak<Inner>, shutdown: Arc<Notify>, mut checkers: Vec<Checker>) {
        while let Some(interval) = inner.upgrade().map(|i| i.settings.read_check_interval) {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.notified() => {
                    let timeout = inner
                        .upgrade()
                        .map_or(Duration::from_secs(1), |i| i.settings.network_timeout);
                    let closing = checkers.iter_mut().map(|c| c.close(timeout));
                    futures_util::future::join_all(closing).await;
                    break;
                }
            }
            let Some(strong) = inner.upgrade() else { break };
            strong.check_all(&mut checkers).await;
        }
    }

    /// The connection budget of one node: the write pool goes to whichever
    /// node is primary, so every node must hold it beside its own read
    /// pool and the handle's check connection, times `replicas` copies of
    /// the service. `None` when it fits or the node's limit is unknown yet
    /// (a read pool learns it at its first connect).
    fn node_budget(
        settings: &PoolSettings,
        writer: u32,
        node: &NodeStatus,
        primary_limits: Option<crate::backend::ServerLimits>,
    ) -> Option<String> {
        let limits = match (node.pool.server, node.role) {
            (Some(limits), _) => limits,
            (None, NodeRole::Primary) => primary_limits?,
            (None, _) => return None,
        };
        let max = u64::from(limits.max_connections?);
        let reads = node.pool.pool_size.saturating_add(node.pool.max_overflow);
        let replicas = u64::from(settings.replicas.max(1));
        let each = u64::from(writer) + u64::from(reads) + 1;
        let needed = each * replicas;
        (needed > max).then(|| {
            format!(
                "node {}: the write pool ({writer}), its read pool ({reads}) and the check \
                 connection across {replicas} replica(s) can hold {needed} connections on it \
                 (the write pool moves to whichever node is primary), but it allows {max}: \
                 lower pool_size or max_overflow, or raise max_connections on every node",
                node.node
            )
        })
    }

    /// The write pool's settings, and each host's read pool settings (the
    /// handle names them once their options give the `host:port`).
    fn split(settings: &PoolSettings) -> Result<(PoolSettings, Vec<PoolSettings>), Error> {
        let raw = settings.url.expose();
        let hosts = host_urls(raw).map_err(|reason| bad(settings, &reason))?;
        if hosts.len() == 1 && !settings.read_fallback {
            return Err(bad(
                settings,
                "names one host, and read_fallback is off: a ReplicaPool could serve no read \
                 (list the primary and its standbys, h1:5432,h2:5432, or turn read_fallback on)",
            ));
        }
        // Writes need a primary: the URL's own target_session_attrs may say
        // read-write or primary, nothing else; without one, read-write.
        let url_attrs = query_pairs(raw)
            .into_iter()
            .rev()
            .find(|(k, _)| k == "target_session_attrs");
        let mut writer = settings.clone();
        match (url_attrs, settings.target_session_attrs) {
            (None, TargetSessionAttrs::Any) => {
                writer.target_session_attrs = TargetSessionAttrs::ReadWrite
            }
            (None, TargetSessionAttrs::ReadWrite | TargetSessionAttrs::Primary) => {}
            (Some((_, v)), _) if v == "read-write" || v == "primary" => {}
            (Some((_, v)), _) => {
                return Err(bad(
                    settings,
                    &format!(
                        "sets target_session_attrs={v}: a ReplicaPool writes to the primary \
                         (read-write or primary) and chooses the standbys for reads itself; \
                         leave it out"
                    ),
                ));
            }
            (None, other) => {
                return Err(Error::InvalidUrl {
                    url: settings.url.redacted(),
                    reason: format!(
                        "is for a ReplicaPool, whose writes need a primary, but the \
                         target_session_attrs setting is {other}; leave it at any (or read-write)"
                    ),
                });
            }
        }
        let nodes = hosts
            .into_iter()
            .map(|url| {
                let mut s = settings.clone();
                s.url = crate::Secret::new(url);
                s.target_session_attrs = TargetSessionAttrs::Any;
                s.load_balance_hosts = LoadBalanceHosts::Disable;
                s
            })
            .collect();
        Ok((writer, nodes))
    }

    fn bad(settings: &PoolSettings, reason: &str) -> Error {
        Error::InvalidUrl {
            url: settings.url.redacted(),
            reason: reason.to_owned(),
        }
    }

    /// A checkout that failed because the host could not be reached (as
    /// opposed to a busy pool or a refusal of credentials).
    fn unreachable(error: &Error) -> bool {
        matches!(
            error,
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::NoSuitableHost { .. }
        )
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}
