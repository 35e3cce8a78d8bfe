//! `/items`: create, list, read, replace, delete. Each handler checks out a
//! connection for the duration of its one query.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::routing::get;
use serde::Deserialize;

use super::error::ApiError;
use super::server::App;
use super::store::{Item, NewItem, Store};

/// Longest accepted item name, in characters.
const MAX_NAME: usize = 200;
/// Most items one list returns.
const MAX_LIMIT: i64 = 1000;

/// The `/items` routes.
pub fn routes<DB: Store>() -> axum::Router<App<DB>> {
    axum::Router::new()
        .route("/items", get(list::<DB>).post(create::<DB>))
        .route(
            "/items/{id}",
            get(read::<DB>).put(replace::<DB>).delete(remove::<DB>),
        )
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<i64>,
}

fn validate(item: &NewItem) -> Result<(), ApiError> {
    let name = item.name.trim();
    if name.is_empty() {
        return Err(ApiError::unprocessable("name must not be empty"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::unprocessable(format!(
            "name must be at most {MAX_NAME} characters"
        )));
    }
    if item.quantity < 0 {
        return Err(ApiError::unprocessable("quantity must not be negative"));
    }
    Ok(())
}

async fn list<DB: Store>(
    State(app): State<App<DB>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Item>>, ApiError> {
    let limit = query?.0.limit.unwrap_or(100);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be 1..={MAX_LIMIT}"),
        ));
    }
    // Reads go to the read-only connections of a SQLite file (one writer,
    // many readers); on PostgreSQL `reader()` is the pool itself.
    Ok(Json(DB::list(&app.pool.reader(), limit).await?))
}

async fn create<DB: Store>(
    State(app): State<App<DB>>,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<(StatusCode, HeaderMap, Json<Item>), ApiError> {
    let Json(new) = body?;
    validate(&new)?;
    let item = match &app.inserts {
        // One writer: queued with other creates, written in one statement.
        Some(inserts) => inserts.insert(new).await?,
        None => DB::insert(&app.pool, &new).await?,
    };
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/items/{}", item.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(item)))
}

async fn read<DB: Store>(
    State(app): State<App<DB>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<Item>, ApiError> {
    let Path(id) = id?;
    DB::get(&app.pool.reader(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("item"))
}

async fn replace<DB: Store>(
    State(app): State<App<DB>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<NewItem>, JsonRejection>,
) -> Result<Json<Item>, ApiError> {
    let Path(id) = id?;
    let Json(new) = body?;
    validate(&new)?;
    DB::update(&app.pool, id, &new)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("item"))
}

async fn remove<DB: Store>(
    State(app): State<App<DB>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    if DB::delete(&app.pool, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("item"))
    }
}
