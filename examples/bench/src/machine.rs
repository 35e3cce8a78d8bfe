//! The run's header: machine, server version, date and settings, so a
//! pasted result says where it came from.

use std::process::Command;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use super::args::Options;
use super::contender::BoxError;

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory_gib() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0 / 1024.0)
}

fn command(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

pub async fn describe(url: &str, opts: &Options) -> Result<String, BoxError> {
    let mut conn = url
        .parse::<PgConnectOptions>()?
        .application_name("bench-header")
        .connect()
        .await?;
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mode = if opts.smoke {
        "smoke (numbers meaningless)"
    } else {
        "full"
    };
    Ok(format!(
        "## pool-runtime benchmark ({mode})\n\n\
         - date: {}\n- machine: {}, {cores} cores, {:.0} GiB, kernel {}\n- server: {version} (pool-testkit, loopback TCP)\n\
         - client: tokio multi-thread runtime, {cores} workers; server and client share the cores\n\
         - method: {} round(s), contenders interleaved (order rotated each round), {:.0} ms warm-up + {:.1} s measured each; \
         medians; ratios are medians of per-round ratios\n",
        command("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        cpu_model(),
        memory_gib().unwrap_or(0.0),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim(),
        opts.rounds,
        opts.warmup.as_secs_f64() * 1000.0,
        opts.duration.as_secs_f64(),
    ))
}
