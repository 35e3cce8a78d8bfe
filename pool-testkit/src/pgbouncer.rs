//! [`PgBouncer`]: the real PgBouncer (Debian's package, 1.18 here) in
//! front of any test server or cluster node, as a local process, with its
//! admin console (`SHOW POOLS`, `SHOW SERVERS`, `SHOW CLIENTS`) as typed
//! probes.
//!
//! ```no_run
//! # async fn demo() -> pool_testkit::Result<()> {
//! use pool_testkit::{PgBouncer, PoolMode, shared_server};
//! let server = shared_server();
//! let db = server.create_database().await?;
//! let bouncer = PgBouncer::builder()
//!     .pool_mode(PoolMode::Transaction)
//!     .default_pool_size(2)
//!     .start(server.addr())?;
//! let url = bouncer.url_for(&db.url()); // give this URL to the pool
//! let backends = bouncer.server_backends(server).await?; // read on the server
//! # Ok(()) }
//! ```
//!
//! Setup: `auth_type = trust` with an `auth_file` holding the kit's
//! superuser (whose password PgBouncer uses towards the server),
//! `admin_users` = that user, `listen_addr` 127.0.0.1 on a free port,
//! `ignore_startup_parameters = extra_float_digits` (sqlx sends it). As root
//! it runs as the `postgres` user (it refuses root). Its temp dir carries
//! the owner marker and `pgbouncer.pid`, so the watchdog and the next run's
//! sweep stop a PgBouncer whose test process died.
//!
//! What 1.18 lacks: protocol-level named prepared statements in
//! transaction mode (`max_prepared_statements` came in 1.21). A client that
//! prepares named statements (sqlx does, `sqlx_s_1`, ... per connection)
//! through a transaction-mode PgBouncer 1.18 gets `prepared statement
//! "sqlx_s_1" already exists` (42P05) when another client prepared that
//! name on the same server connection, or `... does not exist` when its own
//! transactions land on another one (`tests/pgbouncer.rs` shows the first).
//! Use session mode, or unnamed statements (`query(..).persistent(false)`),
//! with 1.18.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{ConnectOptions, Connection, Row};

use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use crate::admin;
use crate::cleanup::{self, Resource};
use crate::probe::BackendInfo;
use crate::server::TestServer;
use crate::server_kind::ServerKind;
use crate::util::{self, Owner};
use crate::{Error, Result, local};

/// PgBouncer's `pool_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PoolMode {
    /// A server connection per client for the client's whole session.
    #[default]
    Session,
    /// A server connection per transaction.
    Transaction,
    /// A server connection per statement (no multi-statement transactions).
    Statement,
}

impl PoolMode {
    fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Transaction => "transaction",
            Self::Statement => "statement",
        }
    }
}

/// Configures and starts a [`PgBouncer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct PgBouncerBuilder {
    pool_mode: PoolMode,
    default_pool_size: u32,
    max_client_conn: u32,
    settings: Vec<(String, String)>,
    backend: ServerKind,
}

impl Default for PgBouncerBuilder {
    fn default() -> Self {
        Self {
            backend: ServerKind::Local,
            pool_mode: PoolMode::Session,
            default_pool_size: 20,
            max_client_conn: 100,
            settings: Vec::new(),
        }
    }
}

impl PgBouncerBuilder {
    /// Where PgBouncer runs: [`ServerKind::Local`] (default, a process) or
    /// [`ServerKind::Docker`] (a container of [`DEFAULT_IMAGE`] on the host's
    /// network, so it reaches servers on 127.0.0.1 as the process does).
    pub fn backend(mut self, backend: ServerKind) -> Self {
        self.backend = backend;
        self
    }

    /// `pool_mode` (default session).
    pub fn pool_mode(mut self, mode: PoolMode) -> Self {
        self.pool_mode = mode;
        self
    }

    /// `default_pool_size`: server connections per database and user (default 20).
    pub fn default_pool_size(mut self, n: u32) -> Self {
        self.default_pool_size = n;
        self
    }

    /// `max_client_conn` (default 100).
    pub fn max_client_conn(mut self, n: u32) -> Self {
        self.max_client_conn = n;
        self
    }

