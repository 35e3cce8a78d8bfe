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
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pool_runtime::config::{EnvSource, PoolConfig};
use pool_runtime::{Pool, PoolSettings};
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Postgres, Sqlite};

use crate::fixtures::unique_app_name;
use crate::{TestDatabase, TestServer, try_shared_server};

pub use pool_runtime::{PoolClass, ResetOnReturn};

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
    Postgres(&'static TestServer),
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
pub struct TestContext {
    spec: &'static TestSpec,
    target: Target,
    settings: PoolSettings,
    database: Mutex<Option<TestDatabase>>,
    setup_time: Duration,
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
            Target::Postgres(_) => {
                let mut db = self.database.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(db) = db.as_mut() {
                    db.keep(why);
                }
            }
            Target::Sqlite(file) => file.keep(why),
        }
    }

    fn server(&self, wanted: &str) -> &'static TestServer {
        match self.target {
            Target::Postgres(server) => server,
            Target::Sqlite(_) => panic!(
                "pool-testkit: test {} is a `sqlite` test: it has no {wanted}; take `Pool<Sqlite>` or `PoolSettings`",
                self.spec.name
            ),
        }
    }
}

async fn setup_postgres(spec: &'static TestSpec) -> Result<TestContext, String> {
    let server = try_shared_server().map_err(|e| e.to_string())?;
    let migrator = load_migrator(spec).await?;
    let db = if migrator.is_none() && spec.fixtures.is_empty() {
        server.create_database().await
    } else {
        let template = ensure_template(server, spec, migrator.as_ref()).await?;
        server.create_database_from(&template).await
    }
    .map_err(|e| e.to_string())?;
    let settings = settings_for(spec, &db.url())?;
    Ok(TestContext {
        spec,
        target: Target::Postgres(server),
        settings,
        database: Mutex::new(Some(db)),
        setup_time: Duration::ZERO,
    })
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
    let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .map(|o| o.create_if_missing(true))
        .map_err(|e| format!("SQLite URL {url}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("creating the SQLite database: {e}"))?;
    if let Some(m) = &migrator {
        m.run(&mut conn)
            .await
            .map_err(|e| format!("running the migrations: {e}"))?;
    }
    for fixture in spec.fixtures {
        apply_fixture(&mut conn, fixture).await?;
    }
    let _ = conn.close().await;
    let settings = settings_for(spec, &url)?;
    Ok(TestContext {
        spec,
        target: Target::Sqlite(file),
        settings,
        database: Mutex::new(None),
        setup_time: Duration::ZERO,
    })
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
    note = "arguments are chosen by type: `Pool<Postgres>`, `PoolSettings`, `TestDatabase`, `&TestServer`, and with `sqlite`: `Pool<Sqlite>`, `PoolSettings`"
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
        ctx.database
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| {
                panic!(
                    "pool-testkit: test {} takes `TestDatabase` twice; take it once",
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
