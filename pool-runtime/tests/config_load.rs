//! Loading `#[derive(PoolConfig)]` structs from maps (and once from the
//! process env): values, profiles, every error at once, secrets, prefixes,
//! nesting, warnings, explain and the mapping onto `PoolSettings`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pool_runtime::config::{EnvSource, Profile, ValueSource};
use pool_runtime::{PoolClass, PoolConfig, ResetOnReturn, Secret, SslMode};

const URL: &str = "postgres://app:hunter2@db.internal:5432/app";

/// Primary database.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "DB_")]
pub struct Database {
    /// Connection URL; the password is never printed.
    #[pool(env = "DATABASE_URL")]
    pub url: Secret<String>,
    /// Connections kept open.
    #[pool(default = 20, production = 5, range = 1..=500)]
    pub pool_size: u32,
    /// Extra connections under load.
    #[pool(default = 10)]
    pub max_overflow: u32,
    #[pool(default = "30s")]
    pub pool_timeout: Duration,
    #[pool(default = "1h")]
    pub pool_recycle: Option<Duration>,
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    /// Plain config, mapped to nothing.
    #[pool(default = 3, range = 0..10)]
    pub retries: u8,
    /// An API token: secret, not a setting.
    pub api_token: Option<Secret<String>>,
}

fn load(pairs: &[(&str, &str)]) -> Result<Database, pool_runtime::config::ConfigError> {
    Database::from_map(pairs)
}

#[test]
fn defaults_of_the_development_profile() {
    let db = load(&[("DATABASE_URL", URL)]).unwrap();
    assert_eq!(db.url.expose(), URL);
    assert_eq!(db.pool_size, 20);
    assert_eq!(db.max_overflow, 10);
    assert_eq!(db.pool_timeout, Duration::from_secs(30));
    assert_eq!(db.pool_recycle, Some(Duration::from_secs(3600)));
    assert!(db.pool_pre_ping);
    assert_eq!(db.pool_class, PoolClass::Queue);
    assert_eq!(db.retries, 3);
    assert!(db.api_token.is_none());
}

#[test]
fn profile_defaults_and_env_overrides() {
    let prod = load(&[("DATABASE_URL", URL), ("APP_ENV", "production")]).unwrap();
    assert_eq!(prod.pool_size, 5);
    let test = load(&[("DATABASE_URL", URL), ("APP_ENV", "TEST")]).unwrap();
    assert_eq!(test.pool_class, PoolClass::Null);
    assert_eq!(test.pool_size, 20);
    let set = load(&[
        ("DATABASE_URL", URL),
        ("APP_ENV", "prod"),
        ("DB_POOL_SIZE", "42"),
        ("DB_MAX_OVERFLOW", "0"),
        ("DB_POOL_TIMEOUT", "1500ms"),
        ("DB_POOL_RECYCLE", "off"),
        ("DB_POOL_PRE_PING", "no"),
        ("DB_POOL_CLASS", "NullPool"),
        ("DB_RETRIES", "9"),
        ("DB_API_TOKEN", "tok-secret-123"),
    ])
    .unwrap();
    assert_eq!(set.pool_size, 42);
    assert_eq!(set.max_overflow, 0);
    assert_eq!(set.pool_timeout, Duration::from_millis(1500));
    assert_eq!(set.pool_recycle, None);
    assert!(!set.pool_pre_ping);
    assert_eq!(set.pool_class, PoolClass::Null);
    assert_eq!(set.retries, 9);
    assert_eq!(
        set.api_token.as_ref().map(|s| s.expose().as_str()),
        Some("tok-secret-123")
    );
}

