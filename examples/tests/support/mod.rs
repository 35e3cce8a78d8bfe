//! Starts the real `service` binary and talks to it over HTTP. The child is
//! killed when the guard drops, so a failing test leaves no process behind;
//! its stdout and stderr are captured and printed when a test panics.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound on waiting for the service to do something, so a broken service
/// fails the test instead of hanging it. Not a performance assertion.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Variables the child must not inherit from the test's environment.
fn inherited_config(name: &str) -> bool {
    name == "DATABASE_URL"
        || name == "APP_ENV"
        || name.starts_with("APP_DB_")
        || name.starts_with("SERVICE_")
        || name == "RUST_LOG"
}

/// A running service process.
pub struct Service {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client: reqwest::Client,
    output: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

/// How to start the service.
pub struct Launch {
    env: Vec<(String, String)>,
    url: Option<String>,
    cwd: Option<PathBuf>,
}

impl Launch {
    /// A service on a fresh SQLite file in its own temp dir.
    pub fn sqlite() -> Self {
        Self {
            env: Vec::new(),
            url: None,
            cwd: None,
        }
    }

    /// A service on the given database URL.
    pub fn url(url: impl Into<String>) -> Self {
        Self {
            env: Vec::new(),
            url: Some(url.into()),
            cwd: None,
        }
    }

    /// With no DATABASE_URL at all: the embedded default under `cwd`.
    pub fn defaults_in(cwd: &Path) -> Self {
        Self {
            env: Vec::new(),
            url: Some(String::new()),
            cwd: Some(cwd.to_owned()),
        }
    }

    /// One QueuePool for reads and writes on SQLite (the split into one
    /// writer and readers, the default, has its own tests), for tests of
    /// QueuePool behaviour through the service.
    pub fn one_pool(self) -> Self {
        self.env("APP_DB_SQLITE_SINGLE_WRITER", "false")
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// With `/debug/*` mounted.
    pub fn debug(self) -> Self {
        self.env("SERVICE_DEBUG_ENDPOINTS", "1")
    }

    fn command(&self, dir: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_service"));
        for (name, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
            if inherited_config(&name) {
                cmd.env_remove(name);
            }
        }
        cmd.env("SERVICE_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info");
        match &self.url {
            None => {
                cmd.env(
                    "DATABASE_URL",
                    format!("sqlite://{}", dir.join("app.db").display()),
                );
            }
            Some(url) if url.is_empty() => {}
            Some(url) => {
                cmd.env("DATABASE_URL", url);
            }
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        cmd.current_dir(self.cwd.as_deref().unwrap_or(dir));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Starts the service and waits for its `listening on` line.
    pub fn start(self) -> Service {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = self
            .command(dir.path())
            .spawn()
            .expect("start the service binary");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        pump(
            child.stdout.take().expect("stdout"),
            Arc::clone(&output),
            Some(tx),
        );
        pump(
            child.stderr.take().expect("stderr"),
            Arc::clone(&output),
            None,
        );
        let mut service = Service {
            child,
            base: String::new(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
            output,
            dir,
        };
        match rx.recv_timeout(PATIENCE) {
            Ok(base) => service.base = base,
            Err(_) => panic!(
                "the service did not print `listening on` (exit: {:?}); output:\n{}",
                service.child.try_wait(),
                service.output()
            ),
        }
        service
    }

    /// Runs the service expecting it to exit on its own (bad config);
    /// returns its status and output.
    pub fn run_to_exit(self) -> (ExitStatus, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = self
            .command(dir.path())
            .spawn()
            .expect("start the service binary");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                let mut out = String::new();
                child
                    .stdout
                    .take()
                    .expect("stdout")
                    .read_to_string(&mut out)
                    .expect("read stdout");
                child
                    .stderr
                    .take()
                    .expect("stderr")
                    .read_to_string(&mut out)
                    .expect("read stderr");
                return (status, out);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the service kept running although it should have refused its config");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Copies lines of a child stream into `output`; the first `listening on`
/// line's URL goes to `listening`.
fn pump(
    stream: impl Read + Send + 'static,
    output: Arc<Mutex<Vec<String>>>,
    listening: Option<mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        let mut listening = listening;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = line.strip_prefix("listening on ")
                && let Some(tx) = listening.take()
            {
                let _ = tx.send(url.trim().to_owned());
            }
            output.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the service printed so far.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The service's temp dir (its SQLite file lives there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits until an output line satisfies `pred`; panics with the output
    /// after [`PATIENCE`].
    pub async fn wait_for_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = {
                let lines = self.output.lock().unwrap_or_else(|e| e.into_inner());
                lines.iter().find(|l| pred(l)).cloned()
            };
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no output line {what}; output:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn post_empty(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn put(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"))
    }

    /// `/health/db_pool`: status code and JSON body.
    pub async fn health(&self) -> (u16, serde_json::Value) {
        let response = self.get("/health/db_pool").await;
        let code = response.status().as_u16();
        (code, response.json().await.expect("health body is JSON"))
    }

    /// Holds `count` connections in the service for `ms` (or until released).
    pub async fn hold(&self, count: u32, ms: u64) {
        let response = self
            .post_empty(&format!("/debug/hold?count={count}&ms={ms}"))
            .await;
        assert_eq!(
            response.status().as_u16(),
            200,
            "hold {count}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    pub async fn release(&self) {
        let response = self.delete("/debug/hold").await;
        assert_eq!(response.status().as_u16(), 200);
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service ignored SIGTERM; output:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- service output ---\n{}\n--- end ---", self.output());
        }
    }
}

/// Line (1-based) of the first line of `file` (relative to the workspace
/// root) containing `marker`, and the path as `Location` prints it.
pub fn marker_line(file: &str, marker: &str) -> (String, u32) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let text = std::fs::read_to_string(root.join(file)).expect("read service source");
    let index = text
        .lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker} not in {file}"));
    (file.to_owned(), index as u32 + 1)
}
