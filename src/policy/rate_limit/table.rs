//! The key table: key hash to theoretical arrival time, bounded, and one GCRA step.
//!
//! # The algorithm
//!
//! Each key keeps its theoretical arrival time (TAT), in nanoseconds since the
//! limiter was built (a monotonic `Instant`). With the interval `T = 1 / rate`
//! (rounded down to whole nanoseconds, so rounding only ever favours the client)
//! and the tolerance `τ = (burst - 1) * T`, a request at `now` is allowed when
//! `max(TAT, now) - now <= τ`, and then moves the TAT on by `T`. A TAT at or before
//!
//!
//! # Memory
//!
//! A bounded, sharded map of key hash to TAT, not pingora-limits: that crate has
//! no GCRA, and its count-min sketch over-counts on collisions, which would refuse
//! innocent clients. Here 16 shards of `Mutex<HashMap<u64, u64>>` hold at most
//! `DEFAULT_MAX_KEYS` (100,000) keys per route, 6,250 a shard — at most 2.1 MiB
//! (16 tables of 8,192 buckets of 17 bytes; a sweep briefly holds a second table
//! and a 50 KB list for its shard), nothing until keys arrive. Keys are hashed with SipHash under a random
//! key drawn once per limiter (std's `RandomState`), so chosen keys can neither
//! target one shard nor collide on purpose; the 64-bit hash is the map key (two
//! keys colliding would share a bucket: among 100,000 keys the odds are 3e-10). A
//! new key in a full shard first drops the entries whose TAT has passed
//! (they carry no state), then, if fewer than 1/8 of the shard came free, the
//! entries with the earliest TATs (those owing the least) until 1/8 is free; so a
//! sweep runs at most once per `cap / 8` new keys. An evicted key starts over
//! with a full burst: eviction is only ever lenient, never refuses anyone, and a
//! heavy hitter (late TAT) is the last to be forgotten. The lock is held for one
//! lookup and update (or a sweep), never across an await.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

const SHARDS: usize = 16;

/// The GCRA parameters, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gcra {
    /// `T`: one request's worth of time, `1 / rate`.
    pub(super) interval: u64,
    /// `τ = (burst - 1) * T`: how far ahead of now the TAT may run.
    pub(super) tolerance: u128,
}

/// One GCRA step, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) allowed: bool,
    /// The key's TAT after this request.
    pub(super) tat: u64,
    /// Requests the key may still send at `now`.
    pub(super) remaining: u64,
    /// Until `remaining` grows by one (when refused: until a request is allowed).
    pub(super) reset: u64,
}

/// GCRA: the request at `now` of a key whose TAT is `tat`. Pure, for tests.
pub(super) fn gcra(tat: u64, now: u64, interval: u64, tolerance: u128) -> Verdict {
    let (now, interval) = (u128::from(now), u128::from(interval.max(1)));
    let start = u128::from(tat).max(now);
    let allowed = start - now <= tolerance;
    let tat = if allowed { start + interval } else { start };
    // How far the key is ahead of now, against the full bucket `burst * T`.
    let debt = tat - now;
    let limit = tolerance + interval;
    let remaining = limit.saturating_sub(debt) / interval;
    // `remaining` grows when `debt` falls to `limit - (remaining + 1) * T`.
    let reset = debt + (remaining + 1) * interval - limit;
    let clamp = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    Verdict {
        allowed,
        tat: clamp(tat),
        remaining: clamp(remaining),
        reset: clamp(reset),
    }
}

/// Key hash to TAT, in `SHARDS` bounded shards.
pub(super) struct Table {
    pub(super) hasher: RandomState,
    pub(super) shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
}

/// The keys are already keyed hashes: the map uses them as they are.
pub(super) type Shard = HashMap<u64, u64, BuildHasherDefault<PreHashed>>;

impl Table {
    pub(super) fn new(max_keys: usize) -> Table {
        Table {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_cap: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    /// The most keys remembered at once.
    pub(super) fn max_keys(&self) -> usize {
        self.shard_cap * SHARDS
    }

    pub(super) fn update(&self, key: u64, now: u64, g: Gcra) -> Verdict {
        // The map's buckets use the low bits, its tags the top 7: shard on others.
        let mut shard = lock(&self.shards[(key >> 32) as usize % SHARDS]);
        if let Some(tat) = shard.get_mut(&key) {
            let verdict = gcra(*tat, now, g.interval, g.tolerance);
            *tat = verdict.tat;
            return verdict;
        }
        // A key not held is one with no state: its first request is always allowed.
        let verdict = gcra(0, now, g.interval, g.tolerance);
        if shard.len() >= self.shard_cap {
            make_room(&mut shard, now, self.shard_cap);
        }
        shard.insert(key, verdict.tat);
        verdict
    }
}

pub(super) fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic elsewhere cannot leave a TAT half-written: keep serving.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Free at least 1/8 of a full shard: first the keys without state, then those
/// owing the least (earliest TAT), which is only ever lenient. The survivors move
/// to a fresh table of `cap`: removing in place would leave tombstones, and the
/// table would double to clear them.
fn make_room(shard: &mut Shard, now: u64, cap: usize) {
    let target = cap - (cap / 8).max(1);
    let live = shard.values().filter(|tat| **tat > now).count();
    let cut = match live.checked_sub(target) {
        None | Some(0) => now,
        Some(excess) => {
            let mut tats: Vec<u64> = shard.values().copied().filter(|t| *t > now).collect();
            *tats.select_nth_unstable(excess - 1).1
        }
    };
    let mut kept = Shard::with_capacity_and_hasher(cap, BuildHasherDefault::default());
    kept.extend(shard.drain().filter(|(_, tat)| *tat > cut));
    *shard = kept;
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
pub(super) struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}
