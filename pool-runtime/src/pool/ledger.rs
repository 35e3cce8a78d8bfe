//! The pool's bookkeeping: the idle queue and every counter, changed only
//! through these methods, always under the pool's one lock.
//!
//! It is generic over the connection type and free of I/O so that the loom
//! model at the bottom of this file drives this very code through every
//! interleaving of acquire, return, overflow, failed connects and close.

use std::collections::VecDeque;
use std::panic::Location;
use std::time::{Duration, Instant};

use crate::backend::ServerLimits;
use crate::observe::leak::{Holders, Leak};
use crate::observe::signals::Signals;
use crate::observe::status::Totals;
use crate::observe::wait::WaitStats;
use crate::{CloseReason, PoolSettings};

type Site = &'static Location<'static>;

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
}

impl ConnMeta {
    /// Recycle deadlines get up to 5 % (at most 30 s) of jitter, earlier,
    /// so connections opened together are not all replaced together.
    pub(crate) fn new(settings: &PoolSettings, now: Instant) -> Self {
        let expires = settings.pool_recycle.map(|age| {
            let spread = (age / 20).min(Duration::from_secs(30));
            let jitter = spread.mul_f64(rand::random::<f64>());
            now + (age - jitter)
        });
        Self {
            created: now,
            expires,
            verified: now,
        }
    }
}

/// An idle connection and its history.
pub(crate) struct Idle<C> {
    pub raw: C,
    pub meta: ConnMeta,
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
    pub closed: bool,
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
}

impl<C> Ledger<C> {
    pub(crate) fn new(pool_size: u32) -> Self {
        Self {
            idle: VecDeque::with_capacity(pool_size as usize),
            open: 0,
            checked_out: 0,
            connecting: 0,
            waiting: 0,
            closed: false,
            suspect_since: None,
            signals: Signals::default(),
            totals: Totals::default(),
            waits: WaitStats::default(),
            holders: Holders::default(),
            server: None,
        }
    }

