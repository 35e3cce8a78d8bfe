//! `--profile KIND WORK OPS`: one task, a fixed number of operations, on a
//! current-thread runtime, so that `valgrind --tool=callgrind
//! --toggle-collect='*profiled_loop*'` counts the instructions of exactly
//! those operations (repeatable on a noisy machine, unlike time).

use std::time::Instant;

use super::contender::{BoxError, Contender, Kind, OpError, Shape, Work};

pub fn parse(kind: &str, work: &str, ops: &str) -> Result<(Kind, Work, u64), String> {
    let kind = [
        Kind::Ours,
        Kind::OursNoPing,
        Kind::OursObserved,
        Kind::Sqlx,
        Kind::SqlxNoTest,
        Kind::Deadpool,
        Kind::Owned,
        Kind::ConnectPerQuery,
    ]
    .into_iter()
    .find(|k| k.tag() == kind)
    .ok_or(format!("--profile: unknown contender {kind:?} (ours, ours-noping, ours-observed, sqlx, sqlx-notest, deadpool, owned, connect)"))?;
    let work = match work {
        "acquire" => Work::AcquireRelease,
        "select" => Work::Select1,
        other => {
            return Err(format!(
                "--profile: unknown work {other:?} (acquire, select)"
            ));
        }
    };
    let ops = ops
        .parse()
        .map_err(|_| format!("--profile: bad operation count {ops:?}"))?;
    Ok((kind, work, ops))
}

/// [`run`] with owned arguments, to be spawned.
pub async fn run_owned(url: String, kind: Kind, work: Work, ops: u64) -> Result<(), BoxError> {
    run(&url, kind, work, ops).await
}

pub async fn run(url: &str, kind: Kind, work: Work, ops: u64) -> Result<(), BoxError> {
    // `POOL_BENCH_PROFILE_HELD=N` (ours only): another task holds N more
    // connections of the pool throughout, so every checkout of the loop
    // sees N others checked out (what per-checkout scans of the holders,
    // such as nested-checkout detection, cost under load).
    let held: u32 = match std::env::var("POOL_BENCH_PROFILE_HELD") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("POOL_BENCH_PROFILE_HELD={n:?}"))?,
        Err(_) => 0,
    };
    let contender = Contender::build(kind, url, "bench-profile", Shape::fixed(1 + held), 1).await?;
    let (release, holder) = match (&contender, held) {
        (Contender::Ours(pool), 1..) => {
            let pool = pool.clone();
            let (ready, holding) = tokio::sync::oneshot::channel();
            let (release, released) = tokio::sync::oneshot::channel::<()>();
            let holder = tokio::task::spawn_local(async move {
                let mut conns = Vec::new();
                for _ in 0..held {
                    conns.push(pool.acquire().await.expect("held connection"));
                }
                let _ = ready.send(());
                let _ = released.await;
            });
            holding.await?;
            (Some(release), Some(holder))
        }
        _ => (None, None),
    };
    let mut own = contender.take_owned(0);
    profiled_warmup(&contender, work, &mut own, ops.min(1000)).await?;
    let start = Instant::now();
    profiled_loop(&contender, work, &mut own, ops).await?;
    let elapsed = start.elapsed();
    println!(
        "{} / {:?}: {ops} operations in {:.3} s ({:.2} µs each)",
        kind.label(),
        work,
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / ops as f64
    );
    contender.put_owned(0, own);
    if let (Some(release), Some(holder)) = (release, holder) {
        let _ = release.send(());
        holder.await?;
    }
    contender.close().await;
    Ok(())
}

async fn profiled_warmup(
    c: &Contender,
    work: Work,
    own: &mut Option<sqlx::PgConnection>,
    ops: u64,
) -> Result<(), BoxError> {
    for _ in 0..ops {
        one(c, work, own).await?;
    }
    Ok(())
}

/// The measured loop; callgrind's `--toggle-collect` keys on this name.
#[inline(never)]
async fn profiled_loop(
    c: &Contender,
    work: Work,
    own: &mut Option<sqlx::PgConnection>,
    ops: u64,
) -> Result<(), BoxError> {
    for _ in 0..ops {
        one(c, work, own).await?;
    }
    Ok(())
}

async fn one(
    c: &Contender,
    work: Work,
    own: &mut Option<sqlx::PgConnection>,
) -> Result<(), BoxError> {
    match c.op(work, own).await {
        Ok(_) => Ok(()),
        Err(OpError::Timeout) => Err("timeout".into()),
        Err(OpError::Fatal(e)) => Err(e),
    }
}