#[test]
fn value_formats() {
    for (raw, want) in [
        ("true", true),
        ("1", true),
        ("ON", true),
        ("yes", true),
        ("false", false),
        ("0", false),
        ("off", false),
        ("No", false),
    ] {
        let db = load(&[("DATABASE_URL", URL), ("DB_POOL_PRE_PING", raw)]).unwrap();
        assert_eq!(db.pool_pre_ping, want, "{raw}");
    }
    for (raw, want) in [
        ("30s", 30_000),
        ("1h", 3_600_000),
        ("1500ms", 1500),
        ("45", 45_000),
        ("2.5", 2500),
        ("1m 30s", 90_000),
    ] {
        let db = load(&[("DATABASE_URL", URL), ("DB_POOL_TIMEOUT", raw)]).unwrap();
        assert_eq!(db.pool_timeout, Duration::from_millis(want), "{raw}");
    }
    for raw in ["off", "none", "OFF"] {
        let db = load(&[("DATABASE_URL", URL), ("DB_POOL_RECYCLE", raw)]).unwrap();
        assert_eq!(db.pool_recycle, None, "{raw}");
    }
    // An empty variable counts as unset: the default applies.
    let db = load(&[("DATABASE_URL", URL), ("DB_POOL_SIZE", "  ")]).unwrap();
    assert_eq!(db.pool_size, 20);
}

#[test]
fn every_bad_variable_is_reported_at_once() {
    let err = load(&[
        ("DB_POOL_SIZE", "0"),
        ("DB_MAX_OVERFLOW", "-3"),
        ("DB_POOL_TIMEOUT", "30x"),
        ("DB_POOL_PRE_PING", "maybe"),
        ("DB_POOL_CLASS", "nul"),
        ("DB_RETRIES", "10"),
    ])
    .unwrap_err();
    let vars: Vec<&str> = err.problems().iter().map(|p| p.var.as_str()).collect();
    assert_eq!(
        vars,
        [
            "DATABASE_URL",
            "DB_POOL_SIZE",
            "DB_MAX_OVERFLOW",
            "DB_POOL_TIMEOUT",
            "DB_POOL_PRE_PING",
            "DB_POOL_CLASS",
            "DB_RETRIES"
        ]
    );
    let size = err.problem("DB_POOL_SIZE").unwrap();
    assert_eq!(size.source, Some(ValueSource::Env));
    assert_eq!(size.value.as_deref(), Some("0"));
    assert_eq!(size.field, "pool_size");
    assert!(
        size.message.contains("0 is outside 1..=500"),
        "{}",
        size.message
    );
    assert!(
        size.expected.contains("within 1..=500"),
        "{}",
        size.expected
    );
    let missing = err.problem("DATABASE_URL").unwrap();
    assert_eq!(missing.source, None);
    assert!(missing.message.contains("required"));
    let text = err.to_string();
    assert!(
        text.starts_with("invalid configuration for Database (profile development): 7 problems"),
        "{text}"
    );
    assert!(
        text.contains("DB_POOL_TIMEOUT = \"30x\" (from env): "),
        "{text}"
    );
    assert!(text.contains("expected a duration such as 30s"), "{text}");
    assert!(
        text.contains(
            "DB_POOL_CLASS = \"nul\" (from env): not a known value (did you mean `null`?); \
             expected one of: queue, null"
        ),
        "{text}"
    );
    assert!(
        text.contains("DB_RETRIES = \"10\" (from env): 10 is outside 0..10"),
        "{text}"
    );
    assert!(
        text.contains(
            "DB_POOL_PRE_PING = \"maybe\" (from env): not a boolean; expected true/false"
        ),
        "{text}"
    );
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    // A bad secret: the value is named nowhere.
    #[derive(PoolConfig)]
    #[pool(prefix = "S_")]
    struct Secrets {
        pin: Secret<u32>,
        #[pool(secret)]
        password: Secret<u64>,
    }
    let err = Secrets::from_map([("S_PIN", "hunter2hunter2"), ("S_PASSWORD", "swordfish99")])
        .err()
        .unwrap();
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("swordfish"), "{shown}");
    }
    assert!(
        err.to_string()
            .contains("S_PIN (secret, from env): not an integer"),
        "{err}"
    );
    let ok = Secrets::from_map([("S_PIN", "1234"), ("S_PASSWORD", "987654321")]).unwrap();
    let loaded = Secrets::load(&EnvSource::from_pairs([
        ("S_PIN", "1234"),
        ("S_PASSWORD", "987654321"),
    ]))
    .unwrap();
    assert!(!loaded.explain().to_string().contains("987654321"));
    assert!(!loaded.explain().to_string().contains("1234"));
    assert_eq!(*ok.pin.expose(), 1234);
    assert_eq!(*ok.password.expose(), 987654321);

    let db = load(&[("DATABASE_URL", URL), ("DB_API_TOKEN", "tok-secret-123")]).unwrap();
    let debug = format!("{db:?}");
    assert!(
        !debug.contains("hunter2") && !debug.contains("tok-secret"),
        "{debug}"
    );
    assert!(!format!("{:?}", db.settings()).contains("hunter2"));
}

