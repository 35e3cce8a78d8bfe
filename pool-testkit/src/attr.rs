//! The run time of `#[pool_testkit::test]`: what the generated code calls
//! (re-exported as the doc-hidden `pool_testkit::__private`).
//!
//! Per test: the shared server, a template database per migration and
//! fixture set (made once, keyed by a hash of their contents), a clone of
//! it (`CREATE DATABASE … TEMPLATE`), then the arguments by type. A failing
//! test (panic or `Err`) keeps its database and prints its name.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use pool_runtime::config::{EnvSource, PoolConfig};
use pool_runtime::{Pool, PoolSettings};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Postgres, Sqlite};

use crate::fixtures::unique_app_name;
use crate::{Cluster, PgBouncer, ServerKind, TestDatabase, TestServer, try_shared_server};

pub use crate::PoolMode;

/// One fixture file, included at compile time (edits rebuild the test).
#[derive(Debug)]
pub struct Fixture {
    /// Its name as given to `fixtures(...)`.
    pub name: &'static str,
    /// Its SQL.
    pub sql: &'static str,
}

/// Loads a `#[derive(PoolConfig)]` type's settings: env pairs, profile,
/// test database URL.
pub type ConfigLoader = fn(&[(&str, &str)], Option<&str>, &str) -> Result<PoolSettings, String>;

/// Everything the attribute was given, resolved at compile time.
#[derive(Debug)]
pub struct TestSpec {
    /// `module::path::test_name`.
    pub name: &'static str,
    /// Absolute migrations directory, read at run time by sqlx's `Migrator`.
    pub migrations: Option<&'static str>,
    /// Fixtures, applied in order after the migrations.
    pub fixtures: &'static [Fixture],
    /// A temporary SQLite file instead of a PostgreSQL database.
    pub sqlite: bool,
    /// Applies `pool(...)`.
    pub configure: fn(&mut PoolSettings),
    /// `config = Type`.
    pub config: Option<ConfigLoader>,
    /// `env(...)` for `config`.
    pub env: &'static [(&'static str, &'static str)],
    /// `profile = "..."` for `config` (default `test`).
    pub profile: Option<&'static str>,
    /// `cluster(...)`, or a `&Cluster` argument: the test's own primary
    /// and standbys instead of the shared server.
    pub cluster: Option<ClusterSpec>,
    /// `pgbouncer(...)`, or a `&PgBouncer` argument: the pool connects
    /// through a PgBouncer in front of the test's server.
    pub pgbouncer: Option<BouncerSpec>,
}

/// `cluster(standbys = N)`.
#[derive(Clone, Copy, Debug)]
pub struct ClusterSpec {
    /// Streaming standbys beside the primary (default 1).
    pub standbys: usize,
}

/// `pgbouncer(mode = "transaction", pool_size = N, max_client_conn = N)`.
#[derive(Clone, Copy, Debug)]
pub struct BouncerSpec {
    /// `pool_mode` (default session).
    pub mode: PoolMode,
    /// `default_pool_size`, when given.
    pub pool_size: Option<u32>,
    /// `max_client_conn`, when given.
    pub max_client_conn: Option<u32>,
}

impl TestSpec {
    fn short_name(&self) -> &'static str {
        self.name.rsplit("::").next().unwrap_or(self.name)
    }
}

/// The test's runtime: current-thread unless `flavor = "multi_thread"`.
pub fn runtime(multi_thread: bool, worker_threads: Option<usize>) -> tokio::runtime::Runtime {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("pool-testkit: cannot build the test's tokio runtime: {e}"))
}

/// Loads `C` the way production does, for `config = C`: `env` pairs, the
/// profile variable set to `profile` (default `test`), and the URL
/// variable pointed at the test database unless `env` sets it.
pub fn load_config<C: PoolConfig>(
    env: &[(&str, &str)],
    profile: Option<&str>,
    url: &str,
) -> Result<PoolSettings, String> {
    load_config_from::<C>(
        EnvSource::from_pairs(env.iter().copied()),
        profile.unwrap_or("test"),
        url,
    )
}

