//! The cache's production storage: a bounded, in-memory object store behind
//! `pingora-cache`'s [`Storage`] trait.
//!
//! Complete objects live in a [TinyUFO](tinyufo) index: S3-FIFO eviction with a
//! TinyLFU admission sketch, Pingora's own crate. It is scan resistant (a crawl of
//! one-hit objects cannot flush the popular ones), lock-free for readers, and it
//! evicts by itself as objects are put, so no separate `EvictionManager` is needed:
//! the proxy passes `eviction: None` to `HttpCache::enable`.
//!
//! The store is bounded by `max_size` bytes, charging each object what it holds in
//! memory: its body, its stored meta and header as held (see `meta.rs`), its
//! references in the tag index (`purge.rs`), and [`ENTRY_OVERHEAD`] for its entry
//! and its place in the index. TinyUFO weighs objects in 1 KiB
//! units held in a `u16`, so the largest object is [`MAX_OBJECT_SIZE`] (64 MiB less
//! 1 KiB); larger fills still stream to their readers but are not kept. Fills in
//! progress are not charged: they are bounded by the number of concurrent misses
//! times the object size, which the proxy should cap with the cache's max file size
//! set to [`MemoryStorage::max_object_size`].
//!
//! Fills stream ([`Storage::support_streaming_partial_write`]): readers of a key
//! being filled get its body as it arrives. A fill whose writer is dropped before it
//! completes ends its readers with an error, never with a truncated body that looks
//! whole.
//!
//! The disk tier (`cache::disk`) sits below this store behind the same [`Storage`]
//! trait, and offers it the objects it serves ([`MemoryStorage::promote`]).

mod fill;
mod hit;
mod meta;
mod promote;
mod seam;
#[cfg(test)]
mod tag_tests;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use fill::{Fill, Fills, MemoryMissHandler};
use hit::{CompleteHit, MemoryHitHandler, PartialHit};
use meta::StoredMeta;
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::storage::streaming_write::U64WriteId;
use pingora::cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta};
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tinyufo::{TinyUfo, KV};

use super::purge::TagIndex;

/// TinyUFO's weight unit.
const WEIGHT_UNIT: usize = 1024;

/// The largest object (body, meta and [`ENTRY_OVERHEAD`]) the store keeps: TinyUFO
/// weights are `u16` counts of 1 KiB, so 65535 KiB, 64 MiB less 1 KiB.
pub(crate) const MAX_OBJECT_SIZE: usize = u16::MAX as usize * WEIGHT_UNIT;

/// Bytes charged per object beyond its body and meta: the `Entry` and its `Arc`
/// (about 100 bytes), the meta's `Arc`, TinyUFO's bucket in its concurrent map and
/// its slot in a FIFO queue.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// What the index holds under a key: an object, or the tombstone a purge leaves.
///
/// Why tombstones: TinyUFO 0.9.1's `remove` leaves the key in its FIFO queue, and
/// putting the key back queues it twice. Popping both entries then subtracts the
/// object's weight twice, wrapping TinyUFO's weight counter (an overflow panic in
/// debug builds, a lost size bound in release). A purge therefore replaces the
/// object with a tombstone of weight 1 through `force_put`, which updates a key in
/// place without queueing it again; TinyUFO evicts tombstones like anything else.
/// `remove` is never called.
struct Entry {
    /// The full key: the index keys by a 64-bit hash, so a lookup checks this.
    key: HashBinary,
    /// `None` for a tombstone.
    meta: Option<Arc<StoredMeta>>,
    body: Bytes,
    /// Bytes charged: body, meta and [`ENTRY_OVERHEAD`]; 0 for a tombstone.
    size: usize,
    /// `size` in KiB, rounded up (at least 1).
    weight: u16,
}

impl Entry {
    fn tombstone(key: HashBinary) -> Self {
        Entry {
            key,
            meta: None,
            body: Bytes::new(),
            size: 0,
            weight: 1,
        }
    }

    fn is_object(&self) -> bool {
        self.meta.is_some()
    }
}

/// The counters and the tag index, changed only under the index's write lock so
/// they stay exact: every object that enters or leaves the index passes here.
#[derive(Default)]
struct Ledger {
    bytes: u64,
    objects: u64,
    evictions: u64,
    tags: TagIndex,
}

impl Ledger {
    fn add(&mut self, entry: &Entry) {
        if let Some(meta) = &entry.meta {
            self.bytes += entry.size as u64;
            self.objects += 1;
            self.tags.record(&entry.key, &meta.header().headers);
        }
    }

    fn sub(&mut self, entry: &Entry) {
        if let Some(meta) = &entry.meta {
            self.bytes = self.bytes.saturating_sub(entry.size as u64);
            self.objects = self.objects.saturating_sub(1);
            self.tags.forget(&entry.key, &meta.header().headers);
        }
    }
}

