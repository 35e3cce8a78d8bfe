//! Property: whatever the environment holds, loading never panics, and a
//! secret value never shows in an error, its Debug, `explain()`, warnings
//! or the docs.

use std::time::Duration;

use pool_runtime::config::EnvSource;
use pool_runtime::{PoolClass, PoolConfig, ResetOnReturn, Secret, SslMode};
use proptest::prelude::*;

// No `Debug`: `Secret<u32>` has none (only `Secret<impl AsRef<str>>` does).
#[derive(PoolConfig)]
#[pool(prefix = "P_")]
pub struct Props {
    #[pool(env = "P_DATABASE_URL")]
    pub url: Secret<String>,
    #[pool(default = 5, production = 2, range = 1..=100)]
    pub pool_size: u32,
    #[pool(default = 10, test = 0)]
    pub max_overflow: u32,
    #[pool(default = "30s", range = "1ms"..="1h")]
    pub pool_timeout: Duration,
    #[pool(default = "off")]
    pub pool_recycle: Option<Duration>,
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    #[pool(default = "rollback")]
    pub reset_on_return: ResetOnReturn,
    pub sslmode: Option<SslMode>,
    #[pool(default = 0)]
    pub min_idle: u32,
    #[pool(default = 0.5, range = 0..=1)]
    pub ratio: f64,
    #[pool(default = -3, range = -10..=10)]
    pub signed: i8,
    pub api_key: Secret<String>,
    pub pin: Option<Secret<u32>>,
    #[pool(secret)]
    pub password: Option<Secret<String>>,
    pub endpoint: Option<url::Url>,
}

const VARS: &[&str] = &[
    "P_DATABASE_URL",
    "P_POOL_SIZE",
    "P_MAX_OVERFLOW",
    "P_POOL_TIMEOUT",
    "P_POOL_RECYCLE",
    "P_POOL_PRE_PING",
    "P_POOL_CLASS",
    "P_RESET_ON_RETURN",
    "P_SSLMODE",
    "P_MIN_IDLE",
    "P_RATIO",
    "P_SIGNED",
    "P_API_KEY",
    "P_PIN",
    "P_PASSWORD",
    "P_ENDPOINT",
    "APP_ENV",
    "P_POOL_SIZ",
    "P_",
];

const SECRET_VARS: &[&str] = &["P_DATABASE_URL", "P_API_KEY", "P_PIN", "P_PASSWORD"];

/// Values that exercise the parsers: near-misses, edge numbers, units,
/// unicode, control characters, huge inputs.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("off".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("4294967296".to_owned()),
        Just("1e309".to_owned()),
        Just("NaN".to_owned()),
        Just("production".to_owned()),
        Just("test".to_owned()),
        Just("null".to_owned()),
        Just("postgres://u:p@h/db".to_owned()),
        "[0-9]{1,25}",
        "-?[0-9]{1,4}(\\.[0-9]{1,3})?(ns|us|ms|s|m|h|d|x| )?",
        "[a-z_-]{0,12}",
        any::<String>(),
        "\\PC{0,300}",
        proptest::collection::vec(any::<char>(), 0..40).prop_map(|v| v.into_iter().collect()),
    ]
}

/// A secret distinctive enough that finding it means it leaked.
fn secret() -> impl Strategy<Value = (String, String)> {
    ("[A-Za-z0-9]{10,24}", 0..4u8).prop_map(|(core, shape)| {
        let core = format!("Zq9{core}");
        let raw = match shape {
            0 => core.clone(),
            1 => format!("postgres://user:{core}@db.example:5432/app"),
            2 => format!("postgres://db.example/app?password={core}&sslmode=require"),
            _ => format!("{core} with spaces"),
        };
        (core, raw)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_never_leaks(
        values in proptest::collection::vec((0..VARS.len(), value()), 0..20),
        secrets in proptest::collection::vec((0..SECRET_VARS.len(), secret()), 1..4),
    ) {
        let mut src = EnvSource::from_pairs(Vec::<(String, String)>::new());
        for (i, v) in &values {
            src.set(VARS[*i], v.clone());
        }
        let mut cores = Vec::new();
        for (i, (core, raw)) in &secrets {
            src.set(SECRET_VARS[*i], raw.clone());
            cores.push(core.clone());
        }
        let shown = match Props::load(&src) {
            Ok(loaded) => {
                let mut s = format!("{}\n{}\n{:?}\n{:?}", loaded.explain(), loaded.explain().to_json(), loaded.url, loaded.settings());
                for w in loaded.warnings() {
                    s.push_str(&w.to_string());
                }
                s
            }
            Err(e) => format!("{e}\n{e:?}"),
        };
        let docs = Props::env_docs();
        let shown = format!("{shown}\n{}\n{}\n{}", docs.to_markdown(), docs.to_dotenv(), docs.to_json());
        for core in &cores {
            prop_assert!(!shown.contains(core.as_str()), "secret {core} leaked:\n{shown}");
        }
        // The same under another prefix.
        let _ = Props::load_with_prefix(&src, "Q_");
    }

    #[test]
    fn values_parse_or_report_never_panic(raw in "\\PC{0,64}") {
        for var in VARS {
            let src = EnvSource::from_pairs([(*var, raw.as_str()), ("P_DATABASE_URL", "postgres://h/db"), ("P_API_KEY", "k")]);
            match Props::load(&src) {
                Ok(_) => {}
                Err(e) => prop_assert!(!e.problems().is_empty()),
            }
        }
    }
}