/// Issue 10, group 3: `#[pool(secret)] token: String` in a
/// `#[derive(PoolConfig, Debug)]` struct printed the token with `{:?}`. A
/// secret field must now be a `Secret` (a plain type no longer compiles:
/// pool-macros/tests/ui/secret_prints.rs), and every output a user is
/// likely to produce stays clean: the struct's Debug, `Loaded`'s Debug,
/// `explain()` (text and JSON), the env docs and both forms of the error.
#[test]
fn secret_field_is_redacted_by_debug() {
    #[derive(PoolConfig, Debug)]
    #[pool(prefix = "API_")]
    struct Api {
        #[pool(env = "API_DATABASE_URL")]
        url: Secret<String>,
        #[pool(secret)]
        token: Secret<String>,
        #[pool(secret, default = "dflt-swordfish")]
        fallback: Option<Secret<String>>,
        pin: Secret<u32>,
    }
    let env = [
        ("API_DATABASE_URL", "postgres://app:hunter2@db/app"),
        ("API_TOKEN", "tok-abcdef-123"),
        ("API_PIN", "918273"),
    ];
    let source = EnvSource::from_pairs(env);
    let loaded = Api::load(&source).unwrap();
    assert_eq!(loaded.token.expose(), "tok-abcdef-123");
    assert_eq!(*loaded.pin.expose(), 918273);
    let fallback = loaded.fallback.as_ref().map(|s| s.expose().as_str());
    assert_eq!(fallback, Some("dflt-swordfish"));
    let docs = Api::env_docs();
    let err = Api::from_map([
        ("API_DATABASE_URL", "postgres://app:hunter2@db/app"),
        ("API_TOKEN", "tok-abcdef-123"),
        ("API_PIN", "hunter2-pin"),
    ])
    .unwrap_err();
    let outputs = [
        format!("{:?}", *loaded),
        format!("{:#?}", *loaded),
        format!("{loaded:?}"),
        loaded.explain().to_string(),
        loaded.explain().to_json(),
        format!("{:?}", loaded.settings()),
        docs.to_markdown(),
        docs.to_dotenv(),
        docs.to_json(),
        err.to_string(),
        format!("{err:?}"),
    ];
    for out in &outputs {
        for secret in ["hunter2", "tok-abcdef", "swordfish", "918273"] {
            assert!(!out.contains(secret), "{secret} shown in:\n{out}");
        }
    }
    // Redacted, not hidden: the URL still says where it points.
    assert!(
        outputs[0].contains(r#"url: Secret("postgres://app:***@db/app")"#),
        "{}",
        outputs[0]
    );
    assert!(outputs[0].contains("pin: Secret(***)"), "{}", outputs[0]);
}

/// Issue 10: `main() -> Result<(), Box<dyn Error>>` prints a `?`-returned
/// error with `Debug`, which showed `ConfigError { config: "Database", ... }`.
#[test]
fn config_error_debug_reads_like_display() {
    let err = load(&[("DATABASE_URL", URL), ("DB_POOL_SIZE", "abc")]).unwrap_err();
    let boxed: Box<dyn std::error::Error> = Box::new(err.clone());
    let debug = format!("{boxed:?}");
    assert_eq!(debug, err.to_string());
    assert!(
        debug.starts_with("invalid configuration for Database (profile development): 1 problem\n  - DB_POOL_SIZE = \"abc\" (from env): not an integer"),
        "{debug}"
    );
    assert!(!debug.contains("ConfigError {"), "{debug}");
}

#[test]
fn a_url_in_a_plain_field_is_masked_in_errors() {
    #[derive(PoolConfig, Debug)]
    #[allow(dead_code)]
    struct Plain {
        #[pool(env = "OTHER_PORT")]
        port: u16,
    }
    let err = Plain::from_map([("OTHER_PORT", "postgres://u:hunter2@h/db")]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("postgres://u:***@h/db"), "{err}");
}

#[test]
fn unknown_profile_is_an_error_and_loading_goes_on() {
    let err = load(&[("APP_ENV", "staging"), ("DB_POOL_SIZE", "x")]).unwrap_err();
    let p = err.problem("APP_ENV").unwrap();
    assert_eq!(p.message, "unknown profile");
    assert!(p.expected.contains("development"), "{}", p.expected);
    assert!(err.problem("DB_POOL_SIZE").is_some());
    assert!(err.problem("DATABASE_URL").is_some());
    assert_eq!(err.profile(), None);
}

#[test]
fn profile_variable_can_be_renamed() {
    #[derive(PoolConfig, Debug)]
    #[pool(prefix = "X_", profile_env = "RUST_ENV")]
    struct X {
        #[pool(default = 1, production = 2)]
        n: u32,
    }
    assert_eq!(X::from_map([("RUST_ENV", "production")]).unwrap().n, 2);
    assert_eq!(X::from_map([("APP_ENV", "production")]).unwrap().n, 1);
}

#[test]
fn sources_are_explained_and_redacted() {
    let src = EnvSource::from_pairs([
        ("DATABASE_URL", URL),
        ("APP_ENV", "production"),
        ("DB_MAX_OVERFLOW", "3"),
    ]);
    let loaded = Database::load(&src).unwrap();
    assert_eq!(loaded.profile(), Profile::Production);
    let e = loaded.explain();
    let url = e.entry("DATABASE_URL").unwrap();
    assert_eq!(url.value, "postgres://app:***@db.internal:5432/app");
    assert_eq!(url.source, ValueSource::Env);
    assert_eq!(
        e.entry("DB_POOL_SIZE").unwrap().source,
        ValueSource::ProfileDefault(Profile::Production)
    );
    assert_eq!(e.entry("DB_POOL_SIZE").unwrap().value, "5");
    assert_eq!(e.entry("DB_MAX_OVERFLOW").unwrap().source, ValueSource::Env);
    assert_eq!(
        e.entry("DB_POOL_TIMEOUT").unwrap().source,
        ValueSource::Default
    );
    assert_eq!(e.entry("DB_POOL_TIMEOUT").unwrap().value, "30s");
    assert_eq!(e.entry("DB_API_TOKEN").unwrap().source, ValueSource::Unset);
    assert_eq!(e.entry("DB_API_TOKEN").unwrap().value, "off");
    let text = e.to_string();
    assert!(
        text.starts_with("Database (profile production: APP_ENV=production)"),
        "{text}"
    );
    assert!(text.contains("DB_POOL_SIZE"), "{text}");
    assert!(text.contains("production profile default"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(!e.to_json().contains("hunter2"));
}

#[test]
fn settings_from_mapped_fields() {
    let db = load(&[
        ("DATABASE_URL", URL),
        ("DB_POOL_SIZE", "7"),
        ("DB_POOL_RECYCLE", "off"),
    ])
    .unwrap();
    let s = db.settings();
    assert_eq!(s.url.expose(), URL);
    assert_eq!(s.pool_size, 7);
    assert_eq!(s.max_overflow, 10);
    assert_eq!(s.pool_recycle, None);
    assert_eq!(s.pool_class, PoolClass::Queue);
    assert_eq!(s.name, "database");
    // Unmapped settings keep PoolSettings::new defaults.
    assert_eq!(
        s.connect_timeout,
        pool_runtime::PoolSettings::new("x").connect_timeout
    );
    s.validate().unwrap();
}

#[derive(Debug, Clone, PartialEq)]
pub struct Region(String);

impl FromStr for Region {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 2 && s.chars().all(|c| c.is_ascii_lowercase()) {
            Ok(Region(s.to_owned()))
        } else {
            Err("a region is two lowercase letters".to_owned())
        }
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Odd names mapped explicitly, a nested config and a `FromStr` type.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "APP_")]
pub struct Service {
    #[pool(env = "DATABASE_URL")]
    pub url: String,
    /// Maps onto pool_size though it is not called that.
    #[pool(setting = "pool_size", default = 4)]
    pub connections: u16,
    #[pool(setting = "statement_timeout")]
    pub query_timeout: Option<Duration>,
    /// Named like a setting, but kept out of it.
    #[pool(no_setting, default = 99)]
    pub max_overflow: u32,
    #[pool(from_str, default = "eu")]
    pub region: Region,
    #[pool(from_str)]
    pub fallback_region: Option<Region>,
    #[pool(default = "require")]
    pub sslmode: SslMode,
    #[pool(default = "rollback_always")]
    pub reset_on_return: ResetOnReturn,
    #[pool(flatten, prefix = "REPLICA_")]
    pub replica: Replica,
    #[pool(flatten)]
    pub limits: Limits,
}

#[derive(PoolConfig, Debug)]
pub struct Replica {
    #[pool(default = 2)]
    pub lag_seconds: u32,
    /// Named `url`, so it would map to the pool's URL: opted out.
    #[pool(env = "REPLICA_URL", no_setting)]
    pub url: Option<url::Url>,
}

#[derive(PoolConfig, Debug)]
pub struct Limits {
    #[pool(default = "10m", range = "1s"..="1h")]
    pub leak_threshold: Duration,
}

#[test]
fn explicit_mappings_flatten_and_from_str() {
    let svc = Service::from_map([
        ("DATABASE_URL", URL),
        ("APP_QUERY_TIMEOUT", "5s"),
        ("APP_REPLICA_LAG_SECONDS", "7"),
        ("REPLICA_URL", "postgres://r:pw@replica/app"),
        ("APP_FALLBACK_REGION", "us"),
    ])
    .unwrap();
    assert_eq!(svc.connections, 4);
    assert_eq!(svc.region, Region("eu".into()));
    assert_eq!(svc.fallback_region, Some(Region("us".into())));
    assert_eq!(svc.replica.lag_seconds, 7);
    assert_eq!(
        svc.replica.url.as_ref().map(|u| u.host_str()),
        Some(Some("replica"))
    );
    assert_eq!(svc.limits.leak_threshold, Duration::from_secs(600));
    let s = svc.settings();
    assert_eq!(s.pool_size, 4);
    assert_eq!(s.max_overflow, 10, "no_setting keeps PoolSettings' default");
    assert_eq!(s.statement_timeout, Some(Duration::from_secs(5)));
    assert_eq!(s.sslmode, Some(SslMode::Require));
    assert_eq!(s.reset_on_return, ResetOnReturn::RollbackAlways);
    assert_eq!(s.leak_threshold, Some(Duration::from_secs(600)));
    assert_eq!(s.url.expose(), URL);

    let err = Service::from_map([
        ("DATABASE_URL", URL),
        ("APP_REGION", "Europe"),
        ("APP_LEAK_THRESHOLD", "2h"),
        ("APP_REPLICA_LAG_SECONDS", "x"),
    ])
    .unwrap_err();
    let region = err.problem("APP_REGION").unwrap();
    assert_eq!(region.message, "a region is two lowercase letters");
    assert_eq!(region.expected, "a valid Region");
    assert_eq!(
        err.problem("APP_LEAK_THRESHOLD").unwrap().message,
        "2h is outside \"1s\"..=\"1h\"".replace('"', "")
    );
    assert_eq!(
        err.problem("APP_REPLICA_LAG_SECONDS").unwrap().field,
        "replica.lag_seconds"
    );
    assert_eq!(err.problems().len(), 3, "{err}");
}

#[test]
fn another_prefix_at_run_time() {
    let src = EnvSource::from_pairs([
        ("DATABASE_URL", "postgres://main/app"),
        ("EU_DB_URL", "postgres://eu/app"),
        ("EU_DB_POOL_SIZE", "3"),
        ("DB_POOL_SIZE", "50"),
    ]);
    let eu = Database::load_with_prefix(&src, "EU_DB_").unwrap();
    assert_eq!(eu.url.expose(), "postgres://eu/app");
    assert_eq!(eu.pool_size, 3);
    assert_eq!(eu.settings().name, "eu_db");
    assert_eq!(eu.prefix(), "EU_DB_");
    let main = Database::load(&src).unwrap();
    assert_eq!(main.url.expose(), "postgres://main/app");
    assert_eq!(main.pool_size, 50);
    // The same prefix as declared keeps the absolute names.
    let same = Database::load_with_prefix(&src, "DB_").unwrap();
    assert_eq!(same.url.expose(), "postgres://main/app");
    let docs = Database::env_docs_with_prefix("EU_DB_");
    assert!(docs.var("EU_DB_URL").is_some());
    assert!(docs.var("DATABASE_URL").is_none());
}

#[test]
fn unknown_variables_with_the_prefix_are_warnings() {
    let src = EnvSource::from_pairs([
        ("DATABASE_URL", URL),
        ("DB_POOL_SIZ", "3"),
        ("DB_SOMETHING_ELSE_ENTIRELY", "1"),
        ("DATABSE_URL", "x"),
        ("HOME", "/root"),
    ]);
    let loaded = Database::load(&src).unwrap();
    let w: Vec<(String, Option<String>)> = loaded
        .warnings()
        .iter()
        .map(|w| (w.var.clone(), w.suggestion.clone()))
        .collect();
    assert_eq!(
        w,
        [
            ("DATABSE_URL".to_owned(), Some("DATABASE_URL".to_owned())),
            ("DB_POOL_SIZ".to_owned(), Some("DB_POOL_SIZE".to_owned())),
            ("DB_SOMETHING_ELSE_ENTIRELY".to_owned(), None),
        ]
    );
    assert_eq!(
        loaded.warnings()[1].to_string(),
        "DB_POOL_SIZ is set but no configuration field reads it; did you mean DB_POOL_SIZE?"
    );
}

/// Issue 10: `DB_POOL_SIZE=abc` (the README's prefix) was silently ignored
/// by a config read under `APP_DB_`.
#[test]
fn a_field_under_another_prefix_is_a_warning() {
    #[derive(PoolConfig, Debug)]
    #[pool(prefix = "APP_DB_")]
    struct Service {
        #[pool(env = "DATABASE_URL")]
        url: Secret<String>,
        #[pool(default = 5)]
        pool_size: u32,
        #[pool(default = 10)]
        max_overflow: u32,
        #[pool(default = "/srv")]
        path: String,
    }
    let loaded = Service::load(&EnvSource::from_pairs([
        ("DATABASE_URL", URL),
        ("DB_POOL_SIZE", "abc"),
        ("SVC_DB_MAX_OVERFLOW", "3"),
        ("PATH", "/bin"),
        ("OTHER_THING", "1"),
    ]))
    .unwrap();
    let warnings: Vec<String> = loaded.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "DB_POOL_SIZE is set but no configuration field reads it; field `pool_size` reads \
             APP_DB_POOL_SIZE (the prefix is APP_DB_): did you mean APP_DB_POOL_SIZE?",
            "SVC_DB_MAX_OVERFLOW is set but no configuration field reads it; field `max_overflow` \
             reads APP_DB_MAX_OVERFLOW (the prefix is APP_DB_): did you mean APP_DB_MAX_OVERFLOW?",
        ],
    );
    let w = &loaded.warnings()[0];
    let other = w.other_prefix.as_ref().unwrap();
    assert_eq!(
        (other.field.as_str(), other.prefix.as_str()),
        ("pool_size", "APP_DB_")
    );
    assert_eq!(loaded.pool_size, 5, "the stray variable must not be read");
    assert_eq!(loaded.path, "/srv", "PATH is no variable of this config");
}