/// The in-memory cache storage. Build one with [`MemoryStorage::new`] and
/// `Box::leak` it: `pingora-cache` wants `&'static` storage.
pub(crate) struct MemoryStorage {
    max_size: usize,
    /// `max_size` in weight units, TinyUFO's limit.
    weight_limit: usize,
    /// Complete objects (and tombstones), keyed by the first 8 bytes of the key.
    index: TinyUfo<u64, Arc<Entry>>,
    /// Serializes every change to `index` (readers do not take it) and holds the
    /// counters those changes move.
    ledger: Mutex<Ledger>,
    fills: Fills,
    next_write_id: AtomicU64,
}

impl MemoryStorage {
    /// A store holding at most `max_size_bytes` of objects. Below 1 KiB nothing is kept.
    pub(crate) fn new(max_size_bytes: usize) -> MemoryStorage {
        let weight_limit = max_size_bytes / WEIGHT_UNIT;
        // The admission sketch and the bucket map are sized for this many objects.
        let estimated_objects = (max_size_bytes / (4 * WEIGHT_UNIT)).clamp(16, 1 << 24);
        MemoryStorage {
            max_size: max_size_bytes,
            weight_limit,
            index: TinyUfo::new(weight_limit, estimated_objects),
            ledger: Mutex::new(Ledger::default()),
            fills: Fills::new(),
            next_write_id: AtomicU64::new(0),
        }
    }

    /// The configured bound, in bytes.
    pub(crate) fn max_size(&self) -> usize {
        self.max_size
    }

    /// The largest object this store keeps: [`MAX_OBJECT_SIZE`] or the whole store,
    /// whichever is smaller.
    pub(crate) fn max_object_size(&self) -> usize {
        MAX_OBJECT_SIZE.min(self.weight_limit * WEIGHT_UNIT)
    }

    /// Bytes of complete objects held now (never above the bound it was built with).
    pub(crate) fn size_bytes(&self) -> u64 {
        self.lock_ledger().bytes
    }

    /// Complete objects held now.
    pub(crate) fn objects(&self) -> u64 {
        self.lock_ledger().objects
    }

    /// Objects evicted to make room since the store was built.
    pub(crate) fn evictions(&self) -> u64 {
        self.lock_ledger().evictions
    }

    fn lock_ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The weight of an object of `size` bytes, `None` if it is too large to keep.
    fn weight_of(&self, size: usize) -> Option<u16> {
        let units = size.div_ceil(WEIGHT_UNIT).max(1);
        if units > self.weight_limit {
            return None;
        }
        u16::try_from(units).ok()
    }

    /// The complete object for `key`, if held.
    fn get(&self, key: &HashBinary) -> Option<Arc<Entry>> {
        self.index
            .get(&index_key(key))
            .filter(|entry| entry.key == *key && entry.is_object())
    }

    /// Put `new` in the index, keeping the counters exact. Call with the ledger
    /// locked. Returns whether `new` is held, and the evicted entries, to be dropped
    /// once the lock is released.
    ///
    /// `force_put`, not `put`: `put` may let TinyLFU turn the new object away, and a
    /// fill that just finished has readers about to look it up, a refreshed meta must
    /// replace the old one, and a tombstone must land. Scan resistance still comes
    /// from S3-FIFO's small queue, where one-hit objects are evicted first.
    ///
    /// With `admit`, TinyLFU decides instead (`put`): for objects promoted from a
    /// lower tier, which nobody waits for.
    fn put_locked(
        &self,
        ledger: &mut Ledger,
        new: Arc<Entry>,
        admit: bool,
    ) -> (bool, Vec<KV<Arc<Entry>>>) {
        let hash = index_key(&new.key);
        // A put over a held hash replaces it without reporting it as evicted, and
        // nothing else changes the index while the ledger is locked.
        if let Some(old) = self.index.get(&hash) {
            ledger.sub(&old);
        }
        let evicted = match admit {
            true => self.index.put(hash, new.clone(), new.weight),
            false => self.index.force_put(hash, new.clone(), new.weight),
        };
        ledger.add(&new);
        let mut held = true;
        for kv in &evicted {
            if kv.data.is_object() {
                ledger.evictions += 1;
            }
            ledger.sub(&kv.data);
            held &= !Arc::ptr_eq(&kv.data, &new);
        }
        (held, evicted)
    }

