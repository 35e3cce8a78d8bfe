//! Where a read goes: the routing books of a [`ReplicaPool`](super::ReplicaPool),
//! changed only through these methods, under the handle's one lock.
//!
//! Free of I/O, like the pool's ledger: the probe reports what it saw
//! ([`Router::observe`]), a read asks for a node ([`Router::pick`]) with
//! the node pools' busy counts, and the answer is a standby, the primary
//! (fallback), or every node with the reason it was skipped. The unit
//! tests and the loom model at the bottom drive this very code.

use std::fmt;
use std::time::Duration;

use crate::observe::status::NodeRole;
use crate::{PoolSettings, ReadBalance};

/// What one health check of a host found.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Observation {
    /// It answered: a server in recovery (a standby) or not (a primary),
    /// and how far its replay is behind (zero on a primary).
    Up { in_recovery: bool, lag: Duration },
    /// It did not answer within `connect_timeout`, or refused: why.
    Down(String),
}

/// Why a node serves no reads now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotServing {
    /// Not checked yet (only before the first check of the host ends).
    Unchecked,
    /// The last check could not reach it, or it refused the connection.
    Down {
        /// The error of the last check (no password: URLs are redacted).
        error: String,
    },
    /// It is a primary (not in recovery): reads go to it only as the
    /// fallback, through the write pool.
    Primary,
    /// Its replay lags further behind than `read_max_lag`.
    Lagging {
        /// The lag the last check measured.
        lag: Duration,
        /// `read_max_lag`.
        max: Duration,
    },
}

impl fmt::Display for NotServing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unchecked => f.write_str("not checked yet"),
            Self::Down { error } => write!(f, "down ({error})"),
            Self::Primary => f.write_str("is a primary"),
            Self::Lagging { lag, max } => write!(
                f,
                "lagging {:.1} s > read_max_lag {:.1} s",
                lag.as_secs_f64(),
                max.as_secs_f64()
            ),
        }
    }
}

/// A host a read skipped, for [`Error::NoReadReplica`](crate::Error::NoReadReplica).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedNode {
    /// `host:port`, as the URL names it.
    pub node: String,
    /// Why it serves no reads.
    pub reason: NotServing,
}

impl fmt::Display for SkippedNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.reason)
    }
}

/// One host as the books know it.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    /// `host:port`.
    pub label: String,
    pub role: NodeRole,
    /// The last check reached it.
    pub reachable: bool,
    /// Replay lag at the last check that reached it.
    pub lag: Option<Duration>,
    /// The last check's error, kept after it comes back until the next one.
    pub last_error: Option<String>,
    /// Reads routed to it.
    pub reads: u64,
    /// A check has ended.
    checked: bool,
}

/// Where a read goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The pool of node `i`, a standby that qualifies.
    Standby(usize),
    /// The write pool: no standby qualifies and `read_fallback` is on.
    Primary,
}

/// A role change the probe saw, for the caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleChange {
    pub node: usize,
    pub from: NodeRole,
    pub to: NodeRole,
}

/// The routing books.
#[derive(Clone, Debug)]
pub(crate) struct Router {
    nodes: Vec<Node>,
    balance: ReadBalance,
    fallback: bool,
    max_lag: Option<Duration>,
    /// The node after the last one picked (round robin, and ties).
    cursor: usize,
    /// Reads sent to the primary because no standby qualified.
    pub fallback_reads: u64,
    /// Reads refused because no standby qualified and fallback is off.
    pub refused_reads: u64,
}

impl Router {
    pub(crate) fn new(labels: Vec<String>, settings: &PoolSettings) -> Self {
        Self {
            nodes: labels
                .into_iter()
                .map(|label| Node {
                    label,
                    role: NodeRole::Unknown,
                    reachable: false,
                    lag: None,
                    last_error: None,
                    reads: 0,
                    checked: false,
                })
                .collect(),
            balance: settings.read_balance,
            fallback: settings.read_fallback,
            max_lag: settings.read_max_lag,
            cursor: 0,
            fallback_reads: 0,
            refused_reads: 0,
        }
    }

    pub(crate) fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Books what a check of node `i` found. A node that cannot be
    /// reached keeps its last known role (it may come back as it was);
    /// a change of role is returned.
    pub(crate) fn observe(&mut self, i: usize, seen: Observation) -> Option<RoleChange> {
        let node = &mut self.nodes[i];
        node.checked = true;
        match seen {
            Observation::Up { in_recovery, lag } => {
                let role = if in_recovery {
                    NodeRole::Standby
                } else {
                    NodeRole::Primary
                };
                node.reachable = true;
                node.lag = Some(lag);
                node.last_error = None;
                let from = std::mem::replace(&mut node.role, role);
                (from != role).then_some(RoleChange {
                    node: i,
                    from,
                    to: role,
                })
            }
            Observation::Down(error) => {
                node.reachable = false;
                node.last_error = Some(error);
                None
            }
        }
    }

