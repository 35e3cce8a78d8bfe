//! Nothing leaks, even when the test process dies.
//!
//! Statics are never dropped at exit and a panicking or SIGKILLed test
//! process runs no destructor, so every data dir and container is also
//! registered with a watchdog: a tiny `/bin/sh` child in its own process
//! group that reads registrations from a pipe. When the pipe closes (the
//! test process exited, normally or not), it stops the servers and removes
//! what was registered. Whatever still escapes (watchdog killed too, machine
//! rebooted) is swept by the next run: resources carry their owner's
//! identity (boot id, pid, start time) and are removed once it is dead.

use std::io::Write;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;

/// What the watchdog removes when the test process goes away.
pub(crate) enum Resource<'a> {
    /// A local server root dir (`<root>/data` holds postmaster.pid).
    Dir(&'a std::path::Path),
    /// A Docker container id.
    Container(&'a str),
    /// A Docker network (removed after every container).
    Network(&'a str),
}

const SCRIPT: &str = r#"
trap '' INT TERM HUP PIPE
items=''
while IFS= read -r line; do items="$items$line
"; done
printf '%s' "$items" | while IFS=' ' read -r kind arg; do
  case "$kind" in
    dir)
      [ -d "$arg" ] || continue
      if [ -f "$arg/data/postmaster.pid" ]; then
        pid=$(head -n 1 "$arg/data/postmaster.pid")
        if [ -n "$pid" ] && grep -q postgres "/proc/$pid/cmdline" 2>/dev/null; then
          kill -QUIT "$pid" 2>/dev/null
          i=0
          while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
        fi
      fi
      if [ -f "$arg/pgbouncer.pid" ]; then
        pid=$(head -n 1 "$arg/pgbouncer.pid")
        if [ -n "$pid" ] && grep -q pgbouncer "/proc/$pid/cmdline" 2>/dev/null; then
          kill -TERM "$pid" 2>/dev/null
        fi
      fi
      [ -n "$POOL_TESTKIT_KEEP" ] || rm -rf "$arg" ;;
    container)
      docker rm -f -v "$arg" >/dev/null 2>&1 ;;
  esac
done
printf '%s' "$items" | while IFS=' ' read -r kind arg; do
  [ "$kind" = network ] && docker network rm "$arg" >/dev/null 2>&1
done
"#;

static WATCHDOG: Mutex<Option<ChildStdin>> = Mutex::new(None);

/// Registers `resource` with the watchdog (spawned on first use). Failure
/// to run the watchdog is logged, not fatal: Drop and the next run's sweep
/// still clean up.
pub(crate) fn register(resource: Resource<'_>) {
    let line = match resource {
        Resource::Dir(p) => format!("dir {}\n", p.display()),
        Resource::Container(id) => format!("container {id}\n"),
        Resource::Network(name) => format!("network {name}\n"),
    };
    if crate::util::env_flag("POOL_TESTKIT_NO_WATCHDOG") {
        return;
    }
    let mut guard = WATCHDOG.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = spawn();
    }
    if let Some(stdin) = guard.as_mut()
        && let Err(e) = stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
    {
        tracing::warn!("pool-testkit: watchdog registration failed: {e}");
    }
}

fn spawn() -> Option<ChildStdin> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Own process group: a runner that kills the test's group (nextest
        // on timeout, Ctrl-C) must not take the watchdog with it.
        .process_group(0);
    match cmd.spawn() {
        // The Child handle is dropped on purpose: the watchdog outlives us
        // (it is reparented to init and reaped there).
        Ok(mut child) => child.stdin.take(),
        Err(e) => {
            tracing::warn!("pool-testkit: cannot start the cleanup watchdog (/bin/sh): {e}");
            None
        }
    }
}
