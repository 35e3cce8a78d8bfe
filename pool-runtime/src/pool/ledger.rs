//! The pool's bookkeeping: the idle queue and every counter, changed only
//! through these methods, always under the pool's one lock.
//!
//! It is generic over the connection type and free of I/O so that the loom
//! model at the bottom of this file drives this very code through every
//! interleaving of acquire, return, overflow, failed connects and close.

use std::collections::{HashSet, VecDeque};
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::backend::ServerLimits;
use crate::observe::leak::{Holders, Leak, Task};
use crate::observe::signals::Signals;
use crate::observe::status::Totals;
use crate::observe::wait::WaitStats;
use crate::{CloseReason, PoolSettings};

pub(crate) type Site = &'static Location<'static>;

/// When a connection was made, when it must be replaced, and when the
/// server last proved it alive (connect or ping).
///
/// The pre-ping bypass runs from `verified`, not from the last return: a
/// connection in steady use is still pinged once per `pre_ping_bypass`, so
/// a dead one used only through `&mut *conn` (where the pool never sees the
/// error) stops serving within about that long. Measured from the last
/// return, the window restarted at every request and a dead connection
/// served errors for as long as traffic kept coming (found by
/// `dead_connections::steady_traffic_through_deref_recovers`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnMeta {
    pub created: Instant,
    pub expires: Option<Instant>,
    pub verified: Instant,
    /// The pool's epoch when the connect began: a connection from before
    /// [`Ledger::invalidate_all`] is closed instead of reused.
    pub epoch: u64,
}

impl ConnMeta {
    /// Recycle deadlines get up to 5 % (at most 30 s) of jitter, earlier,
    /// so connections opened together are not all replaced together.
    pub(crate) fn new(settings: &PoolSettings, now: Instant, epoch: u64) -> Self {
        let expires = settings.pool_recycle.map(|age| {
            let spread = (age / 20).min(Duration::from_secs(30));
            let jitter = spread.mul_f64(rand::random::<f64>());
            now + (age - jitter)
        });
        Self {
            created: now,
            expires,
            verified: now,
            epoch,
        }
    }
}

/// An idle connection and its history.
pub(crate) struct Idle<C> {
    pub raw: C,
    pub meta: ConnMeta,
    /// When it went idle (set by the ledger), for `idle_timeout` and
    /// `overflow_linger`.
    pub since: Instant,
}

impl<C> Idle<C> {
    pub(crate) fn new(raw: C, meta: ConnMeta) -> Self {
        let since = meta.verified;
        Self { raw, meta, since }
    }
}

/// How long idle connections stay, beyond what QueuePool keeps: both
/// `None` is QueuePool exactly (no idle timeout; an overflow connection
/// closes as soon as it comes back while `pool_size` are idle).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Lingering {
    /// Idle connections beyond `pool_size` close after this long idle.
    pub overflow_linger: Option<Duration>,
    /// Idle connections close after this long idle while more than
    /// `min_open` are open.
    pub idle_timeout: Option<Duration>,
    pub min_open: u32,
}

/// Which idle connection a checkout takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// Oldest returned first (spreads use over all connections).
    Fifo,
    /// Newest returned first (lets extras sit and age out).
    Lifo,
    /// Never reuse (NullPool).
    Never,
}

/// What a permit holder gets from [`Ledger::check_out`].
pub(crate) enum Checkout<C> {
    /// An idle connection, now checked out under `holder`.
    Idle {
        idle: Idle<C>,
        holder: u64,
        suspect: bool,
    },
    /// No idle connection: a slot is reserved; open one.
    Open,
}

/// What to do after a return was booked.
pub(crate) struct CheckedIn<C> {
    /// A leak report that can now say the connection came back.
    pub leak: Option<Leak>,
    /// A connection that must be closed (overflow or pool closed).
    pub close: Option<(C, CloseReason)>,
    /// The pool is closed: wake `close()`.
    pub pool_closed: bool,
}

/// Everything that changes together.
pub(crate) struct Ledger<C> {
    pub idle: VecDeque<Idle<C>>,
    /// Idle + checked out + connecting.
    pub open: u32,
    pub checked_out: u32,
    pub connecting: u32,
    pub waiting: u32,
    /// Permits nobody holds: room for one more checkout or connect each.
    /// While callers wait there are none: a permit given back then goes to
    /// the waiters' hand-off queue instead (see [`give_permit`](Self::give_permit)).
    pub free: u32,
    pub closed: bool,
    /// Connections kept idle when callers don't wait (live: [`resize`](Self::resize)).
    pub pool_size: u32,
    /// `pool_size + max_overflow` (live).
    pub capacity: u32,
    /// Permits a shrink took that were out at the time: absorbed as they
    /// come back instead of freed.
    pub owed: u32,
    /// Bumped by [`invalidate_all`](Self::invalidate_all).
    pub epoch: u64,
    /// Connections not verified since this instant must be pinged even
    /// inside the bypass window: something failed then, the server may
    /// have gone.
    pub suspect_since: Option<Instant>,
    /// What the database answered lately, for health.
    pub signals: Signals,
    pub totals: Totals,
    pub waits: WaitStats,
    pub holders: Holders,
    pub server: Option<ServerLimits>,
    /// (held at, acquired at) pairs of nested checkouts already warned
    /// about: each pair is reported once per pool.
    pub nested_seen: HashSet<(Site, Site)>,
}

