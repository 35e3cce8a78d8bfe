//! Hostile environments for `#[derive(PoolConfig)]`'s loader, beyond
//! `config_proptest.rs`: every variable garbage at once, huge values,
//! unicode and control characters (no NUL: an env value can't hold one),
//! and a credential embedded in *every* variable, secret or not. Loading
//! must never panic, every problem must name its variable, and no
//! credential may show in any output (error, Debug, explain, warnings).
//!
//! This is the suite's "fuzz target" (cargo-fuzz needs nightly): 256 cases
//! in CI, `FAULTS_LONG=<n>` runs `n * 100` cases.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use pool_runtime::config::EnvSource;
use pool_runtime::{PoolClass, PoolConfig, Secret};
use proptest::prelude::*;

#[derive(PoolConfig)]
#[pool(prefix = "F_")]
pub struct Hostile {
    #[pool(env = "F_DATABASE_URL")]
    pub url: Secret<String>,
    #[pool(default = 5, range = 1..=100)]
    pub pool_size: u32,
    #[pool(default = 10)]
    pub max_overflow: u32,
    #[pool(default = "30s")]
    pub pool_timeout: Duration,
    #[pool(default = "1h")]
    pub pool_recycle: Option<Duration>,
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    #[pool(default = "queue")]
    pub pool_class: PoolClass,
    #[pool(default = 0.5, range = 0..=1)]
    pub ratio: f64,
    pub api_token: Option<Secret<String>>,
}

const SECRET_VARS: &[&str] = &["F_DATABASE_URL", "F_API_TOKEN"];

const VARS: &[&str] = &[
    "F_DATABASE_URL",
    "F_POOL_SIZE",
    "F_MAX_OVERFLOW",
    "F_POOL_TIMEOUT",
    "F_POOL_RECYCLE",
    "F_POOL_PRE_PING",
    "F_POOL_CLASS",
    "F_RATIO",
    "F_API_TOKEN",
];

/// Garbage of every kind: empty, blank, huge, unicode (RTL marks,
/// zero-width, combining, emoji, CJK), control characters, overflowing
/// numbers.
fn garbage() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" \t\r\n ".to_owned()),
        Just("\u{202e}5\u{200b}".to_owned()),
        Just("5\u{0301}".to_owned()),
        Just("１２".to_owned()), // full-width digits
        Just("99999999999999999999999999999999".to_owned()),
        Just("-0".to_owned()),
        Just("1e-400".to_owned()),
        Just("30ss".to_owned()),
        Just("🦀🦀🦀".to_owned()),
        "[\u{1}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{7f}]{1,32}",
        "\\PC{0,200}",
        (
            prop_oneof![Just('9'), Just('a'), Just('é'), Just('漢'), Just('\u{1}')],
            10_000..200_000usize
        )
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// A credential to embed: (what must never show, how it is written).
fn credential() -> impl Strategy<Value = (String, u8)> {
    ("[A-Za-z0-9]{12,20}", 0..3u8).prop_map(|(core, shape)| (format!("Zq9{core}"), shape))
}

fn embed(garbage: &str, core: &str, shape: u8, at: usize) -> String {
    let cred = match shape {
        0 => format!("postgres://app:{core}@db.internal:5432/app"),
        1 => format!("postgresql://app:{core}@db.internal/app?sslmode=require"),
        _ => format!("postgres://db.internal/app?password={core}"),
    };
    let cut = garbage
        .char_indices()
        .map(|(i, _)| i)
        .nth(at % (garbage.chars().count() + 1))
        .unwrap_or(garbage.len());
    format!("{}{cred}{}", &garbage[..cut], &garbage[cut..])
}

/// Everything the loader can print for `src`, or the panic message.
/// (variable, its problem line) of each problem in an error.
type Problems = Vec<(String, String)>;

