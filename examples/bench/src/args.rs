//! Command-line options of the bench binary (hand-parsed: no extra deps).

use std::time::Duration;

pub const USAGE: &str = "\
usage: bench [--smoke] [--duration SECS] [--rounds N] [--tasks 1,16,64]
             [--oversub-tasks N] [--oversub-secs SECS] [--only LIST]

Runs every contender side by side against one local PostgreSQL server
started by pool-testkit and prints queries/s with ratios.

  --smoke            a 1-2 s run that only proves the benchmark works (CI)
  --duration SECS    measured time per contender per round (default 1.0)
  --rounds N         rounds; contenders interleave, medians reported (default 3)
  --tasks LIST       task counts for the SELECT 1 workload (default 1,16,64)
  --oversub-tasks N  tasks in the oversubscription run (default 512)
  --oversub-secs S   measured time of one oversubscription run (default 3.0)
  --only LIST        workloads to run: acquire,select,oversub (default all)

Other modes: --sqlite [SECS [ROUNDS]] (SQLite writes), --pgbouncer [SECS
[ROUNDS]] (SELECT 1 through PgBouncer's session and transaction modes),
--http --help (the service under wrk, run through scripts/bench-http.sh),
--profile (callgrind).";

#[derive(Clone, Debug)]
pub struct Options {
    pub smoke: bool,
    pub duration: Duration,
    pub warmup: Duration,
    pub rounds: usize,
    /// Tasks of the acquire+release and metrics-cost workloads.
    pub main_tasks: usize,
    pub select_tasks: Vec<usize>,
    pub oversub_tasks: usize,
    pub oversub_duration: Duration,
    pub oversub_warmup: Duration,
    pub acquire: bool,
    pub select: bool,
    pub oversub: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            smoke: false,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(300),
            rounds: 3,
            main_tasks: 16,
            select_tasks: vec![1, 16, 64],
            oversub_tasks: 512,
            oversub_duration: Duration::from_secs(3),
            oversub_warmup: Duration::from_millis(500),
            acquire: true,
            select: true,
            oversub: true,
        }
    }
}

impl Options {
    fn smoke() -> Self {
        Self {
            smoke: true,
            duration: Duration::from_millis(40),
            warmup: Duration::from_millis(10),
            rounds: 1,
            main_tasks: 16,
            select_tasks: vec![16],
            oversub_tasks: 64,
            oversub_duration: Duration::from_millis(150),
            oversub_warmup: Duration::from_millis(50),
            ..Self::default()
        }
    }

    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let args: Vec<String> = args.into_iter().collect();
        let mut opts = if args.iter().any(|a| a == "--smoke") {
            Self::smoke()
        } else {
            Self::default()
        };
        let mut it = args.into_iter();
        while let Some(arg) = it.next() {
            let (key, inline) = match arg.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (arg.clone(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or(format!("{key} needs a value"))
            };
            match key.as_str() {
                "--smoke" => {}
                "-h" | "--help" => return Err(String::new()),
                "--duration" => opts.duration = secs(&key, &value()?)?,
                "--rounds" => opts.rounds = count(&key, &value()?)?,
                "--tasks" => {
                    opts.select_tasks = value()?
                        .split(',')
                        .map(|t| count("--tasks", t.trim()))
                        .collect::<Result<_, _>>()?;
                }
                "--oversub-tasks" => opts.oversub_tasks = count(&key, &value()?)?,
                "--oversub-secs" => opts.oversub_duration = secs(&key, &value()?)?,
                "--only" => {
                    let list = value()?;
                    let want: Vec<&str> = list.split(',').map(str::trim).collect();
                    for w in &want {
                        if !["acquire", "select", "oversub"].contains(w) {
                            return Err(format!(
                                "--only: unknown workload {w:?} (acquire, select, oversub)"
                            ));
                        }
                    }
                    opts.acquire = want.contains(&"acquire");
                    opts.select = want.contains(&"select");
                    opts.oversub = want.contains(&"oversub");
                }
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(opts)
    }
}

fn secs(key: &str, v: &str) -> Result<Duration, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or(format!("{key}: expected seconds > 0, got {v:?}"))
}

fn count(key: &str, v: &str) -> Result<usize, String> {
    v.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(format!("{key}: expected a number > 0, got {v:?}"))
}
