//! [`TestServer`]: one throwaway PostgreSQL server, whatever the backend,
//! and the per-binary shared instance.
//!
//! A server owns one template database; every test gets a fresh copy
//! (`CREATE DATABASE … TEMPLATE`, ~30 ms) so parallel tests never see each
//! other's data. The shared server lives in a static: it is never dropped,
//! so the cleanup watchdog removes it when the test binary exits.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection};
use url::Url;

use crate::admin::{PASSWORD, USER, connect, sql_state};
use crate::database::{self, TestDatabase};
use crate::docker::{self, DockerServer};
use crate::local::LocalServer;
use crate::server_kind::{self, ServerKind};
use crate::tls::{self, Auth, Security, Tls};
use crate::util::{self, Owner};
use crate::{Error, Result};

pub(crate) enum Kind {
    Local(Mutex<LocalServer>),
    Docker(Box<DockerServer>),
    External,
}

/// A throwaway PostgreSQL server (or an external one), with a template
/// database for per-test databases. Stopped and removed on drop.
pub struct TestServer {
    kind: Kind,
    backend: ServerKind,
    admin_url: Url,
    template: String,
    next_db: AtomicU64,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("backend", &self.backend)
            .field(
                "addr",
                &self.admin_url.host_str().zip(self.admin_url.port()),
            )
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// Configures and starts a [`TestServer`].
#[derive(Clone, Debug)]
#[must_use]
pub struct TestServerBuilder {
    backend: Option<ServerKind>,
    image: Option<String>,
    external_url: Option<String>,
    settings: Vec<(String, String)>,
    template_sql: Vec<String>,
    security: Security,
}

impl Default for TestServerBuilder {
    fn default() -> Self {
        let b = Self {
            backend: None,
            image: None,
            external_url: None,
            settings: Vec::new(),
            template_sql: Vec::new(),
            security: Security::default(),
        };
        // Room for many pools at once, no durability (throwaway data; on
        // Docker's overlay file systems fsync makes CREATE DATABASE take
        // seconds), and a log that shows who connected: its tail is printed
        // when an assertion fails.
        b.max_connections(200)
            .arg("fsync", "off")
            .arg("synchronous_commit", "off")
            .arg("full_page_writes", "off")
            .log_connections(true)
            .arg("log_disconnections", "on")
            .arg("log_line_prefix", "%m [%p] %q%a@%d ")
    }
}

impl TestServerBuilder {
    /// ServerKind to use; default: [`ServerKind::select`] (env, then Docker, then local).
    pub fn backend(mut self, backend: ServerKind) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Docker image (default `POOL_TESTKIT_IMAGE`, else `pool-testkit/postgres:15`).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// Superuser URL of an external server (default `POOL_TESTKIT_URL`).
    pub fn external_url(mut self, url: impl Into<String>) -> Self {
        self.external_url = Some(url.into());
        self
    }

    /// Any server setting (`-c key=value`); a later value for the same key wins.
    /// Not applied to external servers.
    pub fn arg(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        crate::util::set_setting(&mut self.settings, key.into(), value.into());
        self
    }

    /// `max_connections` (default 200). Note `superuser_reserved_connections`
    /// (3) of them are kept for superusers.
    pub fn max_connections(self, n: u32) -> Self {
        self.arg("max_connections", n.to_string())
    }

    /// `log_connections` (default on).
    pub fn log_connections(self, on: bool) -> Self {
        self.arg("log_connections", if on { "on" } else { "off" })
    }

    /// `idle_session_timeout`: the server closes sessions idle this long
    /// (zero disables).
    pub fn idle_session_timeout(self, timeout: Duration) -> Self {
        self.arg("idle_session_timeout", format!("{}ms", timeout.as_millis()))
    }

    /// SQL run once in the template database, so every test database
    /// starts with it (schema, fixtures data).
    pub fn template_sql(mut self, sql: impl Into<String>) -> Self {
        self.template_sql.push(sql.into());
        self
    }

