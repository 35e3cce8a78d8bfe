//! The `items` table on either backend. SQL is written once, with `$1`
//! placeholders that both SQLite and PostgreSQL accept; only the schema
//! differs. Each function is one statement on `&Pool` (or its reader): the
//! connection is held for that statement only, and the same code is
//! correct directly and behind PgBouncer in transaction mode, where
//! holding a connection is refused (`APP_DB_PGBOUNCER=transaction`).

use std::future::Future;

use pool_runtime::{Backend, Pool};
use serde::{Deserialize, Serialize};

/// A stored item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Item {
    pub id: i64,
    pub name: String,
    pub quantity: i64,
}

/// What a client sends to create or replace an item.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    pub name: String,
    #[serde(default)]
    pub quantity: i64,
}

/// The queries, per backend.
pub trait Store: Backend {
    /// `CREATE TABLE IF NOT EXISTS items …` in this backend's dialect.
    const SCHEMA: &'static str;

    fn create_table(pool: &Pool<Self>) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn list(
        pool: &Pool<Self>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Item>, sqlx::Error>> + Send;
    fn get(
        pool: &Pool<Self>,
        id: i64,
    ) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;
    fn insert(
        pool: &Pool<Self>,
        item: &NewItem,
    ) -> impl Future<Output = Result<Item, sqlx::Error>> + Send;
    /// Inserts `items` in one statement; the stored rows in `items`' order.
    fn insert_many(
        pool: &Pool<Self>,
        items: &[&NewItem],
    ) -> impl Future<Output = Result<Vec<Item>, sqlx::Error>> + Send;
    fn update(
        pool: &Pool<Self>,
        id: i64,
        item: &NewItem,
    ) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;
    fn delete(pool: &Pool<Self>, id: i64)
    -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
}

/// One implementation body for both backends: generic sqlx code would need
/// a dozen higher-ranked bounds on every handler instead.
macro_rules! store {
    ($db:ty, $schema:literal) => {
        impl Store for $db {
            const SCHEMA: &'static str = $schema;

            async fn create_table(pool: &Pool<Self>) -> Result<(), sqlx::Error> {
                sqlx::query(Self::SCHEMA).execute(pool).await.map(drop)
            }

            async fn list(pool: &Pool<Self>, limit: i64) -> Result<Vec<Item>, sqlx::Error> {
                sqlx::query_as("SELECT id, name, quantity FROM items ORDER BY id LIMIT $1")
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            }

            async fn get(pool: &Pool<Self>, id: i64) -> Result<Option<Item>, sqlx::Error> {
                sqlx::query_as("SELECT id, name, quantity FROM items WHERE id = $1")
                    .bind(id)
                    .fetch_optional(pool)
                    .await
            }

            async fn insert(pool: &Pool<Self>, item: &NewItem) -> Result<Item, sqlx::Error> {
                sqlx::query_as(
                    "INSERT INTO items (name, quantity) VALUES ($1, $2) RETURNING id, name, quantity",
                )
                .bind(&item.name)
                .bind(item.quantity)
                .fetch_one(pool)
                .await
            }

            async fn insert_many(
                pool: &Pool<Self>,
                items: &[&NewItem],
            ) -> Result<Vec<Item>, sqlx::Error> {
                let mut sql = sqlx::QueryBuilder::<$db>::new("INSERT INTO items (name, quantity) ");
                sql.push_values(items, |mut row, item| {
                    row.push_bind(item.name.clone()).push_bind(item.quantity);
                });
                sql.push(" RETURNING id, name, quantity");
                let mut rows: Vec<Item> = sql.build_query_as().fetch_all(pool).await?;
                // RETURNING's order is unspecified; ids grow in VALUES order
                // (one statement, one writer).
                rows.sort_unstable_by_key(|row| row.id);
                if rows.len() != items.len() {
                    return Err(sqlx::Error::Protocol(format!(
                        "inserted {} rows, got {} back", items.len(), rows.len()
                    )));
                }
                Ok(rows)
            }

            async fn update(
                pool: &Pool<Self>,
                id: i64,
                item: &NewItem,
            ) -> Result<Option<Item>, sqlx::Error> {
                sqlx::query_as(
                    "UPDATE items SET name = $1, quantity = $2 WHERE id = $3 \
                     RETURNING id, name, quantity",
                )
                .bind(&item.name)
                .bind(item.quantity)
                .bind(id)
                .fetch_optional(pool)
                .await
            }

            async fn delete(pool: &Pool<Self>, id: i64) -> Result<bool, sqlx::Error> {
                let done = sqlx::query("DELETE FROM items WHERE id = $1").bind(id).execute(pool).await?;
                Ok(done.rows_affected() > 0)
            }
        }
    };
}

store!(
    sqlx::Sqlite,
    "CREATE TABLE IF NOT EXISTS items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        quantity BIGINT NOT NULL DEFAULT 0
    )"
);

store!(
    sqlx::Postgres,
    "CREATE TABLE IF NOT EXISTS items (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL,
        quantity BIGINT NOT NULL DEFAULT 0
    )"
);
