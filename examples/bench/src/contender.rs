//! The systems under comparison, each able to run one operation (acquire +
//! release, optionally with `SELECT 1` in between) and to tell how long the
//! acquire part waited.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pool_runtime::{Pool, PoolSettings};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which system, with which settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// pool-runtime, pre-ping on (the default).
    Ours,
    /// pool-runtime, pre-ping off.
    OursNoPing,
    /// pool-runtime, pre-ping on, metrics (real recorder) and leak detection on.
    OursObserved,
    /// sqlx::Pool, test_before_acquire on (its default).
    Sqlx,
    /// sqlx::Pool, test_before_acquire off.
    SqlxNoTest,
    /// deadpool-postgres, RecyclingMethod::Fast, prepared statement cached.
    Deadpool,
    /// One sqlx connection owned by each task: the ceiling for a pool over sqlx.
    Owned,
    /// A new sqlx connection for every query, closed after it.
    ConnectPerQuery,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Ours => "pool-runtime, pre-ping on",
            Self::OursNoPing => "pool-runtime, pre-ping off",
            Self::OursObserved => "pool-runtime, pre-ping on, metrics + leak detection",
            Self::Sqlx => "sqlx::Pool, test_before_acquire on",
            Self::SqlxNoTest => "sqlx::Pool, test_before_acquire off",
            Self::Deadpool => "deadpool-postgres (prepared, cached)",
            Self::Owned => "sqlx connection owned by each task",
            Self::ConnectPerQuery => "new sqlx connection per query",
        }
    }

    /// Short name, used in application_name and pool names.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Ours => "ours",
            Self::OursNoPing => "ours-noping",
            Self::OursObserved => "ours-observed",
            Self::Sqlx => "sqlx",
            Self::SqlxNoTest => "sqlx-notest",
            Self::Deadpool => "deadpool",
            Self::Owned => "owned",
            Self::ConnectPerQuery => "connect",
        }
    }
}

/// What one operation does between acquire and release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Nothing: measures the pool alone.
    AcquireRelease,
    /// `SELECT 1`, prepared and cached by each client, row decoded.
    Select1,
}

/// Pool shape shared by every pooled contender of one run.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Kept-open connections (sqlx: min_connections; deadpool: none).
    pub size: u32,
    /// Extra connections under load (sqlx and deadpool: part of max).
    pub overflow: u32,
    pub timeout: Duration,
}

impl Shape {
    pub fn fixed(size: u32) -> Self {
        Self {
            size,
            overflow: 0,
            timeout: Duration::from_secs(30),
        }
    }

    fn max(self) -> u32 {
        self.size + self.overflow
    }
}

/// How an operation failed.
#[derive(Debug)]
pub enum OpError {
    /// The pool's acquire timed out (counted, the run goes on).
    Timeout,
    /// Anything else ends the benchmark.
    Fatal(BoxError),
}

impl<E: Into<BoxError>> From<E> for OpError {
    fn from(e: E) -> Self {
        Self::Fatal(e.into())
    }
}

pub enum Contender {
    Ours(Pool<Postgres>),
    Sqlx(PgPool),
    Deadpool(deadpool_postgres::Pool),
    /// One slot per task; a task takes its connection out for the run.
    Owned(Mutex<Vec<Option<PgConnection>>>),
    Connect(Box<PgConnectOptions>),
}

impl Contender {
    /// Builds `kind` against `url`, named `app` on the server
    /// (application_name). `tasks` sizes the owned-connection set.
    pub async fn build(
        kind: Kind,
        url: &str,
        app: &str,
        shape: Shape,
        tasks: usize,
    ) -> Result<Self, BoxError> {
        let options = url.parse::<PgConnectOptions>()?.application_name(app);
        let contender = match kind {
            Kind::Ours | Kind::OursNoPing | Kind::OursObserved => {
                let observed = kind == Kind::OursObserved;
                let settings = PoolSettings::builder(url)
                    .name(app.replace('-', "_"))
                    .application_name(app)
                    .pool_size(shape.size)
                    .max_overflow(shape.overflow)
                    .pool_timeout(shape.timeout)
                    .pool_pre_ping(kind != Kind::OursNoPing)
                    .metrics(observed)
                    .leak_threshold(observed.then(|| Duration::from_secs(10)))
                    .build()?;
                Self::Ours(Pool::connect(settings).await?)
            }
            Kind::Sqlx | Kind::SqlxNoTest => Self::Sqlx(
                PgPoolOptions::new()
                    .max_connections(shape.max())
                    .min_connections(if shape.overflow > 0 { shape.size } else { 0 })
                    .acquire_timeout(shape.timeout)
                    .test_before_acquire(kind == Kind::Sqlx)
                    .connect_with(options)
                    .await?,
            ),
            Kind::Deadpool => {
                use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
                let mut config: tokio_postgres::Config = url.parse()?;
                config.application_name(app);
                let manager = Manager::from_config(
                    config,
                    tokio_postgres::NoTls,
                    ManagerConfig {
                        recycling_method: RecyclingMethod::Fast,
                    },
                );
                let pool = deadpool_postgres::Pool::builder(manager)
                    .max_size(shape.max() as usize)
                    .wait_timeout(Some(shape.timeout))
                    .runtime(Runtime::Tokio1)
                    .build()?;
                drop(pool.get().await?);
                Self::Deadpool(pool)
            }
            Kind::Owned => {
                let mut conns = Vec::with_capacity(tasks);
                for _ in 0..tasks {
                    conns.push(Some(options.connect().await?));
                }
                Self::Owned(Mutex::new(conns))
            }
            Kind::ConnectPerQuery => Self::Connect(Box::new(options)),
        };
        contender.prefill(shape.size).await?;
        Ok(contender)
    }

