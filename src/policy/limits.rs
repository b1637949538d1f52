//! Request limits (README: Configuration walk-through, `limits`): how large a request
//! head and body may be.
//!
//! - `max_request_header_bytes` (default 64KiB): a larger head gets 431. Pingora
//!   reads heads of up to 1 MiB before Parapet sees them (its own fixed limit, past
//!   which it drops the connection), so the limit is checked on the head as read.
//! - `max_request_body_bytes` (default 100MiB): a `Content-Length` over it gets 413
//!   before anything is forwarded; a chunked body is counted as it streams, and when
//!   it passes the limit the upstream request is aborted (413 when no answer has
//!   started yet).
//!
//! - `client_body_timeout` (default 30s): the longest wait for the next bytes of a
//!   request body; a client that stalls longer gets 408 (or, once an answer has
//!   started, a closed connection), so a slow uploader cannot hold a worker forever.
//!
//! - `http2_max_concurrent_streams` (default 100, Pingora's): streams one HTTP/2
//!   client may have open at once; `max_request_header_bytes` also bounds an HTTP/2
//!   header list (the client is told both in its SETTINGS).
//! - `request_buffer` (default 64KiB, at most that): bodies up to it are read whole
//!   before the upstream request starts (`policy::request_buffer`).
//!
//! - `client_header_timeout` (default 10s): a request head must arrive whole within
//!   it, or the connection is closed (`pingora_compat::header_timeout`).
//!
//! - `client_send_timeout` (default 60s, as nginx's `send_timeout`): a response
//!   body write that makes no progress for this long closes the connection (and
//!   its upstream connection; a cache fill it was feeding goes on), on hits too.
//!   It is Pingora's downstream write timeout, which over HTTP/1 does not cover the
//!   response head nor the end of a body (a chunked body's last chunk, the flush:
//!   pingora-core `protocols/http/v1/server.rs`, `write_response_header`,
//!   `finish_body`).
//!
//! - `client_keepalive_timeout` (default 60s): an idle keep-alive connection is
//!   closed after it; `keepalive_requests` (default 1000, as nginx; 0 for no limit):
//!   the answer to the last request a connection may carry has `Connection: close`.

use super::request_buffer::{RequestBuffer, MAX_REQUEST_BUFFER};
use crate::config::units::{Size, Span};
use crate::config::{require_nonzero, ConfigErrors};
use crate::http_util::content_length;
use pingora::proxy::Session;
use serde::Deserialize;
use std::time::Duration;

/// The `limits` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    pub(crate) max_request_header_bytes: Size,
    pub(crate) max_request_body_bytes: Size,
    pub(crate) client_header_timeout: Span,
    pub(crate) client_body_timeout: Span,
    pub(crate) client_send_timeout: Span,
    pub(crate) request_buffer: Size,
    pub(crate) http2_max_concurrent_streams: u32,
    pub(crate) client_keepalive_timeout: Span,
    pub(crate) keepalive_requests: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_header_bytes: Size(64 << 10),
            max_request_body_bytes: Size(100 << 20),
            client_header_timeout: Span(Duration::from_secs(10)),
            client_body_timeout: Span(Duration::from_secs(30)),
            client_send_timeout: Span(Duration::from_secs(60)),
            request_buffer: Size(MAX_REQUEST_BUFFER),
            http2_max_concurrent_streams: 100,
            client_keepalive_timeout: Span(Duration::from_secs(60)),
            keepalive_requests: 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLimits {
    pub(crate) header_bytes: usize,
    pub(crate) body_bytes: u64,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    /// The longest a response write may make no progress.
    pub(crate) send_timeout: Duration,
    pub(crate) buffer: RequestBuffer,
    pub(crate) http2_streams: u32,
    /// Whole seconds, as Pingora keeps it (at least 1).
    pub(crate) keepalive_timeout: u64,
    /// How often a connection may be reused after its first request (Pingora's
    /// count): `keepalive_requests` - 1. None: no limit.
    pub(crate) keepalive_reuses: Option<u32>,
}

/// What a limit says of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Within,
    HeadTooLarge,
    BodyTooLarge,
}

