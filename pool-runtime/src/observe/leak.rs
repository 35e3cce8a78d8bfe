//! Who holds which connection since when: leak reports name the call site
//! that acquired a connection (captured with `#[track_caller]`), and timeout
//! errors name the oldest holder. Each checkout also records the tokio task
//! that made it, for nested-checkout detection ([`Holders::held_by`]).

use std::hash::{Hash, Hasher};
use std::panic::Location;
use std::time::{Duration, Instant};

/// The tokio task that made a checkout; `None` outside a task (`block_on`).
pub(crate) type Task = Option<tokio::task::Id>;

#[derive(Debug)]
struct Holder {
    site: &'static Location<'static>,
    since: Instant,
    reported: bool,
    task: Task,
}

/// The connections currently checked out, in a slab indexed by checkout
/// id: insert and remove are O(1) with no hashing on the hot path.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    slots: Vec<Option<Holder>>,
    free: Vec<usize>,
    /// Checkouts per bucket of task ids (a counting filter): a task whose
    /// bucket is empty holds nothing, known without a scan.
    by_task: TaskBuckets,
}

const BUCKETS: usize = 64;

#[derive(Debug)]
struct TaskBuckets([u32; BUCKETS]);

impl Default for TaskBuckets {
    fn default() -> Self {
        Self([0; BUCKETS])
    }
}

impl TaskBuckets {
    /// The bucket of a task id: tokio's ids are counters, spread by a
    /// multiplicative hash of the number they hash as.
    fn of(task: tokio::task::Id) -> usize {
        let mut bits = IdBits(0);
        task.hash(&mut bits);
        (bits.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKETS.trailing_zeros())) as usize
    }
}

/// Takes the number a task id hashes as (any other bytes are folded in,
/// should tokio ever hash it differently: buckets only narrow the scan).
struct IdBits(u64);

impl Hasher for IdBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// A connection held past `leak_threshold`, to be reported.
#[derive(Debug)]
pub(crate) struct Leak {
    pub site: &'static Location<'static>,
    pub held: Duration,
}

impl Holders {
    pub(crate) fn check_out(
        &mut self,
        site: &'static Location<'static>,
        task: Task,
        now: Instant,
    ) -> u64 {
        let holder = Some(Holder {
            site,
            since: now,
            reported: false,
            task,
        });
        if let Some(task) = task {
            self.by_task.0[TaskBuckets::of(task)] += 1;
        }
        match self.free.pop() {
            Some(index) => {
                self.slots[index] = holder;
                index as u64
            }
            None => {
                self.slots.push(holder);
                (self.slots.len() - 1) as u64
            }
        }
    }

    /// Removes a holder; returns the leak if it had been reported, so the
    /// return can be reported too.
    pub(crate) fn check_in(&mut self, id: u64, now: Instant) -> Option<Leak> {
        let holder = self.slots.get_mut(id as usize)?.take()?;
        self.free.push(id as usize);
        if let Some(task) = holder.task {
            self.by_task.0[TaskBuckets::of(task)] -= 1;
        }
        holder.reported.then(|| Leak {
            site: holder.site,
            held: now - holder.since,
        })
    }

    /// Holders past `threshold` not yet reported; marks them reported.
    pub(crate) fn new_leaks(&mut self, threshold: Duration, now: Instant) -> Vec<Leak> {
        self.slots
            .iter_mut()
            .flatten()
            .filter(|h| !h.reported && now.duration_since(h.since) >= threshold)
            .map(|h| {
                h.reported = true;
                Leak {
                    site: h.site,
                    held: now - h.since,
                }
            })
            .collect()
    }

    /// The longest-held connection: its call site and hold time.
    pub(crate) fn oldest(&self, now: Instant) -> Option<(String, Duration)> {
        self.slots
            .iter()
            .flatten()
            .min_by_key(|h| h.since)
            .map(|h| (h.site.to_string(), now.duration_since(h.since)))
    }

    /// The call site of the oldest connection `task` holds, if it holds
    /// one: nothing to do when no checkout's task shares its bucket (the
    /// common case), else a scan of the checked-out connections (at most
    /// the pool's capacity).
    pub(crate) fn held_by(&self, task: tokio::task::Id) -> Option<&'static Location<'static>> {
        if self.by_task.0[TaskBuckets::of(task)] == 0 {
            return None;
        }
        self.slots
            .iter()
            .flatten()
            .filter(|h| h.task == Some(task))
            .min_by_key(|h| h.since)
            .map(|h| h.site)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn a_leak_is_reported_once_and_again_on_return() {
        let mut holders = Holders::default();
        let start = Instant::now();
        let site = Location::caller();
        let id = holders.check_out(site, None, start);
        assert!(holders.new_leaks(Duration::from_secs(1), start).is_empty());
        let later = start + Duration::from_secs(2);
        let leaks = holders.new_leaks(Duration::from_secs(1), later);
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].site.line(), site.line());
        assert!(holders.new_leaks(Duration::from_secs(1), later).is_empty());
        let back = holders
            .check_in(id, later)
            .expect("reported leak comes back");
        assert_eq!(back.held, Duration::from_secs(2));
        assert_eq!(holders.len(), 0);
    }

    /// Two task ids from a runtime (ids exist only for spawned tasks).
    pub(crate) fn two_task_ids() -> (tokio::task::Id, tokio::task::Id) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let a = tokio::spawn(async { tokio::task::id() }).await.unwrap();
            let b = tokio::spawn(async { tokio::task::id() }).await.unwrap();
            (a, b)
        })
    }

    #[test]
    fn held_by_finds_the_oldest_checkout_of_that_task_only() {
        let (a, b) = two_task_ids();
        let mut holders = Holders::default();
        let start = Instant::now();
        let first = Location::caller();
        let second = Location::caller();
        assert_eq!(holders.held_by(a), None);
        let none = holders.check_out(first, None, start);
        let of_b = holders.check_out(first, Some(b), start);
        assert_eq!(holders.held_by(a), None, "another task's and no task's");
        let older = holders.check_out(first, Some(a), start + Duration::from_secs(1));
        let newer = holders.check_out(second, Some(a), start + Duration::from_secs(2));
        assert_eq!(holders.held_by(a).map(|s| s.line()), Some(first.line()));
        holders.check_in(older, start);
        assert_eq!(holders.held_by(a).map(|s| s.line()), Some(second.line()));
        holders.check_in(newer, start);
        assert_eq!(holders.held_by(a), None, "all returned");
        // A slot reused by another task does not keep the old task id.
        let reused = holders.check_out(first, Some(b), start);
        assert_eq!(holders.held_by(a), None);
        for id in [none, of_b, reused] {
            holders.check_in(id, start);
        }
        assert_eq!(holders.len(), 0);
        assert!(holders.by_task.0.iter().all(|&n| n == 0), "buckets emptied");
    }
}