    /// Adds the settings in `POOL_TESTKIT_ARGS` (`key=value`, separated by
    /// whitespace), as used by the shared server.
    pub fn args_from_env(mut self) -> Result<Self> {
        if let Ok(args) = std::env::var("POOL_TESTKIT_ARGS") {
            for pair in args.split_whitespace() {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Error::Config(format!(
                        "POOL_TESTKIT_ARGS: expected key=value, got {pair:?}"
                    ))
                })?;
                self = self.arg(k, v);
            }
        }
        Ok(self)
    }

    /// TLS: offered or required, with a certificate for `localhost` and
    /// `127.0.0.1` from a CA made for this server
    /// ([`TestServer::ca_path`]). The server's URLs then carry
    /// `sslmode=verify-full&sslrootcert=…`. Local and Docker backends
    /// (Docker: the certificates and rules go in through the image's init
    /// scripts).
    pub fn tls(mut self, tls: Tls) -> Self {
        self.security.tls = tls;
        self
    }

    /// How TCP clients authenticate: trust (default), SCRAM-SHA-256
    /// passwords, or client certificates (needs [`tls`](Self::tls)).
    /// The kit's own connections use the same rules.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.security.auth = auth;
        self
    }

    /// Starts the server, creates the template database and waits until it
    /// accepts connections. Blocking; fine to call from async tests.
    pub fn start(self) -> Result<TestServer> {
        let secured = self.security != Security::default();
        let backend = match self.backend {
            Some(b) => b,
            None => ServerKind::select()?,
        };
        if secured && backend == ServerKind::External {
            return Err(Error::Config(
                "TLS and authentication rules are set by the kit on the servers it starts; \
                 an external server has its own"
                    .into(),
            ));
        }
        if self.security.auth == Auth::ClientCert && self.security.tls == Tls::Off {
            return Err(Error::Config(
                "client certificate authentication needs TLS: add .tls(Tls::Required)".into(),
            ));
        }
        let (kind, admin_url) = match backend {
            ServerKind::Local => {
                let server =
                    LocalServer::start_secured(&self.settings, USER, PASSWORD, self.security)?;
                let url = secured_url(
                    server_url(server.port()),
                    Some(&server.tls_dir()),
                    self.security,
                );
                (Kind::Local(Mutex::new(server)), url)
            }
            ServerKind::Docker => {
                let image = self.image.clone().unwrap_or_else(docker::image_from_env);
                let server = DockerServer::start_secured(
                    &image,
                    &self.settings,
                    USER,
                    PASSWORD,
                    self.security,
                )?;
                let url = secured_url(server_url(server.port()), server.tls_dir(), self.security);
                (Kind::Docker(Box::new(server)), url)
            }
            ServerKind::External => {
                let raw = self
                    .external_url
                    .clone()
                    .or_else(server_kind::external_url)
                    .ok_or_else(|| {
                        Error::Config(
                            "the external backend needs POOL_TESTKIT_URL (a superuser URL)".into(),
                        )
                    })?;
                let url = Url::parse(&raw)
                    .map_err(|e| Error::Config(format!("POOL_TESTKIT_URL: {e}")))?;
                (Kind::External, url)
            }
        };
        let server = TestServer {
            kind,
            backend,
            admin_url,
            template: template_name(&self.template_sql),
            next_db: AtomicU64::new(0),
        };
        let template_sql = self.template_sql;
        util::block_on_fresh(async {
            server.wait_ready(Duration::from_secs(60)).await?;
            database::sweep(&server.url()).await;
            server.ensure_template(&template_sql).await
        })?;
        Ok(server)
    }
}

impl TestServer {
    /// Wraps a server started by a cluster (on 127.0.0.1:`port`) and waits
    /// until it accepts connections. With `template_sql` (a primary), also
    /// creates the template database; standbys get it by replication.
    pub(crate) fn adopt(
        kind: Kind,
        backend: ServerKind,
        port: u16,
        template_sql: Option<&[String]>,
    ) -> Result<TestServer> {
        let server = TestServer {
            kind,
            backend,
            admin_url: server_url(port),
            template: template_name(template_sql.unwrap_or_default()),
            next_db: AtomicU64::new(0),
        };
        util::block_on_fresh(async {
            server.wait_ready(Duration::from_secs(60)).await?;
            match template_sql {
                Some(sql) => server.ensure_template(sql).await,
                None => Ok(()),
            }
        })?;
        Ok(server)
    }

    /// Runs `f` on the local server process (local backend only).
    pub(crate) fn with_local<T>(&self, f: impl FnOnce(&mut LocalServer) -> T) -> Option<T> {
        match &self.kind {
            Kind::Local(s) => Some(f(&mut s.lock().unwrap_or_else(|e| e.into_inner()))),
            _ => None,
        }
    }

    /// The container (Docker backend only).
    pub(crate) fn docker_server(&self) -> Option<&DockerServer> {
        match &self.kind {
            Kind::Docker(d) => Some(d),
            _ => None,
        }
    }

    /// Waits (up to `within`) until the server accepts connections.
    pub(crate) fn wait_ready_blocking(&self, within: Duration) -> Result<()> {
        util::block_on_fresh(self.wait_ready(within))
    }
}

/// `url` with the TLS parameters a client of this server needs.
fn secured_url(mut url: Url, tls_dir: Option<&std::path::Path>, security: Security) -> Url {
    if security.tls != Tls::Off
        && let Some(dir) = tls_dir
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("sslmode", "verify-full");
        q.append_pair("sslrootcert", &dir.join(tls::CA_CERT).display().to_string());
        if security.auth == Auth::ClientCert {
            let (cert, key) = tls::client_files(dir, USER);
            q.append_pair("sslcert", &cert.display().to_string());
            q.append_pair("sslkey", &key.display().to_string());
        }
    }
    url
}