    /// Opens `n` connections (held all at once, then returned) so that a
    /// measured window never includes a pool growing.
    pub async fn prefill(&self, n: u32) -> Result<(), BoxError> {
        match self {
            Self::Ours(pool) => {
                let mut held = Vec::new();
                for _ in 0..n {
                    held.push(pool.acquire().await?);
                }
            }
            Self::Sqlx(pool) => {
                let mut held = Vec::new();
                for _ in 0..n {
                    held.push(pool.acquire().await?);
                }
            }
            Self::Deadpool(pool) => {
                let mut held = Vec::new();
                for _ in 0..n {
                    held.push(pool.get().await?);
                }
            }
            Self::Owned(_) | Self::Connect(_) => {}
        }
        Ok(())
    }

    /// The connection task `idx` owns for the run (owned contender only).
    pub fn take_owned(&self, idx: usize) -> Option<PgConnection> {
        match self {
            Self::Owned(slots) => slots
                .lock()
                .expect("owned slots")
                .get_mut(idx)
                .and_then(Option::take),
            _ => None,
        }
    }

    pub fn put_owned(&self, idx: usize, conn: Option<PgConnection>) {
        if let (Self::Owned(slots), Some(conn)) = (self, conn) {
            slots.lock().expect("owned slots")[idx] = Some(conn);
        }
    }

    /// One operation; returns how long acquiring took.
    pub async fn op(
        &self,
        work: Work,
        own: &mut Option<PgConnection>,
    ) -> Result<Duration, OpError> {
        let start = Instant::now();
        match self {
            Self::Ours(pool) => {
                let mut conn = match pool.acquire().await {
                    Ok(conn) => conn,
                    Err(pool_runtime::Error::Timeout(_)) => return Err(OpError::Timeout),
                    Err(e) => return Err(e.into()),
                };
                let waited = start.elapsed();
                if work == Work::Select1 {
                    select1(&mut conn).await?;
                }
                Ok(waited)
            }
            Self::Sqlx(pool) => {
                let mut conn = match pool.acquire().await {
                    Ok(conn) => conn,
                    Err(sqlx::Error::PoolTimedOut) => return Err(OpError::Timeout),
                    Err(e) => return Err(e.into()),
                };
                let waited = start.elapsed();
                if work == Work::Select1 {
                    select1(&mut conn).await?;
                }
                Ok(waited)
            }
            Self::Deadpool(pool) => {
                let client = match pool.get().await {
                    Ok(client) => client,
                    Err(deadpool_postgres::PoolError::Timeout(_)) => return Err(OpError::Timeout),
                    Err(e) => return Err(e.into()),
                };
                let waited = start.elapsed();
                if work == Work::Select1 {
                    let stmt = client.prepare_cached("SELECT 1").await?;
                    let one: i32 = client.query_one(&stmt, &[]).await?.get(0);
                    check(one)?;
                }
                Ok(waited)
            }
            Self::Owned(_) => {
                let conn = own.as_mut().ok_or("owned connection missing")?;
                if work == Work::Select1 {
                    select1(conn).await?;
                }
                Ok(Duration::ZERO)
            }
            Self::Connect(options) => {
                let mut conn = options.connect().await?;
                let waited = start.elapsed();
                if work == Work::Select1 {
                    select1(&mut conn).await?;
                }
                conn.close().await?;
                Ok(waited)
            }
        }
    }

    /// The pool's own status (pool-runtime only).
    pub fn status(&self) -> Option<pool_runtime::Status> {
        match self {
            Self::Ours(pool) => Some(pool.status()),
            _ => None,
        }
    }

    pub async fn close(self) {
        match self {
            Self::Ours(pool) => pool.close().await,
            Self::Sqlx(pool) => pool.close().await,
            Self::Deadpool(pool) => pool.close(),
            Self::Owned(slots) => {
                let conns: Vec<_> = slots
                    .into_inner()
                    .expect("owned slots")
                    .into_iter()
                    .flatten()
                    .collect();
                for conn in conns {
                    let _ = conn.close().await;
                }
            }
            Self::Connect(_) => {}
        }
    }
}

async fn select1(conn: &mut PgConnection) -> Result<(), OpError> {
    let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(conn).await?;
    check(one)
}

fn check(one: i32) -> Result<(), OpError> {
    if one == 1 {
        Ok(())
    } else {
        Err(format!("SELECT 1 returned {one}").into())
    }
}
