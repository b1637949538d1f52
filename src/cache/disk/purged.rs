//! Purges that overtake a write. An object the memory store kept just before a
//! purge may still be on its way to disk when the purge removes its file (there is
//! none yet); the write would then bring the purged object back, and a restart
//! would serve it. Each write takes a ticket before the memory store keeps the
//! object; a purge of its key after the ticket makes the write remove its file.

use pingora::cache::key::HashBinary;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a purge is remembered: far longer than a write takes.
const REMEMBERED: Duration = Duration::from_secs(60);
/// Past this many remembered purges, those older than [`REMEMBERED`] are dropped.
const PRUNE_ABOVE: usize = 1024;

#[derive(Default)]
pub(super) struct RecentPurges {
    seq: AtomicU64,
    by_key: Mutex<HashMap<HashBinary, (u64, Instant)>>,
}

impl RecentPurges {
    /// A write's ticket.
    pub(super) fn ticket(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Remember a purge of `key`. Call before removing its file.
    pub(super) fn record(&self, key: &HashBinary) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        if by_key.len() > PRUNE_ABOVE {
            by_key.retain(|_, (_, at)| at.elapsed() < REMEMBERED);
        }
        by_key.insert(*key, (seq, Instant::now()));
    }

    /// Whether `key` was purged after `ticket` was taken. Call after the write's
    /// rename: a purge this misses comes later, and finds the file.
    pub(super) fn since(&self, key: &HashBinary, ticket: u64) -> bool {
        let by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        by_key.get(key).is_some_and(|(seq, _)| *seq > ticket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_purges_after_the_ticket_count() {
        let purges = RecentPurges::default();
        purges.record(&[1; 16]);
        let ticket = purges.ticket();
        assert!(
            !purges.since(&[1; 16], ticket),
            "purged before the write began"
        );
        purges.record(&[2; 16]);
        assert!(purges.since(&[2; 16], ticket));
        assert!(!purges.since(&[3; 16], ticket));
    }
}