#[test]
fn cross_field_rules_at_run_time() {
    #[derive(PoolConfig, Debug)]
    #[pool(prefix = "C_")]
    struct C {
        #[pool(env = "C_URL")]
        url: String,
        #[pool(default = 5)]
        pool_size: u32,
        #[pool(default = 0)]
        min_idle: u32,
        #[pool(default = "30s")]
        pool_timeout: Duration,
    }
    let err = C::from_map([
        ("C_URL", "not a url"),
        ("C_MIN_IDLE", "9"),
        ("C_POOL_TIMEOUT", "0s"),
    ])
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("C_URL (secret, from env): not a URL (relative URL without a base)"),
        "{text}"
    );
    assert!(
        !text.contains("not a url\""),
        "the URL field is secret: {text}"
    );
    assert!(
        text.contains("C_MIN_IDLE = \"9\" (from env): min_idle (9) exceeds pool_size (5)"),
        "{text}"
    );
    assert!(
        text.contains("C_POOL_TIMEOUT = \"0s\" (from env): must be greater than zero"),
        "{text}"
    );
    let err = C::from_map([("C_URL", "postgres://h/db"), ("C_POOL_SIZE", "0")]).unwrap_err();
    assert!(
        err.to_string()
            .contains("C_POOL_SIZE = \"0\" (from env): a queue pool needs at least 1 connection"),
        "{err}"
    );
}

