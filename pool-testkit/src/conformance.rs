//! Conformance of *your* pool configuration: the kit's server-side pool
//! checks run against the settings your `#[derive(PoolConfig)]` type
//! produces for a profile and an environment, as production builds them.
//!
//! ```no_run
//! use pool_runtime::{PoolClass, PoolConfig, Secret};
//! use pool_runtime::config::Profile;
//!
//! #[derive(PoolConfig)]
//! #[pool(prefix = "DB_")]
//! struct Database {
//!     #[pool(env = "DATABASE_URL")]
//!     url: Secret<String>,
//!     #[pool(default = 5)]
//!     pool_size: u32,
//!     #[pool(default = "queue", test = "null")]
//!     pool_class: PoolClass,
//! }
//!
//! # async fn demo() {
//! let report = pool_testkit::conformance::check::<Database>(Profile::Production, [("DB_POOL_SIZE", "3")]).await;
//! println!("{report}");          // one line per behaviour
//! report.assert_no_failures();   // panics if a behaviour that applies does not hold
//! # }
//! ```
//!
//! Each behaviour gets a fresh pool (unique `application_name`) on one
//! database of the shared server; the database URL replaces the config's.
//! Behaviours whose settings make them meaningless (recycle off, NullPool
//! for size checks), or that would take too long to watch (a
//! `pool_timeout` or `pool_recycle` over [`MAX_WAIT`]), are reported as
//! not applicable, with the reason. A `pool_recycle` under
//! [`SHORT_RECYCLE`] is turned off for every check but the recycle one.

use std::fmt;
use std::time::Duration;

use pool_runtime::config::{EnvPair, EnvSource, PoolConfig, Profile};
use pool_runtime::{Pool, PoolClass, PoolSettings, ResetOnReturn};

use crate::assert::{self, Failure};
use crate::fixtures::unique_app_name;
use crate::{TestServer, shared_server};

/// Longest `pool_timeout` / `pool_recycle` a check waits for.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// A `pool_recycle` below this is turned off for the checks other than
/// recycle, so that connections do not expire while they are counted.
pub const SHORT_RECYCLE: Duration = Duration::from_secs(30);

/// What was found for one behaviour.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The server showed the behaviour.
    Holds,
    /// It did not; what the server showed instead.
    DoesNotHold(String),
    /// It does not apply to these settings; why.
    NotApplicable(String),
}

/// One behaviour and its outcome.
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Short name, e.g. `overflow closes on return`.
    pub name: &'static str,
    /// The outcome.
    pub outcome: Outcome,
}

/// The outcome of every behaviour for one config, profile and environment.
#[derive(Clone, Debug)]
pub struct Report {
    /// The config type.
    pub config: &'static str,
    /// The profile checked.
    pub profile: Profile,
    /// The settings the pool was built with, summarised.
    pub settings: String,
    /// Every behaviour, in a fixed order.
    pub behaviours: Vec<Behaviour>,
}

impl Report {
    /// The outcome of the behaviour named `name`.
    pub fn outcome(&self, name: &str) -> Option<&Outcome> {
        self.behaviours
            .iter()
            .find(|b| b.name == name)
            .map(|b| &b.outcome)
    }

    /// Behaviours that apply and do not hold.
    pub fn failures(&self) -> Vec<&Behaviour> {
        self.behaviours
            .iter()
            .filter(|b| matches!(b.outcome, Outcome::DoesNotHold(_)))
            .collect()
    }

    /// Panics with the whole report when a behaviour does not hold.
    pub fn assert_no_failures(&self) {
        assert!(self.failures().is_empty(), "{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pool conformance of {} in profile `{}` ({})",
            self.config, self.profile, self.settings
        )?;
        for b in &self.behaviours {
            let (mark, detail) = match &b.outcome {
                Outcome::Holds => ("holds", String::new()),
                Outcome::DoesNotHold(why) => ("DOES NOT HOLD", format!(": {}", first_lines(why))),
                Outcome::NotApplicable(why) => ("not applicable", format!(": {why}")),
            };
            writeln!(f, "  {:<28} {mark}{detail}", b.name)?;
        }
        Ok(())
    }
}