/// A checkout by a task that already holds a connection of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Nested {
    /// Where the task acquired the connection it holds (its oldest).
    pub held_at: Site,
    /// First time this pair of sites nests in this pool.
    pub first: bool,
}

impl<C> Ledger<C> {
    pub(crate) fn new(pool_size: u32, capacity: u32) -> Self {
        Self {
            idle: VecDeque::with_capacity(pool_size as usize),
            open: 0,
            checked_out: 0,
            connecting: 0,
            waiting: 0,
            free: capacity,
            closed: false,
            pool_size,
            capacity,
            owed: 0,
            epoch: 0,
            suspect_since: None,
            signals: Signals::default(),
            totals: Totals::default(),
            waits: WaitStats::default(),
            holders: Holders::default(),
            server: None,
            nested_seen: HashSet::new(),
        }
    }

    /// Takes a free permit for a caller that need not wait; `false` when
    /// there is none (the caller then waits for a hand-off).
    pub(crate) fn take_permit(&mut self) -> bool {
        if self.free == 0 {
            return false;
        }
        self.free -= 1;
        true
    }

    /// A permit comes back: free, or while callers wait, handed to them
    /// through `hand_off`, called under this lock so that the last waiter
    /// to leave sees every permit handed off ([`stop_waiting`](Self::stop_waiting)).
    /// Keeping the permits under the same lock as the connections is what
    /// lets a checkout and a return take one lock each; no waiter is passed
    /// over, as `free` stays 0 while one waits.
    pub(crate) fn give_permit(&mut self, hand_off: impl FnOnce()) {
        if self.owed > 0 {
            self.owed -= 1;
        } else if self.waiting > 0 {
            hand_off();
        } else {
            self.free += 1;
        }
    }

    /// Reserves a free permit and a slot for a connection opened for no
    /// caller (min_idle), while fewer than `min_open` are open.
    pub(crate) fn reserve_spare(&mut self, min_open: u32) -> bool {
        if self.closed || self.open >= min_open || !self.take_permit() {
            return false;
        }
        self.reserve();
        true
    }

    /// A caller starts waiting for a hand-off: only when no permit is free.
    pub(crate) fn start_waiting(&mut self) {
        debug_assert_eq!(self.free, 0, "waiting with a free permit");
        self.waiting += 1;
    }

    /// A caller stopped waiting (served, timed out, cancelled). The last
    /// one out takes back, through `take_handed_off`, permits handed off
    /// after a waiter was counted but never taken by it (it gave up first).
    pub(crate) fn stop_waiting(&mut self, mut take_handed_off: impl FnMut() -> bool) {
        self.waiting -= 1;
        if self.waiting == 0 {
            while take_handed_off() {
                self.free += 1;
            }
            let absorbed = self.owed.min(self.free);
            self.owed -= absorbed;
            self.free -= absorbed;
        }
    }

    /// Changes `pool_size` and the capacity of a live pool. Growth goes to
    /// waiting callers at once (through `hand_off`); a shrink takes free
    /// permits now and the rest as connections come back. Returns idle
    /// connections beyond the new `pool_size`, to be closed.
    pub(crate) fn resize(
        &mut self,
        pool_size: u32,
        capacity: u32,
        mut hand_off: impl FnMut(),
    ) -> Vec<C> {
        self.pool_size = pool_size;
        if capacity >= self.capacity {
            for _ in 0..capacity - self.capacity {
                self.give_permit(&mut hand_off);
            }
        } else {
            let fewer = self.capacity - capacity;
            let now = fewer.min(self.free);
            self.free -= now;
            self.owed += fewer - now;
        }
        self.capacity = capacity;
        // Idle connections hold no permit: beyond the new capacity they
        // close too (found by `model::resize_races_checkouts_and_returns`:
        // one idle and one out stayed open under a capacity of one).
        let mut extra = Vec::new();
        while self.idle.len() > pool_size as usize || self.open > capacity + self.owed {
            let Some(idle) = self.idle.pop_front() else {
                break;
            };
            self.open -= 1;
            self.totals.closed.add(CloseReason::Overflow);
            extra.push(idle.raw);
        }
        extra
    }