fn everything_shown(src: &EnvSource) -> Result<(String, Option<Problems>), String> {
    catch_unwind(AssertUnwindSafe(|| match Hostile::load(src) {
        Ok(loaded) => {
            let mut s = format!(
                "{}\n{}\n{:?}",
                loaded.explain(),
                loaded.explain().to_json(),
                loaded.settings()
            );
            for w in loaded.warnings() {
                s.push_str(&w.to_string());
            }
            (s, None)
        }
        Err(e) => {
            let problems = e
                .problems()
                .iter()
                .map(|p| (p.var.clone(), p.to_string()))
                .collect();
            (format!("{e}\n{e:?}"), Some(problems))
        }
    }))
    .map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "a panic".to_owned())
    })
}

fn cases() -> u32 {
    std::env::var("FAULTS_LONG")
        .ok()
        .map_or(256, |v| v.parse::<u32>().unwrap_or(60) * 100)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Every variable garbage at once, each holding a credential: secret
    /// variables garbage with the credential inside, the others either
    /// garbage or a whole credential URL (which must show masked).
    #[test]
    fn every_variable_garbage_with_a_credential(
        values in proptest::collection::vec((garbage(), credential(), any::<usize>(), any::<bool>()), VARS.len()),
    ) {
        let mut src = EnvSource::from_pairs(Vec::<(String, String)>::new());
        for (var, (g, (core, shape), at, whole)) in VARS.iter().zip(&values) {
            let secret = SECRET_VARS.contains(var);
            let value = match (secret, whole) {
                (true, _) => embed(g, core, *shape, *at),
                (false, true) => embed("", core, *shape, 0),
                (false, false) => g.clone(),
            };
            src.set(*var, value);
        }
        let values: Vec<_> = values.into_iter().map(|(g, c, at, _)| (g, c, at)).collect();
        let (shown, problems) = match everything_shown(&src) {
            Ok(x) => x,
            Err(panic) => return Err(TestCaseError::fail(format!("the loader panicked: {panic}"))),
        };
        for (_, (_, (core, _), _)) in VARS.iter().zip(&values) {
            prop_assert!(!shown.contains(core.as_str()), "credential {core} leaked:\n{}", head(&shown));
        }
        if let Some(problems) = problems {
            prop_assert!(!problems.is_empty());
            for (var, line) in &problems {
                prop_assert!(VARS.contains(&var.as_str()), "problem names no known variable: {var:?}");
                prop_assert!(line.starts_with(var.as_str()), "problem does not lead with its variable: {}", head(line));
                prop_assert!(shown.contains(var.as_str()));
            }
        }
    }

    /// One variable hostile, the rest valid: the error names exactly it,
    /// and a credential *inside* a larger value (say
    /// `F_POOL_SIZE="5postgres://app:pw@h/app"`) is masked, not echoed.
    #[test]
    fn a_single_bad_variable_is_named(which in 1..VARS.len(), g in garbage(), (core, shape) in credential(), at in any::<usize>()) {
        let var = VARS[which];
        let mut src = EnvSource::from_pairs([("F_DATABASE_URL", "postgres://app:Zq9urlsecretXYZ@h/db")]);
        src.set(var, embed(&g, &core, shape, at));
        let (shown, problems) = everything_shown(&src).map_err(TestCaseError::fail)?;
        prop_assert!(!shown.contains(core.as_str()) && !shown.contains("Zq9urlsecretXYZ"), "leaked:\n{}", head(&shown));
        if let Some(problems) = problems {
            prop_assert!(problems.iter().all(|(v, _)| v == var), "{var}: {problems:?}");
        }
    }
}

fn head(s: &str) -> String {
    s.chars().take(2_000).collect()
}

/// A megabyte in every variable: loading finishes, names each variable,
/// and the error does not echo megabytes back into the logs.
#[test]
fn megabyte_values_are_reported_not_echoed() {
    let huge: String = "9".repeat(1 << 20);
    let src = EnvSource::from_pairs(VARS.iter().map(|v| (*v, huge.as_str())));
    let (shown, problems) = everything_shown(&src).expect("no panic");
    let problems = problems.expect("a megabyte of 9s is not a valid configuration");
    for (var, _) in &problems {
        assert!(VARS.contains(&var.as_str()), "{var}");
    }
    eprintln!(
        "{} problems, error output {} bytes",
        problems.len(),
        shown.len()
    );
}
