//! Oversubscription: many more tasks than connections for a fixed time.
//! Acquire waits are timed by the tasks themselves (the same way for every
//! contender), and the server-side connection count is sampled from
//! pg_stat_activity every few milliseconds on a thread of its own, so the
//! busy runtime cannot delay the sampling.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::args::Options;
use super::contender::{BoxError, Contender, Kind, Shape, Work};
use super::run::{drive, median, quantile};

/// pool_size 10 + max_overflow 20 (sqlx and deadpool: max 30).
pub const SHAPE: Shape = Shape {
    size: 10,
    overflow: 20,
    timeout: Duration::from_secs(30),
};

/// One contender's figures, combined over the rounds.
pub struct Outcome {
    pub kind: Kind,
    /// Mean wait of a perfectly fair queue (Little's law), µs:
    /// (tasks − connections) / throughput.
    pub fifo_mean_us: f64,
    /// Completed operations per second, median of rounds.
    pub qps: f64,
    /// Client-side acquire wait, µs (median of rounds; max: the largest).
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: u32,
    /// Acquires that hit the timeout, all rounds.
    pub timeouts: u64,
    /// Most server connections seen at once (pg_stat_activity), all rounds.
    pub server_peak: i64,
    /// Distinct server backends (pids) seen, all rounds: churn shows here.
    pub distinct_backends: usize,
    pub samples: u64,
    /// pool-runtime's own view, all rounds.
    pub pool_view: Option<PoolView>,
}

/// What pool-runtime's `status()` says after a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolView {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub timeouts: u64,
    /// Connections opened and closed as overflow during the run.
    pub opened: u64,
    pub closed_overflow: u64,
}

pub async fn measure(url: &str, kinds: &[Kind], opts: &Options) -> Result<Vec<Outcome>, BoxError> {
    let mut per_kind: Vec<(Kind, Vec<Round>)> = kinds.iter().map(|k| (*k, Vec::new())).collect();
    for round in 0..opts.rounds {
        for i in 0..per_kind.len() {
            let idx = (i + round) % per_kind.len();
            let kind = per_kind[idx].0;
            let r = one_round(url, kind, round, opts)
                .await
                .map_err(|e| format!("oversubscription, {}: {e}", kind.label()))?;
            per_kind[idx].1.push(r);
        }
    }
    Ok(per_kind
        .into_iter()
        .map(|(kind, rounds)| combine(kind, &rounds, opts.oversub_tasks))
        .collect())
}

struct Round {
    qps: f64,
    p50: u32,
    p99: u32,
    max: u32,
    timeouts: u64,
    peak: i64,
    distinct: usize,
    samples: u64,
    pool_view: Option<PoolView>,
}

async fn one_round(url: &str, kind: Kind, round: usize, opts: &Options) -> Result<Round, BoxError> {
    let app = format!("bench-os-{}-{}", kind.tag(), round);
    let contender = Arc::new(Contender::build(kind, url, &app, SHAPE, 0).await?);
    let sampler = Sampler::start(url, &app)?;
    let sample = drive(
        &contender,
        Work::Select1,
        opts.oversub_tasks,
        opts.oversub_warmup,
        opts.oversub_duration,
        true,
    )
    .await;
    let (peak, distinct, samples) = sampler.stop()?;
    let sample = sample?;
    let pool_view = contender.status().map(|s| PoolView {
        p50_ms: s.wait.p50_ms,
        p99_ms: s.wait.p99_ms,
        max_ms: s.wait.max_ms,
        timeouts: s.totals.timeouts,
        opened: s.totals.opened,
        closed_overflow: s.totals.closed.overflow,
    });
    if let Ok(contender) = Arc::try_unwrap(contender) {
        contender.close().await;
    }
    let mut waits = sample.waits_us.clone();
    waits.sort_unstable();
    Ok(Round {
        qps: sample.per_sec(),
        p50: quantile(&waits, 0.50),
        p99: quantile(&waits, 0.99),
        max: waits.last().copied().unwrap_or(0),
        timeouts: sample.timeouts,
        peak,
        distinct,
        samples,
        pool_view,
    })
}

fn combine(kind: Kind, rounds: &[Round], tasks: usize) -> Outcome {
    let med = |f: &dyn Fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    let pool_view = rounds
        .iter()
        .filter_map(|r| r.pool_view)
        .collect::<Vec<_>>();
    let qps = med(&|r| r.qps);
    let connections = (SHAPE.size + SHAPE.overflow) as usize;
    Outcome {
        kind,
        fifo_mean_us: tasks.saturating_sub(connections) as f64 / qps * 1e6,
        qps,
        p50_us: med(&|r| f64::from(r.p50)),
        p99_us: med(&|r| f64::from(r.p99)),
        max_us: rounds.iter().map(|r| r.max).max().unwrap_or(0),
        timeouts: rounds.iter().map(|r| r.timeouts).sum(),
        server_peak: rounds.iter().map(|r| r.peak).max().unwrap_or(0),
        samples: rounds.iter().map(|r| r.samples).sum(),
        distinct_backends: rounds.iter().map(|r| r.distinct).sum(),
        pool_view: (!pool_view.is_empty()).then(|| {
            let m = |f: fn(&PoolView) -> f64| median(&pool_view.iter().map(f).collect::<Vec<_>>());
            PoolView {
                p50_ms: m(|v| v.p50_ms),
                p99_ms: m(|v| v.p99_ms),
                max_ms: pool_view.iter().map(|v| v.max_ms).fold(0.0, f64::max),
                timeouts: pool_view.iter().map(|v| v.timeouts).sum(),
                opened: pool_view.iter().map(|v| v.opened).sum(),
                closed_overflow: pool_view.iter().map(|v| v.closed_overflow).sum(),
            }
        }),
    }
}

/// Samples the server connections of one application_name every 2 ms from
/// its own thread and connection: the peak count and every pid seen.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<(i64, usize, u64), String>>,
}

impl Sampler {
    fn start(url: &str, app: &str) -> Result<Self, BoxError> {
        let options = url
            .parse::<PgConnectOptions>()?
            .application_name("bench-sampler");
        let app = app.to_owned();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async move {
                let mut conn = options.connect().await.map_err(|e| e.to_string())?;
                let _ = ready_tx.send(());
                let (mut peak, mut samples) = (0i64, 0u64);
                let mut seen = std::collections::HashSet::new();
                while !flag.load(Ordering::Relaxed) {
                    let pids: Vec<i32> = sqlx::query_scalar(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                    )
                    .bind(&app)
                    .fetch_all(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                    peak = peak.max(pids.len() as i64);
                    seen.extend(pids);
                    samples += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let _ = conn.close().await;
                Ok((peak, seen.len(), samples))
            })
        });
        // Wait until it is connected so the whole run is sampled.
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        Ok(Self { stop, thread })
    }

    fn stop(self) -> Result<(i64, usize, u64), BoxError> {
        self.stop.store(true, Ordering::Relaxed);
        let result = self.thread.join().map_err(|_| "sampler thread panicked")?;
        Ok(result.map_err(|e| format!("sampler: {e}"))?)
    }
}