/// [`load_config`] from a source; `profile` applies unless the source
/// sets the profile variable itself.
pub(crate) fn load_config_from<C: PoolConfig>(
    mut source: EnvSource,
    profile: &str,
    url: &str,
) -> Result<PoolSettings, String> {
    let meta = C::__meta();
    if source.get(meta.profile_env).is_none() {
        source.set(meta.profile_env, profile);
    }
    for field in meta.fields.iter().filter(|f| f.setting == Some("url")) {
        let var = field
            .env
            .map_or_else(|| format!("{}{}", meta.prefix, field.key), str::to_owned);
        if source.get(&var).is_none() {
            source.set(var, url);
        }
    }
    let loaded = C::load(&source).map_err(|e| e.to_string())?;
    let mut settings = loaded.settings();
    settings.url = url.to_owned().into();
    Ok(settings)
}

enum Target {
    /// The shared server of the test binary.
    Shared(&'static TestServer),
    /// The test's own cluster; its primary plays the server.
    Cluster(Box<Cluster>),
    Sqlite(SqliteFile),
}

/// The temporary directory of a SQLite test; kept when the test fails.
struct SqliteFile {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl SqliteFile {
    fn keep(&mut self, why: &str) {
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
            eprintln!(
                "pool-testkit: {why}: SQLite database {} is kept for a post-mortem",
                self.path.display()
            );
        }
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep("the test panicked");
        }
    }
}

/// One test's database and settings; the arguments are taken from it.
///
/// Fields drop in order: PgBouncer, then the database, then the server or
/// cluster it lives on.
pub struct TestContext {
    spec: &'static TestSpec,
    settings: PoolSettings,
    bouncer: Option<PgBouncer>,
    /// Until an argument takes it by value.
    database: Mutex<Option<TestDatabase>>,
    /// Where it moves when an argument takes it by reference.
    database_ref: OnceLock<TestDatabase>,
    setup_time: Duration,
    target: Target,
}

impl std::fmt::Debug for TestContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestContext")
            .field("test", &self.spec.name)
            .field("setup_time", &self.setup_time)
            .finish_non_exhaustive()
    }
}

impl TestContext {
    /// Creates the test's database (PostgreSQL: a clone of the template
    /// for its migrations and fixtures; SQLite: a temporary file) and its
    /// settings. Panics with the reason when that fails: the test can't run.
    pub async fn setup(spec: &'static TestSpec) -> Self {
        let start = Instant::now();
        let mut ctx = if spec.sqlite {
            setup_sqlite(spec).await
        } else {
            setup_postgres(spec).await
        }
        .unwrap_or_else(|e| panic!("pool-testkit: setting up test {}: {e}", spec.name));
        ctx.setup_time = start.elapsed();
        ctx
    }

    /// The test's pool settings (its database's URL among them).
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// How long [`setup`](Self::setup) took (template on first use, clone,
    /// settings).
    pub fn setup_time(&self) -> Duration {
        self.setup_time
    }

    /// Keeps the database when the test returned an error; returns the
    /// test's output.
    pub fn finish<T: TestOutcome>(mut self, out: T) -> T {
        if out.failed() {
            self.keep("the test returned an error");
        }
        out
    }

    fn keep(&mut self, why: &str) {
        match &mut self.target {
            Target::Shared(_) | Target::Cluster(_) => {
                let mut db = self.database.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(db) = db.as_mut().or(self.database_ref.get_mut()) {
                    db.keep(why);
                }
            }
            Target::Sqlite(file) => file.keep(why),
        }
    }

    fn take_database(&self, how: &str) -> TestDatabase {
        self.database
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| {
                panic!(
                    "pool-testkit: test {} takes the database twice ({how} after another): take `TestDatabase` or `&TestDatabase` once",
                    self.spec.name
                )
            })
    }

    fn server(&self, wanted: &str) -> &TestServer {
        match &self.target {
            Target::Shared(server) => server,
            Target::Cluster(cluster) => cluster.node(cluster.primary()),
            Target::Sqlite(_) => panic!(
                "pool-testkit: test {} is a `sqlite` test: it has no {wanted}; take `Pool<Sqlite>` or `PoolSettings`",
                self.spec.name
            ),
        }
    }
}