pub(crate) fn server_url(port: u16) -> Url {
    Url::parse(&format!(
        "postgres://{USER}:{PASSWORD}@127.0.0.1:{port}/postgres"
    ))
    .expect("static URL is valid")
}

/// Template name from its SQL, so external servers shared by several runs
/// reuse a template only when it has the same content.
fn template_name(sql: &[String]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sql.hash(&mut h);
    format!("pool_testkit_tpl_{:08x}", h.finish() as u32)
}

static SHARED: OnceLock<std::result::Result<TestServer, String>> = OnceLock::new();

/// The server shared by every test of this test binary (process), started
/// on first use with the default settings plus `POOL_TESTKIT_ARGS`.
/// Works from any number of runtimes: it depends on none.
pub fn try_shared_server() -> Result<&'static TestServer> {
    SHARED
        .get_or_init(|| {
            TestServer::builder()
                .args_from_env()
                .and_then(TestServerBuilder::start)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::NoBackend(format!("the shared test server could not start: {e}")))
}

/// [`try_shared_server`], panicking with the reason (what is missing and
/// how to install it) when no server can start.
pub fn shared_server() -> &'static TestServer {
    match try_shared_server() {
        Ok(s) => s,
        Err(e) => panic!("pool-testkit: {e}"),
    }
}

impl TestServer {
    /// A builder with the defaults (auto backend, max_connections 200,
    /// connection logging on).
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// Which backend runs this server.
    pub fn backend(&self) -> ServerKind {
        self.backend
    }