    /// Why node `i` serves no reads, or `None` when it does.
    pub(crate) fn not_serving(&self, i: usize) -> Option<NotServing> {
        let node = &self.nodes[i];
        if !node.checked {
            return Some(NotServing::Unchecked);
        }
        if !node.reachable {
            return Some(NotServing::Down {
                error: node.last_error.clone().unwrap_or_default(),
            });
        }
        match node.role {
            NodeRole::Primary => return Some(NotServing::Primary),
            NodeRole::Unknown => return Some(NotServing::Unchecked),
            NodeRole::Standby => {}
        }
        match (node.lag, self.max_lag) {
            (Some(lag), Some(max)) if lag > max => Some(NotServing::Lagging { lag, max }),
            _ => None,
        }
    }

    /// Whether any standby serves reads now.
    pub(crate) fn any_serving(&self) -> bool {
        (0..self.nodes.len()).any(|i| self.not_serving(i).is_none())
    }

    /// Chooses where the next read goes. `busy[i]` is the number of
    /// connections of node `i`'s pool checked out or being opened (read
    /// only by `least-busy`). With no standby that qualifies: the primary
    /// when `read_fallback` is on, else every node and why it was skipped.
    pub(crate) fn pick(&mut self, busy: &[u32]) -> Result<Route, Vec<SkippedNode>> {
        let n = self.nodes.len();
        // Candidates in round-robin order, starting at the cursor.
        let candidates = (0..n)
            .map(|k| (self.cursor + k) % n)
            .filter(|&i| self.not_serving(i).is_none());
        let chosen = match self.balance {
            ReadBalance::RoundRobin => candidates.into_iter().next(),
            // min_by_key keeps the first of equals: ties go round robin.
            ReadBalance::LeastBusy => candidates.min_by_key(|&i| busy.get(i).copied().unwrap_or(0)),
        };
        if let Some(i) = chosen {
            self.cursor = (i + 1) % n;
            self.nodes[i].reads += 1;
            return Ok(Route::Standby(i));
        }
        if self.fallback {
            self.fallback_reads += 1;
            return Ok(Route::Primary);
        }
        self.refused_reads += 1;
        Err((0..n)
            .map(|i| SkippedNode {
                node: self.nodes[i].label.clone(),
                reason: self.not_serving(i).unwrap_or(NotServing::Unchecked),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(balance: ReadBalance, fallback: bool, max_lag: Option<Duration>) -> Router {
        let mut s = PoolSettings::new("postgres://u@a,b,c/db");
        s.read_balance = balance;
        s.read_fallback = fallback;
        s.read_max_lag = max_lag;
        Router::new(vec!["a:1".into(), "b:2".into(), "c:3".into()], &s)
    }

    use super::support::{primary, standby};

    /// a the primary, b and c standbys.
    fn usual(r: &mut Router) {
        r.observe(0, primary());
        r.observe(1, standby(0));
        r.observe(2, standby(0));
    }

    #[test]
    fn nothing_serves_before_the_first_check() {
        let mut r = router(ReadBalance::RoundRobin, false, None);
        let skipped = r.pick(&[0; 3]).unwrap_err();
        assert!(skipped.iter().all(|s| s.reason == NotServing::Unchecked));
        assert_eq!(r.refused_reads, 1);
    }

    #[test]
    fn round_robin_alternates_over_the_standbys_only() {
        let mut r = router(ReadBalance::RoundRobin, true, None);
        usual(&mut r);
        let picks: Vec<_> = (0..6).map(|_| r.pick(&[0; 3]).unwrap()).collect();
        use Route::Standby as S;
        assert_eq!(picks, [S(1), S(2), S(1), S(2), S(1), S(2)]);
        assert_eq!(
            r.nodes().iter().map(|n| n.reads).collect::<Vec<_>>(),
            [0, 3, 3]
        );
        assert_eq!(r.fallback_reads, 0);
    }

    #[test]
    fn least_busy_prefers_the_idle_node_and_ties_go_round_robin() {
        let mut r = router(ReadBalance::LeastBusy, true, None);
        usual(&mut r);
        for _ in 0..4 {
            assert_eq!(r.pick(&[0, 3, 0]), Ok(Route::Standby(2)));
        }
        assert_eq!(r.pick(&[0, 1, 2]), Ok(Route::Standby(1)));
        // The primary's pool being idle does not make it a candidate.
        assert_eq!(r.pick(&[0, 5, 5]), Ok(Route::Standby(2)));
        assert_eq!(r.pick(&[0, 5, 5]), Ok(Route::Standby(1)));
    }

    #[test]
    fn a_node_down_is_skipped_and_serves_again_when_it_answers() {
        let mut r = router(ReadBalance::RoundRobin, true, None);
        usual(&mut r);
        r.observe(1, Observation::Down("connection refused".into()));
        for _ in 0..3 {
            assert_eq!(r.pick(&[0; 3]), Ok(Route::Standby(2)));
        }
        assert_eq!(r.nodes()[1].role, NodeRole::Standby, "last known role kept");
        r.observe(1, standby(0));
        let picks: Vec<_> = (0..2).map(|_| r.pick(&[0; 3]).unwrap()).collect();
        assert!(picks.contains(&Route::Standby(1)), "{picks:?}");
    }

    #[test]
    fn no_standby_falls_back_to_the_primary_or_names_each_node() {
        let mut r = router(ReadBalance::RoundRobin, true, Some(Duration::from_secs(1)));
        usual(&mut r);
        r.observe(1, Observation::Down("timed out after 1s".into()));
        r.observe(2, standby(4_200));
        assert_eq!(r.pick(&[0; 3]), Ok(Route::Primary));
        assert_eq!(r.fallback_reads, 1);
        r.fallback = false;
        let skipped = r.pick(&[0; 3]).unwrap_err();
        let text: Vec<String> = skipped.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "a:1: is a primary",
                "b:2: down (timed out after 1s)",
                "c:3: lagging 4.2 s > read_max_lag 1.0 s",
            ]
        );
        assert_eq!(r.refused_reads, 1);
    }

    #[test]
    fn lag_within_the_maximum_serves_and_beyond_it_does_not() {
        let mut r = router(ReadBalance::RoundRobin, false, Some(Duration::from_secs(1)));
        usual(&mut r);
        r.observe(1, standby(1_000));
        r.observe(2, standby(1_001));
        for _ in 0..3 {
            assert_eq!(r.pick(&[0; 3]), Ok(Route::Standby(1)));
        }
        r.observe(2, standby(0));
        assert!(r.any_serving());
        assert_eq!(r.not_serving(2), None);
    }

    #[test]
    fn a_promoted_standby_stops_serving_and_a_demoted_primary_starts() {
        let mut r = router(ReadBalance::RoundRobin, true, None);
        usual(&mut r);
        assert_eq!(
            r.observe(1, primary()),
            Some(RoleChange {
                node: 1,
                from: NodeRole::Standby,
                to: NodeRole::Primary
            })
        );
        assert_eq!(r.observe(1, primary()), None, "reported once");
        for _ in 0..3 {
            assert_eq!(r.pick(&[0; 3]), Ok(Route::Standby(2)));
        }
        r.observe(0, standby(0));
        let picks: Vec<_> = (0..2).map(|_| r.pick(&[0; 3]).unwrap()).collect();
        assert!(picks.contains(&Route::Standby(0)), "{picks:?}");
    }
}

/// Every interleaving (preemption bound 3) of two readers picking while
/// the probe takes a standby down and brings it back, and promotes the
/// other: a pick never returns a node that did not qualify when it was
/// made, and every pick is counted once. Run by
/// `cargo nextest run -p pool-runtime --lib router::model`.
#[cfg(test)]
mod model {
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::support::{primary, standby};
    use super::*;

    fn explore(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// A pick, checked against the books it was made from.
    fn read(router: &Mutex<Router>, picks: &Mutex<u64>) {
        let mut r = router.lock().unwrap();
        let before = r.clone();
        match r.pick(&[0, 0, 0]) {
            Ok(Route::Standby(i)) => {
                assert_eq!(
                    before.not_serving(i),
                    None,
                    "picked a node that does not serve"
                )
            }
            Ok(Route::Primary) => {
                assert!(!before.any_serving(), "fell back with a standby serving")
            }
            Err(_) => unreachable!("fallback is on"),
        }
        *picks.lock().unwrap() += 1;
    }

    #[test]
    fn readers_race_the_probe() {
        explore(|| {
            let mut s = PoolSettings::new("postgres://u@a,b,c/db");
            s.read_balance = ReadBalance::LeastBusy;
            let mut r = Router::new(vec!["a:1".into(), "b:2".into(), "c:3".into()], &s);
            r.observe(0, primary());
            r.observe(1, standby(0));
            r.observe(2, standby(0));
            let router = Arc::new(Mutex::new(r));
            let picks = Arc::new(Mutex::new(0u64));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (router, picks) = (router.clone(), picks.clone());
                    thread::spawn(move || {
                        read(&router, &picks);
                        read(&router, &picks);
                    })
                })
                .collect();
            {
                let observe = |i, seen| {
                    router.lock().unwrap().observe(i, seen);
                };
                observe(1, Observation::Down("refused".into()));
                observe(2, primary());
                observe(1, standby(0));
            }
            for t in readers {
                t.join().unwrap();
            }
            let r = router.lock().unwrap();
            let routed: u64 = r.nodes().iter().map(|n| n.reads).sum::<u64>() + r.fallback_reads;
            assert_eq!(routed, *picks.lock().unwrap(), "every pick counted once");
            assert_eq!(routed, 4);
            assert_eq!(
                r.nodes()[0].reads,
                0,
                "the primary's pool never serves reads"
            );
            assert_eq!(r.not_serving(2), Some(NotServing::Primary));
        });
    }
}

#[cfg(test)]
mod support {
    use super::*;

    pub(super) fn standby(lag_ms: u64) -> Observation {
        Observation::Up {
            in_recovery: true,
            lag: Duration::from_millis(lag_ms),
        }
    }

    pub(super) fn primary() -> Observation {
        Observation::Up {
            in_recovery: false,
            lag: Duration::ZERO,
        }
    }
}