async fn setup_postgres(spec: &'static TestSpec) -> Result<TestContext, String> {
    let target = match spec.cluster {
        Some(c) => Target::Cluster(Box::new(start_cluster(c).await?)),
        None => Target::Shared(try_shared_server().map_err(|e| e.to_string())?),
    };
    let server = match &target {
        Target::Shared(server) => server,
        Target::Cluster(cluster) => cluster.node(cluster.primary()),
        Target::Sqlite(_) => unreachable!("a PostgreSQL target"),
    };
    let migrator = load_migrator(spec).await?;
    let db = if migrator.is_none() && spec.fixtures.is_empty() {
        server.create_database().await
    } else {
        let template = ensure_template(server, spec, migrator.as_ref()).await?;
        server.create_database_from(&template).await
    }
    .map_err(|e| e.to_string())?;
    let mut url = match &target {
        // Through the node's proxy, so that `partition` cuts the pool off.
        Target::Cluster(cluster) => cluster.url_for(cluster.primary(), db.name()),
        _ => db.url(),
    };
    let bouncer = match spec.pgbouncer {
        Some(b) => {
            let bouncer = start_bouncer(b, server.addr()).await?;
            url = bouncer.url_for(&url);
            Some(bouncer)
        }
        None => None,
    };
    let settings = settings_for(spec, &url)?;
    Ok(TestContext {
        spec,
        target,
        settings,
        database: Mutex::new(Some(db)),
        database_ref: OnceLock::new(),
        bouncer,
        setup_time: Duration::ZERO,
    })
}

/// Starts the test's cluster (blocking work, off the test's runtime).
async fn start_cluster(spec: ClusterSpec) -> Result<Cluster, String> {
    let builder = Cluster::builder().standbys(spec.standbys);
    off_runtime("the test's cluster", move || builder.start()).await
}

/// Starts PgBouncer (a local process) in front of `upstream`.
async fn start_bouncer(
    spec: BouncerSpec,
    upstream: std::net::SocketAddr,
) -> Result<PgBouncer, String> {
    let mut builder = PgBouncer::builder()
        .backend(ServerKind::Local)
        .pool_mode(spec.mode);
    if let Some(n) = spec.pool_size {
        builder = builder.default_pool_size(n);
    }
    if let Some(n) = spec.max_client_conn {
        builder = builder.max_client_conn(n);
    }
    off_runtime("the test's PgBouncer", move || builder.start(upstream)).await
}

/// Runs a blocking start off the test's runtime; errors say what started.
async fn off_runtime<T: Send + 'static>(
    what: &str,
    start: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(start).await {
        Ok(Ok(started)) => Ok(started),
        Ok(Err(e)) => Err(format!("starting {what}: {e}")),
        Err(e) => Err(format!("starting {what}: {e}")),
    }
}

async fn setup_sqlite(spec: &'static TestSpec) -> Result<TestContext, String> {
    let dir = tempfile::Builder::new()
        .prefix("pool-testkit-sqlite-")
        .tempdir()
        .map_err(|e| format!("creating a temporary directory: {e}"))?;
    let path = dir.path().join(format!("{}.db", spec.short_name()));
    let url = format!("sqlite://{}", path.display());
    let file = SqliteFile {
        dir: Some(dir),
        path,
    };
    let migrator = load_migrator(spec).await?;
    if migrator.is_some() || !spec.fixtures.is_empty() {
        let template = sqlite_template(spec, migrator.as_ref()).await?;
        std::fs::copy(&template, &file.path)
            .map_err(|e| format!("copying the SQLite template {}: {e}", template.display()))?;
    } else {
        let conn = sqlite_create(&file.path).await?;
        let _ = conn.close().await;
    }
    let settings = settings_for(spec, &url)?;
    Ok(TestContext {
        spec,
        target: Target::Sqlite(file),
        settings,
        database: Mutex::new(None),
        database_ref: OnceLock::new(),
        bouncer: None,
        setup_time: Duration::ZERO,
    })
}

async fn sqlite_create(path: &Path) -> Result<sqlx::SqliteConnection, String> {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .map_err(|e| format!("creating the SQLite database {}: {e}", path.display()))
}

