//! The disk tier: complete objects kept as files under `cache.disk.path`, below the
//! memory store, so the cache survives reloads (a hand-off), restarts and crashes,
//! and holds more than memory does.
//!
//! config   the `cache.disk` section and its checks (`parapet -t` included)
//! file     the file format: header, meta, body, checksums; write then rename
//! cached   small files read without blocking when the page cache holds them
//! index    keys and file lengths in LRU order; the start-up scan
//! tiered   the `Storage` pingora-cache sees: memory first, then disk
//! hit      hits served from a file
//! health   turning writes off when the disk fails, and on again
//! purged   purges that overtake a write in flight
//! metrics  `parapet_cache_disk_*`
//!
//! One file per object, named by the key (as nginx's `proxy_cache` does), so a
//! lookup needs no index: it opens the file. The file is checked (header, key, both
//! checksums) before its first byte goes out; a damaged one is a miss and is removed.
//! Two instances share the directory during a hand-off: every file appears whole by
//! rename(2) and is never changed in place, and the old instance stops writing once
//! its hand-off starts.
//!
//! Every object the memory store keeps is written to disk as well (write-through),
//! off the request path: a crash or `kill -9` then loses only writes in flight,
//! where writing on memory eviction would lose everything still in memory.

mod cached;
mod config;
mod file;
mod health;
mod hit;
mod index;
mod metrics;
mod purged;
#[cfg(test)]
mod tests;
mod tiered;
mod wiring;

pub(crate) use wiring::{stores, IndexRebuild};

pub(crate) use config::{DiskConfig, DiskSettings};
pub(crate) use hit::is_disk_hit;
pub(crate) use tiered::TieredStorage;

use crate::cache::storage::MemoryStorage;
use crate::connection::handoff::Handoff;
use bytes::Bytes;
use file::{MetaBlobs, ReadError, Verified};
use health::Health;
use index::Index;
use metrics::DiskCounters;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheMeta, Storage};
use purged::RecentPurges;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Bodies of objects waiting to be written, at most; past it new objects are not
/// written (they stay in memory), so a slow disk cannot pile up memory.
const PENDING_WRITE_BYTES: u64 = 256 << 20;

/// The disk tier. Its methods do file I/O: call them from a blocking thread.
pub(crate) struct DiskTier {
    root: PathBuf,
    max_size: u64,
    index: Index,
    /// The start-up scan is done: the index knows every file. Until then objects
    /// are written too (a new instance fills at once), and the directory may
    /// pass `max_size` by what is written meanwhile; the scan's end evicts down.
    ready: AtomicBool,
    /// Reads wait for the fleet: purges sent while this instance was away are
    /// applied first (`hold_reads`, `admin::fleet_purges`).
    held: AtomicBool,
    health: Health,
    counters: DiskCounters,
    handoff: Arc<Handoff>,
    next_temporary: AtomicU64,
    pending_bytes: AtomicU64,
    purges: RecentPurges,
}

/// The disk tier in `/status`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DiskStatus {
    pub(crate) size_bytes: u64,
    pub(crate) objects: u64,
    pub(crate) max_size: u64,
    /// `loading` (index being rebuilt), `ok`, or `degraded` (writes failing).
    pub(crate) state: &'static str,
}

