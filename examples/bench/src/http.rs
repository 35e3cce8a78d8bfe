//! `--http`: the example service (the main job) under HTTP load from `wrk`,
//! on SQLite (its embedded default) and on PostgreSQL, with overflow
//! connections closed on return (QueuePool's rule) and lingering, side by
//! side in one run. The service is the release binary beside this one
//! (`target/release/service`), started once per backend and linger with a
//! fresh database; connections opened are read from its `/metrics` before
//! and after each load.
//!
//! ```text
//! bash scripts/bench-http.sh                  # installs wrk, builds, runs (about 5 min)
//! bash scripts/bench-http.sh --secs 3 --lingers off,10s
//! ```

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::contender::BoxError;

pub const USAGE: &str = "\
usage: bench --http [--secs S] [--clients 8,16,64] [--lingers off,1s,10s] [--smoke]

Loads the example service with wrk (2 threads) on SQLite and PostgreSQL:
GET /items and POST /items at each client count, once per overflow_linger.
Needs wrk and target/release/service: scripts/bench-http.sh provides both.";

/// Items posted before the loads, so GET /items returns a full page.
const SEED_ITEMS: usize = 100;

struct Options {
    secs: u32,
    clients: Vec<u32>,
    lingers: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut opts = Options {
            secs: 5,
            clients: vec![8, 16, 64],
            lingers: vec!["off".into(), "1s".into(), "10s".into()],
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value"))
            };
            match arg.as_str() {
                "--smoke" => {
                    opts.secs = 1;
                    opts.clients = vec![8];
                    opts.lingers = vec!["off".into(), "10s".into()];
                }
                "--secs" => {
                    opts.secs = value()?
                        .parse()
                        .map_err(|_| "--secs takes whole seconds, such as 5".to_string())?;
                }
                "--clients" => {
                    opts.clients = value()?
                        .split(',')
                        .map(|n| n.trim().parse::<u32>().ok().filter(|&n| n >= 2))
                        .collect::<Option<_>>()
                        .ok_or("--clients takes a list of counts of at least 2, such as 8,16,64")?;
                }
                "--lingers" => {
                    opts.lingers = value()?.split(',').map(|s| s.trim().to_string()).collect();
                }
                "--help" | "-h" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(opts)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite (default)",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Get,
    Post,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Self::Get => "GET /items",
            Self::Post => "POST /items",
        }
    }
}

/// One wrk run.
struct Row {
    backend: Backend,
    route: Route,
    clients: u32,
    linger: String,
    load: WrkOutput,
    opened: u64,
    locked: usize,
}

/// What wrk printed, in numbers.
#[derive(Default)]
struct WrkOutput {
    requests: u64,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    non_2xx: u64,
    socket_errors: u64,
}

/// Parses the options and runs every backend × linger × route × clients.
pub fn run(args: &[String]) -> Result<(), BoxError> {
    let opts = match Options::parse(args) {
        Ok(opts) => opts,
        Err(msg) if msg.is_empty() => {
            println!("{USAGE}");
            return Ok(());
        }
        Err(msg) => return Err(format!("{msg}\n\n{USAGE}").into()),
    };
    let wrk_version = wrk_version()?;
    let service = service_binary()?;
    let work = tempfile::tempdir()?;
    let post_script = work.path().join("post.lua");
    std::fs::write(
        &post_script,
        "wrk.method = \"POST\"\n\
         wrk.body = '{\"name\":\"bench\",\"quantity\":1}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let server = crate::start_server()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    println!(
        "## The service under HTTP load\n\n\
         {wrk_version}, 2 threads, {} s per load; service: {} (pool_size 5, max_overflow 10); \
         PostgreSQL: pool-testkit's local server on loopback.\n",
        opts.secs,
        service.display(),
    );
    let mut rows = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for linger in &opts.lingers {
            // A fresh database per service start: every linger sees the same table.
            let database = match backend {
                Backend::Sqlite => None,
                Backend::Postgres => Some(runtime.block_on(server.create_database())?),
            };
            let url = match &database {
                None => format!(
                    "sqlite://{}",
                    work.path().join(format!("bench-{linger}.db")).display()
                ),
                Some(db) => db.url(),
            };
            let log = work
                .path()
                .join(format!("service-{}-{linger}.log", backend.label()));
            let mut running = Service::start(&service, &url, linger, &log)?;
            runtime.block_on(seed(&running.base))?;
            for route in [Route::Get, Route::Post] {
                for &clients in &opts.clients {
                    let before = runtime.block_on(opened(&running.base))?;
                    let locked_before = count_locked(&log);
                    let load = wrk(&running.base, route, clients, opts.secs, &post_script)?;
                    let after = runtime.block_on(opened(&running.base))?;
                    let row = Row {
                        backend,
                        route,
                        clients,
                        linger: linger.clone(),
                        load,
                        opened: after.saturating_sub(before),
                        locked: count_locked(&log).saturating_sub(locked_before),
                    };
                    eprintln!("  {}", row_line(&row));
                    rows.push(row);
                }
            }
            running.stop();
            drop(database);
        }
    }
    print_tables(&rows);
    Ok(())
}

