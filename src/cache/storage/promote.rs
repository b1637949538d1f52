//! Objects offered by the disk tier, which the store takes under its admission
//! policy rather than unconditionally as it does its own fills.

use super::meta::StoredMeta;
use super::{Entry, MemoryStorage, ENTRY_OVERHEAD};
use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;
use std::sync::Arc;

impl MemoryStorage {
    /// Offer an object read from a lower tier (the disk), under TinyLFU's admission;
    /// whether it is kept. A key already held (or being filled) is left alone.
    /// `internal` is the internal blob `meta` was stored with.
    pub(crate) fn promote(
        &self,
        key: HashBinary,
        meta: &CacheMeta,
        internal: Vec<u8>,
        body: Bytes,
    ) -> bool {
        let Ok(meta) = StoredMeta::from_stored(internal, meta) else {
            return false;
        };
        let size = body.len() + meta.bytes() + ENTRY_OVERHEAD;
        let Some(weight) = self.weight_of(size) else {
            return false;
        };
        let entry = Arc::new(Entry {
            key,
            meta: Some(Arc::new(meta)),
            body,
            size,
            weight,
        });
        let (held, evicted) = {
            let mut ledger = self.lock_ledger();
            if self.get(&key).is_some() || self.fills.find(&key, None).is_some() {
                return false;
            }
            self.put_locked(&mut ledger, entry, true)
        };
        drop(evicted);
        held
    }
}