    /// Any other `[pgbouncer]` setting (`server_idle_timeout`, `query_wait_timeout`, ...).
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        crate::util::set_setting(&mut self.settings, key.into(), value.into());
        self
    }

    /// Starts PgBouncer in front of the server at `upstream` (every
    /// database) and waits until its admin console answers. Blocking.
    pub fn start(self, upstream: SocketAddr) -> Result<PgBouncer> {
        if self.default_pool_size == 0 || self.max_client_conn == 0 {
            return Err(Error::Config(format!(
                "PgBouncer: default_pool_size ({}) and max_client_conn ({}) must be at least 1",
                self.default_pool_size, self.max_client_conn
            )));
        }
        let docker_image = match self.backend {
            ServerKind::Local => None,
            ServerKind::Docker => {
                let image = std::env::var("POOL_TESTKIT_PGBOUNCER_IMAGE")
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_IMAGE.to_owned());
                crate::docker::check_available(&image).map_err(|e| {
                    Error::Docker(format!(
                        "{e}\n(for PgBouncer: build it with \
                         `pool-testkit/docker/build-pgbouncer-image.sh`)"
                    ))
                })?;
                Some(image)
            }
            ServerKind::External => {
                return Err(Error::Unsupported {
                    operation: "starting PgBouncer",
                    backend: self.backend,
                });
            }
        };
        let bin = match docker_image {
            Some(_) => PathBuf::new(),
            None => find_binary()?,
        };
        let run_as = local::postgres_ids()?;
        let parent = local::temp_parent();
        local::sweep(&parent);
        let root = tempfile::Builder::new()
            .prefix(local::DIR_PREFIX)
            .tempdir_in(&parent)
            .map_err(|e| Error::io(format!("creating a temp dir in {}", parent.display()), e))?
            .keep();
        std::fs::write(root.join(local::OWNER_FILE), Owner::current().encode())
            .map_err(|e| Error::io("writing the owner marker", e))?;
        cleanup::register(Resource::Dir(&root));
        let mut bouncer = PgBouncer {
            root,
            process: None,
            port: 0,
            upstream,
            mode: self.pool_mode,
        };
        if let Some((uid, gid)) = run_as {
            local::chown(&bouncer.root, uid, gid)?;
        }
        let mut last = String::new();
        for _ in 0..5 {
            bouncer.port = local::free_port()?;
            let started = match &docker_image {
                None => {
                    bouncer.write_config(&self)?;
                    bouncer.spawn(&bin, run_as)
                }
                Some(image) => bouncer.run_container(image, &self),
            };
            match started.and_then(|()| bouncer.wait_ready()) {
                Ok(()) => return Ok(bouncer),
                Err(msg) if msg.contains("Address already in use") => last = msg,
                Err(msg) => return Err(Error::Config(format!("PgBouncer did not start: {msg}"))),
            }
        }
        Err(Error::Config(format!(
            "PgBouncer could not bind a free port after 5 tries: {last}"
        )))
    }
}

/// A running PgBouncer; stopped (SIGTERM) and its dir removed on drop.
#[derive(Debug)]
pub struct PgBouncer {
    root: PathBuf,
    process: Option<Process>,
    port: u16,
    upstream: SocketAddr,
    mode: PoolMode,
}

/// The PgBouncer image: `pool-testkit/docker/build-pgbouncer-image.sh`
/// builds it from the host's package (`POOL_TESTKIT_PGBOUNCER_IMAGE`
/// overrides).
pub const DEFAULT_IMAGE: &str = "pool-testkit/pgbouncer:1.18";

enum Process {
    Local(Child),
    Docker(Box<Container<GenericImage>>),
}

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(c) => write!(f, "Local(pid {})", c.id()),
            Self::Docker(c) => write!(f, "Docker({})", c.id()),
        }
    }
}

/// A row of `SHOW POOLS`: one pool per database and user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Database name.
    pub database: String,
    /// User name.
    pub user: String,
    /// Clients linked to a server connection or idle with nothing to do.
    pub cl_active: u32,
    /// Clients waiting for a server connection.
    pub cl_waiting: u32,
    /// Server connections linked to a client.
    pub sv_active: u32,
    /// Server connections idle and ready for a client.
    pub sv_idle: u32,
    /// Server connections idle longer than `server_check_delay`.
    pub sv_used: u32,
    /// Server connections being tested or reset.
    pub sv_tested: u32,
    /// Server connections being opened.
    pub sv_login: u32,
    /// Longest current wait of a client, in seconds.
    pub maxwait: u32,
    /// The pool's mode.
    pub pool_mode: String,
}

