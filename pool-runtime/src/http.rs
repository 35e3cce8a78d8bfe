//! Pool status over HTTP for axum services (cargo feature `axum`).
//!
//! The body is [`Status`] as JSON; the status code is 503 only when the
//! pool is [`Health::Critical`], so a load balancer drains an instance whose
//! pool is exhausted but keeps one that is merely busy (warning is 200).
//! Nothing in the body comes from the URL: [`Status`] never holds it.
//!
//! ```no_run
//! use axum::Router;
//! use pool_runtime::{Pool, http};
//! # fn demo(pool: Pool<sqlx::Sqlite>) {
//! let app: Router = Router::new().route("/health/db_pool", http::status_route(pool));
//! # }
//! ```

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::registry::PoolRegistry;
use crate::{Backend, Health, Pool, Status};

/// 503 when critical, 200 otherwise.
pub fn status_code(health: Health) -> StatusCode {
    match health {
        Health::Critical => StatusCode::SERVICE_UNAVAILABLE,
        Health::Healthy | Health::Warning => StatusCode::OK,
    }
}

/// JSON with `Cache-Control: no-store`, so no proxy serves a stale health.
fn json_response(code: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = (code, bytes).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(err) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("status serialization failed: {err}"),
        )
            .into_response(),
    }
}

/// One pool's status as a response: JSON body, 503 when critical.
pub fn status_response(status: &Status) -> Response {
    json_response(status_code(status.health), status)
}

/// A `GET` route serving `pool`'s status; mount it at any path.
pub fn status_route<DB: Backend, S>(pool: Pool<DB>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move || {
        let status = pool.status();
        async move { status_response(&status) }
    })
}

/// A `GET` route serving a [`ReplicaPool`](crate::ReplicaPool)'s status
/// (the write pool's, with every host's role, lag and read pool): 503 when
/// critical (the primary's pool is, or no standby serves reads and
/// `read_fallback` is off); a standby down or lagging is a warning (200).
#[cfg(feature = "postgres")]
pub fn replicas_route<S>(replicas: crate::ReplicaPool) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move || {
        let status = replicas.status();
        async move { status_response(&status) }
    })
}

/// A handler for routers whose state yields a pool (`Pool<DB>: FromRef<S>`):
/// `.route("/health/db_pool", get(pool_runtime::http::pool_status::<Sqlite>))`.
pub async fn pool_status<DB: Backend>(State(pool): State<Pool<DB>>) -> Response {
    status_response(&pool.status())
}

/// The statuses of every pool in a registry, and the worst health of them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RegistryStatus {
    /// The worst health among the pools (healthy when there are none).
    pub health: Health,
    /// One status per pool, by name.
    pub pools: Vec<Status>,
}

impl RegistryStatus {
    /// Snapshots every pool of `registry`.
    pub fn of<DB: Backend>(registry: &PoolRegistry<DB>) -> Self {
        let pools = registry.statuses();
        let health = pools
            .iter()
            .map(|s| s.health)
            .max()
            .unwrap_or(Health::Healthy);
        Self { health, pools }
    }
}

/// A `GET` route serving every pool of `registry`: 503 when any is critical.
pub fn registry_route<DB: Backend, S>(registry: PoolRegistry<DB>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move || {
        let status = RegistryStatus::of(&registry);
        async move { json_response(status_code(status.health), &status) }
    })
}

/// A `GET` route with a `{name}` path parameter serving one pool of
/// `registry`, 404 (JSON) for a name it does not hold.
pub fn registry_pool_route<DB: Backend, S>(registry: PoolRegistry<DB>) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    get(move |Path(name): Path<String>| {
        let response = match registry.status(&name) {
            Some(status) => status_response(&status),
            None => json_response(
                StatusCode::NOT_FOUND,
                &serde_json::json!({ "error": "no such pool", "pools": registry.names().collect::<Vec<_>>() }),
            ),
        };
        async move { response }
    })
}
