//! What the pool has seen of the database itself, for health: connects and
//! pings that succeeded or failed, connections lost mid-query, acquire
//! timeouts. Bookkeeping only (no I/O, no clock reads: callers pass `now`),
//! kept in the ledger under the pool's one lock and tested below.
//!
//! The decay users can reason about: every trouble and every timeout counts
//! for [`RECENT`] (10 s) after it happened, then it is forgotten. One thing
//! does not decay: "the database cannot be reached" (the last connect
//! failed and no connection was verified since) lasts until a connect or a
//! ping succeeds.
//!
//! Credentials the server refused (SQLSTATE class 28: a wrong password, an
//! unknown user, a `pg_hba.conf` rule) are not asked again at every
//! checkout: the next connect waits 1 s, then 2, 4, 8, 16 and at most
//! [`REFUSAL_MAX`]; meanwhile checkouts fail at once with the server's
//! last answer, and one connect at a time tries again when the wait ends.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a trouble or a timeout counts toward health.
pub const RECENT: Duration = Duration::from_secs(10);

/// The longest wait between connects after the server refused the
/// credentials (a fixed password is picked up within this).
pub const REFUSAL_MAX: Duration = Duration::from_secs(30);

/// At most this many events are remembered per kind (a storm of failures
/// must not grow memory); counts saturate there.
const CAP: usize = 1024;

/// A kind of trouble seen talking to the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trouble {
    /// Opening a connection failed or timed out.
    ConnectFailed,
    /// A pre-ping (or health probe) got no good answer.
    PingFailed,
    /// A statement failed because the connection itself was gone (I/O,
    /// protocol, SQLSTATE 08xxx, 57P01-57P03).
    ConnectionLost,
}

impl Trouble {
    fn words(self) -> &'static str {
        match self {
            Self::ConnectFailed => "connect failed",
            Self::PingFailed => "ping failed",
            Self::ConnectionLost => "connection lost",
        }
    }
}

/// Events of the last [`RECENT`], oldest first.
#[derive(Clone, Debug)]
struct Recent<T> {
    events: VecDeque<(Instant, T)>,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Self {
            events: VecDeque::new(),
        }
    }
}

impl<T: Copy> Recent<T> {
    fn push(&mut self, now: Instant, what: T) {
        self.prune(now);
        if self.events.len() == CAP {
            self.events.pop_front();
        }
        self.events.push_back((now, what));
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, _)) = self.events.front() {
            if now.saturating_duration_since(at) < RECENT {
                break;
            }
            self.events.pop_front();
        }
    }

    /// Events within `RECENT` of `now`, without pruning (status is `&self`).
    fn within(&self, now: Instant) -> impl Iterator<Item = &(Instant, T)> {
        self.events
            .iter()
            .filter(move |(at, _)| now.saturating_duration_since(*at) < RECENT)
    }
}

/// The pool's record of the database's answers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Signals {
    /// Last time a connect or a ping succeeded.
    last_verified: Option<Instant>,
    /// When the current run of failed connects began; `None` after a
    /// successful connect.
    connect_failing_since: Option<Instant>,
    last_connect_failure: Option<Instant>,
    consecutive_connect_failures: u32,
    troubles: Recent<Trouble>,
    timeouts: Recent<()>,
    last_error: Option<(Instant, Trouble, String)>,
    refusal: Option<Refusal>,
}

/// The server refused the credentials `streak` times in a row; no connect
/// before `until`.
#[derive(Clone, Debug)]
struct Refusal {
    streak: u32,
    until: Instant,
    answer: String,
}

/// Why a connect is not tried now: the server's last refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeldOff {
    /// The server's answer (no password in it).
    pub answer: String,
    /// Refusals in a row.
    pub streak: u32,
    /// Until the next attempt.
    pub retry_in: Duration,
}

