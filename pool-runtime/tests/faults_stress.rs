//! The real pool's state machine (acquire, return, overflow, cancel,
//! discard, close) under a randomized scheduler: many seeds, each a fresh
//! multi-thread runtime, random `yield_now` points and random
//! cancellations, on SQLite in-memory connections (no network, so runs are
//! fast and many). A monitor checks the counts while it runs; afterwards
//! nothing may be checked out, connecting or waiting, and every open
//! connection is accounted for. `FAULTS_SEED` replays one seed;
//! `FAULTS_LONG` runs more seeds.

mod faults_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use faults_common::*;
use pool_runtime::{Pool, PoolClass, PoolSettings};
use rand::Rng;
use sqlx::Sqlite;

async fn yields(rng: &mut impl Rng) {
    for _ in 0..rng.random_range(0..4) {
        tokio::task::yield_now().await;
    }
}

fn run_seed(seed: u64) {
    let mut rng = rng(seed);
    let workers = rng.random_range(1..=3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let (size, overflow) = (rng.random_range(1..=4u32), rng.random_range(0..=3u32));
    let settings = PoolSettings::builder("sqlite::memory:")
        .name(format!("stress-{seed}"))
        .pool_size(size)
        .max_overflow(overflow)
        .pool_timeout(Duration::from_millis(rng.random_range(20..300)))
        .pool_pre_ping(rng.random_bool(0.5))
        .pre_ping_bypass(if rng.random_bool(0.5) {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        })
        .pool_use_lifo(rng.random_bool(0.5))
        .pool_recycle(
            rng.random_bool(0.3)
                .then(|| Duration::from_millis(rng.random_range(5..50))),
        )
        .pool_class(if rng.random_bool(0.1) {
            PoolClass::Null
        } else {
            PoolClass::Queue
        })
        .min_idle(if rng.random_bool(0.3) { 1 } else { 0 })
        .metrics(false)
        .build()
        .unwrap();
    let capacity = settings.capacity();
    let close_midway = rng.random_bool(0.15);
    runtime.block_on(async move {
        let pool: Pool<Sqlite> = Pool::connect_lazy(settings).expect("settings");
        let holding = Arc::new(AtomicU32::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let monitor = tokio::spawn({
            let (pool, done) = (pool.clone(), done.clone());
            async move {
                while !done.load(Ordering::Relaxed) {
                    assert_consistent(&pool.status(), capacity);
                    tokio::task::yield_now().await;
                }
            }
        });
        let tasks: Vec<_> = (0..24u64)
            .map(|t| {
                let (pool, holding) = (pool.clone(), holding.clone());
                tokio::spawn(async move {
                    let mut rng =
                        faults_common::rng(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    for _ in 0..20 {
                        let acquire = pool.acquire();
                        let conn = if rng.random_bool(0.3) {
                            let cut = Duration::from_micros(rng.random_range(0..2_000));
                            tokio::time::timeout(cut, acquire).await.ok()
                        } else {
                            Some(acquire.await)
                        };
                        let Some(Ok(mut conn)) = conn else { continue };
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(
                            now <= capacity,
                            "{now} connections held at once, cap {capacity}"
                        );
                        yields(&mut rng).await;
                        match rng.random_range(0..5) {
                            0 => {
                                sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
                            }
                            1 => conn.close_on_return(),
                            2 => {
                                // A query cancelled part-way.
                                let q = sqlx::query("SELECT 1").execute(&mut *conn);
                                let _ = tokio::time::timeout(
                                    Duration::from_micros(rng.random_range(0..200)),
                                    q,
                                )
                                .await;
                            }
                            _ => {}
                        }
                        yields(&mut rng).await;
                        holding.fetch_sub(1, Ordering::SeqCst);
                        drop(conn);
                    }
                })
            })
            .collect();
        if close_midway {
            tokio::time::sleep(Duration::from_millis(2)).await;
            pool.close().await;
        }
        for t in tasks {
            t.await.expect("no task panics");
        }
        done.store(true, Ordering::Relaxed);
        monitor.await.expect("the counts stayed consistent");
        let s = settled(&pool, SLACK).await;
        if close_midway {
            assert_eq!(s.size, 0, "a closed pool keeps nothing open: {s:?}");
        }
        pool.close().await;
        let s = pool.status();
        assert_eq!((s.size, s.checked_out, s.waiting), (0, 0, 0), "{s:?}");
    });
}

#[test]
fn randomized_schedules_keep_every_invariant() {
    if let Ok(seed) =
        std::env::var("FAULTS_SEED").map(|s| s.parse::<u64>().expect("FAULTS_SEED is a number"))
    {
        return run_seed(seed);
    }
    let base = seed();
    let seeds = long_secs().map_or(40, |s| s * 20);
    for i in 0..seeds {
        let seed = base.wrapping_add(i);
        let outcome = std::panic::catch_unwind(|| run_seed(seed));
        assert!(
            outcome.is_ok(),
            "seed {seed} failed; replay with FAULTS_SEED={seed}"
        );
    }
    eprintln!("{seeds} seeds passed");
}
