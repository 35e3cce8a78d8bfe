//! Soak: many tasks for a bounded time, random query lengths, random
//! cancellations, random faults (backends terminated, connections reset,
//! latency, short partitions, refused connects, recycling). Afterwards
//! every count is consistent and the server shows no connection beyond the
//! pool's. CI form: a few seconds; `FAULTS_LONG=<secs>` for the long form.

mod faults_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use faults_common::*;
use pool_testkit::ProxyMode;
use rand::Rng;

#[derive(Default, Debug)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    cancelled: AtomicU64,
    faults: AtomicU64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_random_faults() {
    let secs = long_secs().unwrap_or(4);
    let pool_timeout = Duration::from_secs(1);
    let f = fixture_via_proxy("soak", |b| {
        b.pool_size(4)
            .max_overflow(4)
            .pool_timeout(pool_timeout)
            .connect_timeout(Duration::from_secs(1))
            .network_timeout(Duration::from_secs(1))
            .pool_recycle(Some(Duration::from_secs(2)))
    })
    .await;
    sqlx::query("CREATE TABLE t (x int)")
        .execute(&f.pool)
        .await
        .unwrap();
    let seed = seed();
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    // The longest a fault lasts plus every bound: an operation taking
    // longer than this is a hang.
    let hang = Duration::from_millis(1200) + pool_timeout * 3 + SLACK;
    let work = async {
        let workers: Vec<_> = (0..64u64)
            .map(|w| {
                let (pool, tally, stop) = (f.pool.clone(), tally.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = faults_common::rng(seed ^ (w << 32));
                    while !stop.load(Ordering::Relaxed) {
                        let ms = f64::from(rng.random_range(0..10u32));
                        let tx = rng.random_bool(0.2);
                        let op = async {
                            if tx {
                                let mut tx = pool.begin().await?;
                                sqlx::query("INSERT INTO t VALUES (1)")
                                    .execute(&mut *tx)
                                    .await?;
                                tx.commit().await?;
                            } else {
                                sqlx::query("SELECT pg_sleep($1 / 1000)")
                                    .bind(ms)
                                    .execute(&pool)
                                    .await?;
                            }
                            Ok::<_, pool_runtime::Error>(())
                        };
                        let cancel_after = if rng.random_bool(0.1) {
                            Duration::from_micros(rng.random_range(0..5_000))
                        } else {
                            hang
                        };
                        let started = Instant::now();
                        match tokio::time::timeout(cancel_after, op).await {
                            Ok(Ok(())) => tally.ok.fetch_add(1, Ordering::Relaxed),
                            Ok(Err(_)) => tally.errors.fetch_add(1, Ordering::Relaxed),
                            Err(_) if cancel_after < hang => {
                                tally.cancelled.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(_) => panic!(
                                "an operation hung for {:?}: {:?}",
                                started.elapsed(),
                                pool.status()
                            ),
                        };
                    }
                })
            })
            .collect();
        let mut rng = rng(seed);
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
            tally.faults.fetch_add(1, Ordering::Relaxed);
            let proxy = f.proxy();
            match rng.random_range(0..6) {
                0 => {
                    let pids = server().pids(&f.app).await.unwrap_or_default();
                    if let Some(pid) = pids.get(rng.random_range(0..pids.len().max(1))) {
                        let _ = server().terminate(*pid).await;
                    }
                }
                1 => drop(server().terminate_app(&f.app).await),
                2 => proxy.close_all(),
                3 => {
                    proxy.set_mode(ProxyMode::Delay(Duration::from_millis(20)));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                4 => {
                    proxy.set_mode(ProxyMode::Blackhole);
                    tokio::time::sleep(Duration::from_millis(rng.random_range(100..1200))).await;
                }
                _ => {
                    proxy.set_mode(ProxyMode::Drop);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            proxy.set_mode(ProxyMode::Forward);
        }
        stop.store(true, Ordering::SeqCst);
        for w in workers {
            w.await.expect("no worker panics");
        }
    };
    let ((), peak) = pool_testkit::assert::never_above(server(), &f.app, 8, work).await;
    eprintln!(
        "soak secs={secs} peak={peak} {tally:?} status={:?}",
        f.pool.status()
    );
    assert!(tally.ok.load(Ordering::Relaxed) > 100, "{tally:?}");
    // Healed: every call works again, then nothing is left over anywhere.
    let healed_by = Instant::now() + SLACK;
    loop {
        let all = futures_util::future::join_all(
            (0..16).map(|_| sqlx::query("SELECT 1").execute(&f.pool)),
        )
        .await;
        if all.iter().all(Result::is_ok) {
            break;
        }
        assert!(Instant::now() < healed_by, "the pool did not heal: {all:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = settled(&f.pool, SLACK).await;
    server_agrees(server(), &f.app, &f.pool).await;
    only_the_pool_on(server(), &f.db, &f.app).await;
    eprintln!("soak final status={s:?}");
}