/// The database as the pool has seen it, in [`Status`](crate::Status).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DatabaseStatus {
    /// False when the last connect failed and no connection was verified
    /// (connected or pinged) since: no connection can be had.
    pub reachable: bool,
    /// Connects that failed in a row; 0 once one succeeds.
    pub consecutive_connect_failures: u32,
    /// While the server refuses the credentials (SQLSTATE class 28): how
    /// many times in a row, and seconds until the next connect is tried;
    /// checkouts fail at once meanwhile.
    pub credentials_refused: Option<u32>,
    /// Seconds until the next connect while credentials are refused.
    pub next_connect_in_seconds: Option<f64>,
    /// Failed connects in the last 10 s.
    pub recent_connect_failures: u32,
    /// Failed pings in the last 10 s.
    pub recent_ping_failures: u32,
    /// Connections found dead mid-statement in the last 10 s.
    pub recent_connections_lost: u32,
    /// The last trouble's message (never holds a password), while recent
    /// or while the database cannot be reached.
    pub last_error: Option<String>,
    /// How long ago that was, seconds.
    pub last_error_seconds_ago: Option<f64>,
    /// How long ago a connect or ping last succeeded, seconds.
    pub last_verified_seconds_ago: Option<f64>,
}

impl Signals {
    pub(crate) fn connected(&mut self, now: Instant) {
        self.last_verified = Some(now);
        self.connect_failing_since = None;
        self.consecutive_connect_failures = 0;
        self.refusal = None;
    }

    /// What a failed connect said about the credentials. Refused
    /// (`Some(answer)`): the next connect waits 1, 2, 4 … s, at most
    /// [`REFUSAL_MAX`]. Failed otherwise (`None`: the server is down, a
    /// timeout): a refusal ends, since the server no longer says that.
    pub(crate) fn connect_refused(&mut self, now: Instant, answer: Option<String>) {
        let Some(answer) = answer else {
            self.refusal = None;
            return;
        };
        let streak = self.refusal.as_ref().map_or(0, |r| r.streak) + 1;
        let wait = Duration::from_secs(1 << (streak - 1).min(5)).min(REFUSAL_MAX);
        self.refusal = Some(Refusal {
            streak,
            until: now + wait,
            answer,
        });
    }

    /// Whether a connect may go to the server now. While refused and
    /// waiting: no, with the last answer. When the wait is over: yes, for
    /// this caller only; the others are held for at most `trial` (the
    /// connect's own bound), until its answer comes.
    pub(crate) fn may_connect(&mut self, now: Instant, trial: Duration) -> Result<(), HeldOff> {
        let Some(r) = &mut self.refusal else {
            return Ok(());
        };
        if now >= r.until {
            r.until = now + trial;
            return Ok(());
        }
        Err(HeldOff {
            answer: r.answer.clone(),
            streak: r.streak,
            retry_in: r.until - now,
        })
    }

    pub(crate) fn pinged(&mut self, now: Instant) {
        self.last_verified = Some(now);
    }

    pub(crate) fn trouble(&mut self, now: Instant, kind: Trouble, error: String) {
        if kind == Trouble::ConnectFailed {
            self.connect_failing_since.get_or_insert(now);
            self.last_connect_failure = Some(now);
            self.consecutive_connect_failures = self.consecutive_connect_failures.saturating_add(1);
        }
        self.troubles.push(now, kind);
        self.last_error = Some((now, kind, error));
    }

    pub(crate) fn timed_out(&mut self, now: Instant) {
        self.timeouts.push(now, ());
    }

    /// Acquires that timed out in the last [`RECENT`].
    pub(crate) fn recent_timeouts(&self, now: Instant) -> u64 {
        self.timeouts.within(now).count() as u64
    }

