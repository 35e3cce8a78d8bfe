//! Wiring: pick the backend from the URL, connect, create the table, serve
//! until SIGINT/SIGTERM, then close the pool.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use pool_runtime::config::Loaded;
use pool_runtime::{Pool, PoolConfig};

use super::batch::Inserts;
use super::config::{BackendKind, ServiceConfig};
use super::debug::{self, Held};
use super::store::Store;
use super::{items, telemetry};

/// Errors that end the service, already worded for the operator.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Shared state of the routes.
pub struct App<DB: Store> {
    pub pool: Pool<DB>,
    pub held: Arc<Held<DB>>,
    /// Group commit of creates, when the pool has one writer (SQLite).
    pub inserts: Option<Arc<Inserts>>,
}

impl<DB: Store> Clone for App<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            held: Arc::clone(&self.held),
            inserts: self.inserts.clone(),
        }
    }
}

/// Every route of the service. `/debug/*` only when `debug` is set.
pub fn router<DB: Store>(app: App<DB>, metrics: PrometheusHandle, debug: bool) -> Router {
    let mut routes = items::routes::<DB>();
    if debug {
        routes = routes.merge(debug::routes::<DB>());
    }
    routes
        .route(
            "/health/db_pool",
            pool_runtime::http::status_route(app.pool.clone()),
        )
        .route("/metrics", get(move || render_metrics(metrics.clone())))
        .with_state(app)
}

async fn render_metrics(handle: PrometheusHandle) -> impl IntoResponse {
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], handle.render())
}

/// Runs the service with a loaded config until a shutdown signal.
pub async fn run(cfg: Loaded<ServiceConfig>) -> Result<(), BoxError> {
    // Says which names are read: `DB_POOL_SIZE` does nothing here (issue 10).
    let absolute: Vec<&str> = cfg
        .explain()
        .entries
        .iter()
        .map(|e| e.var.as_str())
        .filter(|var| !var.starts_with(cfg.prefix()))
        .collect();
    tracing::info!(
        prefix = cfg.prefix(),
        profile = %cfg.profile(),
        "configuration: prefix {} (also {}), profile {} ({})",
        cfg.prefix(),
        absolute.join(", "),
        cfg.profile(),
        cfg.explain().profile_source,
    );
    tracing::info!(
        "effective configuration (secrets redacted):\n{}",
        cfg.explain()
    );
    let backend = cfg.backend()?;
    // Before any pool exists: pools register their metric handles once.
    let metrics = telemetry::install_metrics()?;
    match backend {
        BackendKind::Sqlite => serve::<sqlx::Sqlite>(&cfg, metrics).await,
        BackendKind::Postgres => serve::<sqlx::Postgres>(&cfg, metrics).await,
    }
}

async fn serve<DB: Store>(cfg: &ServiceConfig, metrics: PrometheusHandle) -> Result<(), BoxError> {
    if let Some(dir) = cfg.sqlite_dir() {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the SQLite directory {}: {e}", dir.display()))?;
    }
    let pool: Pool<DB> = cfg.connect_as::<DB>().await?;
    DB::create_table(&pool)
        .await
        .map_err(|e| format!("cannot create the items table: {e}"))?;
    tracing::info!(pool = pool.name(), "{}", pool.status());

    // One writer (a SQLite file, split): creates are written in batches.
    let single_writer = pool.status().readers.is_some();
    let app = App {
        pool: pool.clone(),
        held: Arc::new(Held::default()),
        inserts: single_writer.then(|| Arc::new(Inserts::start(pool.clone()))),
    };
    let held = Arc::clone(&app.held);
    if cfg.debug_endpoints {
        tracing::warn!(
            "debug endpoints are on: /debug/hold and /debug/leak hold connections on purpose"
        );
    }
    let listener = tokio::net::TcpListener::bind(cfg.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.addr))?;
    let local = listener.local_addr()?;
    // Tests (and people) read the port from this line when SERVICE_ADDR has port 0.
    println!("listening on http://{local}");
    tracing::info!("listening on http://{local}");

    axum::serve(listener, router(app, metrics, cfg.debug_endpoints))
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    tracing::info!("shutting down: closing the pool");
    held.release_all();
    pool.close().await;
    tracing::info!(pool = pool.name(), "pool closed; bye");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
