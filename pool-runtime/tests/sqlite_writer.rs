//! A SQLite file database split into one writer and read-only readers
//! (`sqlite_single_writer`, the default): writers queue in the pool, first
//! come first served, instead of in SQLite's busy handler, so many writers
//! never see "database is locked", and readers read while the writer
//! writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pool_runtime::{Pool, PoolSettings, SqliteSettings};
use sqlx::{Executor, Sqlite};

struct Db {
    _dir: tempfile::TempDir,
    url: String,
}

fn db() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    Db { _dir: dir, url }
}

async fn pool(url: &str, sqlite: SqliteSettings) -> Pool<Sqlite> {
    let settings = PoolSettings::builder(url)
        .pool_size(5)
        .max_overflow(10)
        .pool_timeout(Duration::from_secs(30))
        .sqlite(sqlite)
        .build()
        .unwrap();
    let pool = Pool::connect(settings).await.expect("connect");
    pool.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .await
        .unwrap();
    pool
}

/// A busy handler that gives up after 20 ms: writers that meet each other
/// inside SQLite fail with "database is locked" almost at once.
fn impatient(single_writer: bool) -> SqliteSettings {
    SqliteSettings {
        single_writer,
        busy_timeout: Duration::from_millis(20),
        ..SqliteSettings::default()
    }
}

/// A transaction that reads, then writes (a counter, a balance): under
/// WAL, SQLite refuses its upgrade to a write with "database is locked"
/// at once when another connection wrote meanwhile; no busy handler helps.
async fn read_then_write(conn: &mut sqlx::SqliteConnection, name: String) -> sqlx::Result<()> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO items (name) VALUES ($1)")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// 64 tasks × 20 read-then-write transactions through `acquire()` and `&mut *conn`
/// (as the example service writes), with 8 tasks reading through
/// `reader()` meanwhile; returns the errors seen.
async fn write_storm(pool: &Pool<Sqlite>) -> Vec<String> {
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reads = Arc::new(AtomicUsize::new(0));
    let writers = (0..64).map(|task| {
        let pool = pool.clone();
        let errors = Arc::clone(&errors);
        tokio::spawn(async move {
            for i in 0..20 {
                let mut conn = pool.acquire().await.unwrap();
                if let Err(e) = read_then_write(&mut conn, format!("{task}-{i}")).await {
                    errors.lock().unwrap().push(e.to_string());
                }
            }
        })
    });
    let writers: Vec<_> = writers.collect();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            let reads = Arc::clone(&reads);
            tokio::spawn(async move {
                for _ in 0..20 {
                    let _: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
                        .fetch_one(&pool.reader())
                        .await
                        .unwrap();
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in writers.into_iter().chain(readers) {
        task.await.unwrap();
    }
    assert_eq!(reads.load(Ordering::Relaxed), 160);
    errors.lock().unwrap().clone()
}

#[tokio::test]
async fn many_writers_never_see_database_is_locked() {
    // Control: 15 connections that all write, a 20 ms busy handler.
    let control = db();
    let unsplit = pool(&control.url, impatient(false)).await;
    let errors = write_storm(&unsplit).await;
    assert!(
        errors.iter().any(|e| e.contains("database is locked")),
        "the control run must meet SQLite's lock: {errors:?}"
    );
    // One writer: the same storm, the same impatient busy handler.
    let split = db();
    let pool = pool(&split.url, impatient(true)).await;
    let errors = write_storm(&pool).await;
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool.reader())
        .await
        .unwrap();
    assert_eq!(rows, 64 * 20, "every transaction committed");
    let s = pool.status();
    assert_eq!(s.size, 1, "one writer connection: {s}");
    let readers = s.readers.as_ref().expect("a split pool shows its readers");
    assert!(readers.totals.acquired >= 160, "{readers}");
}

#[tokio::test]
async fn readers_read_while_the_writer_holds_a_transaction() {
    let db = db();
    let pool = pool(&db.url, SqliteSettings::default()).await;
    pool.execute("INSERT INTO items (name) VALUES ('committed')")
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO items (name) VALUES ('pending')")
        .execute(&mut *tx)
        .await
        .unwrap();
    // The write lock is held; a reader sees the last commit, at once.
    let seen: i64 = tokio::time::timeout(
        Duration::from_secs(2),
        sqlx::query_scalar("SELECT count(*) FROM items").fetch_one(&pool.reader()),
    )
    .await
    .expect("a reader is not blocked by the writer")
    .unwrap();
    assert_eq!(seen, 1);
    tx.commit().await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool.reader())
        .await
        .unwrap();
    assert_eq!(seen, 2);
}

#[tokio::test]
async fn a_write_through_the_reader_is_refused() {
    let db = db();
    let pool = pool(&db.url, SqliteSettings::default()).await;
    let error = sqlx::query("INSERT INTO items (name) VALUES ('x')")
        .execute(&pool.reader())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("readonly"), "{error}");
    // `&Pool` itself writes (through the writer).
    sqlx::query("INSERT INTO items (name) VALUES ('x')")
        .execute(&pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_split_shows_in_status_and_resizes_the_readers() {
    let db = db();
    let pool = pool(&db.url, SqliteSettings::default()).await;
    let s = pool.status();
    let readers = s.readers.as_ref().unwrap();
    assert_eq!((s.pool_size, s.max_overflow), (1, 0), "{s}");
    assert_eq!((readers.pool_size, readers.max_overflow), (5, 10), "{s}");
    assert!(readers.name.ends_with(".readers"));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["readers"]["pool_size"], 5);
    pool.resize(2, 0).unwrap();
    let s = pool.status();
    assert_eq!(
        (s.pool_size, s.readers.as_ref().unwrap().pool_size),
        (1, 2),
        "{s}"
    );
}

#[tokio::test]
async fn in_memory_databases_are_not_split() {
    let pool = pool("sqlite::memory:", SqliteSettings::default()).await;
    assert!(pool.status().readers.is_none());
    // The reader is the pool itself: it sees the table the pool made.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&pool.reader())
        .await
        .unwrap();
    assert_eq!(n, 0);
}
