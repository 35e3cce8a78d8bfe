//! Which host to try next and what a session check means, as libpq's
//! `target_session_attrs` defines it, with no I/O: the connect loop in
//! [`super::connect`] asks [`Selection::next`] for a host, connects, runs
//! the [`Check`] it is told to, and reports the answer back. Kept apart so
//! that every rule (order, the checks, prefer-standby's two passes, what
//! the final error lists) is unit-tested without a server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::TargetSessionAttrs;

/// What to ask a freshly opened session before keeping it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Keep it as it is.
    None,
    /// `SHOW transaction_read_only`; the answer is whether it is `on`.
    ReadOnly,
    /// `SELECT pg_is_in_recovery()`; the answer is whether it is a standby.
    InRecovery,
}

impl Check {
    /// The SQL that answers the check.
    pub(crate) fn sql(self) -> Option<&'static str> {
        match self {
            Check::None => None,
            Check::ReadOnly => Some("SHOW transaction_read_only"),
            Check::InRecovery => Some("SELECT pg_is_in_recovery()"),
        }
    }
}

/// Why one attempt on one host did not give a usable connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostFailure {
    /// The connect (or the check's query) failed.
    Failed {
        /// The driver's reason, in words.
        reason: String,
        /// The server's SQLSTATE when it refused (28P01: a wrong password).
        sqlstate: Option<String>,
    },
    /// No connection (or no answer to the check) within `connect_timeout`.
    TimedOut(Duration),
    /// Connected, but the session failed the `target_session_attrs` check.
    Rejected {
        /// The value the session was checked against.
        wanted: TargetSessionAttrs,
        /// What the server is, in words ("is a standby").
        found: &'static str,
    },
}

impl std::fmt::Display for HostFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostFailure::Failed { reason, .. } => f.write_str(reason),
            HostFailure::TimedOut(t) => write!(f, "timed out after {t:?} (connect_timeout)"),
            HostFailure::Rejected { wanted, found } => {
                write!(f, "failed target_session_attrs={wanted} check: {found}")
            }
        }
    }
}

/// One attempt that failed: which host (index into the URL's host list),
/// and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub host: usize,
    pub failure: HostFailure,
    /// Made in prefer-standby's second pass.
    pub second_pass: bool,
}

/// Whether a checked session is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    /// Close it and ask for the next host.
    Reject,
}

/// One connect's walk over the hosts.
#[derive(Debug)]
pub(crate) struct Selection {
    attrs: TargetSessionAttrs,
    /// Host indices in the order they are tried (the URL's, or shuffled).
    order: Vec<usize>,
    /// Position in `order` of the next host.
    pos: usize,
    /// In prefer-standby's second pass (any host will do).
    second_pass: bool,
    /// The host handed out by `next` and not yet reported on.
    current: Option<usize>,
    /// Hosts that could not be reached: not tried again in the second pass.
    unreachable: Vec<bool>,
    attempts: Vec<Attempt>,
}

impl Selection {
    /// A walk over `order` (a permutation of `0..hosts`) for `attrs`.
    pub(crate) fn new(attrs: TargetSessionAttrs, order: Vec<usize>) -> Self {
        let hosts = order.len();
        Self {
            attrs,
            order,
            pos: 0,
            second_pass: false,
            current: None,
            unreachable: vec![false; hosts],
            attempts: Vec::new(),
        }
    }

    /// The most attempts one walk can make: every host, and for
    /// prefer-standby every host again.
    pub(crate) fn max_attempts(attrs: TargetSessionAttrs, hosts: usize) -> usize {
        match attrs {
            TargetSessionAttrs::PreferStandby => 2 * hosts,
            _ => hosts,
        }
    }

    /// The next host to connect to, or `None` when every host has failed.
    ///
    /// prefer-standby: once the first pass found no standby, a second pass
    /// takes any host, in the same order. Unlike libpq, hosts that could
    /// not be reached in the first pass are skipped in the second, so a
    /// dead host costs one `connect_timeout` per connect, not two.
    pub(crate) fn next(&mut self) -> Option<usize> {
        debug_assert!(self.current.is_none(), "report on the last host first");
        loop {
            if let Some(&host) = self.order.get(self.pos) {
                self.pos += 1;
                if self.second_pass && self.unreachable[host] {
                    continue;
                }
                self.current = Some(host);
                return Some(host);
            }
            if self.attrs == TargetSessionAttrs::PreferStandby && !self.second_pass {
                self.second_pass = true;
                self.pos = 0;
                continue;
            }
            return None;
        }
    }

