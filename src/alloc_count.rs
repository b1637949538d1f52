//! A counting global allocator for the bench-only build (`--features count-alloc`):
//! `make bench` divides the allocations a process made during a load run by the
//! requests it served. The shipped binary does not count: an atomic add on every
//! allocation would cost a hundred of them per request.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static REALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Wraps an allocator and counts fresh allocations and reallocations.
pub struct Counting<A>(pub A);

// SAFETY: every call is passed unchanged to the inner allocator.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        self.0.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        self.0.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.0.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        self.0.realloc(ptr, layout, new_size)
    }
}

/// Allocations and reallocations so far.
pub fn counts() -> (u64, u64) {
    (
        ALLOCATIONS.load(Ordering::Relaxed),
        REALLOCATIONS.load(Ordering::Relaxed),
    )
}

/// If `ALLOC_COUNT_FILE` is set, rewrite that file with "ALLOCATIONS REALLOCATIONS"
/// every 100 ms from a thread of its own, for the bench to read before and after a
/// run.
pub fn report_from_env() {
    let Some(path) = std::env::var_os("ALLOC_COUNT_FILE") else {
        return;
    };
    std::thread::spawn(move || loop {
        let (allocs, reallocs) = counts();
        let tmp = std::path::PathBuf::from(format!("{}.tmp", path.to_string_lossy()));
        if std::fs::write(&tmp, format!("{allocs} {reallocs}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
        std::thread::sleep(Duration::from_millis(100));
    });
}
