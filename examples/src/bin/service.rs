//! The example service (the main job): items CRUD, `/health/db_pool` and
//! `/metrics` over a typed pool. `cargo run -p pool-examples --bin service`
//! runs it on `sqlite://data/app.db`; set `DATABASE_URL=postgres://…` for
//! PostgreSQL. Variables: examples/docs/ENV.md.

use std::process::ExitCode;

use pool_examples::service::{self, ServiceConfig, telemetry};
use pool_runtime::PoolConfig;
use pool_runtime::config::EnvSource;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_tracing();
    let cfg = match ServiceConfig::load(&EnvSource::process()) {
        Ok(cfg) => cfg,
        Err(err) => {
            // Every bad variable at once, values of secrets omitted.
            eprintln!("configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    match service::run(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Once: a log event as well printed every failure twice (issue
            // 10, `a_dead_database_is_reported_once_at_start` in
            // tests/service_sqlite.rs).
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