    /// Closes every idle connection and marks every connection made so far
    /// to be closed when it comes back (SQLAlchemy's pool-wide
    /// invalidation): after a failover, or new credentials.
    pub(crate) fn invalidate_all(&mut self) -> Vec<C> {
        self.epoch += 1;
        let drained: Vec<_> = self.idle.drain(..).map(|idle| idle.raw).collect();
        self.open -= drained.len() as u32;
        for _ in &drained {
            self.totals.closed.add(CloseReason::Invalidated);
        }
        drained
    }

    /// [`invalidate_all`](Self::invalidate_all) on behalf of a connection
    /// of `epoch` that met a failover, unless an invalidation came after it
    /// was made: the other connections failing with it right after one
    /// failover must not also throw away the new ones made since.
    pub(crate) fn invalidate_for(&mut self, epoch: u64) -> Option<Vec<C>> {
        (epoch == self.epoch).then(|| self.invalidate_all())
    }

    /// Whether `task`, about to check out at `site`, holds a connection of
    /// this pool already; counted in the totals. A scan of the holders,
    /// skipped when nothing is checked out or outside a task (`acquire`
    /// tests both inline before calling).
    pub(crate) fn nested(&mut self, task: Task, site: Site) -> Option<Nested> {
        let task = task?;
        if self.checked_out == 0 {
            return None;
        }
        let held_at = self.holders.held_by(task)?;
        self.totals.nested_checkouts += 1;
        let first = self.nested_seen.insert((held_at, site));
        Some(Nested { held_at, first })
    }

    /// A caller holding a permit takes an idle connection, or reserves the
    /// slot to open one. Opening only when nothing is idle is what keeps
    /// `open <= pool_size + max_overflow`: the permits bound the rest.
    pub(crate) fn check_out(
        &mut self,
        order: Order,
        site: Site,
        task: Task,
        now: Instant,
    ) -> Checkout<C> {
        let idle = match order {
            Order::Fifo => self.idle.pop_front(),
            Order::Lifo => self.idle.pop_back(),
            Order::Never => None,
        };
        match idle {
            Some(idle) => {
                self.checked_out += 1;
                self.totals.acquired += 1;
                let holder = self.holders.check_out(site, task, now);
                let suspect = self.suspect_since.is_some_and(|t| idle.meta.verified < t);
                Checkout::Idle {
                    idle,
                    holder,
                    suspect,
                }
            }
            None => {
                self.reserve();
                Checkout::Open
            }
        }
    }

    /// The health probe takes the least recently returned idle connection
    /// to ping it; unlike [`check_out`](Self::check_out) it is no caller's
    /// checkout, so `acquired` does not count it.
    pub(crate) fn check_out_for_probe(
        &mut self,
        site: Site,
        now: Instant,
    ) -> Option<(Idle<C>, u64)> {
        let idle = self.idle.pop_front()?;
        self.checked_out += 1;
        Some((idle, self.holders.check_out(site, None, now)))
    }

    /// Reserves a slot for a connection being opened.
    pub(crate) fn reserve(&mut self) {
        self.open += 1;
        self.connecting += 1;
    }

    /// A reserved slot's connect succeeded; `site` (in `task`) now holds it.
    pub(crate) fn connected(&mut self, site: Site, task: Task, now: Instant) -> u64 {
        self.connecting -= 1;
        self.checked_out += 1;
        self.totals.acquired += 1;
        self.totals.opened += 1;
        self.holders.check_out(site, task, now)
    }

    /// A reserved slot's connect failed.
    pub(crate) fn connect_failed(&mut self) {
        self.connecting -= 1;
        self.open -= 1;
        self.totals.connect_errors += 1;
    }

    /// A connection opened for no caller (min_idle, health probe): idle
    /// while fewer than `keep` are, else handed back to be closed, with
    /// the reason it was booked under.
    pub(crate) fn park(&mut self, raw: C, meta: ConnMeta, keep: u32) -> Option<(C, CloseReason)> {
        self.connecting -= 1;
        self.totals.opened += 1;
        let keep = keep.min(self.pool_size);
        if !self.closed && meta.epoch == self.epoch && self.idle.len() < keep as usize {
            let mut idle = Idle::new(raw, meta);
            idle.since = Instant::now().max(meta.verified);
            self.idle.push_back(idle);
            return None;
        }
        let reason = if self.closed {
            CloseReason::PoolClosed
        } else if meta.epoch != self.epoch {
            CloseReason::Invalidated
        } else if keep == 0 {
            CloseReason::NullPool
        } else {
            CloseReason::Overflow
        };
        self.open -= 1;
        self.totals.closed.add(reason);
        Some((raw, reason))
    }

