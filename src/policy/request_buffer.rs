//! Request buffering (README: Configuration walk-through, `limits.request_buffer`, as nginx's
//! `proxy_request_buffering`): a body of up to `request_buffer` bytes is read whole
//! before the upstream request starts. A malformed chunked body is then refused
//! (400) before the origin sees a byte of it, a slow uploader holds a client
//! connection but never an origin connection, and the body stays buffered for a
//! retry. A longer body is read up to the limit and then streams as it comes.
//!
//! The body is held in Pingora's retry buffer, which Pingora sends upstream
//! before it reads any further: that is why the limit is at most that buffer's
//! size (64 KiB). When the read that crosses the limit overflows that buffer,
//! what was read is handed back to be sent ahead of the rest (`Buffered::Partial`).

use crate::http_util::content_length;
use bytes::{Bytes, BytesMut};
use http::header::EXPECT;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

/// Pingora's retry buffer (`BODY_BUF_LIMIT` in pingora-core's HTTP sessions).
pub(crate) const MAX_REQUEST_BUFFER: u64 = 64 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestBuffer {
    /// 0: off, every body streams.
    pub(crate) limit: usize,
}

/// What reading ahead left for the proxy to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Buffered {
    /// The whole body is read; Pingora sends it from its retry buffer.
    Whole(u64),
    /// Part of a longer body is read; the rest streams. `Some` bytes when they
    /// are not in the retry buffer and must be sent first.
    Partial(u64, Option<Bytes>),
}

impl RequestBuffer {
    /// Read the body ahead when it may fit. Read errors are the client's: a
    /// malformed chunk (400), a stall past the read timeout (408), a hang-up.
    /// Bodies over `max_body` stop being read as soon as they cross it.
    /// Whether the request has a body that may fit: one to `fill`.
    pub(crate) fn wants(&self, session: &mut Session) -> bool {
        self.limit > 0 && !session.is_body_empty() && !self.declared_over(session)
    }

    /// Called for a request this buffer `wants` (the caller checks, to keep this
    /// future off requests without a body).
    pub(crate) async fn fill(&self, session: &mut Session, max_body: u64) -> Result<Buffered> {
        // The client may wait to be told to send; the backend is not asked yet.
        if session.req_header().headers.contains_key(EXPECT) {
            session.write_continue_response().await?;
            session.req_header_mut().remove_header(&EXPECT);
        }
        session.enable_retry_buffering();
        let mut chunks = Vec::new();
        let mut read: u64 = 0;
        while read <= self.limit as u64 && read <= max_body {
            match session
                .read_request_body()
                .await
                .map_err(|e| e.into_down())?
            {
                Some(chunk) => {
                    read += chunk.len() as u64;
                    chunks.push(chunk);
                }
                None => return Ok(Buffered::Whole(read)),
            }
        }
        let truncated = session.retry_buffer_truncated();
        if truncated && session.is_body_done() {
            // Pingora would send nothing: it replays only an intact retry buffer
            // and reads no more from a finished body. Its chunked reader never
            // finishes a body on a read that returns data, so this is not reached.
            return Error::e_explain(ErrorType::InternalError, "buffered body lost");
        }
        Ok(Buffered::Partial(read, truncated.then(|| concat(&chunks))))
    }

    fn declared_over(&self, session: &Session) -> bool {
        content_length(&session.req_header().headers).is_some_and(|n| n > self.limit as u64)
    }
}

fn concat(chunks: &[Bytes]) -> Bytes {
    let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in chunks {
        all.extend_from_slice(chunk);
    }
    all.freeze()
}