    /// What to ask the session on the current host.
    pub(crate) fn check(&self) -> Check {
        match self.attrs {
            TargetSessionAttrs::Any => Check::None,
            TargetSessionAttrs::PreferStandby if self.second_pass => Check::None,
            TargetSessionAttrs::ReadWrite | TargetSessionAttrs::ReadOnly => Check::ReadOnly,
            TargetSessionAttrs::Primary
            | TargetSessionAttrs::Standby
            | TargetSessionAttrs::PreferStandby => Check::InRecovery,
        }
    }

    /// The current host could not be connected to (or did not answer the
    /// check).
    pub(crate) fn failed(&mut self, failure: HostFailure) {
        let host = self.take_current();
        self.unreachable[host] = true;
        self.push(host, failure);
    }

    /// The current host answered [`check`](Self::check) with `answer`
    /// (`true`: read-only, or in recovery); `None` when there was no check.
    pub(crate) fn checked(&mut self, answer: Option<bool>) -> Verdict {
        let host = self.take_current();
        let check = self.check();
        let (keep, found) = match (check, answer) {
            (Check::None, _) => (true, ""),
            (Check::ReadOnly, Some(read_only)) => {
                let keep = read_only == (self.attrs == TargetSessionAttrs::ReadOnly);
                let found = if read_only {
                    "is read-only (transaction_read_only = on, a standby or default_transaction_read_only)"
                } else {
                    "accepts writes (transaction_read_only = off)"
                };
                (keep, found)
            }
            (Check::InRecovery, Some(standby)) => {
                let keep = standby != (self.attrs == TargetSessionAttrs::Primary);
                let found = if standby {
                    "is a standby (pg_is_in_recovery() = true)"
                } else {
                    "is not a standby (pg_is_in_recovery() = false)"
                };
                (keep, found)
            }
            (_, None) => (false, "gave no answer to the check"),
        };
        if keep {
            return Verdict::Keep;
        }
        self.push(
            host,
            HostFailure::Rejected {
                wanted: self.attrs,
                found,
            },
        );
        Verdict::Reject
    }

    /// Whether the failure is the server refusing the credentials
    /// (SQLSTATE class 28): the same credentials get the same answer.
    pub(crate) fn refused_credentials(failure: &HostFailure) -> bool {
        matches!(failure, HostFailure::Failed { sqlstate: Some(code), .. } if code.starts_with("28"))
    }

    /// Every failed attempt, in the order they were made.
    pub(crate) fn into_attempts(self) -> Vec<Attempt> {
        self.attempts
    }

    fn take_current(&mut self) -> usize {
        self.current
            .take()
            .expect("a report follows a host handed out by next()")
    }

    fn push(&mut self, host: usize, failure: HostFailure) {
        self.attempts.push(Attempt {
            host,
            failure,
            second_pass: self.second_pass,
        });
    }
}

/// How long a host found unreachable is tried last (pgjdbc's
/// `hostRecheckSeconds` default): a black-holed host then costs one
/// `connect_timeout`, not one per connect.
pub(crate) const RECHECK_UNREACHABLE: Duration = Duration::from_secs(10);

/// What connects have learned about each host, kept between them (as
/// pgjdbc keeps its host status): the hosts the pool's connections were
/// kept on, and the hosts found unreachable lately. No I/O.
///
/// A kept-on host that now fails its check has changed role under those
/// connections (a standby promoted under a `standby` pool, a primary
/// demoted under a `read-write` one): libpq's "a host that now fails its
/// check", after which the pool replaces its connections. An unreachable
/// host goes to the end of the order for [`RECHECK_UNREACHABLE`]; it is
/// still tried when every other host fails.
#[derive(Debug)]
pub(crate) struct HostBook {
    book: Mutex<Book>,
}

#[derive(Debug)]
struct Book {
    kept: Vec<bool>,
    unreachable_until: Vec<Option<Instant>>,
    role_changes: u64,
}

impl HostBook {
    pub(crate) fn new(hosts: usize) -> Self {
        Self {
            book: Mutex::new(Book {
                kept: vec![false; hosts],
                unreachable_until: vec![None; hosts],
                role_changes: 0,
            }),
        }
    }

    /// `order` with the hosts found unreachable lately moved to its end,
    /// each group in its own order.
    pub(crate) fn order(&self, order: Vec<usize>, now: Instant) -> Vec<usize> {
        let book = self.lock();
        let down_until = |h: usize| book.unreachable_until.get(h).copied().flatten();
        let (mut fine, down): (Vec<usize>, Vec<usize>) = order
            .into_iter()
            .partition(|&h| down_until(h).is_none_or(|until| now >= until));
        fine.extend(down);
        fine
    }