    /// The last connect failed and nothing was verified since.
    pub(crate) fn unreachable(&self) -> bool {
        match (self.connect_failing_since, self.last_verified) {
            (Some(failing), Some(verified)) => verified < failing,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// Whether the maintenance task should check the database now: nothing
    /// verified it for `interval`; or it cannot be reached, to see it come
    /// back, after 1, 2, 4 s and then every `interval` from the last failed
    /// connect. A pool that never reached its database makes no attempts of
    /// its own: its callers' connects decide (the URL may be wrong).
    pub(crate) fn probe_due(&self, now: Instant, interval: Duration) -> bool {
        let Some(verified) = self.last_verified else {
            return false;
        };
        let since = |at: Instant| now.saturating_duration_since(at);
        if self.unreachable() {
            let failures = self.consecutive_connect_failures.clamp(1, 8);
            let backoff = Duration::from_secs(1 << (failures - 1)).min(interval);
            return self
                .last_connect_failure
                .is_none_or(|at| since(at) >= backoff);
        }
        since(verified) >= interval
    }

    pub(crate) fn summary(&self, now: Instant) -> DatabaseStatus {
        let count = |kind| {
            self.troubles
                .within(now)
                .filter(|(_, k)| *k == kind)
                .count() as u32
        };
        let unreachable = self.unreachable();
        let ago = |at: Instant| now.saturating_duration_since(at).as_secs_f64();
        let last_error = self
            .last_error
            .as_ref()
            .filter(|(at, _, _)| unreachable || now.saturating_duration_since(*at) < RECENT);
        let refusal = self.refusal.as_ref();
        DatabaseStatus {
            reachable: !unreachable,
            consecutive_connect_failures: self.consecutive_connect_failures,
            credentials_refused: refusal.map(|r| r.streak),
            next_connect_in_seconds: refusal
                .map(|r| r.until.saturating_duration_since(now).as_secs_f64()),
            recent_connect_failures: count(Trouble::ConnectFailed),
            recent_ping_failures: count(Trouble::PingFailed),
            recent_connections_lost: count(Trouble::ConnectionLost),
            last_error: last_error.map(|(_, kind, e)| format!("{}: {e}", kind.words())),
            last_error_seconds_ago: last_error.map(|(at, _, _)| ago(*at)),
            last_verified_seconds_ago: self.last_verified.map(ago),
        }
    }
}

impl DatabaseStatus {
    /// Any trouble in the last 10 s.
    pub fn troubled(&self) -> bool {
        self.recent_connect_failures + self.recent_ping_failures + self.recent_connections_lost > 0
    }

    /// "2 failed connects, 1 connection lost" for health reasons.
    pub(crate) fn describe_troubles(&self) -> String {
        let parts: Vec<String> = [
            (
                self.recent_connect_failures,
                "failed connect",
                "failed connects",
            ),
            (self.recent_ping_failures, "failed ping", "failed pings"),
            (
                self.recent_connections_lost,
                "connection lost mid-statement",
                "connections lost mid-statement",
            ),
        ]
        .into_iter()
        .filter(|(n, _, _)| *n > 0)
        .map(|(n, one, many)| format!("{n} {}", if n == 1 { one } else { many }))
        .collect();
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, secs: f64) -> Instant {
        base + Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_failed_connect_makes_the_database_unreachable_until_one_succeeds() {
        let t0 = Instant::now();
        let mut s = Signals::default();
        s.connected(t0);
        assert!(!s.unreachable());
        s.trouble(at(t0, 1.0), Trouble::ConnectFailed, "refused".into());
        s.trouble(at(t0, 2.0), Trouble::ConnectFailed, "refused".into());
        assert!(s.unreachable());
        // Long after the decay, still unreachable: that state does not decay.
        let late = s.summary(at(t0, 60.0));
        assert!(!late.reachable);
        assert_eq!(late.consecutive_connect_failures, 2);
        assert_eq!(late.recent_connect_failures, 0, "counts decay");
        assert_eq!(late.last_error.as_deref(), Some("connect failed: refused"));
        s.connected(at(t0, 61.0));
        let back = s.summary(at(t0, 61.5));
        assert!(back.reachable);
        assert_eq!(back.consecutive_connect_failures, 0);
        assert_eq!(
            back.last_error, None,
            "an old error is not shown once reachable"
        );
    }

    #[test]
    fn a_ping_after_the_failure_means_connections_can_still_be_had() {
        let t0 = Instant::now();
        let mut s = Signals::default();
        s.trouble(t0, Trouble::ConnectFailed, "too many clients".into());
        assert!(s.unreachable());
        s.pinged(at(t0, 0.5));
        assert!(!s.unreachable());
    }

    #[test]
    fn troubles_and_timeouts_count_for_ten_seconds() {
        let t0 = Instant::now();
        let mut s = Signals::default();
        s.connected(t0);
        s.trouble(at(t0, 1.0), Trouble::ConnectionLost, "eof".into());
        s.trouble(at(t0, 2.0), Trouble::PingFailed, "eof".into());
        s.timed_out(at(t0, 2.0));
        let now = s.summary(at(t0, 3.0));
        assert!(now.troubled());
        assert_eq!(now.recent_connections_lost, 1);
        assert_eq!(now.recent_ping_failures, 1);
        assert_eq!(s.recent_timeouts(at(t0, 3.0)), 1);
        assert_eq!(
            now.describe_troubles(),
            "1 failed ping, 1 connection lost mid-statement"
        );
        assert!(s.summary(at(t0, 11.5)).recent_ping_failures == 1);
        let later = s.summary(at(t0, 12.5));
        assert!(!later.troubled(), "{later:?}");
        assert_eq!(s.recent_timeouts(at(t0, 12.5)), 0);
        assert_eq!(later.last_error, None);
    }

    #[test]
    fn a_storm_of_failures_is_capped() {
        let t0 = Instant::now();
        let mut s = Signals::default();
        for i in 0..5000 {
            s.trouble(t0, Trouble::ConnectFailed, format!("failure {i}"));
        }
        assert_eq!(s.troubles.events.len(), CAP);
        assert_eq!(s.consecutive_connect_failures, 5000);
    }

    #[test]
    fn probes_are_due_when_nothing_was_verified_lately_or_while_unreachable() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(5);
        let mut s = Signals::default();
        assert!(!s.probe_due(t0, interval), "never connected: no probe");
        s.trouble(t0, Trouble::ConnectFailed, "x".into());
        assert!(
            !s.probe_due(at(t0, 60.0), interval),
            "never connected: no probe"
        );
        s.connected(t0);
        assert!(!s.probe_due(at(t0, 4.0), interval));
        assert!(s.probe_due(at(t0, 5.0), interval));
        s.pinged(at(t0, 5.0));
        // Unreachable: after 1, 2, 4 s, then every 5 s.
        let mut last = 5.5;
        for (failure, wait) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)] {
            while s.consecutive_connect_failures < failure {
                s.trouble(at(t0, last), Trouble::ConnectFailed, "x".into());
            }
            assert!(
                !s.probe_due(at(t0, last + wait - 0.1), interval),
                "{failure}"
            );
            assert!(s.probe_due(at(t0, last + wait), interval), "{failure}");
            last += wait;
        }
    }

