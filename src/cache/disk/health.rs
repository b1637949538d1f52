//! Whether the disk tier may write. A failed write (a full disk, a read-only one,
//! an I/O error) turns writing off for a while, with one error line; the tier then
//! tries again, and the first write that succeeds turns it back on. Requests never
//! wait on this: while writing is off, the cache is memory only (nothing is
//! written, nothing is read).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long writing stays off after a failure before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(super) struct Health {
    /// Writing failed and has not succeeded since.
    failing: AtomicBool,
    /// Seconds since the epoch before which no write is tried.
    off_until: AtomicU64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Health {
    pub(super) fn may_write(&self) -> bool {
        now_secs() >= self.off_until.load(Ordering::Relaxed)
    }

    /// Whether writing fails (for /status, and lookups stay off the disk).
    pub(super) fn degraded(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub(super) fn failed(&self, what: &str, error: &std::io::Error) {
        self.off_until
            .store(now_secs() + RETRY_AFTER.as_secs(), Ordering::Relaxed);
        if !self.failing.swap(true, Ordering::Relaxed) {
            log::error!(
                "cache disk tier: {what} failed ({error}); objects are kept in memory only, \
                 writing is tried again every {}s",
                RETRY_AFTER.as_secs()
            );
        }
    }

    pub(super) fn succeeded(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            log::warn!("cache disk tier: writing works again");
        }
    }
}