impl RequestLimits {
    pub(crate) fn from_config(config: LimitsConfig, errors: &mut ConfigErrors) -> RequestLimits {
        if config.max_request_header_bytes.0 < 1024 {
            errors.push("limits.max_request_header_bytes", "must be at least 1KiB");
        }
        if config.max_request_body_bytes.0 == 0 {
            errors.push("limits.max_request_body_bytes", "must be greater than 0");
        }
        if config.client_keepalive_timeout.0 < Duration::from_secs(1) {
            errors.push("limits.client_keepalive_timeout", "must be at least 1s");
        }
        let header_timeout = config.client_header_timeout.0;
        let body_timeout = config.client_body_timeout.0;
        let send_timeout = config.client_send_timeout.0;
        require_nonzero(
            "limits",
            &[
                ("client_header_timeout", header_timeout),
                ("client_body_timeout", body_timeout),
                ("client_send_timeout", send_timeout),
            ],
            errors,
        );
        if config.http2_max_concurrent_streams == 0 {
            errors.push("limits.http2_max_concurrent_streams", "must be at least 1");
        }
        if config.request_buffer.0 > MAX_REQUEST_BUFFER {
            errors.push(
                "limits.request_buffer",
                "must be at most 64KiB (the body is held in Pingora's retry buffer)",
            );
        }
        RequestLimits {
            header_bytes: usize::try_from(config.max_request_header_bytes.0).unwrap_or(usize::MAX),
            body_bytes: config.max_request_body_bytes.0,
            header_timeout,
            body_timeout,
            send_timeout,
            buffer: RequestBuffer {
                limit: config.request_buffer.0.min(MAX_REQUEST_BUFFER) as usize,
            },
            http2_streams: config.http2_max_concurrent_streams,
            keepalive_timeout: config.client_keepalive_timeout.0.as_secs().max(1),
            keepalive_reuses: config.keepalive_requests.checked_sub(1),
        }
    }

    /// The head as read, and the declared body length.
    pub(crate) fn check_head(&self, session: &Session) -> Verdict {
        let head_bytes = session
            .as_downstream()
            .as_http1()
            .map_or(0, |h1| h1.get_headers_raw_bytes().len());
        let declared = content_length(&session.req_header().headers);
        self.verdict(head_bytes, declared)
    }

    fn verdict(&self, head_bytes: usize, declared_body: Option<u64>) -> Verdict {
        if head_bytes > self.header_bytes {
            Verdict::HeadTooLarge
        } else if declared_body.is_some_and(|n| n > self.body_bytes) {
            Verdict::BodyTooLarge
        } else {
            Verdict::Within
        }
    }

    /// Count `chunk` against the body limit; whether the body is still within it.
    pub(crate) fn body_within(&self, seen: &mut u64, chunk: usize) -> bool {
        *seen = seen.saturating_add(chunk as u64);
        *seen <= self.body_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(yaml: &str) -> (RequestLimits, Vec<String>) {
        let config: LimitsConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        (
            RequestLimits::from_config(config, &mut errors),
            errors.paths(),
        )
    }

    #[test]
    fn defaults_and_validation() {
        let (l, problems) = limits("{}");
        assert!(problems.is_empty());
        assert_eq!((l.header_bytes, l.body_bytes), (64 << 10, 100 << 20));
        assert_eq!(l.body_timeout, Duration::from_secs(30));
        assert_eq!(l.send_timeout, Duration::from_secs(60));
        assert_eq!(l.header_timeout, Duration::from_secs(10));
        assert_eq!(l.http2_streams, 100);
        assert_eq!((l.keepalive_timeout, l.keepalive_reuses), (60, Some(999)));
        let (l, _) = limits("{keepalive_requests: 0}");
        assert_eq!(l.keepalive_reuses, None, "0: no limit");
        assert_eq!(l.buffer.limit, 64 << 10);
        let (l, _) = limits("{request_buffer: 0}");
        assert_eq!(l.buffer.limit, 0, "0 turns buffering off");
        let (_, problems) = limits(
            "{max_request_header_bytes: 100, max_request_body_bytes: 0, client_body_timeout: 0s, \
              request_buffer: 65537, client_header_timeout: 0s, client_send_timeout: 0s}",
        );
        assert_eq!(
            problems,
            [
                "limits.max_request_header_bytes",
                "limits.max_request_body_bytes",
                "limits.client_header_timeout",
                "limits.client_body_timeout",
                "limits.client_send_timeout",
                "limits.request_buffer"
            ]
        );
    }

    #[test]
    fn heads_and_bodies_over_the_limits() {
        let (l, _) = limits("{max_request_header_bytes: 2KiB, max_request_body_bytes: 1MiB}");
        assert_eq!(l.verdict(2048, None), Verdict::Within);
        assert_eq!(l.verdict(2049, None), Verdict::HeadTooLarge);
        assert_eq!(l.verdict(100, Some(1 << 20)), Verdict::Within);
        assert_eq!(l.verdict(100, Some((1 << 20) + 1)), Verdict::BodyTooLarge);
        let mut seen = 0;
        assert!(l.body_within(&mut seen, 1 << 19));
        assert!(l.body_within(&mut seen, 1 << 19));
        assert!(!l.body_within(&mut seen, 1));
    }
}
