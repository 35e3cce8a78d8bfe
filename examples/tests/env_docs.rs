//! The checked-in env docs of the service match its config type; rerun with
//! `POOL_DOCS_BLESS=1` (or `cargo run -p pool-examples --bin env-docs`) to
//! regenerate them.

use std::path::Path;
use std::process::Command;

use pool_examples::service::ServiceConfig;
use pool_runtime::PoolConfig;
use pool_runtime::config::assert_docs_current;

fn examples_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_env_docs_are_current() {
    let docs = ServiceConfig::env_docs();
    assert_docs_current(examples_dir().join("docs/ENV.md"), &docs);
    assert_docs_current(examples_dir().join(".env.example"), &docs);
}

#[test]
fn env_docs_binary_writes_both_files_and_check_mode_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_env-docs"))
            .args(args)
            .env_remove("POOL_DOCS_BLESS")
            .output()
            .unwrap()
    };
    let out_dir = dir.path().to_str().unwrap();

    let check_before = run(&["--check", out_dir]);
    assert!(
        !check_before.status.success(),
        "--check must fail when the files are missing"
    );

    let wrote = run(&[out_dir]);
    assert!(
        wrote.status.success(),
        "{}",
        String::from_utf8_lossy(&wrote.stderr)
    );
    let markdown = std::fs::read_to_string(dir.path().join("docs/ENV.md")).unwrap();
    let dotenv = std::fs::read_to_string(dir.path().join(".env.example")).unwrap();
    assert_eq!(markdown, ServiceConfig::env_docs().to_markdown());
    assert!(
        markdown.contains("| `DATABASE_URL` |") && markdown.contains("`APP_DB_POOL_SIZE`"),
        "{markdown}"
    );
    assert!(dotenv.contains("# SERVICE_ADDR=127.0.0.1:8080"), "{dotenv}");

    let check_after = run(&["--check", out_dir]);
    assert!(
        check_after.status.success(),
        "{}",
        String::from_utf8_lossy(&check_after.stderr)
    );

    std::fs::write(dir.path().join(".env.example"), "stale\n").unwrap();
    let drifted = run(&["--check", out_dir]);
    assert!(!drifted.status.success());
    assert!(String::from_utf8_lossy(&drifted.stderr).contains("out of date"));
}