impl PoolStats {
    /// Server connections of any state.
    pub fn servers(&self) -> u32 {
        self.sv_active + self.sv_idle + self.sv_used + self.sv_tested + self.sv_login
    }
}

/// A row of `SHOW SERVERS` or `SHOW CLIENTS`: one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnInfo {
    /// `S` (server) or `C` (client).
    pub kind: String,
    /// User name.
    pub user: String,
    /// Database name.
    pub database: String,
    /// `active`, `idle`, `used`, `waiting`, ...
    pub state: String,
    /// Remote address.
    pub addr: String,
    /// Remote port.
    pub port: u16,
    /// Local port: for a server connection, the client port the server
    /// sees in `pg_stat_activity`.
    pub local_port: u16,
    /// `application_name` of a client (empty when 1.18 does not show it).
    pub application_name: String,
    /// Server connections: the backend's pid on the server (0 for clients).
    pub remote_pid: i32,
}

impl PgBouncer {
    /// A builder with PgBouncer's defaults (session mode, pool size 20,
    /// 100 clients).
    pub fn builder() -> PgBouncerBuilder {
        PgBouncerBuilder::default()
    }

    /// Where clients connect (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server it pools connections to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Its pool mode.
    pub fn pool_mode(&self) -> PoolMode {
        self.mode
    }

    /// `url` (a server URL) with host and port replaced by PgBouncer's.
    pub fn url_for(&self, url: &str) -> String {
        match url::Url::parse(url) {
            Ok(mut u) => {
                let _ = u.set_host(Some("127.0.0.1"));
                let _ = u.set_port(Some(self.port));
                u.to_string()
            }
            Err(_) => url.to_owned(),
        }
    }

    /// The last `n` lines of PgBouncer's log.
    pub fn log_tail(&self, n: usize) -> String {
        match &self.process {
            Some(Process::Docker(c)) => crate::docker::container_log_tail(c.id(), n),
            _ => util::file_tail(&self.root.join("pgbouncer.log"), n),
        }
    }

    /// The container id (Docker only).
    pub fn container_id(&self) -> Option<&str> {
        match &self.process {
            Some(Process::Docker(c)) => Some(c.id()),
            _ => None,
        }
    }

    /// `SHOW POOLS`.
    pub async fn show_pools(&self) -> Result<Vec<PoolStats>> {
        let rows = self.admin("SHOW POOLS").await?;
        rows.iter()
            .map(|r| {
                Ok(PoolStats {
                    database: text(r, "database"),
                    user: text(r, "user"),
                    cl_active: number(r, "cl_active")?,
                    cl_waiting: number(r, "cl_waiting")?,
                    sv_active: number(r, "sv_active")?,
                    sv_idle: number(r, "sv_idle")?,
                    sv_used: number(r, "sv_used")?,
                    sv_tested: number(r, "sv_tested")?,
                    sv_login: number(r, "sv_login")?,
                    maxwait: number(r, "maxwait")?,
                    pool_mode: text(r, "pool_mode"),
                })
            })
            .collect()
    }

    /// `SHOW SERVERS`.
    pub async fn show_servers(&self) -> Result<Vec<ConnInfo>> {
        self.conns("SHOW SERVERS").await
    }

    /// `SHOW CLIENTS` (the admin console's own connection included).
    pub async fn show_clients(&self) -> Result<Vec<ConnInfo>> {
        self.conns("SHOW CLIENTS").await
    }

    /// The backends on `server` that are PgBouncer's server connections,
    /// matched by backend pid (`remote_pid` of `SHOW SERVERS`; ports do not
    /// survive Docker's port mapping): what the server really has open
    /// behind PgBouncer.
    pub async fn server_backends(&self, server: &TestServer) -> Result<Vec<BackendInfo>> {
        let pids: Vec<i32> = self
            .show_servers()
            .await?
            .iter()
            .map(|s| s.remote_pid)
            .filter(|&p| p != 0)
            .collect();
        Ok(server
            .all_connections()
            .await?
            .into_iter()
            .filter(|b| pids.contains(&b.pid))
            .collect())
    }

    async fn conns(&self, command: &str) -> Result<Vec<ConnInfo>> {
        let rows = self.admin(command).await?;
        rows.iter()
            .map(|r| {
                Ok(ConnInfo {
                    kind: text(r, "type"),
                    user: text(r, "user"),
                    database: text(r, "database"),
                    state: text(r, "state"),
                    addr: text(r, "addr"),
                    port: number(r, "port")?,
                    local_port: number(r, "local_port")?,
                    application_name: text(r, "application_name"),
                    remote_pid: number(r, "remote_pid")?,
                })
            })
            .collect()
    }