/// The SQLite template for a migration and fixture set: a file in the
/// temporary directory named by the hash of their contents, made once
/// (by whichever test process gets there first: it is written under a
/// private name and renamed into place) and copied for each test.
async fn sqlite_template(spec: &TestSpec, migrator: Option<&Migrator>) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join("pool-testkit-sqlite-templates");
    let path = dir.join(format!("{}.db", template_name(migrator, spec.fixtures)));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let partial = path.with_extension(format!("{}.partial", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let mut conn = sqlite_create(&partial).await?;
    let result = async {
        if let Some(m) = migrator {
            m.run(&mut conn)
                .await
                .map_err(|e| format!("running the migrations: {e}"))?;
        }
        for fixture in spec.fixtures {
            apply_fixture(&mut conn, fixture).await?;
        }
        Ok::<(), String>(())
    }
    .await;
    let _ = conn.close().await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &path)
        .map_err(|e| format!("moving the SQLite template into {}: {e}", path.display()))?;
    Ok(path)
}

/// The pool settings of a test: the user's config (or the defaults), a
/// unique name and `application_name`, then `pool(...)`.
fn settings_for(spec: &'static TestSpec, url: &str) -> Result<PoolSettings, String> {
    let mut settings = match spec.config {
        Some(load) => load(spec.env, spec.profile, url)
            .map_err(|e| format!("loading `config` for the test: {e}"))?,
        None => PoolSettings::new(url.to_owned()),
    };
    let app = unique_app_name(
        settings
            .application_name
            .as_deref()
            .unwrap_or(spec.short_name()),
    );
    settings.name = app.clone();
    settings.application_name = Some(app);
    (spec.configure)(&mut settings);
    settings
        .validate()
        .map_err(|e| format!("the test's pool settings: {e}"))?;
    Ok(settings)
}

async fn load_migrator(spec: &TestSpec) -> Result<Option<Migrator>, String> {
    match spec.migrations {
        None => Ok(None),
        Some(dir) => Migrator::new(Path::new(dir))
            .await
            .map(Some)
            .map_err(|e| format!("reading migrations from {dir}: {e}")),
    }
}

async fn apply_fixture<C>(conn: &mut C, fixture: &Fixture) -> Result<(), String>
where
    for<'c> &'c mut C: sqlx::Executor<'c>,
{
    sqlx::raw_sql(AssertSqlSafe(fixture.sql))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("applying fixture `{}`: {e}", fixture.name))
}

/// Template database name for a migration and fixture set: a hash of
/// their contents, so a changed migration gets a new template.
fn template_name(migrator: Option<&Migrator>, fixtures: &[Fixture]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for m in migrator.iter().flat_map(|m| m.iter()) {
        (m.version, &m.checksum[..]).hash(&mut h);
    }
    for f in fixtures {
        (f.name, f.sql).hash(&mut h);
    }
    format!("pool_testkit_m_{:016x}", h.finish())
}

/// Templates made (or being made) by this process, so parallel tests of one
/// binary initialise each once; other processes are handled by
/// `CREATE DATABASE` deciding who initialises.
type TemplateCells = BTreeMap<(String, String), Arc<tokio::sync::OnceCell<()>>>;
static TEMPLATES: Mutex<TemplateCells> = Mutex::new(BTreeMap::new());