    /// A connection to `host` passed its check and was kept.
    pub(crate) fn kept(&self, host: usize) {
        let mut book = self.lock();
        if let Some(kept) = book.kept.get_mut(host) {
            *kept = true;
        }
        book.reached(host);
    }

    /// A connection to `host` was kept with no check to pass.
    pub(crate) fn reached(&self, host: usize) {
        self.lock().reached(host);
    }

    /// `host` answered but failed its check; whether connections had been
    /// kept on it (a role change, counted once until one is kept there
    /// again).
    pub(crate) fn rejected(&self, host: usize) -> bool {
        let mut book = self.lock();
        book.reached(host);
        let changed = book.kept.get_mut(host).is_some_and(std::mem::take);
        if changed {
            book.role_changes += 1;
        }
        changed
    }

    /// `host` could not be reached (timed out, refused, reset).
    pub(crate) fn unreachable(&self, host: usize, now: Instant) {
        if let Some(until) = self.lock().unreachable_until.get_mut(host) {
            *until = Some(now + RECHECK_UNREACHABLE);
        }
    }

    /// Role changes seen so far.
    pub(crate) fn role_changes(&self) -> u64 {
        self.lock().role_changes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Book {
    fn reached(&mut self, host: usize) {
        if let Some(until) = self.unreachable_until.get_mut(host) {
            *until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TargetSessionAttrs::*;

    /// What each host is, for a simulated walk.
    #[derive(Clone, Copy, Debug)]
    enum Server {
        Primary,
        Standby,
        /// A primary whose sessions are read-only
        /// (`default_transaction_read_only = on`).
        ReadOnlyPrimary,
        Down,
    }

    /// Runs a walk the way the connect loop does; returns the host kept
    /// (if any) and every host tried, in order.
    fn walk(
        attrs: TargetSessionAttrs,
        servers: &[Server],
    ) -> (Option<usize>, Vec<usize>, Selection) {
        let mut sel = Selection::new(attrs, (0..servers.len()).collect());
        let mut tried = Vec::new();
        while let Some(host) = sel.next() {
            tried.push(host);
            let server = servers[host];
            if let Server::Down = server {
                sel.failed(HostFailure::Failed {
                    reason: "connection refused".into(),
                    sqlstate: None,
                });
                continue;
            }
            let answer = match sel.check() {
                Check::None => None,
                Check::ReadOnly => Some(!matches!(server, Server::Primary)),
                Check::InRecovery => Some(matches!(server, Server::Standby)),
            };
            if sel.checked(answer) == Verdict::Keep {
                return (Some(host), tried, sel);
            }
        }
        (None, tried, sel)
    }

    use Server::{Down, Primary as P, ReadOnlyPrimary as Rop, Standby as S};

    #[test]
    fn each_value_keeps_the_first_host_of_its_kind() {
        let hosts = [S, P];
        assert_eq!(walk(Any, &hosts).0, Some(0));
        assert_eq!(walk(ReadWrite, &hosts).0, Some(1));
        assert_eq!(walk(Primary, &hosts).0, Some(1));
        assert_eq!(walk(ReadOnly, &hosts).0, Some(0));
        assert_eq!(walk(Standby, &hosts).0, Some(0));
        assert_eq!(walk(PreferStandby, &hosts).0, Some(0));
        let hosts = [P, S];
        assert_eq!(walk(ReadWrite, &hosts).0, Some(0));
        assert_eq!(walk(Standby, &hosts).0, Some(1));
        assert_eq!(walk(PreferStandby, &hosts).0, Some(1));
    }

    /// read-write/read-only look at the session, primary/standby at the
    /// server: a primary with read-only sessions is `primary` but not
    /// `read-write`.
    #[test]
    fn read_only_sessions_and_recovery_are_different_questions() {
        let hosts = [Rop, S];
        assert_eq!(walk(ReadWrite, &hosts).0, None);
        assert_eq!(walk(Primary, &hosts).0, Some(0));
        assert_eq!(walk(ReadOnly, &hosts).0, Some(0));
        assert_eq!(walk(Standby, &hosts).0, Some(1));
    }

    #[test]
    fn prefer_standby_falls_back_to_any_host_in_a_second_pass() {
        let (kept, tried, _) = walk(PreferStandby, &[P, Down, P]);
        assert_eq!(kept, Some(0));
        // First pass: every host; second: the first reachable one.
        assert_eq!(tried, vec![0, 1, 2, 0]);
        let (kept, tried, _) = walk(PreferStandby, &[Down, P]);
        assert_eq!(kept, Some(1));
        assert_eq!(
            tried,
            vec![0, 1, 1],
            "the unreachable host is not tried again"
        );
        let (kept, tried, sel) = walk(PreferStandby, &[Down, Down]);
        assert_eq!(kept, None);
        assert_eq!(tried, vec![0, 1]);
        assert_eq!(sel.into_attempts().len(), 2);
    }

    #[test]
    fn unreachable_hosts_are_passed_over() {
        let (kept, tried, sel) = walk(ReadWrite, &[Down, S, P]);
        assert_eq!(kept, Some(2));
        assert_eq!(tried, vec![0, 1, 2]);
        let attempts = sel.into_attempts();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0].failure.to_string(), "connection refused");
        assert_eq!(
            attempts[1].failure.to_string(),
            "failed target_session_attrs=read-write check: is read-only \
             (transaction_read_only = on, a standby or default_transaction_read_only)"
        );
    }

    #[test]
    fn when_every_host_fails_every_attempt_is_listed_in_order() {
        let (kept, _, sel) = walk(Primary, &[S, Down, S]);
        assert_eq!(kept, None);
        let attempts = sel.into_attempts();
        let hosts: Vec<usize> = attempts.iter().map(|a| a.host).collect();
        assert_eq!(hosts, vec![0, 1, 2]);
        assert_eq!(
            attempts[0].failure.to_string(),
            "failed target_session_attrs=primary check: is a standby (pg_is_in_recovery() = true)"
        );
        let (_, _, sel) = walk(Standby, &[P]);
        assert_eq!(
            sel.into_attempts()[0].failure.to_string(),
            "failed target_session_attrs=standby check: is not a standby (pg_is_in_recovery() = false)"
        );
    }

    #[test]
    fn a_shuffled_order_is_followed() {
        let mut sel = Selection::new(Any, vec![2, 0, 1]);
        assert_eq!(sel.next(), Some(2));
        sel.failed(HostFailure::TimedOut(Duration::from_secs(1)));
        assert_eq!(sel.next(), Some(0));
        assert_eq!(sel.checked(None), Verdict::Keep);
    }

    #[test]
    fn a_missing_answer_is_a_rejection() {
        let mut sel = Selection::new(ReadWrite, vec![0]);
        sel.next();
        assert_eq!(sel.checked(None), Verdict::Reject);
        assert_eq!(sel.next(), None);
    }

    #[test]
    fn the_bound_covers_every_attempt() {
        for attrs in [Any, ReadWrite, ReadOnly, Primary, Standby, PreferStandby] {
            for servers in [&[P, S][..], &[S, S], &[Down, Down, P], &[P, P]] {
                let (_, tried, _) = walk(attrs, servers);
                assert!(tried.len() <= Selection::max_attempts(attrs, servers.len()));
            }
        }
    }

    #[test]
    fn a_kept_host_that_fails_its_check_is_a_role_change_once() {
        let k = HostBook::new(3);
        assert!(!k.rejected(1), "never kept: a standby skipped as usual");
        k.kept(1);
        k.kept(2);
        assert!(k.rejected(1));
        assert!(!k.rejected(1), "counted once");
        assert_eq!(k.role_changes(), 1);
        k.kept(1);
        assert!(k.rejected(1), "kept again, then changed again");
        assert!(k.rejected(2));
        assert_eq!(k.role_changes(), 3);
        k.kept(7);
        assert!(!k.rejected(7), "no such host");
    }

    #[test]
    fn an_unreachable_host_is_tried_last_until_the_recheck() {
        let k = HostBook::new(3);
        let t0 = Instant::now();
        assert_eq!(k.order(vec![0, 1, 2], t0), [0, 1, 2]);
        k.unreachable(0, t0);
        assert_eq!(k.order(vec![0, 1, 2], t0), [1, 2, 0]);
        assert_eq!(
            k.order(vec![2, 0, 1], t0),
            [2, 1, 0],
            "shuffled orders keep theirs"
        );
        let later = t0 + RECHECK_UNREACHABLE;
        assert_eq!(
            k.order(vec![0, 1, 2], later),
            [0, 1, 2],
            "rechecked after the window"
        );
        k.unreachable(1, t0);
        k.rejected(1);
        assert_eq!(
            k.order(vec![0, 1, 2], t0),
            [1, 2, 0],
            "an answer clears the mark"
        );
    }
}