    /// A checked-out connection failed its checks and is being closed; the
    /// caller keeps its permit and tries again.
    pub(crate) fn discard_vetted(&mut self, holder: u64, reason: CloseReason, now: Instant) {
        self.totals.acquired -= 1;
        self.discard_probed(holder, reason, now);
    }

    /// A connection the health probe took failed its ping and is closed.
    pub(crate) fn discard_probed(&mut self, holder: u64, reason: CloseReason, now: Instant) {
        self.checked_out -= 1;
        self.holders.check_in(holder, now);
        self.open -= 1;
        self.totals.closed.add(reason);
    }

    /// A connection comes back: `back` is kept idle while fewer than
    /// `pool_size` are idle, while callers wait (one of them is about to
    /// take it: closing it would make that caller open a new one) or, with
    /// `linger`, to linger as overflow until [`trim`](Self::trim); else
    /// closed as overflow. Never kept when made before
    /// [`invalidate_all`](Self::invalidate_all) or beyond a shrunk capacity.
    /// `closing` books one its caller is closing already.
    pub(crate) fn check_in(
        &mut self,
        holder: u64,
        back: Option<Idle<C>>,
        closing: Option<CloseReason>,
        linger: bool,
        now: Instant,
    ) -> CheckedIn<C> {
        self.checked_out -= 1;
        let leak = self.holders.check_in(holder, now);
        let mut close = None;
        match back {
            Some(mut idle) if self.keeps(&idle.meta, linger) => {
                idle.since = now;
                self.idle.push_back(idle);
            }
            Some(idle) => {
                let reason = if self.closed {
                    CloseReason::PoolClosed
                } else if idle.meta.epoch != self.epoch {
                    CloseReason::Invalidated
                } else {
                    CloseReason::Overflow
                };
                self.open -= 1;
                self.totals.closed.add(reason);
                close = Some((idle.raw, reason));
            }
            None => {
                self.open -= 1;
                self.totals
                    .closed
                    .add(closing.unwrap_or(CloseReason::Discarded));
            }
        }
        CheckedIn {
            leak,
            close,
            pool_closed: self.closed,
        }
    }

    fn keeps(&self, meta: &ConnMeta, linger: bool) -> bool {
        !self.closed
            && meta.epoch == self.epoch
            && self.open <= self.capacity
            && (self.idle.len() < self.pool_size as usize || self.waiting > 0 || linger)
    }

    /// Marks the pool closed and hands over the idle connections to close.
    pub(crate) fn close(&mut self) -> Vec<Idle<C>> {
        self.closed = true;
        let drained: Vec<_> = self.idle.drain(..).collect();
        self.open -= drained.len() as u32;
        for _ in &drained {
            self.totals.closed.add(CloseReason::PoolClosed);
        }
        drained
    }

    /// Idle connections to close, once nobody waits: beyond `pool_size`
    /// (kept for waiters by `check_in`, or lingering past
    /// `overflow_linger`), then, with `idle_timeout`, those idle that long
    /// while more than `min_open` are open. The least recently returned
    /// (the front of the queue) go first, and it is always the longest idle.
    pub(crate) fn trim(&mut self, lingering: Lingering, now: Instant) -> Vec<(C, CloseReason)> {
        let mut extra = Vec::new();
        if self.waiting > 0 {
            return extra;
        }
        let idle_for = |idle: &Idle<C>| now.saturating_duration_since(idle.since);
        while self.idle.len() > self.pool_size as usize {
            let Some(front) = self.idle.front() else {
                break;
            };
            let (limit, reason) = match lingering.overflow_linger {
                Some(linger) => (linger, CloseReason::IdleTimeout),
                None => (Duration::ZERO, CloseReason::Overflow),
            };
            if idle_for(front) < limit {
                break;
            }
            self.close_front(reason, &mut extra);
        }
        if let Some(timeout) = lingering.idle_timeout {
            while self.open > lingering.min_open
                && self
                    .idle
                    .front()
                    .is_some_and(|idle| idle_for(idle) >= timeout)
            {
                self.close_front(CloseReason::IdleTimeout, &mut extra);
            }
        }
        extra
    }

    fn close_front(&mut self, reason: CloseReason, out: &mut Vec<(C, CloseReason)>) {
        if let Some(idle) = self.idle.pop_front() {
            self.open -= 1;
            self.totals.closed.add(reason);
            out.push((idle.raw, reason));
        }
    }

    /// No connection is out or being opened.
    pub(crate) fn is_drained(&self) -> bool {
        self.checked_out == 0 && self.connecting == 0
    }