    /// A caller holding a permit takes an idle connection, or reserves the
    /// slot to open one. Opening only when nothing is idle is what keeps
    /// `open <= pool_size + max_overflow`: the permits bound the rest.
    pub(crate) fn check_out(&mut self, order: Order, site: Site, now: Instant) -> Checkout<C> {
        let idle = match order {
            Order::Fifo => self.idle.pop_front(),
            Order::Lifo => self.idle.pop_back(),
            Order::Never => None,
        };
        match idle {
            Some(idle) => {
                self.checked_out += 1;
                self.totals.acquired += 1;
                let holder = self.holders.check_out(site, now);
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
        Some((idle, self.holders.check_out(site, now)))
    }

    /// Reserves a slot for a connection being opened.
    pub(crate) fn reserve(&mut self) {
        self.open += 1;
        self.connecting += 1;
    }

    /// A reserved slot's connect succeeded; `site` now holds it.
    pub(crate) fn connected(&mut self, site: Site, now: Instant) -> u64 {
        self.connecting -= 1;
        self.checked_out += 1;
        self.totals.acquired += 1;
        self.totals.opened += 1;
        self.holders.check_out(site, now)
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
        if !self.closed && self.idle.len() < keep as usize {
            self.idle.push_back(Idle { raw, meta });
            return None;
        }
        let reason = if self.closed {
            CloseReason::PoolClosed
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
    /// `pool_size` are idle or while callers wait (one of them is about to
    /// take it: closing it would make that caller open a new one), else
    /// closed as overflow; `closing` books one its caller is closing already.
    pub(crate) fn check_in(
        &mut self,
        holder: u64,
        back: Option<Idle<C>>,
        closing: Option<CloseReason>,
        pool_size: u32,
        now: Instant,
    ) -> CheckedIn<C> {
        self.checked_out -= 1;
        let leak = self.holders.check_in(holder, now);
        let mut close = None;
        match back {
            Some(idle)
                if !self.closed && (self.idle.len() < pool_size as usize || self.waiting > 0) =>
            {
                self.idle.push_back(idle);
            }
            Some(idle) => {
                let reason = if self.closed {
                    CloseReason::PoolClosed
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

    /// Idle connections beyond `pool_size` once nobody waits (kept for
    /// waiters by `check_in`), to be closed as overflow.
    pub(crate) fn trim(&mut self, pool_size: u32) -> Vec<C> {
        if self.waiting > 0 {
            return Vec::new();
        }
        let mut extra = Vec::new();
        while self.idle.len() > pool_size as usize {
            // The least recently used go first.
            if let Some(idle) = self.idle.pop_front() {
                self.open -= 1;
                self.totals.closed.add(CloseReason::Overflow);
                extra.push(idle.raw);
            }
        }
        extra
    }

    /// No connection is out or being opened.
    pub(crate) fn is_drained(&self) -> bool {
        self.checked_out == 0 && self.connecting == 0
    }

    /// The counts agree with each other and with the caps.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self, pool_size: u32, capacity: u32) {
        let idle = self.idle.len() as u32;
        assert_eq!(
            self.open,
            idle + self.checked_out + self.connecting,
            "open = idle + out + connecting"
        );
        assert!(
            self.open <= capacity,
            "open {} over capacity {capacity}",
            self.open
        );
        // Beyond pool_size only while kept for waiters, until `trim`.
        assert!(idle <= capacity, "idle {idle} over capacity {capacity}");
        let _ = pool_size;
        assert_eq!(
            self.holders.len() as u32,
            self.checked_out,
            "one holder per checkout"
        );
        if self.closed {
            assert_eq!(idle, 0, "a closed pool keeps nothing idle");
        }
    }
}

/// Every interleaving (up to a preemption bound) of callers acquiring and
/// returning, overflow, a failing connect and close, with the permits of a
/// semaphore modelled by an atomic: the counts stay consistent and nothing
/// leaks. Run by `cargo test -p pool-runtime --lib ledger`.
#[cfg(test)]
mod model {
    use std::panic::Location;
    use std::time::Instant;

    use loom::sync::atomic::{AtomicU32, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread;

    use super::{Checkout, ConnMeta, Idle, Ledger, Order};
    use crate::CloseReason;

    const POOL_SIZE: u32 = 1;
    const CAPACITY: u32 = 2;

    struct Model {
        ledger: Mutex<Ledger<u32>>,
        permits: AtomicU32,
        next_conn: AtomicU32,
    }

    impl Model {
        fn new() -> Self {
            Self {
                ledger: Mutex::new(Ledger::new(POOL_SIZE)),
                permits: AtomicU32::new(CAPACITY),
                next_conn: AtomicU32::new(0),
            }
        }

        fn with<R>(&self, f: impl FnOnce(&mut Ledger<u32>) -> R) -> R {
            let mut ledger = self.ledger.lock().unwrap();
            let out = f(&mut ledger);
            ledger.check_invariants(POOL_SIZE, CAPACITY);
            out
        }

        fn try_permit(&self) -> bool {
            let now = self.permits.load(Ordering::Acquire);
            now > 0
                && self
                    .permits
                    .compare_exchange(now, now - 1, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
        }

        /// `None` when the pool was closed while waiting. A caller that
        /// has to wait is counted in `waiting`, as the real pool does.
        fn take_permit(&self) -> Option<()> {
            if self.try_permit() {
                return Some(());
            }
            self.with(|l| l.waiting += 1);
            let got = loop {
                if self.with(|l| l.closed) {
                    break None;
                }
                if self.try_permit() {
                    break Some(());
                }
                thread::yield_now();
            };
            self.with(|l| l.waiting -= 1);
            got
        }

        fn give_permit(&self) {
            self.permits.fetch_add(1, Ordering::AcqRel);
        }

        /// Acquire; a connect fails when `fail_connect`.
        fn acquire(&self, fail_connect: bool) -> Option<(u32, u64)> {
            self.take_permit()?;
            let site = Location::caller();
            let now = Instant::now();
            match self.with(|l| {
                if l.closed {
                    None
                } else {
                    Some(l.check_out(Order::Fifo, site, now))
                }
            }) {
                None => {
                    self.give_permit();
                    None
                }
                Some(Checkout::Idle { idle, holder, .. }) => Some((idle.raw, holder)),
                Some(Checkout::Open) if fail_connect => {
                    self.with(|l| l.connect_failed());
                    self.give_permit();
                    None
                }
                Some(Checkout::Open) => {
                    let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
                    let holder = self.with(|l| l.connected(site, now));
                    Some((conn, holder))
                }
            }
        }

        fn release(&self, conn: u32, holder: u64) {
            let now = Instant::now();
            let meta = ConnMeta {
                created: now,
                expires: None,
                verified: now,
            };
            self.with(|l| l.check_in(holder, Some(Idle { raw: conn, meta }), None, POOL_SIZE, now));
            self.give_permit();
        }
    }

    fn check_end_state(model: &Model) {
        let mut ledger = model.ledger.lock().unwrap();
        // Connections kept for waiters go once nobody waits.
        drop(ledger.trim(POOL_SIZE));
        ledger.check_invariants(POOL_SIZE, CAPACITY);
        assert!(
            ledger.idle.len() as u32 <= POOL_SIZE,
            "idle beyond pool_size after trim"
        );
        assert!(
            ledger.is_drained(),
            "nothing checked out or connecting at the end"
        );
        assert_eq!(
            model.permits.load(Ordering::Acquire),
            CAPACITY,
            "every permit came back"
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
                        let (conn, holder) = model.acquire(false).expect("open pool");
                        model.release(conn, holder);
                    })
                })
                .collect();
            let (conn, holder) = model.acquire(false).expect("open pool");
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
                    if let Some((conn, holder)) = model.acquire(true) {
                        model.release(conn, holder);
                    }
                })
            };
            let (conn, holder) = model.acquire(false).expect("open pool");
            model.release(conn, holder);
            failing.join().unwrap();
            check_end_state(&model);
        });
    }

    #[test]
    fn close_races_returns_and_checkouts() {
        explore(|| {
            let model = Arc::new(Model::new());
            let (conn, holder) = model.acquire(false).expect("open pool");
            let closer = {
                let model = model.clone();
                thread::spawn(move || {
                    drop(model.with(|l| l.close()));
                })
            };
            let caller = {
                let model = model.clone();
                thread::spawn(move || {
                    if let Some((conn, holder)) = model.acquire(false) {
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
            let _ = CloseReason::PoolClosed;
        });
    }
}
