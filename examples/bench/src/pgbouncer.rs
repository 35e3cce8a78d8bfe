//! `--pgbouncer`: `SELECT 1` (a statement with no binds, sent as sqlx sends
//! it: prepared, then bound) from 16 tasks, directly and through PgBouncer
//! 1.18 in session and in transaction mode, through pool-runtime (with the
//! matching `pgbouncer` setting) and through `sqlx::PgPool`, in the same
//! run. Rounds interleave the contenders; ratios are within a route.
//!
//! ```text
//! cargo run --release -p pool-bench -- --pgbouncer        # 3 rounds of 3 s
//! cargo run --release -p pool-bench -- --pgbouncer 1 1    # 1 round of 1 s
//! ```
//!
//! sqlx through transaction mode is measured as it behaves: with errors.
//! Every client names its first statement `sqlx_s_1`, so once most of
//! PgBouncer's server connections hold a `sqlx_s_1` that is also `SELECT 1`,
//! its binds mostly reach a statement of the same text by luck; the errors
//! column shows the rest.

use std::time::{Duration, Instant};

use pool_runtime::{PgBouncerMode, Pool, PoolSettings};
use pool_testkit::{PgBouncer, PoolMode, ServerKind};
use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

use crate::contender::BoxError;

const TASKS: u32 = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Direct,
    Session,
    Transaction,
}

impl Route {
    const ALL: [Route; 3] = [Self::Direct, Self::Session, Self::Transaction];

    fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Session => "PgBouncer, session mode",
            Self::Transaction => "PgBouncer, transaction mode",
        }
    }

    fn setting(self) -> PgBouncerMode {
        match self {
            Self::Direct => PgBouncerMode::Off,
            Self::Session => PgBouncerMode::Session,
            Self::Transaction => PgBouncerMode::Transaction,
        }
    }
}

enum Handle {
    Ours(Pool<Postgres>),
    Sqlx(sqlx::PgPool),
}

#[derive(Default, Clone)]
struct Outcome {
    ops: u64,
    errors: u64,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    fn add(&mut self, other: Outcome) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
    }

    fn p99_ms(&mut self) -> f64 {
        self.latencies_us.sort_unstable();
        let l = &self.latencies_us;
        if l.is_empty() {
            return f64::NAN;
        }
        l[((l.len() - 1) as f64 * 0.99).round() as usize] as f64 / 1000.0
    }
}

/// Parses `[SECS [ROUNDS]]`, starts a server and both PgBouncers, runs.
pub fn run(args: &[String]) -> Result<(), BoxError> {
    let secs: f64 = args.first().map_or(Ok(3.0), |s| s.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let server = crate::start_server()?;
    let start = |mode| {
        PgBouncer::builder()
            .backend(ServerKind::Local)
            .pool_mode(mode)
            .default_pool_size(TASKS + 4)
            .max_client_conn(200)
            .start(server.addr())
    };
    let session = start(PoolMode::Session)?;
    let transaction = start(PoolMode::Transaction)?;
    let direct = server.url();
    let url = |route| match route {
        Route::Direct => direct.clone(),
        Route::Session => session.url_for(&direct),
        Route::Transaction => transaction.url_for(&direct),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "## SELECT 1 through PgBouncer 1.18, {TASKS} tasks, pools of {TASKS}, \
             {rounds} round(s) of {secs} s\n"
        );
        let mut results: Vec<(Route, Outcome, Outcome)> = Route::ALL
            .iter()
            .map(|&r| (r, Outcome::default(), Outcome::default()))
            .collect();
        for _ in 0..rounds {
            for (route, ours, sqlx) in &mut results {
                let duration = Duration::from_secs_f64(secs);
                ours.add(measure(open_ours(*route, &url(*route)).await?, duration).await);
                sqlx.add(measure(open_sqlx(&url(*route)).await?, duration).await);
            }
        }
        let direct_ours = results[0].1.rate();
        println!(
            "| route | pool-runtime ops/s | p99 ms | errors | sqlx::PgPool ops/s | p99 ms | \
             errors | ours × sqlx | ours × ours direct |"
        );
        println!("|---|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (route, ours, sqlx) in &mut results {
            println!(
                "| {} | {:.0} | {:.2} | {} | {:.0} | {:.2} | {} | {:.2}× | {:.2}× |",
                route.label(),
                ours.rate(),
                ours.p99_ms(),
                ours.errors,
                sqlx.rate(),
                sqlx.p99_ms(),
                sqlx.errors,
                ours.rate() / sqlx.rate(),
                ours.rate() / direct_ours,
            );
        }
        println!();
        Ok::<(), BoxError>(())
    })?;
    drop((session, transaction, server));
    Ok(())
}

async fn open_ours(route: Route, url: &str) -> Result<Handle, BoxError> {
    let settings = PoolSettings::builder(url)
        .name(route.label())
        .pool_size(TASKS)
        .max_overflow(0)
        .pgbouncer(route.setting())
        .metrics(false)
        .build()?;
    Ok(Handle::Ours(Pool::connect(settings).await?))
}

async fn open_sqlx(url: &str) -> Result<Handle, BoxError> {
    let pool = PgPoolOptions::new()
        .max_connections(TASKS)
        .min_connections(TASKS)
        .connect(url)
        .await?;
    Ok(Handle::Sqlx(pool))
}

async fn measure(handle: Handle, duration: Duration) -> Outcome {
    let handle = std::sync::Arc::new(handle);
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let handle = std::sync::Arc::clone(&handle);
            tokio::spawn(async move {
                let mut mine = Outcome::default();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let query = sqlx::query_scalar::<_, i32>("SELECT 1");
                    let result = match &*handle {
                        Handle::Ours(pool) => query.fetch_one(pool).await,
                        Handle::Sqlx(pool) => query.fetch_one(pool).await,
                    };
                    match result {
                        Ok(1) => {
                            mine.ops += 1;
                            mine.latencies_us.push(began.elapsed().as_micros() as u64);
                        }
                        _ => mine.errors += 1,
                    }
                }
                mine
            })
        })
        .collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        if let Ok(mine) = task.await {
            outcome.add(mine);
        }
    }
    outcome.elapsed = start.elapsed();
    match &*handle {
        Handle::Ours(pool) => pool.close().await,
        Handle::Sqlx(pool) => pool.close().await,
    }
    outcome
}
