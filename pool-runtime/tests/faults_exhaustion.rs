//! Exhaustion: callers beyond capacity get the Timeout error after
//! `pool_timeout`, naming the counts and the oldest holder's call site; the
//! pool serves again as soon as connections come back.

mod faults_common;

use std::time::{Duration, Instant};

use faults_common::*;
use pool_runtime::Error;

async fn callers_beyond_capacity_time_out_with_counts_and_the_oldest_holder() {
    let timeout = Duration::from_millis(300);
    let f = fixture("ex_timeout", |b| {
        b.pool_size(2).max_overflow(1).pool_timeout(timeout)
    })
    .await;
    let first = f.pool.acquire().await.unwrap(); // the oldest holder: this line
    let holder_line = line!() - 1;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let others = [
        f.pool.acquire().await.unwrap(),
        f.pool.acquire().await.unwrap(),
    ];
    let start = Instant::now();
    let results = futures_util::future::join_all((0..5).map(|_| f.pool.acquire())).await;
    assert!(start.elapsed() < timeout + SLACK, "the timeouts hung");
    for result in results {
        let Err(Error::Timeout(e)) = result else {
            panic!("expected a Timeout, got {result:?}")
        };
        assert_eq!(
            (e.size, e.max_overflow, e.checked_out, e.idle),
            (2, 1, 3, 0),
            "{e:?}"
        );
        assert!(e.waited >= timeout && e.timeout == timeout, "{e:?}");
        assert!(e.waiting <= 4, "{e:?}");
        let (site, held) = e.oldest_holder.clone().expect("the oldest holder is named");
        assert!(
            site.contains(&format!("faults_exhaustion.rs:{holder_line}")),
            "{site}"
        );
        assert!(held >= Duration::from_millis(20), "{held:?}");
        let msg = e.to_string();
        for part in [
            "QueuePool limit of size 2 overflow 1 reached",
            "3 checked out",
            "pool_timeout 0.30s",
            "acquired at",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
    }
    assert_eq!(
        server().count_connections(&f.app).await.unwrap(),
        3,
        "never above the cap"
    );
    let s = f.pool.status();
    assert_eq!((s.waiting, s.totals.timeouts), (0, 5), "{s:?}");
    drop(first);
    drop(others);
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&f.pool)
        .await
        .unwrap();
    assert_eq!(one, 1);
    settled(&f.pool, SLACK).await;
    server_agrees(server(), &f.app, &f.pool).await;
}

async fn the_pool_serves_again_as_soon_as_connections_return() {
    let f = fixture("ex_serve", |b| {
        b.pool_size(1)
            .max_overflow(0)
            .pool_timeout(Duration::from_secs(10))
    })
    .await;
    let held = f.pool.acquire().await.unwrap();
    let waiters: Vec<_> = (0..20)
        .map(|i| {
            let pool = f.pool.clone();
            tokio::spawn(async move {
                let v: i32 = sqlx::query_scalar("SELECT $1")
                    .bind(i)
                    .fetch_one(&pool)
                    .await?;
                Ok::<_, sqlx::Error>(v)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = f.pool.status();
    assert_eq!((s.checked_out, s.waiting), (1, 20), "{s:?}");
    drop(held);
    for (i, w) in waiters.into_iter().enumerate() {
        let v = tokio::time::timeout(SLACK, w)
            .await
            .expect("a waiter hung")
            .unwrap()
            .expect("served");
        assert_eq!(v, i as i32);
    }
    let s = settled(&f.pool, SLACK).await;
    assert_eq!((s.totals.timeouts, s.size), (0, 1), "{s:?}");
    server_agrees(server(), &f.app, &f.pool).await;
}

/// The cases above run in one test: under nextest every test is its own
/// process, which starts its own server, and that start-up would dominate.
/// A failure names the case in its message and backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhaustion() {
    callers_beyond_capacity_time_out_with_counts_and_the_oldest_holder().await;
    the_pool_serves_again_as_soon_as_connections_return().await;
}