async fn ensure_template(
    server: &TestServer,
    spec: &TestSpec,
    migrator: Option<&Migrator>,
) -> Result<String, String> {
    let name = template_name(migrator, spec.fixtures);
    let cell = {
        let mut all = TEMPLATES.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(all.entry((server.url(), name.clone())).or_default())
    };
    cell.get_or_try_init(|| async {
        server
            .ensure_template_with(&name, async |conn| {
                if let Some(m) = migrator {
                    m.run(&mut *conn).await.map_err(|e| {
                        crate::Error::Config(format!("running the migrations: {e}"))
                    })?;
                }
                for fixture in spec.fixtures {
                    apply_fixture(&mut *conn, fixture)
                        .await
                        .map_err(crate::Error::Config)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    Ok(name)
}

/// What a test returns: `()` or a `Result`; an `Err` keeps the database.
pub trait TestOutcome {
    /// Whether the test failed.
    fn failed(&self) -> bool;
}

impl TestOutcome for () {
    fn failed(&self) -> bool {
        false
    }
}

impl<T, E> TestOutcome for Result<T, E> {
    fn failed(&self) -> bool {
        self.is_err()
    }
}

/// A type a `#[pool_testkit::test]` function can take as an argument.
#[diagnostic::on_unimplemented(
    message = "`{Self}` can't be an argument of a #[pool_testkit::test] function",
    label = "not provided by the test attribute",
    note = "arguments are chosen by type: `Pool<Postgres>`, `PoolSettings`, `TestDatabase` or `&TestDatabase`, `&TestServer`, `&Cluster`, `&PgBouncer`, and with `sqlite`: `Pool<Sqlite>`, `PoolSettings`"
)]
pub trait TestArg<'a>: Sized {
    /// Makes the argument from the test's context.
    fn provide(ctx: &'a TestContext) -> impl Future<Output = Self> + 'a;
}

impl<'a> TestArg<'a> for &'a TestServer {
    async fn provide(ctx: &'a TestContext) -> Self {
        ctx.server("server")
    }
}

impl<'a> TestArg<'a> for PoolSettings {
    async fn provide(ctx: &'a TestContext) -> Self {
        ctx.settings.clone()
    }
}

impl<'a> TestArg<'a> for TestDatabase {
    async fn provide(ctx: &'a TestContext) -> Self {
        ctx.server("TestDatabase");
        ctx.take_database("`TestDatabase`")
    }
}

impl<'a> TestArg<'a> for &'a TestDatabase {
    async fn provide(ctx: &'a TestContext) -> Self {
        ctx.server("&TestDatabase");
        if let Some(db) = ctx.database_ref.get() {
            return db;
        }
        let db = ctx.take_database("`&TestDatabase`");
        ctx.database_ref.get_or_init(|| db)
    }
}

impl<'a> TestArg<'a> for &'a Cluster {
    async fn provide(ctx: &'a TestContext) -> Self {
        match &ctx.target {
            Target::Cluster(cluster) => cluster,
            _ => panic!(
                "pool-testkit: test {} takes `&Cluster` but has no cluster: add `cluster(standbys = 1)` to the attribute",
                ctx.spec.name
            ),
        }
    }
}

impl<'a> TestArg<'a> for &'a PgBouncer {
    async fn provide(ctx: &'a TestContext) -> Self {
        ctx.bouncer.as_ref().unwrap_or_else(|| {
            panic!(
                "pool-testkit: test {} takes `&PgBouncer` but has none: add `pgbouncer(mode = \"transaction\")` to the attribute",
                ctx.spec.name
            )
        })
    }
}

impl<'a> TestArg<'a> for Pool<Postgres> {
    async fn provide(ctx: &'a TestContext) -> Self {
        ctx.server("Pool<Postgres>");
        connect(ctx).await
    }
}

impl<'a> TestArg<'a> for Pool<Sqlite> {
    async fn provide(ctx: &'a TestContext) -> Self {
        if !ctx.spec.sqlite {
            panic!(
                "pool-testkit: test {} takes `Pool<Sqlite>`: add `sqlite` to the attribute, or take `Pool<Postgres>`",
                ctx.spec.name
            );
        }
        connect(ctx).await
    }
}

async fn connect<DB: pool_runtime::Backend>(ctx: &TestContext) -> Pool<DB> {
    Pool::<DB>::connect(ctx.settings.clone())
        .await
        .unwrap_or_else(|e| panic!("pool-testkit: connecting the test's pool: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_follow_the_fixture_contents() {
        const A: &[Fixture] = &[Fixture {
            name: "users",
            sql: "INSERT INTO users VALUES (1)",
        }];
        const B: &[Fixture] = &[Fixture {
            name: "users",
            sql: "INSERT INTO users VALUES (2)",
        }];
        let a = template_name(None, A);
        assert_eq!(a, template_name(None, A));
        assert_ne!(a, template_name(None, B));
        assert!(a.starts_with("pool_testkit_m_") && a.len() < 64, "{a}");
    }
}