    /// The counts agree with each other and with the caps.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        let capacity = self.capacity;
        let idle = self.idle.len() as u32;
        assert_eq!(
            self.open,
            idle + self.checked_out + self.connecting,
            "open = idle + out + connecting"
        );
        assert!(
            self.open <= capacity + self.owed,
            "open {} over capacity {capacity} + owed {}",
            self.open,
            self.owed
        );
        // Beyond pool_size only while kept for waiters, until `trim`.
        assert!(idle <= capacity, "idle {idle} over capacity {capacity}");
        assert_eq!(
            self.holders.len() as u32,
            self.checked_out,
            "one holder per checkout"
        );
        assert!(
            self.free + self.checked_out + self.connecting <= capacity + self.owed,
            "free {} + out {} + connecting {} over capacity {capacity}",
            self.free,
            self.checked_out,
            self.connecting
        );
        if self.waiting > 0 {
            assert_eq!(self.free, 0, "a caller waits while a permit is free");
        }
        if self.closed {
            assert_eq!(idle, 0, "a closed pool keeps nothing idle");
        }
    }
}

/// `trim`'s two timers, on the ledger alone.
#[cfg(test)]
mod lingering {
    use std::panic::Location;
    use std::time::{Duration, Instant};

    use super::{Checkout, ConnMeta, Idle, Ledger, Lingering, Order};

    /// Opens `n` connections (pool_size 2, capacity 4) and returns them
    /// all at `now`, with `linger`.
    fn ledger_with_returned(n: u32, linger: bool, now: Instant) -> Ledger<u32> {
        let mut l = Ledger::new(2, 4);
        let site = Location::caller();
        let holders: Vec<u64> = (0..n)
            .map(|_| {
                assert!(l.take_permit());
                assert!(matches!(
                    l.check_out(Order::Fifo, site, None, now),
                    Checkout::Open
                ));
                l.connected(site, None, now)
            })
            .collect();
        for (i, holder) in holders.into_iter().enumerate() {
            let meta = ConnMeta::new(&crate::PoolSettings::new("sqlite::memory:"), now, 0);
            let _closed = l.check_in(holder, Some(Idle::new(i as u32, meta)), None, linger, now);
            l.give_permit(|| unreachable!("nobody waits"));
        }
        l.check_invariants();
        l
    }

    /// A failover seen by several connections of one epoch invalidates
    /// once; connections made after it are kept.
    #[test]
    fn a_failover_seen_twice_invalidates_once() {
        let now = Instant::now();
        let mut l = ledger_with_returned(2, false, now);
        let before = l.epoch;
        assert_eq!(l.invalidate_for(before).map(|c| c.len()), Some(2));
        assert_eq!(l.open, 0);
        assert!(l.invalidate_for(before).is_none(), "already invalidated");
        assert_eq!(l.totals.closed.invalidated, 2);
        assert_eq!(l.invalidate_for(l.epoch).map(|c| c.len()), Some(0));
        l.check_invariants();
    }

    #[test]
    fn without_linger_overflow_closes_on_return() {
        let now = Instant::now();
        let l = ledger_with_returned(4, false, now);
        assert_eq!((l.open, l.idle.len()), (2, 2));
        assert_eq!(l.totals.closed.overflow, 2);
    }

    #[test]
    fn lingering_overflow_closes_after_the_linger_only() {
        let now = Instant::now();
        let mut l = ledger_with_returned(4, true, now);
        assert_eq!(l.open, 4, "overflow lingers");
        let timers = Lingering {
            overflow_linger: Some(Duration::from_secs(1)),
            ..Lingering::default()
        };
        assert!(l.trim(timers, now + Duration::from_millis(900)).is_empty());
        let closed = l.trim(timers, now + Duration::from_secs(1));
        assert_eq!(closed.len(), 2, "back to pool_size");
        assert_eq!(l.open, 2);
        assert_eq!(l.totals.closed.idle_timeout, 2);
        l.check_invariants();
    }

    #[test]
    fn idle_timeout_closes_down_to_min_open_only() {
        let now = Instant::now();
        let mut l = ledger_with_returned(2, false, now);
        let timers = Lingering {
            idle_timeout: Some(Duration::from_secs(5)),
            min_open: 1,
            ..Lingering::default()
        };
        assert!(l.trim(timers, now + Duration::from_secs(4)).is_empty());
        assert_eq!(l.trim(timers, now + Duration::from_secs(60)).len(), 1);
        assert_eq!(l.open, 1, "min_idle stays");
        l.check_invariants();
    }