/// A failure's first lines (what, expected, seen), without the log.
fn first_lines(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.trim_start().starts_with("server log:"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ")
}

/// [`check_on`] the shared server.
pub async fn check<C: PoolConfig>(
    profile: Profile,
    env: impl IntoIterator<Item: EnvPair>,
) -> Report {
    check_on::<C>(shared_server(), profile, env).await
}

/// Loads `C` from `env` in `profile` (the URL pointed at a fresh database
/// of `server`) and checks each behaviour from the server's side. Panics
/// when the config does not load (the error lists every bad variable).
pub async fn check_on<C: PoolConfig>(
    server: &TestServer,
    profile: Profile,
    env: impl IntoIterator<Item: EnvPair>,
) -> Report {
    let db = crate::fixtures::database_on(server).await;
    let mut source = EnvSource::from_pairs(env);
    // The profile asked for wins over one in the map.
    source.set(C::__meta().profile_env, profile.name());
    let settings = crate::attr::load_config_from::<C>(source, profile.name(), &db.url())
        .unwrap_or_else(|e| panic!("pool-testkit conformance: {e}"));
    let mut behaviours = Vec::new();
    for name in BEHAVIOURS {
        behaviours.push(run_check(server, &settings, profile, name).await);
    }
    drop(db);
    Report {
        config: C::__meta().name,
        profile,
        settings: summary(&settings),
        behaviours,
    }
}

fn summary(s: &PoolSettings) -> String {
    format!(
        "pool_class {:?}, pool_size {}, max_overflow {}, pool_timeout {:?}, pool_recycle {:?}, pool_pre_ping {}, reset_on_return {:?}",
        s.pool_class,
        s.pool_size,
        s.max_overflow,
        s.pool_timeout,
        s.pool_recycle,
        s.pool_pre_ping,
        s.reset_on_return
    )
}

type CheckResult = Result<Outcome, Failure>;

async fn run_check(
    server: &TestServer,
    base: &PoolSettings,
    profile: Profile,
    name: &'static str,
) -> Behaviour {
    let mut settings = base.clone();
    let app = unique_app_name(&format!("conformance-{}", name.replace(' ', "-")));
    settings.name = app.clone();
    settings.application_name = Some(app);
    // Found by production_settings_hold_every_behaviour: with pool_recycle
    // 1s, connections expired while "pool_size held" counted them. Only
    // the recycle check keeps a short recycle.
    if name != "recycle after max age" && settings.pool_recycle.is_some_and(|d| d < SHORT_RECYCLE) {
        settings.pool_recycle = None;
    }
    let outcome = match not_applicable(&settings, profile, name) {
        Some(why) => Outcome::NotApplicable(why),
        None => match Pool::<sqlx::Postgres>::connect(settings).await {
            Err(e) => Outcome::DoesNotHold(format!("the pool did not connect: {e}")),
            Ok(pool) => {
                let result = behaviour(server, &pool, name).await;
                pool.close().await;
                match result {
                    Ok(o) => o,
                    Err(f) => Outcome::DoesNotHold(f.to_string()),
                }
            }
        },
    };
    Behaviour { name, outcome }
}

/// The behaviours, in report order.
pub const BEHAVIOURS: [&str; 8] = [
    "pool_size held",
    "overflow closes on return",
    "never above capacity",
    "timeout when exhausted",
    "recycle after max age",
    "pre-ping replaces killed",
    "NullPool in test profile",
    "reset on return",
];

fn not_applicable(s: &PoolSettings, profile: Profile, name: &str) -> Option<String> {
    let null = s.pool_class == PoolClass::Null;
    match name {
        "NullPool in test profile" if profile != Profile::Test => {
            Some(format!("the profile is {profile}, not test"))
        }
        "pool_size held" | "overflow closes on return" | "reset on return" if null => {
            Some("pool_class is null: every connection closes on return".into())
        }
        "overflow closes on return" if s.max_overflow == 0 => Some("max_overflow is 0".into()),
        "overflow closes on return" if s.overflow_linger.is_some_and(|d| d > MAX_WAIT) => {
            Some(format!(
                "overflow_linger {:?} is longer than a check waits ({MAX_WAIT:?})",
                s.overflow_linger.unwrap_or_default()
            ))
        }
        "timeout when exhausted" if s.pool_timeout > MAX_WAIT => Some(format!(
            "pool_timeout {:?} is longer than a check waits ({MAX_WAIT:?})",
            s.pool_timeout
        )),
        "timeout when exhausted" if null => {
            Some("pool_class is null: checkouts are not bounded by a queue".into())
        }
        "recycle after max age" if null => {
            Some("pool_class is null: no connection lives to be recycled".into())
        }
        "recycle after max age" => match s.pool_recycle {
            None => Some("pool_recycle is off".into()),
            Some(d) if d > MAX_WAIT => Some(format!(
                "pool_recycle {d:?} is longer than a check waits ({MAX_WAIT:?})"
            )),
            Some(_) => None,
        },
        "pre-ping replaces killed" if !s.pool_pre_ping => Some("pool_pre_ping is off".into()),
        "reset on return" if s.reset_on_return == ResetOnReturn::None => {
            Some("reset_on_return is none: open transactions are left to the caller".into())
        }
        _ => None,
    }
}

async fn behaviour(server: &TestServer, pool: &assert::PgPool, name: &str) -> CheckResult {
    let s = pool.settings();
    match name {
        "pool_size held" => assert::try_pool_size_held(server, pool)
            .await
            .map(|()| Outcome::Holds),
        "overflow closes on return" => assert::try_overflow_closes_on_return(server, pool)
            .await
            .map(|()| Outcome::Holds),
        "never above capacity" => {
            let tasks = (s.pool_size + s.max_overflow) as usize + 2;
            assert::try_never_above_capacity(server, pool, tasks)
                .await
                .map(|_| Outcome::Holds)
        }
        "timeout when exhausted" => assert::try_timeout_when_exhausted(server, pool)
            .await
            .map(|_| Outcome::Holds),
        "recycle after max age" => assert::try_recycled_after_max_age(server, pool)
            .await
            .map(|()| Outcome::Holds),
        "pre-ping replaces killed" => assert::try_pre_ping_replaces_killed(server, pool)
            .await
            .map(|()| Outcome::Holds),
        "NullPool in test profile" => {
            if s.pool_class != PoolClass::Null {
                return Ok(Outcome::DoesNotHold(
                    "pool_class is queue in this profile: tests would share connections (set `test = \"null\"` on pool_class)".into(),
                ));
            }
            assert::try_null_pool_one_per_checkout(server, pool)
                .await
                .map(|()| Outcome::Holds)
        }
        "reset on return" => assert::try_reset_on_return(server, pool)
            .await
            .map(|()| Outcome::Holds),
        _ => Ok(Outcome::NotApplicable("unknown behaviour".into())),
    }
}