#[test]
fn a_bad_default_of_a_from_str_type_is_reported_as_default() {
    #[derive(PoolConfig, Debug)]
    #[allow(dead_code)]
    struct R {
        #[pool(from_str, env = "R_REGION", default = "nowhere")]
        region: Region,
    }
    let err = R::from_map(Vec::<(String, String)>::new()).unwrap_err();
    let p = err.problem("R_REGION").unwrap();
    assert_eq!(p.source, Some(ValueSource::Default));
    assert_eq!(p.value.as_deref(), Some("nowhere"));
}

#[test]
fn maps_and_owned_pairs_work() {
    let mut map = HashMap::new();
    map.insert("DATABASE_URL".to_owned(), URL.to_owned());
    map.insert("DB_POOL_SIZE".to_owned(), "11".to_owned());
    assert_eq!(Database::from_map(&map).unwrap().pool_size, 11);
    assert_eq!(Database::from_map(map).unwrap().pool_size, 11);
    let v = vec![("DATABASE_URL", URL)];
    assert_eq!(Database::from_map(v).unwrap().pool_size, 20);
}

#[test]
fn from_the_process_env() {
    // nextest runs each test in its own process; nothing else reads these.
    unsafe {
        std::env::set_var("PROCTEST_URL", URL);
        std::env::set_var("PROCTEST_POOL_SIZE", "13");
        std::env::set_var("PROCTEST_POOL_SIZ", "1");
    }
    let db = Database::from_env_with_prefix("PROCTEST_").unwrap();
    assert_eq!(db.pool_size, 13);
    let loaded = Database::load_with_prefix(&EnvSource::process(), "PROCTEST_").unwrap();
    assert_eq!(loaded.warnings().len(), 1);
    assert_eq!(loaded.warnings()[0].var, "PROCTEST_POOL_SIZ");
}

#[test]
fn standard_config_defaults_per_profile() {
    use pool_runtime::config::StandardPoolConfig;
    let dev = StandardPoolConfig::from_map([("DATABASE_URL", URL)]).unwrap();
    assert_eq!(dev.pool_size, 5);
    assert!(dev.echo_pool);
    assert_eq!(dev.leak_threshold, Some(Duration::from_secs(30)));
    let test = StandardPoolConfig::from_map([("DATABASE_URL", URL), ("APP_ENV", "test")]).unwrap();
    assert_eq!(test.pool_class, PoolClass::Null);
    assert_eq!(test.max_overflow, 0);
    assert_eq!(test.pool_timeout, Duration::from_secs(5));
    let prod =
        StandardPoolConfig::from_map([("DATABASE_URL", URL), ("APP_ENV", "production")]).unwrap();
    assert_eq!(prod.pool_recycle, Some(Duration::from_secs(1800)));
    assert!(!prod.echo_pool);
    let s = prod.settings();
    s.validate().unwrap();
    assert_eq!(s.pool_recycle, Some(Duration::from_secs(1800)));
    assert_eq!(s.leak_threshold, None);
}
