//! Generated env docs: golden files (rewrite with `POOL_DOCS_BLESS=1`), the
//! content of each format, and the drift check itself.

use std::time::Duration;

use pool_runtime::config::{StandardPoolConfig, assert_docs_current, check_file_current};
use pool_runtime::{PoolClass, PoolConfig, Secret};

/// Primary database of the orders service.
#[derive(PoolConfig, Debug)]
#[pool(prefix = "DB_")]
pub struct Database {
    /// Connection URL; the password is never printed.
    #[pool(
        env = "DATABASE_URL",
        default = "postgres://dev:devpass@localhost/orders"
    )]
    pub url: Secret<String>,
    /// Connections kept open.
    #[pool(default = 20, production = 5, range = 1..=500)]
    pub pool_size: u32,
    /// Extra connections under load | closed when returned.
    #[pool(default = 10, test = 0)]
    pub max_overflow: u32,
    /// How long a checkout waits.
    #[pool(default = "30s")]
    pub pool_timeout: Duration,
    /// Maximum connection age.
    #[pool(default = "1h")]
    pub pool_recycle: Option<Duration>,
    #[pool(default = true)]
    pub pool_pre_ping: bool,
    /// Queue pool, or a fresh connection per checkout in tests.
    #[pool(default = "queue", test = "null")]
    pub pool_class: PoolClass,
    /// Token for the audit API.
    /// Rotated monthly.
    pub audit_token: Secret<String>,
    #[pool(flatten, prefix = "REPLICA_")]
    pub replica: Replica,
}

/// A read replica.
#[derive(PoolConfig, Debug)]
pub struct Replica {
    /// Replica URL; unset means no replica.
    pub url: Option<Secret<String>>,
    /// Connections kept open on the replica.
    #[pool(default = 2, range = 1..)]
    #[pool(no_setting)]
    pub pool_size: u32,
}

fn golden(name: &str) -> String {
    format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn golden_files_are_current() {
    let docs = Database::env_docs();
    assert_docs_current(golden("database.md"), &docs);
    assert_docs_current(golden("database.env"), &docs);
    assert_docs_current(golden("database.json"), &docs);
    assert_docs_current(golden("standard.md"), &StandardPoolConfig::env_docs());
    assert_docs_current(golden("standard.env"), &StandardPoolConfig::env_docs());
}

#[test]
fn markdown_lists_every_variable_with_its_facts() {
    let md = Database::env_docs().to_markdown();
    assert!(
        md.starts_with("## Database\n\nPrimary database of the orders service.\n"),
        "{md}"
    );
    assert!(
        md.contains(
            "| Variable | Type | Required | Default | test | production | Range | Description |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| `DB_POOL_SIZE` | `u32` | no | `20` |  | `5` | `1..=500` | Connections kept open. |"
        ),
        "{md}"
    );
    assert!(
        md.contains("| `DB_AUDIT_TOKEN` | `Secret<String>` (secret) | yes |"),
        "{md}"
    );
    assert!(
        md.contains("Extra connections under load \\| closed when returned."),
        "{md}"
    );
    assert!(
        md.contains("| `DB_REPLICA_URL` | `Option<Secret<String>>` (secret) | no |"),
        "{md}"
    );
    assert!(
        md.contains("| `DB_REPLICA_POOL_SIZE` | `u32` | no | `2` |"),
        "{md}"
    );
    assert!(md.contains("`postgres://dev:***@localhost/orders`"), "{md}");
    assert!(!md.contains("devpass"), "{md}");
}

#[test]
fn dotenv_template_and_json() {
    let docs = Database::env_docs();
    let env = docs.to_dotenv();
    assert!(
        env.contains("\n# Token for the audit API.\n# Rotated monthly.\n# Secret<String>, secret, required\n# Format: any text\nDB_AUDIT_TOKEN=\n"),
        "{env}"
    );
    assert!(
        env.contains("# u32, range 1..=500\n# Format: an integer\n# Profile defaults: production: 5.\n# DB_POOL_SIZE=20\n"),
        "{env}"
    );
    assert!(
        env.contains("# Format: a database URL such as postgres://"),
        "{env}"
    );
    assert!(!env.contains("devpass"), "{env}");
    let json: serde_json::Value = serde_json::from_str(&docs.to_json()).unwrap();
    assert_eq!(json["prefix"], "DB_");
    assert_eq!(json["profile_env"], "APP_ENV");
    let size = json["vars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "DB_POOL_SIZE")
        .unwrap();
    assert_eq!(size["type"], "u32");
    assert_eq!(size["default"], "20");
    assert_eq!(size["production"], "5");
    assert_eq!(size["range"], "1..=500");
    assert_eq!(size["setting"], "pool_size");
    assert_eq!(size["required"], false);
    let replica = json["vars"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "DB_REPLICA_POOL_SIZE")
        .unwrap();
    assert_eq!(replica["field"], "replica.pool_size");
    assert_eq!(replica["setting"], serde_json::Value::Null);
    assert!(!docs.to_json().contains("devpass"));
}

/// Issue 10: ENV.md said "an integer from 0 to 4294967295" next to
/// "range 1..=100". The range is said once, in every format and in errors.
#[test]
fn a_range_is_stated_once() {
    let docs = Database::env_docs();
    let env = docs.to_dotenv();
    for name in ["DB_POOL_SIZE", "DB_REPLICA_POOL_SIZE"] {
        let block = env
            .split("\n\n")
            .find(|b| b.contains(&format!("# {name}=")))
            .unwrap();
        assert!(!block.contains("4294967295"), "{block}");
    }
    let size = docs.var("DB_POOL_SIZE").unwrap();
    assert_eq!(
        (size.format.as_str(), size.range.as_deref()),
        ("an integer", Some("1..=500"))
    );
    // Without a range the type's own bounds are the range, and are said.
    let overflow = docs.var("DB_MAX_OVERFLOW").unwrap();
    assert_eq!(overflow.format, "an integer from 0 to 4294967295");
    let err = Database::from_map([("DB_POOL_SIZE", "900"), ("DB_AUDIT_TOKEN", "t")]).unwrap_err();
    assert_eq!(
        err.problem("DB_POOL_SIZE").unwrap().to_string(),
        "DB_POOL_SIZE = \"900\" (from env): 900 is outside 1..=500; expected an integer, within 1..=500"
    );
}

#[test]
fn drift_is_detected_with_the_first_differing_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.md");
    std::fs::write(&path, "## Database\n\nsomething else\n").unwrap();
    let err = check_file_current(&path, "## Database\n\nPrimary database.\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("first difference at line 3"), "{err}");
    assert!(err.contains("file:      something else"), "{err}");
    assert!(err.contains("generated: Primary database."), "{err}");
    assert!(err.contains("POOL_DOCS_BLESS=1"), "{err}");
    let missing = check_file_current(dir.path().join("nope.md"), "x")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("cannot read it"), "{missing}");
    check_file_current(&path, "## Database\n\nsomething else\n").unwrap();
}

#[test]
#[should_panic(expected = "is out of date")]
fn assert_docs_current_panics_on_drift() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.json");
    std::fs::write(&path, "{}\n").unwrap();
    assert_docs_current(&path, &Database::env_docs());
}