/// `wrk -v`'s first line, or why wrk cannot be run.
fn wrk_version() -> Result<String, BoxError> {
    let out = Command::new("wrk").arg("-v").output().map_err(|e| {
        format!("cannot run wrk ({e}); scripts/bench-http.sh installs it (Debian package wrk)")
    })?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    Ok(text
        .lines()
        .next()
        .unwrap_or("wrk")
        .split(" [")
        .next()
        .unwrap_or("wrk")
        .trim()
        .to_string())
}

/// The release build of the service, beside this binary.
fn service_binary() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name("service");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build --release -p pool-examples --bin service` \
             (scripts/bench-http.sh does)",
            path.display()
        )
        .into())
    }
}

/// The service as a child process; killed when dropped.
struct Service {
    child: Child,
    base: String,
}

impl Service {
    fn start(binary: &Path, url: &str, linger: &str, log: &Path) -> Result<Self, BoxError> {
        let mut child = Command::new(binary)
            .env("DATABASE_URL", url)
            .env("SERVICE_ADDR", "127.0.0.1:0")
            .env("APP_DB_OVERFLOW_LINGER", linger)
            // Warnings and errors only: a log line per request would be
            // what the benchmark measures.
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(line) => {
                    if let Some(addr) = line?.strip_prefix("listening on ") {
                        break addr.trim().to_string();
                    }
                }
                None => {
                    let _ = child.wait();
                    let tail = std::fs::read_to_string(log).unwrap_or_default();
                    return Err(format!("the service exited before listening:\n{tail}").into());
                }
            }
        };
        // Keep draining stdout so the service never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, base })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn seed(base: &str) -> Result<(), BoxError> {
    let client = reqwest::Client::new();
    for i in 0..SEED_ITEMS {
        let response = client
            .post(format!("{base}/items"))
            .json(&serde_json::json!({ "name": format!("seed {i}"), "quantity": 1 }))
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("seeding: POST /items answered {}", response.status()).into());
        }
    }
    Ok(())
}

/// Connections the service's pools have opened, from `/metrics` (the
/// writer's and the readers' counters on a split SQLite pool).
async fn opened(base: &str) -> Result<u64, BoxError> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    let total = text
        .lines()
        .filter(|line| line.starts_with("db_pool_connections_opened_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Ok(total as u64)
}

/// "database is locked" in the service's log so far.
fn count_locked(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("database is locked")
        .count()
}

fn wrk(
    base: &str,
    route: Route,
    clients: u32,
    secs: u32,
    post_script: &Path,
) -> Result<WrkOutput, BoxError> {
    let mut command = Command::new("wrk");
    command.args(["-t", "2", "-c", &clients.to_string()]).args([
        "-d",
        &format!("{secs}s"),
        "--latency",
    ]);
    if route == Route::Post {
        command.arg("-s").arg(post_script);
    }
    let out = command.arg(format!("{base}/items")).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    parse_wrk(&text).ok_or_else(|| format!("could not read wrk's output:\n{text}").into())
}

/// Reads wrk's `--latency` report: the distribution lines, the request
/// count, `Requests/sec`, non-2xx responses and socket errors.
fn parse_wrk(text: &str) -> Option<WrkOutput> {
    let mut out = WrkOutput::default();
    let mut in_distribution = false;
    for line in text.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Latency", "Distribution", ..] => in_distribution = true,
            ["50%", value] if in_distribution => out.p50_ms = millis(value)?,
            ["99%", value] if in_distribution => {
                out.p99_ms = millis(value)?;
                in_distribution = false;
            }
            ["Latency", _avg, _stdev, max, ..] => out.max_ms = millis(max)?,
            [requests, "requests", "in", ..] => out.requests = requests.parse().ok()?,
            ["Requests/sec:", value] => out.per_second = value.parse().ok()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => out.non_2xx = n.parse().ok()?,
            ["Socket", "errors:", rest @ ..] => {
                out.socket_errors = rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum();
            }
            _ => {}
        }
    }
    (out.requests > 0).then_some(out)
}

/// wrk's durations: `812.00us`, `1.52ms`, `1.01s`, `2.00m`.
fn millis(value: &str) -> Option<f64> {
    let split = value.find(|c: char| c.is_ascii_alphabetic())?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

fn per_thousand(row: &Row) -> f64 {
    row.opened as f64 * 1000.0 / (row.load.requests.max(1) as f64)
}

fn row_line(row: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {:.2} | {} |",
        row.backend.label(),
        row.route.label(),
        row.clients,
        row.linger,
        row.load.per_second,
        row.load.p50_ms,
        row.load.p99_ms,
        row.load.max_ms,
        row.opened,
        per_thousand(row),
        row.load.non_2xx + row.load.socket_errors + row.locked as u64,
    )
}

fn print_tables(rows: &[Row]) {
    println!(
        "| backend | route | clients | overflow_linger | req/s | p50 ms | p99 ms | max ms | \
         connections opened | per 1,000 requests | errors |"
    );
    println!("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|");
    for row in rows {
        println!("{}", row_line(row));
    }
    println!(
        "\nerrors: non-2xx responses + socket errors + \"database is locked\" in the service's log.\n"
    );
    // The issue's comparison: SQLite writes against PostgreSQL's, same run.
    for linger in rows
        .iter()
        .map(|r| &r.linger)
        .collect::<std::collections::BTreeSet<_>>()
    {
        for clients in rows
            .iter()
            .map(|r| r.clients)
            .collect::<std::collections::BTreeSet<_>>()
        {
            let find = |backend| {
                rows.iter().find(|r| {
                    r.backend == backend
                        && r.route == Route::Post
                        && r.clients == clients
                        && &r.linger == linger
                })
            };
            if let (Some(sqlite), Some(postgres)) = (find(Backend::Sqlite), find(Backend::Postgres))
            {
                println!(
                    "POST /items, {clients} clients, linger {linger}: SQLite {:.2}× PostgreSQL's \
                     requests/s, p99 {:.2} ms against {:.2} ms",
                    sqlite.load.per_second / postgres.load.per_second.max(f64::EPSILON),
                    sqlite.load.p99_ms,
                    postgres.load.p99_ms,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk 4.1.0's report, as printed with --latency.
    const REPORT: &str = "\
Running 1s test @ http://127.0.0.1:39003/items
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    2.51ms  41.94ms   97.49%
    Req/Sec     4.10k   312.35     4.46k    80.00%
  Latency Distribution
     50%  812.00us
     75%    1.05ms
     90%    1.42ms
     99%   12.33ms
  8155 requests in 1.00s, 4.09MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   8130.42
Transfer/sec:      4.08MB
";

    #[test]
    fn reads_the_figures_of_a_wrk_report() {
        let out = parse_wrk(REPORT).expect("parsed");
        assert_eq!(out.requests, 8155);
        assert!((out.per_second - 8130.42).abs() < 1e-9);
        assert!((out.p50_ms - 0.812).abs() < 1e-9);
        assert!((out.p99_ms - 12.33).abs() < 1e-9);
        assert!((out.max_ms - 41.94).abs() < 1e-9);
        assert_eq!(out.non_2xx, 7);
        assert_eq!(out.socket_errors, 3);
    }

    #[test]
    fn a_report_without_requests_is_not_read() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_none());
    }
}
