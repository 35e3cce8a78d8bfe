//! `POOL_DOCS_BLESS=1` rewrites a drifted file instead of failing. A test
//! binary of its own: it sets the variable for its whole process.

use pool_runtime::PoolConfig;
use pool_runtime::config::{StandardPoolConfig, assert_docs_current, check_file_current};

#[test]
fn bless_rewrites_drifted_and_missing_files() {
    unsafe { std::env::set_var("POOL_DOCS_BLESS", "1") };
    let dir = tempfile::tempdir().unwrap();
    let drifted = dir.path().join("env.md");
    std::fs::write(&drifted, "old\n").unwrap();
    let docs = StandardPoolConfig::env_docs();
    assert_docs_current(&drifted, &docs);
    assert_eq!(
        std::fs::read_to_string(&drifted).unwrap(),
        docs.to_markdown()
    );
    let nested = dir.path().join("docs/deep/.env.example");
    check_file_current(&nested, &docs.to_dotenv()).unwrap();
    assert_eq!(std::fs::read_to_string(&nested).unwrap(), docs.to_dotenv());
    unsafe { std::env::set_var("POOL_DOCS_BLESS", "0") };
    std::fs::write(&drifted, "old again\n").unwrap();
    assert!(
        check_file_current(&drifted, &docs.to_markdown()).is_err(),
        "0 does not bless"
    );
}