    #[test]
    fn a_shrink_is_paid_as_connections_come_back() {
        let now = Instant::now();
        let site = Location::caller();
        let mut l: Ledger<u32> = Ledger::new(2, 4);
        let holders: Vec<u64> = (0..4)
            .map(|_| {
                assert!(l.take_permit());
                let _ = l.check_out(Order::Fifo, site, None, now);
                l.connected(site, None, now)
            })
            .collect();
        assert!(l.resize(1, 1, || unreachable!("nobody waits")).is_empty());
        assert_eq!((l.free, l.owed), (0, 3));
        for (i, holder) in holders.into_iter().enumerate() {
            let meta = ConnMeta::new(&crate::PoolSettings::new("sqlite::memory:"), now, 0);
            let _ = l.check_in(holder, Some(Idle::new(i as u32, meta)), None, false, now);
            l.give_permit(|| unreachable!("nobody waits"));
            l.check_invariants();
        }
        assert_eq!(
            (l.open, l.free, l.owed),
            (1, 1, 0),
            "one kept idle, every owed permit absorbed"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::panic::Location;
    use std::time::Instant;

    use super::{Checkout, Ledger, Nested, Order};
    use crate::observe::leak::tests::two_task_ids;

    fn take(l: &mut Ledger<u32>, site: super::Site, task: super::Task) -> u64 {
        assert!(l.take_permit());
        match l.check_out(Order::Fifo, site, task, Instant::now()) {
            Checkout::Open => l.connected(site, task, Instant::now()),
            Checkout::Idle { holder, .. } => holder,
        }
    }

    #[test]
    fn nested_checkouts_are_counted_each_time_and_new_once_per_pair() {
        let (a, b) = two_task_ids();
        let (outer, inner) = (Location::caller(), Location::caller());
        let mut l = Ledger::<u32>::new(2, 4);
        assert_eq!(l.nested(Some(a), inner), None, "nothing out");
        let held = take(&mut l, outer, Some(a));
        assert_eq!(l.nested(Some(b), inner), None, "another task");
        assert_eq!(l.nested(None, inner), None, "outside a task");
        let first = Some(Nested {
            held_at: outer,
            first: true,
        });
        assert_eq!(l.nested(Some(a), inner), first);
        let again = Some(Nested {
            held_at: outer,
            first: false,
        });
        assert_eq!(l.nested(Some(a), inner), again, "same pair: not new");
        assert!(l.nested(Some(a), outer).unwrap().first, "another pair");
        assert_eq!(l.totals.nested_checkouts, 3);
        let back = l.check_in(held, None, None, false, Instant::now());
        assert!(back.leak.is_none());
        l.give_permit(|| unreachable!("nobody waits"));
        assert_eq!(l.nested(Some(a), inner), None, "returned");
        l.check_invariants();
    }
}

/// Every interleaving (up to a preemption bound) of callers acquiring and
/// returning, overflow, failing connects, the min_idle top-up, waiters that
/// give up, and close, through the pool's own [`Reservation`] with the
/// hand-off semaphore and `close()`'s wake-up modelled by atomics: the
/// counts stay consistent, nothing leaks, every permit comes back and
/// `close()` is always woken. Run by `cargo test -p pool-runtime --lib ledger`.
///
/// [`Reservation`]: super::reservation::Reservation
#[cfg(test)]
mod model {
    use std::panic::Location;
    use std::time::Instant;

    use loom::sync::atomic::{AtomicU32, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::{Checkout, ConnMeta, Idle, Ledger, Order};
    use crate::pool::reservation::{Capacity, Reservation, stop_waiting};

    const POOL_SIZE: u32 = 1;
    const CAPACITY: u32 = 2;

    struct Model {
        ledger: Mutex<Ledger<u32>>,
        /// The hand-off semaphore's permits.
        handed_off: AtomicU32,
        /// `close()`'s `Notify`: bumped by every wake-up.
        closer_wakes: AtomicU32,
        next_conn: AtomicU32,
    }

    impl Capacity for Model {
        type Conn = u32;

        fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger<u32>) -> R) -> R {
            let mut ledger = self.ledger.lock().unwrap();
            let out = f(&mut ledger);
            ledger.check_invariants();
            if ledger.waiting == 0 {
                assert_eq!(
                    self.handed_off.load(Ordering::Acquire),
                    0,
                    "a permit handed off with nobody waiting"
                );
            }
            out
        }

        fn hand_off(&self) {
            self.handed_off.fetch_add(1, Ordering::AcqRel);
        }

        fn take_handed_off(&self) -> bool {
            let now = self.handed_off.load(Ordering::Acquire);
            now > 0
                && self
                    .handed_off
                    .compare_exchange(now, now - 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
        }

        fn wake_closer(&self) {
            self.closer_wakes.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The first look under the lock, as `acquire` takes it.
    enum First {
        Closed,
        Took(Checkout<u32>),
        Wait,
    }

    impl Model {
        fn new() -> Self {
            Self {
                ledger: Mutex::new(Ledger::new(POOL_SIZE, CAPACITY)),
                handed_off: AtomicU32::new(0),
                closer_wakes: AtomicU32::new(0),
                next_conn: AtomicU32::new(0),
            }
        }

        /// Waits for a hand-off; `false` when the pool closed first or,
        /// with `patient == false`, at once (a caller that gives up).
        fn wait_for_hand_off(&self, patient: bool) -> bool {
            loop {
                if self.take_handed_off() {
                    return true;
                }
                if !patient || self.with_ledger(|l| l.closed) {
                    return false;
                }
                thread::yield_now();
            }
        }

        /// Acquire as `acquire::acquire` does; a connect fails when
        /// `fail_connect`; an impatient caller gives up rather than wait.
        fn acquire(&self, fail_connect: bool, patient: bool) -> Option<(u32, u64)> {
            let site = Location::caller();
            let now = Instant::now();
            let first = self.with_ledger(|l| {
                if l.closed {
                    First::Closed
                } else if l.take_permit() {
                    First::Took(l.check_out(Order::Fifo, site, None, now))
                } else {
                    l.start_waiting();
                    First::Wait
                }
            });
            let (reservation, next) = match first {
                First::Closed => return None,
                First::Took(next) => {
                    let slot = matches!(next, Checkout::Open);
                    (Reservation::adopt(self, slot), next)
                }
                First::Wait => {
                    let got = self.wait_for_hand_off(patient);
                    stop_waiting(&self);
                    if !got {
                        return None;
                    }
                    let mut reservation = Reservation::adopt(self, false);
                    let next = reservation.check_out(Order::Fifo, site, None, now)?;
                    (reservation, next)
                }
            };
            match next {
                Checkout::Idle { idle, holder, .. } => {
                    let _pool = reservation.into_checked_out();
                    Some((idle.raw, holder))
                }
                Checkout::Open if fail_connect => {
                    drop(reservation);
                    None
                }
                Checkout::Open => {
                    let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                    let (_pool, holder) = reservation.connected(site, None, now);
                    Some((conn, holder))
                }
            }
        }

        /// A return, as `Shared::release` books it.
        fn release(&self, conn: u32, holder: u64) {
            let now = Instant::now();
            let meta = meta(now);
            let closed = self.with_ledger(|l| {
                let done = l.check_in(holder, Some(Idle::new(conn, meta)), None, false, now);
                l.give_permit(|| self.hand_off());
                done.pool_closed
            });
            if closed {
                self.wake_closer();
            }
        }

        /// One step of `maintain::top_up` (min_idle = `POOL_SIZE`).
        fn top_up(&self, connects: bool) {
            if !self.with_ledger(|l| l.reserve_spare(POOL_SIZE)) {
                return;
            }
            let reservation = Reservation::adopt(self, true);
            if connects {
                let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                let _surplus = reservation.park(conn, meta(Instant::now()), POOL_SIZE);
            }
            // A failed connect: the reservation's drop books it.
        }

        /// `Pool::resize`, as it books it.
        fn resize(&self, pool_size: u32, capacity: u32) {
            drop(self.with_ledger(|l| l.resize(pool_size, capacity, || self.hand_off())));
        }

        /// `Pool::invalidate_all`, as it books it.
        fn invalidate_all(&self) {
            drop(self.with_ledger(|l| l.invalidate_all()));
        }

        /// `Pool::close`: closes, then waits to be woken until nothing is
        /// out or connecting. Never woken, loom reports the spin.
        fn close(&self) {
            drop(self.with_ledger(|l| l.close()));
            loop {
                let (drained, seen) = self
                    .with_ledger(|l| (l.is_drained(), self.closer_wakes.load(Ordering::Acquire)));
                if drained {
                    return;
                }
                while self.closer_wakes.load(Ordering::Acquire) == seen {
                    thread::yield_now();
                }
            }
        }
    }

    /// A shrink while connections are out and callers wait, then a growth
    /// back: no permit is lost or made up, the cap holds at every step
    /// (the invariants allow `open` over the new capacity only by what is
    /// still owed), and everything ends free.
    #[test]
    fn resize_races_checkouts_and_returns() {
        explore(|| {
            let model = Arc::new(Model::new());
            let callers: Vec<_> = (0..2)
                .map(|_| {
                    let model = model.clone();
                    thread::spawn(move || {
                        let (conn, holder) = model.acquire(false, true).expect("open pool");
                        model.release(conn, holder);
                    })
                })
                .collect();
            model.resize(POOL_SIZE, 1);
            model.resize(POOL_SIZE, CAPACITY);
            for t in callers {
                t.join().unwrap();
            }
            check_end_state(&model);
            assert_eq!(
                model.ledger.lock().unwrap().owed,
                0,
                "nothing owed at the end"
            );
        });
    }

    /// `invalidate_all` while a connection is out: it is not kept when it
    /// comes back, and the counts still add up.
    #[test]
    fn invalidate_all_races_a_checkout() {
        explore(|| {
            let model = Arc::new(Model::new());
            let (conn, holder) = model.acquire(false, true).expect("open pool");
            let caller = {
                let model = model.clone();
                thread::spawn(move || {
                    let (conn, holder) = model.acquire(false, true).expect("open pool");
                    model.release(conn, holder);
                })
            };
            model.invalidate_all();
            model.release(conn, holder);
            caller.join().unwrap();
            check_end_state(&model);
            let ledger = model.ledger.lock().unwrap();
            assert!(
                ledger.totals.closed.invalidated >= 1,
                "the first connection was invalidated"
            );
        });
    }

    fn meta(now: Instant) -> ConnMeta {
        ConnMeta {
            created: now,
            expires: None,
            verified: now,
            epoch: 0,
        }
    }

    fn check_end_state(model: &Model) {
        let mut ledger = model.ledger.lock().unwrap();
        // Connections kept for waiters go once nobody waits.
        drop(ledger.trim(super::Lingering::default(), Instant::now()));
        ledger.check_invariants();
        assert!(
            ledger.idle.len() as u32 <= POOL_SIZE,
            "idle beyond pool_size after trim"
        );
        assert!(
            ledger.is_drained(),
            "nothing checked out or connecting at the end"
        );
        assert_eq!(ledger.waiting, 0, "nobody waits at the end");
        assert_eq!(
            (ledger.free, model.handed_off.load(Ordering::Acquire)),
            (CAPACITY, 0),
            "every permit came back free"
        );
        let closed = ledger.totals.closed;
        assert_eq!(
            ledger.totals.opened,
            closed.total() + u64::from(ledger.open),
            "opened = closed + open"
        );
    }

    fn explore(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    #[test]
    fn three_callers_on_size_one_overflow_one() {
        explore(|| {
            let model = Arc::new(Model::new());
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let model = model.clone();
                    thread::spawn(move || {
                        let (conn, holder) = model.acquire(false, true).expect("open pool");
                        model.release(conn, holder);
                    })
                })
                .collect();
            let (conn, holder) = model.acquire(false, true).expect("open pool");
            model.release(conn, holder);
            for t in threads {
                t.join().unwrap();
            }
            check_end_state(&model);
            let ledger = model.ledger.lock().unwrap();
            assert_eq!(ledger.open, 1, "overflow closed, pool_size kept");
            assert_eq!(ledger.totals.acquired, 3);
        });
    }

    #[test]
    fn a_failed_connect_gives_its_slot_back() {
        explore(|| {
            let model = Arc::new(Model::new());
            let failing = {
                let model = model.clone();
                thread::spawn(move || {
                    // It fails only if it has to open; it may find one idle.
                    if let Some((conn, holder)) = model.acquire(true, true) {
                        model.release(conn, holder);
                    }
                })
            };
            let (conn, holder) = model.acquire(false, true).expect("open pool");
            model.release(conn, holder);
            failing.join().unwrap();
            check_end_state(&model);
        });
    }

    #[test]
    fn a_waiter_that_gives_up_leaves_no_permit_behind() {
        explore(|| {
            let model = Arc::new(Model::new());
            let first = model.acquire(false, true).expect("open pool");
            let second = model.acquire(false, true).expect("open pool");
            let quitter = {
                let model = model.clone();
                thread::spawn(move || {
                    if let Some((conn, holder)) = model.acquire(false, false) {
                        model.release(conn, holder);
                    }
                })
            };
            model.release(first.0, first.1);
            model.release(second.0, second.1);
            quitter.join().unwrap();
            check_end_state(&model);
        });
    }

    #[test]
    fn close_races_returns_and_checkouts() {
        explore(|| {
            let model = Arc::new(Model::new());
            let (conn, holder) = model.acquire(false, true).expect("open pool");
            let closer = {
                let model = model.clone();
                thread::spawn(move || model.close())
            };
            let caller = {
                let model = model.clone();
                thread::spawn(move || {
                    if let Some((conn, holder)) = model.acquire(false, true) {
                        model.release(conn, holder);
                    }
                })
            };
            model.release(conn, holder);
            closer.join().unwrap();
            caller.join().unwrap();
            check_end_state(&model);
            let ledger = model.ledger.lock().unwrap();
            assert_eq!(ledger.open, 0, "a closed pool ends with nothing open");
            assert!(ledger.totals.closed.pool_closed >= 1);
        });
    }

    /// The min_idle top-up's connect fails, or succeeds, while `close()`
    /// waits for it: either way `close()` is woken (a failed one was not,
    /// found by `close_wakeup::close_is_woken_by_a_failed_top_up_connect`).
    #[test]
    fn close_is_woken_by_a_top_up_either_way() {
        for connects in [false, true] {
            explore(move || {
                let model = Arc::new(Model::new());
                let top_up = {
                    let model = model.clone();
                    thread::spawn(move || model.top_up(connects))
                };
                model.close();
                top_up.join().unwrap();
                check_end_state(&model);
            });
        }
    }
}
