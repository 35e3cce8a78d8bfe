//! A task panics while holding a connection inside a transaction: the
//! transaction is rolled back (no row committed, checked from a fresh
//! connection), and the connection is reset before reuse or closed.

mod faults_common;

use faults_common::*;
use pool_runtime::ResetOnReturn;
use sqlx::Connection as _;

async fn with_table(name: &str, reset: ResetOnReturn) -> Fixture {
    let f = fixture(name, |b| {
        b.pool_size(1).max_overflow(0).reset_on_return(reset)
    })
    .await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    f
}

/// After the panic: nothing committed, the pool settled, the server sees
/// no connection idle in a transaction, and the next user's autocommit
/// write commits (the connection was reset, not reused dirty).
async fn clean_after(f: &Fixture) {
    settled(&f.pool, SLACK).await;
    server_agrees(server(), &f.app, &f.pool).await;
    assert_eq!(
        committed_rows(&f.db, "t").await,
        0,
        "the panicking task's row was committed"
    );
    sqlx::query("INSERT INTO t VALUES (2)")
        .execute(&f.pool)
        .await
        .unwrap();
    assert_eq!(
        committed_rows(&f.db, "t").await,
        1,
        "the next user's write did not commit"
    );
    settled(&f.pool, SLACK).await;
}

fn expect_panic(r: Result<(), tokio::task::JoinError>) {
    assert!(r.expect_err("the task panics").is_panic());
}

async fn panic_inside_a_pool_transaction() {
    let f = with_table("pn_pooltx", ResetOnReturn::Rollback).await;
    let pool = f.pool.clone();
    expect_panic(
        tokio::spawn(async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            panic!("boom while in a transaction");
        })
        .await,
    );
    clean_after(&f).await;
}

async fn panic_inside_an_sqlx_transaction_on_a_pooled_connection() {
    let f = with_table("pn_sqlxtx", ResetOnReturn::Rollback).await;
    let pool = f.pool.clone();
    expect_panic(
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            let mut tx = (*conn).begin().await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .unwrap();
            panic!("boom while in a transaction");
        })
        .await,
    );
    clean_after(&f).await;
}

async fn panic_after_a_raw_begin_with_rollback_always() {
    let f = with_table("pn_raw", ResetOnReturn::RollbackAlways).await;
    let pool = f.pool.clone();
    expect_panic(
        tokio::spawn(async move {
            let mut conn = pool.acquire().await.unwrap();
            sqlx::query("BEGIN").execute(&mut *conn).await.unwrap();
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *conn)
                .await
                .unwrap();
            panic!("boom while in a transaction");
        })
        .await,
    );
    clean_after(&f).await;
}

/// The panic unwinds on a thread with no tokio runtime: the connection
/// can't be rolled back there, so it is closed (the server then rolls back).
async fn panic_on_a_thread_outside_the_runtime() {
    let f = with_table("pn_thread", ResetOnReturn::Rollback).await;
    let mut tx = f.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let joined = std::thread::spawn(move || {
        let _tx = tx;
        panic!("boom outside the runtime");
    })
    .join();
    assert!(joined.is_err());
    let s = settled(&f.pool, SLACK).await;
    assert_eq!((s.size, s.totals.closed.reset_failed), (0, 1), "{s:?}");
    pool_testkit::assert::eventually_connections(server(), &f.app, 0, SLACK).await;
    clean_after(&f).await;
}

/// The cases above run in one test: under nextest every test is its own
/// process, which starts its own server, and that start-up would dominate.
/// A failure names the case in its message and backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_while_in_a_transaction() {
    panic_inside_a_pool_transaction().await;
    panic_inside_an_sqlx_transaction_on_a_pooled_connection().await;
    panic_after_a_raw_begin_with_rollback_always().await;
    panic_on_a_thread_outside_the_runtime().await;
}
