//! The storage pingora-cache sees when the disk tier is on: the memory store first,
//! then the disk. A disk hit small enough is read whole and offered to the memory
//! store, whose TinyLFU admission decides whether it stays (a one-hit object does
//! not push popular ones out); a larger one streams from its file. Every object the
//! memory store keeps is written to disk too, in the background.

use super::file::MetaBlobs;
use super::hit::{Body, DiskHit};
use super::{blobs_of, DiskTier};
use crate::cache::storage::MemoryStorage;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::storage::{
    HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget, PurgeType,
    Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta};
use pingora::Result;
use std::any::Any;
use std::sync::Arc;

/// Disk hits up to this size are read whole and offered to the memory store.
const PROMOTE_MAX: usize = 1 << 20;

/// Files up to this size are read on the request's thread when they are in the
/// page cache (`cached.rs`): a bound on the time a read and its checksum take there.
const INLINE_MAX: u64 = 256 << 10;

pub(crate) struct TieredStorage {
    memory: &'static MemoryStorage,
    disk: &'static DiskTier,
}

/// Run `work` on a blocking thread; `None` if the thread failed.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => Some(done),
        Err(e) => {
            log::error!("cache disk tier: a blocking task failed: {e}");
            None
        }
    }
}

impl TieredStorage {
    pub(crate) fn new(memory: &'static MemoryStorage, disk: &'static DiskTier) -> Self {
        TieredStorage { memory, disk }
    }

    pub(crate) fn disk(&self) -> &'static DiskTier {
        self.disk
    }

    /// Purge (`soft`: mark stale) every object stored with `tag`, in both tiers;
    /// how many objects were purged in the tier that held most.
    pub(crate) async fn purge_tag(&self, tag: &str, soft: bool) -> usize {
        let in_memory = self.memory.purge_tag(tag, soft);
        let (disk, tag) = (self.disk, tag.to_string());
        let on_disk = blocking(move || disk.purge_tag(&tag, soft)).await;
        in_memory.max(on_disk.unwrap_or(0))
    }

    async fn disk_lookup(&self, key: HashBinary) -> Option<(CacheMeta, HitHandler)> {
        let disk = self.disk;
        if !disk.readable() {
            return None;
        }
        let keep = PROMOTE_MAX.min(self.memory.max_object_size()) as u64;
        let (blobs, body, body_len, file_len) = match disk.load_cached(&key, keep.min(INLINE_MAX)) {
            Ok(small) => {
                let small = small?;
                let len = small.body.len() as u64;
                (small.meta, Body::Whole(small.body), len, small.file_len)
            }
            Err(()) => {
                let found = blocking(move || disk.load(&key, keep)).await??;
                let (body_len, file_len) = (found.body_len, found.file_len());
                let body = match found.body {
                    Some(body) => Body::Whole(body),
                    None => Body::File(Arc::new(found.file), found.body_at),
                };
                (found.meta, body, body_len, file_len)
            }
        };
        let meta = match CacheMeta::deserialize(&blobs.internal, &blobs.header) {
            Ok(meta) => meta,
            Err(e) => {
                log::warn!("cache disk tier: an object's meta does not decode: {e}");
                disk.counters.read_errors.inc();
                return None;
            }
        };
        disk.counters.hits.inc();
        if let Body::Whole(body) = &body {
            self.memory
                .promote(key, &meta, blobs.internal, body.clone());
        }
        let hit: HitHandler = Box::new(DiskHit::new(body, body_len, file_len));
        Some((meta, hit))
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        if let Some(hit) = self.memory.lookup_held(key)? {
            return Ok(Some(hit));
        }
        Ok(self.disk_lookup(key.combined_bin()).await)
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        self.memory
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let inner = self.memory.get_miss_handler(key, meta, trace).await?;
        Ok(Box::new(TieredMissHandler {
            inner,
            disk: self.disk,
            key: key.combined_bin(),
            meta: blobs_of(meta).ok(),
            chunks: Vec::new(),
            len: 0,
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key().combined_bin();
        let in_memory = self.memory.purge(target, purge_type, trace).await?;
        let disk = self.disk;
        let on_disk = blocking(move || disk.purge(&key)).await == Some(true);
        Ok(match (in_memory, on_disk) {
            (PurgeOutcome::NotFound, true) => PurgeOutcome::Purged(None),
            (outcome, _) => outcome,
        })
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key().combined_bin();
        let in_memory = self.memory.expire(target, trace).await?;
        let disk = self.disk;
        let on_disk = blocking(move || disk.expire(&key)).await == Some(true);
        Ok(match (in_memory, on_disk) {
            (PurgeOutcome::NotFound, true) => PurgeOutcome::Expired,
            (outcome, _) => outcome,
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<bool> {
        let in_memory = self.memory.update_meta(key, meta, trace).await?;
        let blobs = blobs_of(meta)?;
        let (disk, key) = (self.disk, key.combined_bin());
        let on_disk = blocking(move || disk.rewrite(&key, |_| Ok(blobs))).await == Some(true);
        Ok(in_memory || on_disk)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// The memory store's writer, keeping the body's chunks (shared, not copied) to
/// write the object to disk once the memory store has kept it.
struct TieredMissHandler {
    inner: MissHandler,
    disk: &'static DiskTier,
    key: HashBinary,
    /// `None` once the object will not go to disk.
    meta: Option<MetaBlobs>,
    chunks: Vec<Bytes>,
    len: u64,
}

#[async_trait]
impl HandleMiss for TieredMissHandler {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        if self.meta.is_some() && !data.is_empty() {
            self.len += data.len() as u64;
            self.chunks.push(data.clone());
        }
        self.inner.write_body(data, eof).await
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let this = *self;
        let ticket = this.disk.write_ticket();
        let done = this.inner.finish().await?;
        // Only what the memory store kept: a fill purged while in progress is not.
        let kept = matches!(done, MissFinishType::Created(n) if n > 0);
        if let (true, Some(meta)) = (kept, this.meta) {
            let (disk, key, chunks, len) = (this.disk, this.key, this.chunks, this.len);
            if disk.reserve_write(len) {
                tokio::task::spawn_blocking(move || disk.store(key, meta, chunks, len, ticket));
            }
        }
        Ok(done)
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        self.inner.streaming_write_tag()
    }
}
