//! Markdown tables (pasteable into BENCHMARKS.md) and the target check list.

use std::fmt::Write as _;

use super::contender::{Kind, Work};
use super::oversub::{Outcome, SHAPE};
use super::throughput::Table;

/// `12345.6` → `12,346`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn times(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

fn ms(us: f64) -> String {
    format!("{:.2} ms", us / 1000.0)
}

/// The reference columns of a table: the ceiling (or deadpool when no
/// query runs) and sqlx::Pool both ways.
fn references(table: &Table) -> Vec<(Kind, &'static str)> {
    let first = if table.kinds.contains(&Kind::Owned) {
        (Kind::Owned, "× owned (ceiling)")
    } else {
        (Kind::Deadpool, "× deadpool")
    };
    [
        first,
        (Kind::Sqlx, "× sqlx::Pool test on"),
        (Kind::SqlxNoTest, "× sqlx::Pool test off"),
    ]
    .into_iter()
    .filter(|(k, _)| table.kinds.contains(k))
    .collect()
}

pub fn throughput(table: &Table) -> String {
    let unit = match table.work {
        Work::AcquireRelease => "acquires/s",
        Work::Select1 => "queries/s",
    };
    let refs = references(table);
    let mut out = format!(
        "### {}\n\n| contender | {unit} (median) | rounds min–max |",
        table.title
    );
    for (_, name) in &refs {
        let _ = write!(out, " {name} |");
    }
    out.push_str("\n|---|--:|--:|");
    for _ in &refs {
        out.push_str("--:|");
    }
    out.push('\n');
    for &kind in &table.kinds {
        let rounds = &table.rounds[&kind];
        let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rounds.iter().copied().fold(0.0, f64::max);
        let _ = write!(
            out,
            "| {} | {} | {}–{} |",
            kind.label(),
            thousands(table.median(kind).unwrap_or(f64::NAN)),
            thousands(lo),
            thousands(hi)
        );
        for (reference, _) in &refs {
            let _ = write!(out, " {} |", times(table.paired_ratio(kind, *reference)));
        }
        out.push('\n');
    }
    out
}

pub fn oversubscription(outcomes: &[Outcome], tasks: usize) -> String {
    let cap = (SHAPE.size + SHAPE.overflow) as usize;
    let mut out = format!(
        "### Oversubscription: {tasks} tasks, SELECT 1, pool_size {} + max_overflow {} (others: max {cap}), timeout {}s\n\n\
         Acquire wait measured by the tasks (all rounds' medians; max = largest seen). \
         \"FIFO mean\" is Little's law, (tasks − {cap}) / throughput: \
         the wait every acquire would see in a perfectly fair queue.\n\n\
         | contender | queries/s | wait p50 | wait p99 | wait max | p50 / FIFO mean | p99 / FIFO mean | FIFO mean | timeouts | server peak | backends seen |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
        SHAPE.size,
        SHAPE.overflow,
        SHAPE.timeout.as_secs()
    );
    for o in outcomes {
        let fifo_us = o.fifo_mean_us;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} |",
            o.kind.label(),
            thousands(o.qps),
            ms(o.p50_us),
            ms(o.p99_us),
            ms(f64::from(o.max_us)),
            o.p50_us / fifo_us,
            o.p99_us / fifo_us,
            ms(fifo_us),
            o.timeouts,
            o.server_peak,
            o.distinct_backends
        );
    }
    for o in outcomes {
        if let Some(v) = o.pool_view {
            let _ = writeln!(
                out,
                "\n{}: the pool's own status() says wait p50 ≤ {:.2} ms, p99 ≤ {:.2} ms (log2 \
                 buckets), max {:.2} ms, timeouts {}; it opened {} connections and closed {} as \
                 overflow over all rounds ({} pg_stat_activity samples).",
                o.kind.label(),
                v.p50_ms,
                v.p99_ms,
                v.max_ms,
                v.timeouts,
                v.opened,
                v.closed_overflow,
                o.samples
            );
        }
    }
    out
}

