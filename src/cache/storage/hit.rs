//! Hit handlers: a complete object (one zero-copy `Bytes`, seekable) and a partial
//! one that streams an in-progress fill as it is written.

use super::fill::{FillState, Progress};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::storage::{HandleHit, Storage};
use pingora::cache::trace::SpanHandle;
use pingora::cache::CacheKey;
use pingora::{Error, ErrorType, Result};
use std::any::Any;
use tokio::sync::watch;

/// What [`super::MemoryStorage`] returns from a lookup.
pub(super) enum MemoryHitHandler {
    Complete(CompleteHit),
    Partial(PartialHit),
}

/// A hit on a complete object.
pub(super) struct CompleteHit {
    body: Bytes,
    /// The entry's charged size (body and meta), reported as its eviction weight.
    size: usize,
    start: usize,
    /// Exclusive.
    end: usize,
    done: bool,
}

impl CompleteHit {
    pub(super) fn new(body: Bytes, size: usize) -> Self {
        let end = body.len();
        CompleteHit {
            body,
            size,
            start: 0,
            end,
            done: false,
        }
    }

    /// The current range once, as a slice of the stored body (no copy), then `None`.
    fn read(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        self.done = true;
        let end = self.end.min(self.body.len());
        let start = self.start.min(end);
        (start < end).then(|| self.body.slice(start..end))
    }

    /// Select `start..end` (`end` exclusive, clamped to the length, `None` for the
    /// rest of the body) and rewind, so one handler can serve several ranges.
    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        if start >= len {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("memory cache: seek start {start} is past the body length {len}"),
            );
        }
        let end = end.map_or(len, |end| end.min(len));
        if end <= start {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("memory cache: empty seek range {start}..{end}"),
            );
        }
        self.start = start;
        self.end = end;
        self.done = false;
        Ok(())
    }
}

/// A hit on a fill still being written: yields each chunk once it is written.
pub(super) struct PartialHit {
    progress: watch::Receiver<Progress>,
    /// Index of the next chunk to hand out.
    next: usize,
}

impl PartialHit {
    pub(super) fn new(progress: watch::Receiver<Progress>) -> Self {
        PartialHit { progress, next: 0 }
    }

    /// The next chunk or the end, if either is known now; `None` means wait.
    fn poll(&mut self) -> Option<Result<Option<Bytes>>> {
        let progress = self.progress.borrow_and_update();
        if let Some(chunk) = progress.chunks.get(self.next) {
            let chunk = chunk.clone();
            drop(progress);
            self.next += 1;
            return Some(Ok(Some(chunk)));
        }
        match progress.state {
            FillState::Writing => None,
            FillState::Complete => Some(Ok(None)),
            FillState::Aborted => Some(abandoned()),
        }
    }

    /// Cancel-safe: the position only moves when a chunk is returned.
    async fn read(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(result) = self.poll() {
                return result;
            }
            if self.progress.changed().await.is_err() {
                // Every holder of the fill is gone, so the state is final: a fill that
                // was never completed is a failed one, not a short body.
                return self.poll().unwrap_or_else(abandoned);
            }
        }
    }
}

fn abandoned() -> Result<Option<Bytes>> {
    Error::e_explain(
        ErrorType::InternalError,
        "memory cache: the fill was abandoned before its body was complete",
    )
}

#[async_trait]
impl HandleHit for MemoryHitHandler {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            Self::Complete(hit) => Ok(hit.read()),
            Self::Partial(hit) => hit.read().await,
        }
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
        matches!(self, Self::Complete(_))
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        match self {
            Self::Complete(hit) => hit.seek(start, end),
            Self::Partial(_) => Error::e_explain(
                ErrorType::InternalError,
                "memory cache: cannot seek in a fill still being written",
            ),
        }
    }

    fn should_count_access(&self) -> bool {
        matches!(self, Self::Complete(_))
    }

    fn get_eviction_weight(&self) -> usize {
        match self {
            Self::Complete(hit) => hit.size,
            // The final size of a fill in progress is not known yet.
            Self::Partial(_) => 0,
        }
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
