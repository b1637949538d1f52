//! Hits served from the disk tier: a body read whole at lookup (small objects, also
//! promoted to memory) or streamed from its open, verified file in chunks.

use super::file::{self, CHUNK};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::storage::{HandleHit, HitHandler, Storage};
use pingora::cache::trace::SpanHandle;
use pingora::cache::CacheKey;
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use std::fs::File;
use std::sync::Arc;

/// Whether a hit is being served by the disk tier.
pub(crate) fn is_disk_hit(hit: &HitHandler) -> bool {
    hit.as_any().is::<DiskHit>()
}

pub(super) enum Body {
    Whole(Bytes),
    /// The open file (already verified) and where the body starts in it.
    File(Arc<File>, u64),
}

pub(super) struct DiskHit {
    body: Body,
    len: u64,
    /// The file's length, reported as the eviction weight.
    size: usize,
    pos: u64,
    /// Exclusive.
    end: u64,
}

impl DiskHit {
    pub(super) fn new(body: Body, len: u64, size: u64) -> Self {
        DiskHit {
            body,
            len,
            size: usize::try_from(size).unwrap_or(usize::MAX),
            pos: 0,
            end: len,
        }
    }
}

fn failed(why: String) -> Box<Error> {
    Error::explain(ErrorType::InternalError, why)
}

#[async_trait]
impl HandleHit for DiskHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let (start, end) = (self.pos, self.end);
        let chunk = match &self.body {
            Body::Whole(body) => {
                self.pos = end;
                body.slice(start as usize..end as usize)
            }
            Body::File(file, body_at) => {
                let n = (end - start).min(CHUNK as u64) as usize;
                let (file, at) = (file.clone(), body_at + start);
                let read = tokio::task::spawn_blocking(move || file::read_chunk(&file, at, n));
                let chunk = read
                    .await
                    .map_err(|e| failed(format!("cache disk tier: read task: {e}")))?
                    .map_err(|e| failed(format!("cache disk tier: reading a body: {e}")))?;
                self.pos += n as u64;
                chunk
            }
        };
        Ok(Some(chunk))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    /// Select `start..end` (`end` exclusive, clamped to the length, `None` for the
    /// rest of the body), as the memory store's hits do.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let (start, len) = (start as u64, self.len);
        if start >= len {
            return Err(failed(format!(
                "cache disk tier: seek start {start} is past the body length {len}"
            )));
        }
        let end = end.map_or(len, |end| (end as u64).min(len));
        if end <= start {
            return Err(failed(format!(
                "cache disk tier: empty seek range {start}..{end}"
            )));
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }

    fn should_count_access(&self) -> bool {
        true
    }

    fn get_eviction_weight(&self) -> usize {
        self.size
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