pub enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

pub struct Target {
    pub what: String,
    pub measured: String,
    pub verdict: Verdict,
}

fn check(
    what: impl Into<String>,
    value: Option<f64>,
    show: impl Fn(f64) -> String,
    ok: impl Fn(f64) -> bool,
) -> Target {
    match value {
        Some(v) if v.is_finite() => Target {
            what: what.into(),
            measured: show(v),
            verdict: if ok(v) { Verdict::Met } else { Verdict::Missed },
        },
        _ => Target {
            what: what.into(),
            measured: "not measured".into(),
            verdict: Verdict::NotMeasured,
        },
    }
}

pub fn targets(tables: &[Table], oversub: Option<&[Outcome]>) -> Vec<Target> {
    let find =
        |work: Work, tasks: usize| tables.iter().find(|t| t.work == work && t.tasks == tasks);
    let s16 = find(Work::Select1, 16);
    let acq = tables.iter().find(|t| t.work == Work::AcquireRelease);
    let ratio = |t: Option<&Table>, a, b| t.and_then(|t| t.paired_ratio(a, b));
    let cost =
        |t: Option<&Table>| ratio(t, Kind::OursObserved, Kind::Ours).map(|r| (1.0 - r) * 100.0);
    let ours_os = oversub.and_then(|o| o.iter().find(|o| o.kind == Kind::Ours));
    vec![
        check(
            "SELECT 1, 16 tasks: pool-runtime (pre-ping on) ≥ 0.9× owned connections",
            ratio(s16, Kind::Ours, Kind::Owned),
            |v| format!("{v:.2}×"),
            |v| v >= 0.9,
        ),
        check(
            "SELECT 1, 16 tasks: pool-runtime ≥ 2× sqlx::Pool, pre-ping on both",
            ratio(s16, Kind::Ours, Kind::Sqlx),
            |v| format!("{v:.2}×"),
            |v| v >= 2.0,
        ),
        check(
            "acquire+release, 16 tasks: pool-runtime (pre-ping on) ≥ deadpool",
            ratio(acq, Kind::Ours, Kind::Deadpool),
            |v| format!("{v:.2}×"),
            |v| v >= 1.0,
        ),
        check(
            "metrics + leak detection cost ≤ 5 % (SELECT 1, 16 tasks)",
            cost(s16),
            |v| format!("{v:+.1} %"),
            |v| v <= 5.0,
        ),
        check(
            "metrics + leak detection cost, acquire+release (informational, ≤ 5 %)",
            cost(acq),
            |v| format!("{v:+.1} %"),
            |v| v <= 5.0,
        ),
        check(
            "oversubscription: zero timeouts",
            ours_os.map(|o| o.timeouts as f64),
            |v| format!("{v:.0}"),
            |v| v == 0.0,
        ),
        check(
            "oversubscription: server peak ≤ 30 connections",
            ours_os.map(|o| o.server_peak as f64),
            |v| format!("{v:.0}"),
            |v| v <= 30.0,
        ),
        check(
            "oversubscription, FIFO: wait p50 ≥ 0.5× the fair-queue mean (no barging)",
            ours_os.map(|o| o.p50_us / o.fifo_mean_us),
            |v| format!("{v:.2}× mean"),
            |v| v >= 0.5,
        ),
        check(
            "oversubscription, FIFO: wait p99 ≤ 3× the fair-queue mean (no starvation)",
            ours_os.map(|o| o.p99_us / o.fifo_mean_us),
            |v| format!("{v:.2}× mean"),
            |v| v <= 3.0,
        ),
    ]
}

pub fn target_list(targets: &[Target]) -> String {
    let mut out = String::from("### Targets\n\n| target | measured | verdict |\n|---|--:|---|\n");
    for t in targets {
        let verdict = match t.verdict {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NotMeasured => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {verdict} |", t.what, t.measured);
    }
    out
}
