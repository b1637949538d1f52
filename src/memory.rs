//! Giving memory back to the system after a flood of connections.
//!
//! mimalloc, Parapet's allocator, returns a freed page to its arenas at once but
//! gives it back to the system only later (`purge_delay`), and only when some
//! thread's next allocation or free finds the delay passed. After a flood of
//! connections closes, an instance with no traffic would keep its peak RSS for
//! ever. Purging at once (`MIMALLOC_PURGE_DELAY=0`) costs a large share of CPU per
//! request (measured in bench/RESULTS.md); so once a second a background service asks
//! mimalloc to purge what is due, which is cheap when nothing is.
//!
//! And the process opts out of transparent huge pages: mimalloc asks for them on
//! its arenas, and the kernel's khugepaged then refills a purged 2 MiB region as
//! soon as one of its pages is in use, so RSS crept back up after a flood. Without
//! them RSS at rest is lower at no CPU cost (bench/RESULTS.md).

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::time::Duration;

/// Opt the process out of transparent huge pages (all its mappings, present and
/// future). Call first thing in `main`.
pub fn no_transparent_huge_pages() {
    // SAFETY: prctl with integer arguments only; PR_SET_THP_DISABLE changes the
    // process's memory policy, not any memory it holds.
    let set = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if set != 0 {
        log::debug!(
            "transparent huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Once a second, mimalloc's purge of what is due.
pub struct AllocatorPurge;

#[async_trait]
impl BackgroundService for AllocatorPurge {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => purge_due(),
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Purge the arenas' pages whose delay has passed (program-wide in mimalloc v3).
fn purge_due() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread.
    unsafe { libmimalloc_sys::mi_collect(false) }
}