    /// Store a finished fill as a complete object; returns the bytes charged, 0 if it
    /// was not kept (too large, purged while filling, or evicted at once).
    fn admit_fill(&self, key: HashBinary, fill: &Fill, chunks: &[Bytes], len: usize) -> usize {
        let size = len + fill.meta.bytes() + ENTRY_OVERHEAD;
        let Some(weight) = self.weight_of(size) else {
            log::debug!("memory cache: not keeping a {size} byte object");
            return 0;
        };
        // One contiguous body, so hits are a single zero-copy slice. Always a copy
        // into an exact-size buffer: a chunk may be a view into a larger read buffer
        // that we would otherwise keep alive uncounted.
        let mut body = BytesMut::with_capacity(len);
        for chunk in chunks {
            body.extend_from_slice(chunk);
        }
        let entry = Arc::new(Entry {
            key,
            meta: Some(fill.meta.clone()),
            body: body.freeze(),
            size,
            weight,
        });
        let (held, evicted) = {
            let mut ledger = self.lock_ledger();
            // Checked under the lock a purge takes after invalidating the fills, so
            // a fill purged while in progress is never stored after the purge.
            if fill.is_invalidated() {
                return 0;
            }
            self.put_locked(&mut ledger, entry, false)
        };
        drop(evicted);
        if held {
            size
        } else {
            0
        }
    }

    /// Replace the complete object for `key`: same body, the meta `make` returns for
    /// its meta, or a tombstone when `make` returns `None`. `Ok(None)` when there is
    /// no such object; else whether the replacement is an object still held.
    fn replace(
        &self,
        key: &HashBinary,
        make: impl FnOnce(&StoredMeta) -> Result<Option<StoredMeta>>,
    ) -> Result<Option<bool>> {
        let (held, evicted) = {
            let mut ledger = self.lock_ledger();
            let Some(old) = self.get(key) else {
                return Ok(None);
            };
            let Some(old_meta) = &old.meta else {
                return Ok(None);
            };
            let new = match make(old_meta)? {
                Some(meta) => {
                    let size = old.body.len() + meta.bytes() + ENTRY_OVERHEAD;
                    match self.weight_of(size) {
                        Some(weight) => Entry {
                            key: *key,
                            meta: Some(Arc::new(meta)),
                            body: old.body.clone(),
                            size,
                            weight,
                        },
                        // A header grown past the object limit: drop the object.
                        None => Entry::tombstone(*key),
                    }
                }
                None => Entry::tombstone(*key),
            };
            let is_object = new.is_object();
            let (held, evicted) = self.put_locked(&mut ledger, Arc::new(new), false);
            (held && is_object, evicted)
        };
        drop(evicted);
        Ok(Some(held))
    }

    /// Drop the object at `key` and stop its fills from being stored; whether
    /// there was either.
    fn purge_key(&self, key: &HashBinary) -> Result<bool> {
        // Fills first, then the object: see `admit_fill`.
        let fills_removed = self.fills.invalidate(key);
        let removed = self.replace(key, |_| Ok(None))?.is_some();
        Ok(fills_removed || removed)
    }

    /// Mark the object at `key` stale; whether it is held.
    fn expire_key(&self, key: &HashBinary) -> Result<bool> {
        // Fills in progress are left alone: they carry a fresh response.
        Ok(self.replace(key, |meta| meta.expired_now().map(Some))? == Some(true))
    }

    /// Purge (`soft`: mark stale) every object held with `tag`, and stop the
    /// fills in progress that carry it from being stored; how many there were.
    pub(crate) fn purge_tag(&self, tag: &str, soft: bool) -> usize {
        let keys = self.lock_ledger().tags.take(tag);
        let mut purged = 0;
        for key in &keys {
            let done = match soft {
                true => self.expire_key(key),
                false => self.purge_key(key),
            };
            match done {
                Ok(done) => purged += usize::from(done),
                Err(e) => log::warn!("cache purge of tag {tag} failed: {e}"),
            }
        }
        if !soft {
            purged += self.fills.invalidate_tagged(tag);
        }
        purged
    }

    /// [`Storage::lookup`], which does not wait for anything: for the disk tier,
    /// which looks here first without another boxed future.
    pub(crate) fn lookup_held(&self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let key = key.combined_bin();
        // A fill in progress first: while an expired object is being refetched,
        // readers should get the new body rather than the stale one.
        if let Some(fill) = self.fills.find(&key, None) {
            return Self::partial_hit(&fill);
        }
        let Some(entry) = self.get(&key) else {
            return Ok(None);
        };
        let Some(meta) = &entry.meta else {
            return Ok(None);
        };
        let meta = meta.to_meta()?;
        let hit = MemoryHitHandler::Complete(CompleteHit::new(entry.body.clone(), entry.size));
        Ok(Some((meta, Box::new(hit))))
    }

    fn partial_hit(fill: &Fill) -> Result<Option<(CacheMeta, HitHandler)>> {
        let meta = fill.meta.to_meta()?;
        let hit = MemoryHitHandler::Partial(PartialHit::new(fill.subscribe()));
        Ok(Some((meta, Box::new(hit))))
    }
}

/// The index key: the first 8 bytes of the 16-byte key hash.
fn index_key(key: &HashBinary) -> u64 {
    let mut head = [0u8; 8];
    head.copy_from_slice(&key[..8]);
    u64::from_le_bytes(head)
}
