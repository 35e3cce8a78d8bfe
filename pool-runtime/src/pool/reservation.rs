//! One RAII reservation of pool capacity: a permit, and while a connection
//! is being opened for it, the connecting slot too.
//!
//! Whoever takes capacity without yet holding a connection holds a
//! [`Reservation`]; it turns into a checked-out connection (which gives the
//! permit back through [`Ledger::check_in`]) or into an idle one
//! ([`Reservation::park`]). Dropped on any other path (an error, a failed
//! connect, a cancelled caller), it books the failed connect, gives the
//! permit back (to a waiting caller if one waits) and wakes `close()`.
//! Before it, each path did that by hand, and the min_idle top-up forgot
//! to wake `close()` (found by
//! `close_wakeup::close_is_woken_by_a_failed_top_up_connect`).
//!
//! Like the ledger it is free of I/O and generic over the pool
//! ([`Capacity`]), so the loom model in `ledger.rs` drives this very code.

use super::ledger::{Checkout, ConnMeta, Ledger, Order, Site};
use crate::CloseReason;
use crate::observe::leak::Task;

/// What a reservation needs from its pool.
pub(crate) trait Capacity {
    type Conn;
    /// Runs `f` under the pool's one lock. Never call it with a
    /// [`Reservation`] to drop inside `f`: its drop takes the lock too.
    fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger<Self::Conn>) -> R) -> R;
    /// Hands one permit to the callers waiting for one; called under the
    /// lock (see [`Ledger::give_permit`]).
    fn hand_off(&self);
    /// Takes back one permit handed off but never taken, if there is one.
    fn take_handed_off(&self) -> bool;
    /// Wakes `close()`, which waits for nothing to be out or connecting.
    fn wake_closer(&self);
}

/// Handles (`&Shared`, `Arc<Shared>`) are capacities through what they
/// point at.
impl<P> Capacity for P
where
    P: std::ops::Deref,
    P::Target: Capacity,
{
    type Conn = <P::Target as Capacity>::Conn;
    fn with_ledger<R>(&self, f: impl FnOnce(&mut Ledger<Self::Conn>) -> R) -> R {
        (**self).with_ledger(f)
    }
    fn hand_off(&self) {
        (**self).hand_off();
    }
    fn take_handed_off(&self) -> bool {
        (**self).take_handed_off()
    }
    fn wake_closer(&self) {
        (**self).wake_closer();
    }
}

/// A permit (and maybe a connecting slot) held by a caller or a task of
/// pool `P` (a handle: `&Shared`, `Arc<Shared>`).
#[must_use = "dropping a reservation gives its capacity back at once"]
pub(crate) struct Reservation<P: Capacity> {
    /// `None` once the capacity went on with a connection.
    pool: Option<P>,
    /// The ledger counts a connection being opened for this reservation.
    slot: bool,
}

impl<P: Capacity> Reservation<P> {
    /// Adopts a permit the ledger (or the hand-off queue) just gave, with
    /// the connecting slot the ledger reserved alongside when `slot`.
    pub(crate) fn adopt(pool: P, slot: bool) -> Self {
        Self {
            pool: Some(pool),
            slot,
        }
    }

    pub(crate) fn pool(&self) -> &P {
        self.pool.as_ref().expect("reservation in use")
    }

    /// Takes an idle connection or reserves a slot to open one; `None`
    /// when the pool is closed (the reservation then gives its permit back
    /// when dropped).
    pub(crate) fn check_out(
        &mut self,
        order: Order,
        site: Site,
        task: Task,
        now: std::time::Instant,
    ) -> Option<Checkout<P::Conn>> {
        debug_assert!(!self.slot, "a slot is already reserved");
        let next = self.pool().with_ledger(|l| {
            if l.closed {
                None
            } else {
                Some(l.check_out(order, site, task, now))
            }
        })?;
        self.slot = matches!(next, Checkout::Open);
        Some(next)
    }

    /// Reserves a connecting slot for this permit.
    pub(crate) fn reserve_slot(&mut self) {
        debug_assert!(!self.slot, "a slot is already reserved");
        self.pool().with_ledger(|l| l.reserve());
        self.slot = true;
    }

    /// The ledger checked an idle connection out to this reservation: the
    /// permit now travels with that connection and returns with it.
    pub(crate) fn into_checked_out(mut self) -> P {
        debug_assert!(!self.slot, "a connecting slot is not a checkout");
        self.pool.take().expect("reservation in use")
    }

    /// The connect succeeded: `site` (in `task`) holds the new connection,
    /// which carries the permit from now on.
    pub(crate) fn connected(mut self, site: Site, task: Task, now: std::time::Instant) -> (P, u64) {
        debug_assert!(self.slot, "connected without a slot");
        let pool = self.pool.take().expect("reservation in use");
        let holder = pool.with_ledger(|l| l.connected(site, task, now));
        (pool, holder)
    }

    /// The connect succeeded for no caller (min_idle, health probe): the
    /// connection is parked idle while fewer than `keep` are, else handed
    /// back to be closed; the permit is given back either way.
    pub(crate) fn park(
        mut self,
        raw: P::Conn,
        meta: ConnMeta,
        keep: u32,
    ) -> Option<(P::Conn, CloseReason)> {
        debug_assert!(self.slot, "parked without a slot");
        let pool = self.pool.take().expect("reservation in use");
        let (surplus, closed) = pool.with_ledger(|l| {
            let surplus = l.park(raw, meta, keep);
            l.give_permit(|| pool.hand_off());
            (surplus, l.closed)
        });
        if closed {
            pool.wake_closer();
        }
        surplus
    }
}

impl<P: Capacity> Drop for Reservation<P> {
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let slot = self.slot;
        let closed = pool.with_ledger(|l| {
            if slot {
                l.connect_failed();
            }
            l.give_permit(|| pool.hand_off());
            l.closed
        });
        if closed {
            pool.wake_closer();
        }
    }
}

/// A caller stopped waiting (served, timed out or cancelled): the last one
/// out takes back permits handed off after it was counted but never taken,
/// so that with nobody waiting every spare permit is free again.
pub(crate) fn stop_waiting<P: Capacity>(pool: &P) {
    pool.with_ledger(|l| l.stop_waiting(|| pool.take_handed_off()));
}
