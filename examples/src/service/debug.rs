//! Endpoints that misuse the pool on purpose, so tests (and people trying
//! the service) can watch health turn warning and critical and see a leak
//! report. Mounted only when `SERVICE_DEBUG_ENDPOINTS` is on.
//!
//! - `POST /debug/hold?count=K&ms=N`: check out K connections and keep them
//!   N ms (or until released) in the background; answers once all are held.
//! - `DELETE /debug/hold`: give every held connection back now.
//! - `POST /debug/leak?ms=N`: hold one connection N ms inside the request,
//!   past `leak_threshold`, so the pool reports the acquire site below.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::post;
use pool_runtime::PooledConnection;
use serde::Deserialize;

use super::error::ApiError;
use super::server::App;
use super::store::Store;

/// Longest hold accepted, so a typo cannot pin the pool for hours.
const MAX_HOLD_MS: u64 = 10 * 60 * 1000;

/// Connections held by `/debug/hold`, by batch.
pub struct Held<DB: Store> {
    next: AtomicU64,
    batches: Mutex<HashMap<u64, Vec<PooledConnection<DB>>>>,
}

impl<DB: Store> Default for Held<DB> {
    fn default() -> Self {
        Self {
            next: AtomicU64::new(0),
            batches: Mutex::new(HashMap::new()),
        }
    }
}

impl<DB: Store> Held<DB> {
    fn keep(&self, batch: Vec<PooledConnection<DB>>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, batch);
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<PooledConnection<DB>>>> {
        self.batches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives one batch back (outside the lock: returning may close).
    fn release(&self, id: u64) -> usize {
        let batch = self.lock().remove(&id);
        batch.map_or(0, |b| b.len())
    }

    /// Gives everything back; used by `DELETE /debug/hold` and at shutdown.
    pub fn release_all(&self) -> usize {
        let all: Vec<_> = self.lock().drain().collect();
        all.iter().map(|(_, b)| b.len()).sum()
    }
}

/// The debug routes.
pub fn routes<DB: Store>() -> axum::Router<App<DB>> {
    axum::Router::new()
        .route("/debug/hold", post(hold::<DB>).delete(release::<DB>))
        .route("/debug/leak", post(leak::<DB>))
}

#[derive(Debug, Deserialize)]
struct HoldQuery {
    #[serde(default = "one")]
    count: u32,
    ms: u64,
}

fn one() -> u32 {
    1
}

fn check_ms(ms: u64) -> Result<Duration, ApiError> {
    if ms > MAX_HOLD_MS {
        return Err(ApiError::unprocessable(format!(
            "ms must be at most {MAX_HOLD_MS}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

async fn hold<DB: Store>(
    State(app): State<App<DB>>,
    query: Result<Query<HoldQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let hold_for = check_ms(q.ms)?;
    let mut batch = Vec::new();
    for _ in 0..q.count {
        // On a timeout the connections already taken go back with `batch`.
        batch.push(app.pool.acquire().await?); // marker: debug-hold-acquire
    }
    let id = app.held.keep(batch);
    let held = Arc::clone(&app.held);
    tokio::spawn(async move {
        tokio::time::sleep(hold_for).await;
        held.release(id);
    });
    Ok(Json(serde_json::json!({ "held": q.count, "ms": q.ms })))
}

async fn release<DB: Store>(State(app): State<App<DB>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "released": app.held.release_all() }))
}

#[derive(Debug, Deserialize)]
struct LeakQuery {
    ms: u64,
}

async fn leak<DB: Store>(
    State(app): State<App<DB>>,
    query: Result<Query<LeakQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = query?;
    let hold_for = check_ms(q.ms)?;
    let conn = app.pool.acquire().await?; // marker: debug-leak-acquire
    tokio::time::sleep(hold_for).await;
    drop(conn);
    Ok(Json(serde_json::json!({ "held_ms": q.ms })))
}
