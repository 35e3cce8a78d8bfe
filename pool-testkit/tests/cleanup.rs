//! Nothing leaks: a test process that panics or is SIGKILLed leaves no data
//! dir, server process or container behind (the watchdog removes them), and
//! leftovers of a run whose watchdog was gone too are swept by the next run.
//!
//! Each case runs `child_helper` (ignored by default) in a child process of
//! this same test binary and inspects what is left once it has died.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pool_testkit::{ServerKind, TestServer};

/// Runs in the child: starts a server, prints where it lives, then dies
/// the way `POOL_TESTKIT_CHILD_MODE` says.
#[test]
#[ignore = "run by the cleanup tests in a child process"]
fn child_helper() {
    let Ok(mode) = std::env::var("POOL_TESTKIT_CHILD_MODE") else {
        return;
    };
    let backend: ServerKind = std::env::var("POOL_TESTKIT_CHILD_BACKEND")
        .unwrap()
        .parse()
        .unwrap();
    let server = TestServer::builder().backend(backend).start().unwrap();
    match server.log_path() {
        Some(log) => println!("DIR={}", log.parent().unwrap().display()),
        None => println!("CONTAINER={}", server.container_id().unwrap()),
    }
    let pid = postmaster_pid(&server);
    println!("POSTMASTER={pid}");
    match mode.as_str() {
        "panic" => panic!("child_helper panics on purpose"),
        _ => {
            let me = std::process::id().to_string();
            Command::new("kill").args(["-KILL", &me]).status().unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

fn postmaster_pid(server: &TestServer) -> String {
    server.log_path().map_or_else(String::new, |log| {
        let pidfile = log.parent().unwrap().join("data/postmaster.pid");
        std::fs::read_to_string(pidfile)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_owned()
    })
}

/// What a dead child left: a data dir and postmaster pid, or a container.
struct Leftover {
    dir: Option<String>,
    postmaster: Option<String>,
    container: Option<String>,
}

fn run_child(backend: ServerKind, mode: &str, watchdog: bool) -> Leftover {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_helper",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("POOL_TESTKIT_CHILD_MODE", mode)
    .env("POOL_TESTKIT_CHILD_BACKEND", backend.to_string());
    if !watchdog {
        cmd.env("POOL_TESTKIT_NO_WATCHDOG", "1");
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the child should have died:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |key: &str| {
        let prefix = format!("{key}=");
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&prefix))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let leftover = Leftover {
        dir: field("DIR"),
        postmaster: field("POSTMASTER"),
        container: field("CONTAINER"),
    };
    assert!(
        leftover.dir.is_some() || leftover.container.is_some(),
        "child printed no server location:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    leftover
}

fn container_exists(id: &str) -> bool {
    Command::new("docker")
        .args(["inspect", id])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn process_exists(pid: &str) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls until `gone` holds (cleanup runs in another process).
fn wait_gone(what: &str, gone: impl Fn() -> bool) {
    let start = Instant::now();
    while !gone() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what} was not cleaned up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_cleaned(left: &Leftover) {
    if let Some(dir) = &left.dir {
        wait_gone(&format!("data dir {dir}"), || !Path::new(dir).exists());
    }
    if let Some(pid) = &left.postmaster {
        wait_gone(&format!("postmaster {pid}"), || !process_exists(pid));
    }
    if let Some(id) = &left.container {
        wait_gone(&format!("container {id}"), || !container_exists(id));
    }
}

fn watchdog_cleans_after(backend: ServerKind, mode: &str) {
    if !common::available(backend) {
        return;
    }
    let left = run_child(backend, mode, true);
    assert_cleaned(&left);
}

#[test]
fn sigkilled_run_leaves_nothing_local() {
    watchdog_cleans_after(ServerKind::Local, "kill");
}

#[test]
fn panicked_run_leaves_nothing_local() {
    watchdog_cleans_after(ServerKind::Local, "panic");
}

#[test]
fn sigkilled_run_leaves_nothing_docker() {
    watchdog_cleans_after(ServerKind::Docker, "kill");
}

#[test]
fn panicked_run_leaves_nothing_docker() {
    watchdog_cleans_after(ServerKind::Docker, "panic");
}

fn next_run_sweeps(backend: ServerKind) {
    if !common::available(backend) {
        return;
    }
    let left = run_child(backend, "kill", false);
    // With no watchdog, the killed run's server is still there...
    if let Some(dir) = &left.dir {
        assert!(Path::new(dir).exists(), "expected a leftover dir");
    }
    if let Some(id) = &left.container {
        assert!(container_exists(id), "expected a leftover container");
    }
    // ...until the next server start sweeps it.
    let _next = TestServer::builder().backend(backend).start().unwrap();
    assert_cleaned(&left);
}

#[test]
fn next_run_sweeps_leftovers_local() {
    next_run_sweeps(ServerKind::Local);
}

#[test]
fn next_run_sweeps_leftovers_docker() {
    next_run_sweeps(ServerKind::Docker);
}
