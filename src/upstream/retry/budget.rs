//! The retry budget of one upstream (`upstreams.NAME.retry_budget`, README "What
//! Parapet answers itself"): retries may be at most `ratio` of the requests seen
//! over the last `window`, plus a reserve of `min_per_second` for each second of
//! it, so that a quiet upstream can still retry and a sick one under load is not
//! sent twice its traffic. As in
//! linkerd2-proxy and Finagle, each request deposits and each retry withdraws.
//!
//! The window is ten slots of `window / 10` each, counted with atomics: a request
//! costs one clock read and one add. A slot is reused for a later tick by whoever
//! first sees it stale; a count racing with that reset can be lost, and two
//! retries deciding at once can both take the last token, so the bound is close,
//! not exact (off by the threads deciding at the same instant).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SLOTS: u64 = 10;

pub(crate) struct RetryBudget {
    ratio: f64,
    /// `min_per_second` times the window, in retries.
    reserve: f64,
    slot_nanos: u64,
    epoch: Instant,
    slots: [Slot; SLOTS as usize],
}

#[derive(Default)]
struct Slot {
    /// The tick (time since `epoch` in slot lengths) the counts below belong to.
    tick: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    pub(crate) fn new(ratio: f64, min_per_second: u32, window: Duration) -> RetryBudget {
        let slot_nanos = (window.as_nanos() / u128::from(SLOTS)).max(1);
        RetryBudget {
            ratio,
            reserve: f64::from(min_per_second) * window.as_secs_f64(),
            slot_nanos: u64::try_from(slot_nanos).unwrap_or(u64::MAX),
            epoch: Instant::now(),
            slots: Default::default(),
        }
    }

    /// A request that arrived at `at` went to the upstream.
    pub(crate) fn deposit(&self, at: Instant) {
        self.deposit_at(self.tick_of(at));
    }

    /// Take a token for one retry; false when the budget is spent.
    pub(crate) fn withdraw(&self) -> bool {
        self.withdraw_at(self.tick())
    }

    fn tick(&self) -> u64 {
        self.tick_of(Instant::now())
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX) / self.slot_nanos
    }

    fn deposit_at(&self, tick: u64) {
        self.slot(tick).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Retries the budget would allow now (whole tokens), read without spending
    /// any: for the dashboard.
    pub(crate) fn available(&self) -> u64 {
        let available = self.available_at(self.tick());
        if available >= 1.0 {
            available as u64
        } else {
            0
        }
    }

    fn available_at(&self, tick: u64) -> f64 {
        let (mut requests, mut retries) = (0u64, 0u64);
        for slot in &self.slots {
            if tick.saturating_sub(slot.tick.load(Ordering::Acquire)) < SLOTS {
                requests += slot.requests.load(Ordering::Relaxed);
                retries += slot.retries.load(Ordering::Relaxed);
            }
        }
        self.reserve + self.ratio * requests as f64 - retries as f64
    }

    fn withdraw_at(&self, tick: u64) -> bool {
        if self.available_at(tick) < 1.0 {
            return false;
        }
        self.slot(tick).retries.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// The slot of `tick`, emptied first when it still holds an older tick's counts.
    fn slot(&self, tick: u64) -> &Slot {
        let slot = &self.slots[(tick % SLOTS) as usize];
        let seen = slot.tick.load(Ordering::Acquire);
        if seen != tick
            && slot
                .tick
                .compare_exchange(seen, tick, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.requests.store(0, Ordering::Relaxed);
            slot.retries.store(0, Ordering::Relaxed);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 20% of requests, no reserve, a 10 s window of 1 s slots.
    fn budget(min_per_second: u32) -> RetryBudget {
        RetryBudget::new(0.2, min_per_second, Duration::from_secs(10))
    }

    fn withdrawals(budget: &RetryBudget, tick: u64, tries: usize) -> usize {
        (0..tries).filter(|_| budget.withdraw_at(tick)).count()
    }

    #[test]
    fn retries_are_a_share_of_requests() {
        let b = budget(0);
        assert!(!b.withdraw_at(0), "no requests, no reserve: no retry");
        for _ in 0..100 {
            b.deposit_at(0);
        }
        assert_eq!(b.available_at(0), 20.0);
        assert_eq!(withdrawals(&b, 0, 50), 20);
        assert_eq!(b.available_at(0), 0.0);
        for _ in 0..10 {
            b.deposit_at(3);
        }
        assert_eq!(withdrawals(&b, 3, 50), 2);
    }

    #[test]
    fn the_reserve_allows_retries_on_a_quiet_upstream() {
        let b = budget(10);
        assert_eq!(withdrawals(&b, 0, 500), 100, "10/s over a 10 s window");
        assert!(!b.withdraw_at(9));
        // Once the window has moved past them, spent tokens come back.
        assert_eq!(withdrawals(&b, 10, 500), 100);
    }

    #[test]
    fn old_requests_leave_the_window() {
        let b = budget(0);
        for _ in 0..100 {
            b.deposit_at(0);
        }
        assert!(b.withdraw_at(9));
        assert!(!b.withdraw_at(10), "tick 0 is out of the window");
        for _ in 0..5 {
            b.deposit_at(20);
        }
        assert_eq!(withdrawals(&b, 20, 10), 1, "so is the retry of tick 9");
    }

    #[test]
    fn the_clock_drives_the_same_counts() {
        let b = RetryBudget::new(1.0, 0, Duration::from_secs(60));
        b.deposit(Instant::now());
        assert!(b.withdraw());
        assert!(!b.withdraw());
    }
}
