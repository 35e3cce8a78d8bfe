//! `--sqlite`: writes to an embedded SQLite file from 64 tasks, through
//! pool-runtime's default split (one writer, read-only readers), through
//! pool-runtime as one pool of 15 writers, and through `sqlx::SqlitePool`
//! (15 connections), all with the same pragmas (WAL, `synchronous =
//! NORMAL`, a 5 s busy timeout), so the table compares the pools, not the
//! settings. Each contender gets a fresh file per round; rounds interleave.
//!
//! ```text
//! cargo run --release -p pool-bench -- --sqlite          # 3 rounds of 3 s
//! cargo run --release -p pool-bench -- --sqlite 1 1      # 1 round of 1 s
//! ```

use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pool_runtime::{Pool, PoolSettings, SqliteSettings};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Executor, Sqlite, SqliteConnection};

use crate::contender::BoxError;

const TASKS: usize = 64;
const SCHEMA: &str = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Contender {
    Split,
    OnePool,
    Sqlx,
}

impl Contender {
    const ALL: [Contender; 3] = [Self::Split, Self::OnePool, Self::Sqlx];

    fn label(self) -> &'static str {
        match self {
            Self::Split => "pool-runtime, one writer + readers (default)",
            Self::OnePool => "pool-runtime, one pool of 15 writers",
            Self::Sqlx => "sqlx::SqlitePool, 15 connections",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    /// `INSERT … RETURNING`, as the example service's POST /items.
    Insert,
    /// A transaction that reads, then inserts.
    ReadThenWrite,
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Self::Insert => "single-row INSERT … RETURNING",
            Self::ReadThenWrite => "transaction: SELECT count(*), then INSERT",
        }
    }
}

enum Handle {
    Ours(Pool<Sqlite>),
    Sqlx(sqlx::SqlitePool),
}

#[derive(Default)]
struct Outcome {
    ops: usize,
    errors: usize,
    locked: usize,
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

/// Parses `[SECS [ROUNDS]]` and runs both workloads.
pub fn run(args: &[String]) -> Result<(), BoxError> {
    let secs: f64 = args.first().map_or(Ok(3.0), |s| s.parse())?;
    let rounds: usize = args.get(1).map_or(Ok(3), |s| s.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!(
            "## SQLite writes, {TASKS} tasks, {rounds} round(s) of {secs} s per contender\n\n\
             Same pragmas for all: WAL, synchronous = NORMAL, busy timeout 5 s.\n"
        );
        for workload in [Workload::Insert, Workload::ReadThenWrite] {
            let mut totals: Vec<(Contender, Outcome)> = Contender::ALL
                .iter()
                .map(|&c| (c, Outcome::default()))
                .collect();
            for _ in 0..rounds {
                for (contender, total) in &mut totals {
                    let one = measure(*contender, workload, Duration::from_secs_f64(secs)).await?;
                    total.ops += one.ops;
                    total.errors += one.errors;
                    total.locked += one.locked;
                    total.elapsed += one.elapsed;
                    total.latencies_us.extend(one.latencies_us);
                }
            }
            print_table(workload, &mut totals);
        }
        Ok(())
    })
}

async fn open(contender: Contender, url: &str) -> Result<Handle, BoxError> {
    Ok(match contender {
        Contender::Split | Contender::OnePool => {
            let settings = PoolSettings::builder(url)
                .pool_size(5)
                .max_overflow(10)
                .pool_timeout(Duration::from_secs(30))
                .metrics(false)
                .sqlite(SqliteSettings {
                    single_writer: contender == Contender::Split,
                    ..SqliteSettings::default()
                })
                .build()?;
            Handle::Ours(Pool::connect(settings).await?)
        }
        Contender::Sqlx => {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(15)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?;
            Handle::Sqlx(pool)
        }
    })
}

async fn measure(
    contender: Contender,
    workload: Workload,
    duration: Duration,
) -> Result<Outcome, BoxError> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let handle = Arc::new(open(contender, &url).await?);
    let _created = match &*handle {
        Handle::Ours(pool) => pool.execute(SCHEMA).await?,
        Handle::Sqlx(pool) => pool.execute(SCHEMA).await?,
    };
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let handle = Arc::clone(&handle);
            let outcome = Arc::clone(&outcome);
            tokio::spawn(async move {
                let mut mine = Outcome::default();
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    let result = one_op(&handle, workload, format!("{task}-{i}")).await;
                    i += 1;
                    match result {
                        Ok(()) => {
                            mine.ops += 1;
                            mine.latencies_us.push(began.elapsed().as_micros() as u64);
                        }
                        Err(e) => {
                            mine.errors += 1;
                            if e.to_string().contains("database is locked") {
                                mine.locked += 1;
                            }
                        }
                    }
                }
                let mut all = outcome.lock().unwrap();
                all.ops += mine.ops;
                all.errors += mine.errors;
                all.locked += mine.locked;
                all.latencies_us.extend(mine.latencies_us);
            })
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed();
    match &*handle {
        Handle::Ours(pool) => pool.close().await,
        Handle::Sqlx(pool) => pool.close().await,
    }
    let mut outcome = std::mem::take(&mut *outcome.lock().unwrap());
    outcome.elapsed = elapsed;
    Ok(outcome)
}

async fn one_op(handle: &Handle, workload: Workload, name: String) -> Result<(), BoxError> {
    match handle {
        Handle::Ours(pool) => {
            let mut conn = pool.acquire().await?;
            Ok(statement(&mut conn, workload, name).await?)
        }
        Handle::Sqlx(pool) => {
            let mut conn = pool.acquire().await?;
            Ok(statement(&mut conn, workload, name).await?)
        }
    }
}

async fn statement(
    conn: &mut SqliteConnection,
    workload: Workload,
    name: String,
) -> sqlx::Result<()> {
    match workload {
        Workload::Insert => {
            let _: (i64,) = sqlx::query_as("INSERT INTO items (name) VALUES ($1) RETURNING id")
                .bind(name)
                .fetch_one(conn)
                .await?;
        }
        Workload::ReadThenWrite => {
            let mut tx = conn.begin().await?;
            let _: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO items (name) VALUES ($1)")
                .bind(name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn print_table(workload: Workload, totals: &mut [(Contender, Outcome)]) {
    let rate = |o: &Outcome| o.ops as f64 / o.elapsed.as_secs_f64().max(f64::EPSILON);
    let sqlx_rate = totals
        .iter()
        .find(|(c, _)| *c == Contender::Sqlx)
        .map(|(_, o)| rate(o))
        .unwrap_or(f64::NAN);
    println!("### {}\n", workload.label());
    println!(
        "| contender | ops/s | × sqlx | p50 ms | p99 ms | max ms | errors | \"database is locked\" |"
    );
    println!("|---|--:|--:|--:|--:|--:|--:|--:|");
    for (contender, outcome) in totals.iter_mut() {
        outcome.latencies_us.sort_unstable();
        let l = &outcome.latencies_us;
        println!(
            "| {} | {:.0} | {:.2}× | {:.2} | {:.2} | {:.2} | {} | {} |",
            contender.label(),
            rate(outcome),
            rate(outcome) / sqlx_rate,
            percentile(l, 0.50),
            percentile(l, 0.99),
            l.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
            outcome.errors,
            outcome.locked,
        );
    }
    println!();
}
