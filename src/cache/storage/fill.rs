//! Fills in progress: the miss handler that writes one, and the shared state its
//! partial readers follow.

use super::meta::StoredMeta;
use super::MemoryStorage;
use crate::cache::purge::tags_of;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::storage::streaming_write::U64WriteId;
use pingora::cache::storage::{HandleMiss, MissFinishType};
use pingora::{Error, ErrorType, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::watch;

/// Shards of the registry, so lookups of different keys rarely share a lock.
const SHARDS: usize = 16;

/// The fills of one shard: key to `(write id, fill)`, usually a single fill.
type FillMap = HashMap<HashBinary, Vec<(u64, Arc<Fill>)>>;

/// The fills in progress, by key and write id. Locks are held only to look up,
/// insert or remove, never across an `.await`.
pub(super) struct Fills {
    shards: Box<[RwLock<FillMap>]>,
}

impl Fills {
    pub(super) fn new() -> Self {
        Fills {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
        }
    }

    fn shard(&self, key: &HashBinary) -> &RwLock<FillMap> {
        &self.shards[key[15] as usize % SHARDS]
    }

    fn read(&self, key: &HashBinary) -> RwLockReadGuard<'_, FillMap> {
        self.shard(key)
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, key: &HashBinary) -> RwLockWriteGuard<'_, FillMap> {
        self.shard(key)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn insert(&self, key: HashBinary, id: u64, fill: Arc<Fill>) {
        self.write(&key).entry(key).or_default().push((id, fill));
    }

    /// The fill `id` for `key`, or with no id the newest one not aborted.
    pub(super) fn find(&self, key: &HashBinary, id: Option<u64>) -> Option<Arc<Fill>> {
        let fills = self.read(key);
        let list = fills.get(key)?;
        match id {
            Some(id) => list.iter().find(|(i, _)| *i == id),
            None => list.iter().rev().find(|(_, fill)| !fill.is_aborted()),
        }
        .map(|(_, fill)| fill.clone())
    }

    pub(super) fn remove(&self, key: &HashBinary, id: u64) {
        let mut fills = self.write(key);
        if let Some(list) = fills.get_mut(key) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                fills.remove(key);
            }
        }
    }

    /// Take out every fill whose response carries `tag`, marking them invalidated;
    /// how many there were. (Fills are few: one per object being fetched.)
    pub(super) fn invalidate_tagged(&self, tag: &str) -> usize {
        let mut invalidated = 0;
        for shard in self.shards.iter() {
            let mut fills = shard.write().unwrap_or_else(PoisonError::into_inner);
            fills.retain(|_, list| {
                list.retain(|(_, fill)| {
                    let tagged = tags_of(&fill.meta.header().headers).any(|t| t == tag);
                    if tagged {
                        fill.invalidate();
                        invalidated += 1;
                    }
                    !tagged
                });
                !list.is_empty()
            });
        }
        invalidated
    }

    /// Take every fill of `key` out, marking them invalidated; whether there were any.
    pub(super) fn invalidate(&self, key: &HashBinary) -> bool {
        let Some(list) = self.write(key).remove(key) else {
            return false;
        };
        for (_, fill) in &list {
            fill.invalidate();
        }
        true
    }
}

/// Where a fill stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FillState {
    /// More body may come.
    Writing,
    /// The body is complete (`write_body(.., eof = true)` or `finish`).
    Complete,
    /// The writer went away before the body was complete: readers get an error.
    Aborted,
}

/// The body written so far, shared with partial readers through a `watch` channel
/// (its lock is held only to push or clone a chunk).
pub(super) struct Progress {
    /// The chunks as written (refcounted, so readers get them without a copy).
    pub(super) chunks: Vec<Bytes>,
    pub(super) len: usize,
    pub(super) state: FillState,
}

/// One fill in progress.
pub(super) struct Fill {
    pub(super) meta: Arc<StoredMeta>,
    progress: watch::Sender<Progress>,
    /// Set by a purge: the fill still streams to its readers, but is not admitted.
    invalidated: AtomicBool,
}

impl Fill {
    pub(super) fn new(meta: StoredMeta) -> Self {
        let (progress, _) = watch::channel(Progress {
            chunks: Vec::new(),
            len: 0,
            state: FillState::Writing,
        });
        Fill {
            meta: Arc::new(meta),
            progress,
            invalidated: AtomicBool::new(false),
        }
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub(super) fn is_aborted(&self) -> bool {
        self.progress.borrow().state == FillState::Aborted
    }

    fn invalidate(&self) {
        self.invalidated.store(true, Ordering::SeqCst);
    }

    pub(super) fn is_invalidated(&self) -> bool {
        self.invalidated.load(Ordering::SeqCst)
    }

    /// Mark a fill that has not completed as failed, waking its readers.
    fn abort(&self) {
        self.progress.send_if_modified(|p| {
            let writing = p.state == FillState::Writing;
            if writing {
                p.state = FillState::Aborted;
            }
            writing
        });
    }
}

/// The writer of one fill.
pub(super) struct MemoryMissHandler {
    storage: &'static MemoryStorage,
    key: HashBinary,
    id: u64,
    tag: U64WriteId,
    fill: Arc<Fill>,
    /// `finish` ran, so dropping must not abort the fill.
    finished: bool,
}

impl MemoryMissHandler {
    pub(super) fn new(
        storage: &'static MemoryStorage,
        key: HashBinary,
        id: u64,
        fill: Arc<Fill>,
    ) -> Self {
        MemoryMissHandler {
            storage,
            key,
            id,
            tag: id.into(),
            fill,
            finished: false,
        }
    }
}

#[async_trait]
impl HandleMiss for MemoryMissHandler {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> Result<()> {
        let mut state = FillState::Writing;
        self.fill.progress.send_if_modified(|p| {
            state = p.state;
            if p.state != FillState::Writing {
                return false;
            }
            if !data.is_empty() {
                p.len += data.len();
                p.chunks.push(data);
            }
            if eof {
                p.state = FillState::Complete;
            }
            true
        });
        match state {
            FillState::Writing => Ok(()),
            other => Error::e_explain(
                ErrorType::InternalError,
                format!("memory cache: body written to a fill that is {other:?}"),
            ),
        }
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        self.finished = true;
        let mut chunks = Vec::new();
        let mut len = 0;
        let mut state = FillState::Writing;
        self.fill.progress.send_if_modified(|p| {
            chunks = p.chunks.clone();
            len = p.len;
            state = p.state;
            let writing = p.state == FillState::Writing;
            if writing {
                p.state = FillState::Complete;
            }
            writing
        });
        if state == FillState::Aborted {
            return Error::e_explain(
                ErrorType::InternalError,
                "memory cache: finishing a fill that was aborted",
            );
        }
        // Admit before `Drop` takes the fill out of the in-progress map, so a lookup
        // always finds one or the other.
        let size = self.storage.admit_fill(self.key, &self.fill, &chunks, len);
        Ok(MissFinishType::Created(size))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(self.tag.as_bytes())
    }
}

impl Drop for MemoryMissHandler {
    fn drop(&mut self) {
        if !self.finished {
            // A write that stops short must not look like a short body to its readers.
            self.fill.abort();
        }
        self.storage.fills.remove(&self.key, self.id);
    }
}
