//! Logs through `tracing` (to stderr, so stdout carries only the
//! `listening on` line) and metrics through a Prometheus recorder that
//! `/metrics` renders.

use std::io::IsTerminal;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pool_runtime::observe::metrics as pool_metrics;
use tracing_subscriber::EnvFilter;

/// How often the recorder drains histograms; without upkeep they grow.
const UPKEEP: Duration = Duration::from_secs(5);

/// Acquire-wait buckets (seconds): sub-millisecond when healthy, up to
/// the default pool_timeout when not.
const WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0,
];

/// Installs the global `tracing` subscriber; `RUST_LOG` overrides `info`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = std::io::stderr();
    let ansi = stderr.is_terminal();
    // A second init (tests embedding the service) keeps the first one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .try_init();
}

/// Installs the Prometheus recorder and describes the pool metrics. Must
/// run before pools are connected: they register their handles once.
pub fn install_metrics() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(pool_metrics::ACQUIRE_WAIT.to_owned()),
            WAIT_BUCKETS,
        )?
        .install_recorder()?;
    pool_metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP);
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}
