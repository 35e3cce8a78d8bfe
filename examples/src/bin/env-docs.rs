//! Writes the service's environment docs: `docs/ENV.md` and `.env.example`
//! under the examples directory, or under the directory given.
//!
//! `cargo run -p pool-examples --bin env-docs [-- DIR]`; `--check` compares
//! instead of writing and fails on drift (for CI).

use std::path::PathBuf;
use std::process::ExitCode;

use pool_examples::service::ServiceConfig;
use pool_runtime::PoolConfig;
use pool_runtime::config::check_file_current;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: env-docs [--check] [DIR]  (default DIR: {})",
                    env!("CARGO_MANIFEST_DIR")
                );
                return ExitCode::SUCCESS;
            }
            _ if dir.is_none() && !arg.starts_with('-') => dir = Some(PathBuf::from(arg)),
            _ => {
                eprintln!("unexpected argument {arg:?}; usage: env-docs [--check] [DIR]");
                return ExitCode::from(2);
            }
        }
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let docs = ServiceConfig::env_docs();
    let outputs = [
        (dir.join("docs/ENV.md"), docs.to_markdown()),
        (dir.join(".env.example"), docs.to_dotenv()),
    ];
    let mut failed = false;
    for (path, text) in outputs {
        let result = if check {
            check_file_current(&path, &text).map_err(|e| e.to_string())
        } else {
            write(&path, &text)
        };
        match result {
            Ok(()) => println!(
                "{} {}",
                if check { "current:" } else { "wrote" },
                path.display()
            ),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write(path: &std::path::Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