    #[test]
    fn refused_credentials_hold_connects_off_with_a_growing_wait() {
        let t0 = Instant::now();
        let trial = Duration::from_secs(10);
        let refused = |s: &mut Signals, now| {
            s.connect_refused(now, Some("password authentication failed".into()))
        };
        let mut s = Signals::default();
        assert_eq!(s.may_connect(t0, trial), Ok(()));
        refused(&mut s, t0);
        let held = s.may_connect(at(t0, 0.5), trial).unwrap_err();
        assert_eq!(
            (held.streak, held.retry_in),
            (1, Duration::from_millis(500))
        );
        assert_eq!(held.answer, "password authentication failed");
        // After 1 s one caller may try; the others are held meanwhile, for
        // at most that connect's own bound.
        assert_eq!(s.may_connect(at(t0, 1.0), trial), Ok(()));
        assert_eq!(
            s.may_connect(at(t0, 1.1), trial).unwrap_err().retry_in,
            Duration::from_secs_f64(9.9)
        );
        refused(&mut s, at(t0, 1.2));
        assert_eq!(
            s.may_connect(at(t0, 1.2), trial).unwrap_err().retry_in,
            Duration::from_secs(2)
        );
        for _ in 0..10 {
            refused(&mut s, t0);
        }
        let status = s.summary(t0);
        assert_eq!(status.credentials_refused, Some(12));
        assert_eq!(
            status.next_connect_in_seconds,
            Some(REFUSAL_MAX.as_secs_f64())
        );
        s.connected(at(t0, 40.0));
        assert_eq!(s.may_connect(at(t0, 40.0), trial), Ok(()));
        assert_eq!(s.summary(at(t0, 40.0)).credentials_refused, None);
    }

    #[test]
    fn another_failure_ends_a_refusal() {
        let t0 = Instant::now();
        let trial = Duration::from_secs(10);
        let mut s = Signals::default();
        s.connect_refused(t0, Some("password authentication failed".into()));
        assert_eq!(s.may_connect(at(t0, 1.0), trial), Ok(()));
        // The trial found the server down, not refusing: nobody is held
        // off with an answer the server no longer gives.
        s.connect_refused(at(t0, 1.5), None);
        assert_eq!(s.may_connect(at(t0, 1.6), trial), Ok(()));
        assert_eq!(s.summary(at(t0, 1.6)).credentials_refused, None);
    }
}