    /// Runs an admin console command (simple query protocol: the console
    /// does not speak the extended one) and returns its rows as text.
    async fn admin(&self, command: &str) -> Result<Vec<HashMap<String, String>>> {
        let mut conn = self.connect_admin().await?;
        let rows: Result<Vec<PgRow>, _> = sqlx::raw_sql(sqlx::AssertSqlSafe(command.to_owned()))
            .fetch_all(&mut conn)
            .await;
        let _ = conn.close().await;
        let rows =
            rows.map_err(|e| Error::sql(format!("PgBouncer admin console: {command}"), e))?;
        Ok(rows
            .iter()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|c| {
                        use sqlx::Column;
                        let v = row
                            .try_get_unchecked::<Option<String>, _>(c.ordinal())
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        (c.name().to_owned(), v)
                    })
                    .collect()
            })
            .collect())
    }

    async fn connect_admin(&self) -> Result<PgConnection> {
        let url = format!(
            "postgres://{}:{}@127.0.0.1:{}/pgbouncer",
            admin::USER,
            admin::PASSWORD,
            self.port
        );
        let opts = PgConnectOptions::from_str(&url)
            .map_err(|e| Error::sql("PgBouncer admin URL", e))?
            .application_name(admin::PROBE_APP_NAME)
            .extra_float_digits(None)
            .statement_cache_capacity(0)
            .disable_statement_logging();
        match tokio::time::timeout(Duration::from_secs(10), opts.connect()).await {
            Ok(r) => r.map_err(|e| Error::sql("connecting to PgBouncer's admin console", e)),
            Err(_) => Err(Error::Timeout(
                "connecting to PgBouncer's admin console took over 10 s".into(),
            )),
        }
    }

    fn write_config(&self, b: &PgBouncerBuilder) -> Result<()> {
        let dir = self.root.display().to_string();
        let ini = self.config(b, &dir, true);
        write_owned(&self.root.join("pgbouncer.ini"), &ini)?;
        write_owned(&self.root.join("users.txt"), &users_file())
    }

    /// The ini file; `files`: log and pid file in `dir` (a container logs
    /// to stderr instead).
    fn config(&self, b: &PgBouncerBuilder, dir: &str, files: bool) -> String {
        let mut ini = String::new();
        let _ = writeln!(
            ini,
            "[databases]\n* = host={} port={}\n\n[pgbouncer]",
            self.upstream.ip(),
            self.upstream.port()
        );
        let base = [
            ("listen_addr", "127.0.0.1".to_owned()),
            ("listen_port", self.port.to_string()),
            ("unix_socket_dir", dir.to_owned()),
            ("auth_type", "trust".to_owned()),
            (
                "auth_file",
                if files {
                    format!("{dir}/users.txt")
                } else {
                    "/etc/pgbouncer/users.txt".to_owned()
                },
            ),
            ("admin_users", admin::USER.to_owned()),
            ("stats_users", admin::USER.to_owned()),
            ("pool_mode", b.pool_mode.as_str().to_owned()),
            ("default_pool_size", b.default_pool_size.to_string()),
            ("max_client_conn", b.max_client_conn.to_string()),
            ("ignore_startup_parameters", "extra_float_digits".to_owned()),
            ("log_connections", "1".to_owned()),
            ("log_disconnections", "1".to_owned()),
        ];
        let file_settings = [
            ("logfile", format!("{dir}/pgbouncer.log")),
            ("pidfile", format!("{dir}/pgbouncer.pid")),
        ];
        let file_settings = if files { &file_settings[..] } else { &[] };
        for (k, v) in base
            .iter()
            .chain(file_settings)
            .map(|(k, v)| (*k, v.as_str()))
            .filter(|(k, _)| !b.settings.iter().any(|(sk, _)| sk == k))
            .chain(b.settings.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            let _ = writeln!(ini, "{k} = {v}");
        }
        ini
    }

    /// A container of `image` on the host's network, config copied in.
    fn run_container(&mut self, image: &str, b: &PgBouncerBuilder) -> Result<(), String> {
        let (name, tag) = crate::docker::split_image(image);
        let ini = self.config(b, "/tmp", false);
        let request = GenericImage::new(name, tag)
            .with_network("host")
            .with_label(crate::docker::OWNER_LABEL, Owner::current().encode())
            .with_copy_to("/etc/pgbouncer/pgbouncer.ini", ini.into_bytes())
            .with_copy_to("/etc/pgbouncer/users.txt", users_file().into_bytes())
            .with_startup_timeout(Duration::from_secs(60));
        let container = util::off_runtime(move || request.start())
            .map_err(|e| format!("starting a container of {image}: {e}"))?;
        cleanup::register(Resource::Container(container.id()));
        self.process = Some(Process::Docker(Box::new(container)));
        Ok(())
    }

    fn spawn(&mut self, bin: &Path, run_as: Option<(u32, u32)>) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let log = self.root.join("pgbouncer.log");
        let _ = std::fs::remove_file(&log);
        let mut cmd = Command::new(bin);
        cmd.arg(self.root.join("pgbouncer.ini"))
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = run_as {
            cmd.uid(uid).gid(gid);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        self.process = Some(Process::Local(child));
        Ok(())
    }

    /// Waits until the admin console answers, or PgBouncer exits.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let exited = match self.process.as_mut() {
                Some(Process::Local(child)) => {
                    child.try_wait().ok().flatten().map(|s| s.to_string())
                }
                Some(Process::Docker(c)) => util::off_runtime(|| c.is_running())
                    .ok()
                    .filter(|running| !running)
                    .map(|_| "container exited".to_owned()),
                None => Some("not started".to_owned()),
            };
            if let Some(status) = exited {
                let log = self.log_tail(15);
                self.stop();
                return Err(format!("pgbouncer exited ({status}):\n{log}"));
            }
            let ready = util::block_on_fresh(async {
                match self.connect_admin().await {
                    Ok(c) => {
                        let _ = c.close().await;
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                }
            });
            match ready {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    self.stop();
                    return Err(format!(
                        "its admin console did not answer within 15 s: {e}\nPgBouncer log:\n{}",
                        self.log_tail(15)
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn stop(&mut self) {
        let child = match self.process.take() {
            Some(Process::Local(child)) => Some(child),
            Some(Process::Docker(c)) => {
                if util::env_flag("POOL_TESTKIT_KEEP") {
                    std::mem::forget(c);
                } else {
                    // Its Drop blocks on its own runtime: never on ours.
                    util::off_runtime(move || drop(c));
                }
                None
            }
            None => None,
        };
        if let Some(mut child) = child {
            // SIGTERM: immediate shutdown.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        self.stop();
        if util::env_flag("POOL_TESTKIT_KEEP") {
            eprintln!(
                "pool-testkit: keeping {} (POOL_TESTKIT_KEEP is set)",
                self.root.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// `auth_file`: the kit's superuser; PgBouncer logs into the server with
/// this password (SCRAM on the Docker backend).
fn users_file() -> String {
    format!("\"{}\" \"{}\"\n", admin::USER, admin::PASSWORD)
}

fn write_owned(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    if let Some((uid, gid)) = local::postgres_ids()? {
        local::chown(path, uid, gid)?;
    }
    Ok(())
}

fn text(row: &HashMap<String, String>, column: &str) -> String {
    row.get(column).cloned().unwrap_or_default()
}

fn number<T: FromStr>(row: &HashMap<String, String>, column: &str) -> Result<T> {
    let raw = row.get(column).map(String::as_str).unwrap_or("0");
    let raw = if raw.is_empty() { "0" } else { raw };
    raw.parse().map_err(|_| {
        Error::Config(format!(
            "PgBouncer admin console: column {column} = {raw:?} is not a number"
        ))
    })
}

/// `POOL_TESTKIT_PGBOUNCER`, else `pgbouncer` in /usr/sbin or on PATH.
fn find_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("POOL_TESTKIT_PGBOUNCER") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Config(format!(
                "POOL_TESTKIT_PGBOUNCER={} is not a file",
                p.display()
            )))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/sbin"))
        .chain(std::env::split_paths(&path))
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Config(
                "no `pgbouncer` binary in /usr/sbin or PATH. Install it (Debian/Ubuntu: \
                 `apt-get install pgbouncer`, which scripts/setup.sh does) or set \
                 POOL_TESTKIT_PGBOUNCER to its path"
                    .into(),
            )
        })
}