    /// Superuser URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.admin_url.to_string()
    }

    /// URL of database `name` on this server (same user and password).
    pub fn url_for(&self, name: &str) -> String {
        let mut url = self.admin_url.clone();
        url.set_path(&format!("/{name}"));
        url.to_string()
    }

    /// The CA certificate that signed this server's certificate (for
    /// `sslrootcert`), when it was started with [`TestServerBuilder::tls`].
    pub fn ca_path(&self) -> Option<PathBuf> {
        let dir = match &self.kind {
            Kind::Local(s) => Some(s.lock().unwrap_or_else(|e| e.into_inner()).tls_dir()),
            Kind::Docker(d) => d.tls_dir().map(PathBuf::from),
            Kind::External => None,
        };
        dir.map(|d| d.join(tls::CA_CERT)).filter(|p| p.is_file())
    }

    /// A client certificate and key (PEM files) for `user`, signed by this
    /// server's CA: for `sslcert` / `sslkey` under [`Auth::ClientCert`].
    pub fn client_cert(&self, user: &str) -> Result<(PathBuf, PathBuf)> {
        match &self.kind {
            Kind::Local(s) => s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .client_cert(user),
            Kind::Docker(d) => d.client_cert(user),
            Kind::External => Err(Error::Config(
                "client certificates come from TLS servers the kit starts".into(),
            )),
        }
    }

    /// Creates a login role `name` with `password` (stored as SCRAM), for
    /// authentication tests.
    pub async fn create_user(&self, name: &str, password: &str) -> Result<()> {
        let mut admin = self.connect_admin().await?;
        let result = sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE ROLE \"{}\" LOGIN PASSWORD '{}'",
            name.replace('"', "\"\""),
            password.replace('\'', "''")
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
        result
            .map(|_| ())
            .map_err(|e| Error::sql(format!("creating role {name}"), e))
    }

    /// The server's TCP address (127.0.0.1:port for servers the testkit runs).
    pub fn addr(&self) -> SocketAddr {
        let host = self.admin_url.host_str().unwrap_or("127.0.0.1");
        let port = self.admin_url.port().unwrap_or(5432);
        (host.trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Name of the template every test database is copied from.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Path of the server log file (local backend only).
    pub fn log_path(&self) -> Option<PathBuf> {
        match &self.kind {
            Kind::Local(s) => Some(s.lock().unwrap_or_else(|e| e.into_inner()).log_path()),
            _ => None,
        }
    }

    /// The last `n` lines of the server log.
    pub fn log_tail(&self, n: usize) -> String {
        match &self.kind {
            Kind::Local(s) => {
                let path = s.lock().unwrap_or_else(|e| e.into_inner()).log_path();
                util::file_tail(&path, n)
            }
            Kind::Docker(d) => d.log_tail(n),
            Kind::External => "(the server log of an external server is not available)".into(),
        }
    }

    /// The Docker container id (Docker backend only).
    pub fn container_id(&self) -> Option<&str> {
        match &self.kind {
            Kind::Docker(d) => Some(d.id()),
            _ => None,
        }
    }

    /// A fresh database copied from the template; dropped (with any
    /// connections still open to it) when the returned value is dropped.
    pub async fn create_database(&self) -> Result<TestDatabase> {
        self.create_database_from(&self.template).await
    }

    /// A fresh database copied from `template` (one made by
    /// [`ensure_template_with`](Self::ensure_template_with)).
    pub(crate) async fn create_database_from(&self, template: &str) -> Result<TestDatabase> {
        let owner = Owner::current();
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = database::name_for(&owner, n);
        TestDatabase::create(&self.url(), template, &name, self.url_for(&name)).await
    }

    /// A probe connection to the `postgres` database as superuser
    /// (`application_name` = [`PROBE_APP_NAME`](crate::PROBE_APP_NAME)), bounded by 10 s.
    pub async fn connect_admin(&self) -> Result<PgConnection> {
        connect(&self.url()).await
    }

    /// Stops the server (fast shutdown: clients are disconnected), e.g. to
    /// test a pool while the database is down. Blocking.
    pub fn stop(&self) -> Result<()> {
        match &self.kind {
            Kind::Local(s) => s.lock().unwrap_or_else(|e| e.into_inner()).stop("fast"),
            Kind::Docker(d) => d.stop(),
            Kind::External => Err(Error::Unsupported {
                operation: "stop",
                backend: self.backend,
            }),
        }
    }

    /// Starts a stopped server on the same address and waits until it
    /// accepts connections. Blocking.
    pub fn start(&self) -> Result<()> {
        match &self.kind {
            Kind::Local(s) => s.lock().unwrap_or_else(|e| e.into_inner()).start_again()?,
            Kind::Docker(d) => d.start_again()?,
            Kind::External => {
                return Err(Error::Unsupported {
                    operation: "start",
                    backend: self.backend,
                });
            }
        }
        util::block_on_fresh(self.wait_ready(Duration::from_secs(60)))
    }

    /// [`stop`](Self::stop) then [`start`](Self::start): every connection
    /// is cut, data is kept. Blocking.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        self.start()
    }

    /// Waits until the server accepts a connection.
    async fn wait_ready(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            match connect(&self.url()).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::Timeout(format!(
                        "the {} server did not accept connections within {within:?}: {e}\nserver log:\n{}",
                        self.backend,
                        self.log_tail(30)
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Creates the template database unless it exists (another run on a
    /// shared external server may have made it, or be making it).
    async fn ensure_template(&self, sql: &[String]) -> Result<()> {
        self.ensure_template_with(&self.template, async |conn| {
            for stmt in sql {
                sqlx::raw_sql(AssertSqlSafe(stmt.clone()))
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| Error::sql("running template SQL", e))?;
            }
            Ok(())
        })
        .await
    }

    /// Creates template database `tpl` unless it exists, running `init`
    /// in it once. Safe against other processes doing the same on a shared
    /// server: `CREATE DATABASE` decides who initialises, the others wait
    /// until it is marked finished. A failed `init` drops the half-made
    /// template, so nobody waits for it.
    pub(crate) async fn ensure_template_with(
        &self,
        tpl: &str,
        init: impl AsyncFnOnce(&mut PgConnection) -> Result<()>,
    ) -> Result<()> {
        let mut admin = self.connect_admin().await?;
        let create = sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{tpl}\"")))
            .execute(&mut admin)
            .await;
        match create {
            Ok(_) => {
                let mut conn = connect(&self.url_for(tpl)).await?;
                let result = init(&mut conn).await;
                let _ = conn.close().await;
                if let Err(e) = result {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{tpl}\" WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                    let _ = admin.close().await;
                    return Err(e);
                }
                // No connections from now on: CREATE DATABASE … TEMPLATE needs
                // the template unused, and this also marks it complete.
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "ALTER DATABASE \"{tpl}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
                )))
                .execute(&mut admin)
                .await
                .map_err(|e| Error::sql("finishing the template database", e))?;
            }
            Err(e) if sql_state(&e).as_deref() == Some("42P04") => {
                // Exists: wait until its creator has finished it.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let ready: Option<bool> = sqlx::query_scalar(
                        "SELECT NOT datallowconn FROM pg_database WHERE datname = $1",
                    )
                    .bind(tpl)
                    .fetch_optional(&mut admin)
                    .await
                    .map_err(|e| Error::sql("checking the template database", e))?;
                    match ready {
                        Some(true) => break,
                        Some(false) => {}
                        None => {
                            return Err(Error::Config(format!(
                                "template database {tpl} was dropped by its creator, whose setup failed (its test shows why)"
                            )));
                        }
                    }
                    if Instant::now() > deadline {
                        return Err(Error::Timeout(format!(
                            "template database {tpl} was not finished by its creator"
                        )));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Err(e) => {
                return Err(Error::sql(
                    format!("creating the template database {tpl}"),
                    e,
                ));
            }
        }
        let _ = admin.close().await;
        Ok(())
    }
}
