//! Who holds which connection since when: leak reports name the call site
//! that acquired a connection (captured with `#[track_caller]`), and timeout
//! errors name the oldest holder.

use std::panic::Location;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Holder {
    site: &'static Location<'static>,
    since: Instant,
    reported: bool,
}

/// The connections currently checked out, in a slab indexed by checkout
/// id: insert and remove are O(1) with no hashing on the hot path.
#[derive(Debug, Default)]
pub(crate) struct Holders {
    slots: Vec<Option<Holder>>,
    free: Vec<usize>,
}

/// A connection held past `leak_threshold`, to be reported.
#[derive(Debug)]
pub(crate) struct Leak {
    pub site: &'static Location<'static>,
    pub held: Duration,
}

impl Holders {
    pub(crate) fn check_out(&mut self, site: &'static Location<'static>, now: Instant) -> u64 {
        let holder = Some(Holder {
            site,
            since: now,
            reported: false,
        });
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

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leak_is_reported_once_and_again_on_return() {
        let mut holders = Holders::default();
        let start = Instant::now();
        let site = Location::caller();
        let id = holders.check_out(site, start);
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
}
