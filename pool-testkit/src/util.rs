//! Small process-level helpers shared by the backends: who owns a resource
//! (so a later run can tell leftovers of dead runs from live ones), and
//! running async code off the caller's runtime (the shared server outlives
//! every `#[tokio::test]` runtime, so it must never depend on one).

use std::future::Future;
use std::path::Path;

/// Identity of a process that survives pid reuse: boot id, pid and the
/// process start time (clock ticks since boot, from /proc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub boot: String,
    pub pid: u32,
    pub start: u64,
}

impl Owner {
    /// The current process.
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            boot: boot_id(),
            pid,
            start: process_start(pid).unwrap_or(0),
        }
    }

    /// `boot:pid:start`, used in marker files, labels and database names.
    pub fn encode(&self) -> String {
        format!("{}:{}:{}", self.boot, self.pid, self.start)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let mut it = s.trim().split(':');
        let boot = it.next()?.to_owned();
        let pid = it.next()?.parse().ok()?;
        let start = it.next()?.parse().ok()?;
        Some(Self { boot, pid, start })
    }

    /// Whether the owning process may still be running.
    pub fn is_alive(&self) -> bool {
        if self.boot != boot_id() {
            // The machine rebooted since (or it is another machine sharing
            // the resource): a process of another boot is gone.
            return false;
        }
        match process_start(self.pid) {
            Some(start) => start == self.start,
            None => false,
        }
    }
}

/// The kernel's boot id, shortened (empty off Linux).
pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().replace('-', "").chars().take(8).collect())
        .unwrap_or_default()
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/pid/stat).
pub(crate) fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip
    // to the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` runs a program whose command line mentions `needle`.
pub(crate) fn process_runs(pid: u32, needle: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

/// Runs `fut` to completion on a fresh current-thread runtime in a scoped
/// thread, so it works from sync code, from inside any runtime (where
/// `block_on` would panic), and after the caller's runtime is gone.
pub(crate) fn block_on_fresh<F>(fut: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("pool-testkit: cannot build a tokio runtime")
                .block_on(fut)
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs a blocking closure on a scoped thread when called from inside a
/// tokio runtime (testcontainers' sync API panics there), inline otherwise.
pub(crate) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        f()
    }
}

/// The last `n` lines of a text file (lossy), or a note saying why not.
pub(crate) fn file_tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => text_tail(&String::from_utf8_lossy(&bytes), n),
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// The last `n` lines of `text`.
pub(crate) fn text_tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Whether an env variable is set to a true-ish value.
pub(crate) fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "no" | "off"))
}

/// A random lowercase hex string of `n` characters.
pub(crate) fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// Sets `key` in an ordered list of settings, replacing an earlier value
/// (the builders' `arg`: a later value for the same key wins).
pub(crate) fn set_setting(settings: &mut Vec<(String, String)>, key: String, value: String) {
    settings.retain(|(k, _)| *k != key);
    settings.push((key, value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_knows_the_living() {
        let me = Owner::current();
        assert_eq!(Owner::decode(&me.encode()), Some(me.clone()));
        assert!(me.is_alive());
        let reused_pid = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(
            !reused_pid.is_alive(),
            "same pid, other start time: another process"
        );
        let other_boot = Owner {
            boot: "00000000".into(),
            ..me
        };
        assert!(!other_boot.is_alive());
        assert_eq!(Owner::decode("garbage"), None);
    }

    #[test]
    fn tails() {
        assert_eq!(text_tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(text_tail("a", 5), "a");
    }
}