impl DiskTier {
    /// The tier for `settings`, registered in `registry`; lives as long as the process.
    pub(crate) fn build(
        settings: &DiskSettings,
        handoff: Arc<Handoff>,
        registry: &prometheus::Registry,
    ) -> prometheus::Result<&'static DiskTier> {
        let tier: &'static DiskTier = Box::leak(Box::new(DiskTier {
            root: settings.path.clone(),
            max_size: settings.max_size,
            index: Index::default(),
            ready: AtomicBool::new(false),
            held: AtomicBool::new(false),
            health: Health::default(),
            counters: DiskCounters::new()?,
            handoff,
            next_temporary: AtomicU64::new(0),
            pending_bytes: AtomicU64::new(0),
            purges: RecentPurges::default(),
        }));
        metrics::DiskGauges::register(registry, tier)?;
        Ok(tier)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.index.bytes()
    }

    pub(crate) fn objects(&self) -> u64 {
        self.index.objects()
    }

    pub(crate) fn status(&self) -> DiskStatus {
        let state = match (self.ready.load(Ordering::Relaxed), self.health.degraded()) {
            (false, _) => "loading",
            (true, false) => "ok",
            (true, true) => "degraded",
        };
        DiskStatus {
            size_bytes: self.bytes(),
            objects: self.objects(),
            max_size: self.max_size,
            state,
        }
    }

    /// Whether lookups may read the disk: not while writing fails, so a tier that
    /// cannot remove a purged object's file (a read-only disk) does not serve it.
    fn readable(&self) -> bool {
        !self.health.degraded() && !self.held.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Serve no object from disk until `release_reads`: lookups are misses.
    pub(crate) fn hold_reads(&self) {
        self.held.store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn release_reads(&self) {
        self.held.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Check the directory takes a file, then rebuild the index from it. Run once,
    /// at start.
    pub(crate) fn rebuild_index(&self) {
        let probe = self.root.join(format!(".probe.{}", std::process::id()));
        match std::fs::write(&probe, b"") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                self.counters.write_errors.inc();
                self.health.failed("writing a file", &e);
            }
        }
        let started = Instant::now();
        let scanned = index::scan(&self.root, &self.index);
        self.ready.store(true, Ordering::Release);
        log::info!(
            "cache disk tier: {} objects ({} bytes) indexed in {:?}; {} temporary files removed",
            scanned.objects,
            self.bytes(),
            started.elapsed(),
            scanned.removed_temporaries
        );
        // A smaller max_size than the files on disk: shrink to it.
        self.remove_evicted(self.index.make_room(0, self.max_size).0);
    }

    fn path(&self, key: &HashBinary) -> PathBuf {
        index::path_of(&self.root, key)
    }

    fn temporary(&self, dest: &Path) -> PathBuf {
        let n = self.next_temporary.fetch_add(1, Ordering::Relaxed);
        dest.with_file_name(index::temporary_name(n))
    }

    /// The verified object for `key`, with its body when at most `keep_body` bytes.
    fn load(&self, key: &HashBinary, keep_body: u64) -> Option<Verified> {
        let path = self.path(key);
        match file::open_verified(&path, key, keep_body) {
            Ok(found) => {
                self.used(key, found.file_len());
                Some(found)
            }
            Err(e) => self.failed_read(key, &path, e),
        }
    }

    /// The object for `key` when it is at most `max` bytes and its file is in the
    /// page cache, read without blocking (see `cached.rs`). `Err(())`: it must be
    /// read with [`Self::load`] on a blocking thread.
    fn load_cached(&self, key: &HashBinary, max: u64) -> Result<Option<cached::Small>, ()> {
        let path = self.path(key);
        match cached::read_cached(&path, key, max) {
            Ok(Some(found)) => {
                self.used(key, found.file_len);
                Ok(Some(found))
            }
            Ok(None) => Err(()),
            Err(e) => Ok(self.failed_read(key, &path, e)),
        }
    }

    fn used(&self, key: &HashBinary, file_len: u64) {
        self.index.found(*key, file_len);
        self.index.touch(key);
    }

    /// A read that found no usable object: a damaged file is removed.
    fn failed_read<T>(&self, key: &HashBinary, path: &Path, e: ReadError) -> Option<T> {
        match e {
            ReadError::Missing => {}
            ReadError::Corrupt(why) => {
                log::warn!(
                    "cache disk tier: {} is damaged ({why}); removed",
                    path.display()
                );
                self.counters.read_errors.inc();
                self.index.remove(key);
                let _ = std::fs::remove_file(path);
            }
            ReadError::Io(e) => {
                log::debug!("cache disk tier: reading {}: {e}", path.display());
                self.counters.read_errors.inc();
            }
        }
        None
    }

    /// Whether a new object of `body_len` bytes may be queued for writing; if so the
    /// bytes are counted as pending until [`Self::store`] runs.
    fn reserve_write(&self, body_len: u64) -> bool {
        let writable =
            !self.handoff.started() && self.health.may_write() && body_len < self.max_size;
        if !writable {
            return false;
        }
        let pending = self.pending_bytes.fetch_add(body_len, Ordering::Relaxed);
        if pending + body_len > PENDING_WRITE_BYTES {
            self.pending_bytes.fetch_sub(body_len, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// A write's ticket, taken before the memory store keeps the object.
    fn write_ticket(&self) -> u64 {
        self.purges.ticket()
    }

    /// Write an object reserved with [`Self::reserve_write`].
    fn store(
        &self,
        key: HashBinary,
        meta: MetaBlobs,
        body: Vec<Bytes>,
        body_len: u64,
        ticket: u64,
    ) {
        let file_len =
            file::HEADER_LEN as u64 + (meta.internal.len() + meta.header.len()) as u64 + body_len;
        let (evicted, fits) = self.index.make_room(file_len, self.max_size);
        self.remove_evicted(evicted);
        if !fits {
            self.pending_bytes.fetch_sub(body_len, Ordering::Relaxed);
            return;
        }
        let dest = self.path(&key);
        let written = std::fs::create_dir_all(dest.parent().unwrap_or(&self.root))
            .and_then(|()| file::write(&self.temporary(&dest), &dest, &key, &meta, &body));
        self.pending_bytes.fetch_sub(body_len, Ordering::Relaxed);
        match written {
            Ok(len) => {
                self.index.insert_reserved(key, len, file_len);
                self.counters.writes.inc();
                self.health.succeeded();
                if self.purges.since(&key, ticket) {
                    self.purge(&key);
                }
            }
            Err(e) => {
                self.index.release(file_len);
                self.counters.write_errors.inc();
                self.health.failed("writing an object", &e);
            }
        }
    }

    fn remove_evicted(&self, keys: Vec<HashBinary>) {
        for key in keys {
            match std::fs::remove_file(self.path(&key)) {
                Ok(()) => self.counters.evictions.inc(),
                // Removed by the other instance during a hand-off, or by hand.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    self.counters.write_errors.inc();
                    self.health.failed("evicting an object", &e);
                }
            }
        }
    }

    /// Remove `key`'s file; whether there was one. Durable once it returns: a
    /// restarted instance cannot find it.
    fn purge(&self, key: &HashBinary) -> bool {
        self.purges.record(key);
        self.index.remove(key);
        match std::fs::remove_file(self.path(key)) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                log::error!("cache disk tier: purging {}: {e}", self.path(key).display());
                self.counters.write_errors.inc();
                false
            }
        }
    }

    /// Replace `key`'s meta by what `change` makes of it; whether there was an
    /// object to change.
    fn rewrite(
        &self,
        key: &HashBinary,
        change: impl FnOnce(&MetaBlobs) -> pingora::Result<MetaBlobs>,
    ) -> bool {
        let Some(old) = self.load(key, 0) else {
            return false;
        };
        let meta = match change(&old.meta) {
            Ok(meta) => meta,
            Err(e) => {
                log::warn!("cache disk tier: rewriting a meta: {e}");
                return false;
            }
        };
        let dest = self.path(key);
        match file::rewrite_meta(&old, &self.temporary(&dest), &dest, key, &meta) {
            Ok(len) => {
                self.index.insert(*key, len);
                true
            }
            Err(e) => {
                // The old file stays: a purge that cannot mark it stale removes it.
                self.counters.write_errors.inc();
                self.health.failed("rewriting a meta", &e);
                self.purge(key)
            }
        }
    }

    /// Mark `key` stale as of now (a soft purge); whether it was there. A write in
    /// flight for it is removed once done, so it cannot bring back a fresh copy.
    fn expire(&self, key: &HashBinary) -> bool {
        self.purges.record(key);
        self.rewrite(key, |old| {
            let mut meta = CacheMeta::deserialize(&old.internal, &old.header)?;
            meta.expire_at(SystemTime::now());
            blobs_of(&meta)
        })
    }

    /// Purge (`soft`: mark stale) every object stored with `tag`. This reads the
    /// meta of every object file, so its cost grows with the tier.
    fn purge_tag(&self, tag: &str, soft: bool) -> usize {
        let mut purged = 0;
        for key in self.index.keys() {
            let tagged = match file::read_meta(&self.path(&key), &key) {
                Ok(meta) => CacheMeta::deserialize(&meta.internal, &meta.header)
                    .is_ok_and(|m| crate::cache::purge::tags_of(m.headers()).any(|t| t == tag)),
                Err(_) => false,
            };
            if tagged {
                let done = match soft {
                    true => self.expire(&key),
                    false => self.purge(&key),
                };
                purged += usize::from(done);
            }
        }
        purged
    }
}

/// What a file keeps of `meta`.
fn blobs_of(meta: &CacheMeta) -> pingora::Result<MetaBlobs> {
    let (internal, header) = meta.serialize()?;
    Ok(MetaBlobs { internal, header })
}
