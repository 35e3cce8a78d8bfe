//! Fixtures: a test's database URL, `PoolSettings` or ready pool, on the
//! shared server (or a given one), in one line.
//!
//! Each hands back the [`TestDatabase`] too: the database lives as long as
//! that value, so bind it to a name (`let (_db, pool) = ...`), not `_`.
//! Every pool gets a unique `application_name`, which is how the server-side
//! probes and assertions find its connections.

use pool_runtime::{Pool, PoolSettings, PoolSettingsBuilder};
use sqlx::Postgres;

use crate::{TestDatabase, TestServer, shared_server, util};

/// A unique `application_name` starting with `prefix` (at most 63 bytes,
/// PostgreSQL's limit).
pub fn unique_app_name(prefix: &str) -> String {
    let suffix = util::random_hex(8);
    let mut prefix: String = prefix
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    prefix.truncate(63 - suffix.len() - 1);
    format!("{prefix}-{suffix}")
}

/// The test's name as libtest gives it (its thread name), for app names.
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main" && !n.starts_with("tokio-runtime"))
        .map(|n| n.rsplit("::").next().unwrap_or(n).to_owned())
        .unwrap_or_else(|| "test".to_owned())
}

/// A fresh database on the shared server. Panics with the reason when no
/// server can start or the database can't be created.
pub async fn database() -> TestDatabase {
    database_on(shared_server()).await
}

/// A fresh database on `server`.
pub async fn database_on(server: &TestServer) -> TestDatabase {
    server
        .create_database()
        .await
        .unwrap_or_else(|e| panic!("pool-testkit: {e}"))
}

/// A fresh database on the shared server and its URL.
pub async fn database_url() -> (TestDatabase, String) {
    let db = database().await;
    let url = db.url();
    (db, url)
}

/// Default `PoolSettings` for a fresh database on the shared server, with
/// a unique `application_name` starting with `app_name` (also the pool's
/// name).
pub async fn settings(app_name: &str) -> (TestDatabase, PoolSettings) {
    settings_on(shared_server(), app_name).await
}

/// [`settings`] on `server`.
pub async fn settings_on(server: &TestServer, app_name: &str) -> (TestDatabase, PoolSettings) {
    let db = database_on(server).await;
    let app = unique_app_name(app_name);
    let settings = PoolSettings::builder(db.url())
        .name(app.clone())
        .application_name(app)
        .build()
        .unwrap_or_else(|e| panic!("pool-testkit: default settings rejected: {e}"));
    (db, settings)
}

/// A connected pool on a fresh database of the shared server. `configure`
/// adjusts the settings (size, overflow, timeouts, ...); the
/// `application_name` is unique per call, read it back with
/// `pool.settings().application_name`.
///
/// ```no_run
/// # async fn demo() {
/// let (_db, pool) = pool_testkit::fixtures::pool(|s| s.pool_size(2).max_overflow(1)).await;
/// # }
/// ```
pub async fn pool(
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> (TestDatabase, Pool<Postgres>) {
    pool_on(shared_server(), configure).await
}

/// [`pool`] on `server`.
pub async fn pool_on(
    server: &TestServer,
    configure: impl FnOnce(PoolSettingsBuilder) -> PoolSettingsBuilder,
) -> (TestDatabase, Pool<Postgres>) {
    let db = database_on(server).await;
    let app = unique_app_name(&test_name());
    let builder = PoolSettings::builder(db.url())
        .name(app.clone())
        .application_name(app);
    let settings = configure(builder)
        .build()
        .unwrap_or_else(|e| panic!("pool-testkit: pool settings: {e}"));
    let pool = Pool::connect(settings)
        .await
        .unwrap_or_else(|e| panic!("pool-testkit: connecting the pool: {e}"));
    (db, pool)
}

#[cfg(test)]
mod tests {
    use super::unique_app_name;

    #[test]
    fn app_names_are_unique_and_fit() {
        let a = unique_app_name("orders");
        assert!(a.starts_with("orders-"));
        assert_ne!(a, unique_app_name("orders"));
        assert!(unique_app_name(&"x".repeat(100)).len() <= 63);
    }
}
