//! `pool_testkit::conformance::check` against derive configs: which pool
//! behaviours hold for the settings a profile and environment produce,
//! seen from the server.

use pool_runtime::config::Profile;
use pool_runtime::{PoolClass, PoolConfig, Secret};
use pool_testkit::conformance::{self, Outcome};

/// A service's database config: NullPool in tests, short waits so every
/// behaviour can be watched.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "SVC_DB_")]
struct ServiceDb {
    #[pool(env = "SVC_DATABASE_URL")]
    url: Secret<String>,
    #[pool(default = 2)]
    pool_size: u32,
    #[pool(default = 1)]
    max_overflow: u32,
    // Long enough for a first connect on a loaded machine.
    #[pool(default = "5s")]
    pool_timeout: std::time::Duration,
    #[pool(default = "1s")]
    pool_recycle: Option<std::time::Duration>,
    #[pool(default = true)]
    pool_pre_ping: bool,
    #[pool(default = "queue", test = "null")]
    pool_class: PoolClass,
}

/// The same without a test profile of its own.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "PLAIN_DB_")]
struct PlainDb {
    #[pool(env = "PLAIN_DATABASE_URL")]
    url: Secret<String>,
    #[pool(default = 2)]
    pool_size: u32,
    #[pool(default = 0)]
    max_overflow: u32,
    #[pool(default = "30s")]
    pool_timeout: std::time::Duration,
}

fn holds(o: Option<&Outcome>) -> bool {
    matches!(o, Some(Outcome::Holds))
}

fn not_applicable(o: Option<&Outcome>) -> bool {
    matches!(o, Some(Outcome::NotApplicable(_)))
}

#[tokio::test]
async fn production_settings_hold_every_behaviour() {
    let report =
        conformance::check::<ServiceDb>(Profile::Production, [("SVC_DB_POOL_SIZE", "3")]).await;
    println!("{report}");
    report.assert_no_failures();
    assert!(report.settings.contains("pool_size 3"), "{report}");
    for name in [
        "pool_size held",
        "overflow closes on return",
        "never above capacity",
        "timeout when exhausted",
        "recycle after max age",
        "pre-ping replaces killed",
        "reset on return",
    ] {
        assert!(holds(report.outcome(name)), "{name}:\n{report}");
    }
    assert!(
        not_applicable(report.outcome("NullPool in test profile")),
        "{report}"
    );
}

#[tokio::test]
async fn test_profile_uses_a_null_pool() {
    let report = conformance::check::<ServiceDb>(Profile::Test, [("APP_ENV", "production")]).await;
    println!("{report}");
    assert_eq!(
        report.profile,
        Profile::Test,
        "the profile asked for wins over APP_ENV"
    );
    assert!(
        holds(report.outcome("NullPool in test profile")),
        "{report}"
    );
    assert!(not_applicable(report.outcome("pool_size held")), "{report}");
    report.assert_no_failures();
}

#[tokio::test]
async fn a_queue_pool_in_tests_is_reported() {
    let report = conformance::check::<PlainDb>(Profile::Test, [("PLAIN_DB_POOL_SIZE", "1")]).await;
    let text = report.to_string();
    println!("{text}");
    let failed: Vec<&str> = report.failures().iter().map(|b| b.name).collect();
    assert_eq!(failed, ["NullPool in test profile"], "{text}");
    assert!(
        text.contains("NullPool in test profile     DOES NOT HOLD: pool_class is queue"),
        "{text}"
    );
    // 30 s is too long to watch; overflow 0 has nothing to close.
    assert!(
        not_applicable(report.outcome("timeout when exhausted")),
        "{text}"
    );
    assert!(
        not_applicable(report.outcome("overflow closes on return")),
        "{text}"
    );
    assert!(
        not_applicable(report.outcome("recycle after max age")),
        "{text}"
    );
    assert!(holds(report.outcome("reset on return")), "{text}");
}
