//! The memory store as Pingora's cache sees it: `pingora-cache`'s `Storage` trait
//! (`storage.rs`), each call one step of the store above.

use super::*;

#[async_trait]
impl Storage for MemoryStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        self.lookup_held(key)
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        // An error rather than `Ok(None)` when the fill is gone: pingora-cache panics
        // on `None` here, and the error just fails this request's cache admission.
        let Some(id) = streaming_write_tag.and_then(|tag| U64WriteId::try_from(tag).ok()) else {
            return Error::e_explain(
                ErrorType::InternalError,
                "memory cache: missing or malformed streaming write tag",
            );
        };
        let key = key.combined_bin();
        match self.fills.find(&key, Some(id.into())) {
            Some(fill) => Self::partial_hit(&fill),
            None => Error::e_explain(
                ErrorType::InternalError,
                "memory cache: the fill for this streaming write is gone",
            ),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let key = key.combined_bin();
        let fill = Arc::new(Fill::new(StoredMeta::capture(meta)?));
        let id = self.next_write_id.fetch_add(1, Ordering::Relaxed);
        self.fills.insert(key, id, fill.clone());
        Ok(Box::new(MemoryMissHandler::new(self, key, id, fill)))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        // `Exact` targets are treated like `Active` ones: this store assigns no entry
        // ids, so the logical key is the whole identity.
        let key = target.key().combined_bin();
        Ok(match self.purge_key(&key)? {
            true => PurgeOutcome::Purged(None),
            false => PurgeOutcome::NotFound,
        })
    }

    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let key = target.key().combined_bin();
        Ok(match self.expire_key(&key)? {
            true => PurgeOutcome::Expired,
            false => PurgeOutcome::NotFound,
        })
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let key = key.combined_bin();
        let meta = StoredMeta::capture(meta)?;
        Ok(self.replace(&key, |_| Ok(Some(meta)))? == Some(true))
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
