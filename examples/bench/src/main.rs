//! Side-by-side benchmark of pool-runtime against sqlx::Pool, deadpool,
//! task-owned connections and a connection per query, on one local
//! PostgreSQL server started by pool-testkit. Prints Markdown tables with
//! ratios (absolute numbers mean little on a shared machine) and a target
//! check list; targets are reported, never asserted.
//!
//! ```text
//! cargo run --release -p pool-bench            # full, a few minutes
//! cargo run --release -p pool-bench -- --smoke # 1-2 s, for CI
//! cargo run --release -p pool-bench -- --help
//! cargo run --release -p pool-bench -- --sqlite # SQLite writes (sqlite.rs)
//! cargo run --release -p pool-bench -- --pgbouncer # through PgBouncer (pgbouncer.rs)
//! bash scripts/bench-http.sh                    # the service under wrk (http.rs)
//! ```

mod args;
mod contender;
mod http;
mod machine;
mod oversub;
mod pgbouncer;
mod profile;
mod report;
mod run;
mod sqlite;
mod throughput;

use std::time::{Duration, Instant};

use crate::args::{Options, USAGE};
use crate::contender::{BoxError, Kind, Work};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "--profile") {
        let result = match &args[1..] {
            [kind, work, ops] => profile::parse(kind, work, ops)
                .map_err(BoxError::from)
                .and_then(profile),
            _ => Err("usage: bench --profile KIND acquire|select OPS".into()),
        };
        if let Err(e) = result {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().is_some_and(|a| a == "--http") {
        if let Err(e) = http::run(&args[1..]) {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().is_some_and(|a| a == "--pgbouncer") {
        if let Err(e) = pgbouncer::run(&args[1..]) {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.first().is_some_and(|a| a == "--sqlite") {
        if let Err(e) = sqlite::run(&args[1..]) {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
        return;
    }
    let opts = match Options::parse(args) {
        Ok(opts) => opts,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("bench: {msg}\n");
            }
            eprintln!("{USAGE}");
            std::process::exit(if msg.is_empty() { 0 } else { 2 });
        }
    };
    if let Err(e) = run(&opts) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// `--profile`: one task on a current-thread runtime (see profile.rs).
fn profile((kind, work, ops): (Kind, Work, u64)) -> Result<(), BoxError> {
    let server = start_server()?;
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if kind == Kind::OursObserved {
        let _recorder = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    }
    // Inside a spawned task, as a service's handlers run: `block_on`'s own
    // future has no task id, and the pool's nested-checkout check keys on it.
    let task = tokio::task::LocalSet::new();
    task.block_on(&runtime, async move {
        tokio::task::spawn_local(profile::run_owned(url, kind, work, ops)).await?
    })
}

fn start_server() -> Result<pool_testkit::TestServer, BoxError> {
    let backend = pool_testkit::ServerKind::from_env()?.unwrap_or(pool_testkit::ServerKind::Local);
    // Connection logging off: connect-per-query would mostly measure the log.
    Ok(pool_testkit::TestServer::builder()
        .backend(backend)
        .max_connections(600)
        .log_connections(false)
        .arg("log_disconnections", "off")
        .start()?)
}

fn run(opts: &Options) -> Result<(), BoxError> {
    let started = Instant::now();
    let server = start_server()?;
    let url = server.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(suite(&url, opts, started));
    runtime.shutdown_timeout(Duration::from_secs(5));
    drop(server);
    result
}

async fn suite(url: &str, opts: &Options, started: Instant) -> Result<(), BoxError> {
    // The recorder is global: only pools built with metrics(true) (the
    // "observed" contender) publish to it; every other pool has metrics off.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    pool_runtime::observe::metrics::describe();
    let upkeep = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            prometheus.run_upkeep();
        }
    });

    println!("{}", machine::describe(url, opts).await?);
    let mut tables = Vec::new();
    let n = opts.main_tasks;
    if opts.acquire {
        let kinds = [
            Kind::Ours,
            Kind::OursNoPing,
            Kind::OursObserved,
            Kind::Sqlx,
            Kind::SqlxNoTest,
            Kind::Deadpool,
        ];
        let title = format!("Acquire + release, no query, {n} tasks (pool size {n})");
        let table = throughput::measure(url, title, Work::AcquireRelease, n, &kinds, opts).await?;
        println!("{}", report::throughput(&table));
        tables.push(table);
    }
    if opts.select {
        for &tasks in &opts.select_tasks {
            let mut kinds = vec![Kind::Owned, Kind::Ours, Kind::OursNoPing];
            if tasks == n {
                kinds.push(Kind::OursObserved);
            }
            kinds.extend([
                Kind::Sqlx,
                Kind::SqlxNoTest,
                Kind::Deadpool,
                Kind::ConnectPerQuery,
            ]);
            let title = format!("SELECT 1, {tasks} task(s) (pool size {tasks})");
            let table = throughput::measure(url, title, Work::Select1, tasks, &kinds, opts).await?;
            println!("{}", report::throughput(&table));
            tables.push(table);
        }
    }
    let mut oversub_outcomes = None;
    if opts.oversub {
        let kinds = [
            Kind::Ours,
            Kind::OursNoPing,
            Kind::Sqlx,
            Kind::SqlxNoTest,
            Kind::Deadpool,
        ];
        let outcomes = oversub::measure(url, &kinds, opts).await?;
        println!(
            "{}",
            report::oversubscription(&outcomes, opts.oversub_tasks)
        );
        oversub_outcomes = Some(outcomes);
    }
    let targets = report::targets(&tables, oversub_outcomes.as_deref());
    println!("{}", report::target_list(&targets));
    println!("(whole run: {:.1} s)", started.elapsed().as_secs_f64());
    upkeep.abort();
    Ok(())
}
