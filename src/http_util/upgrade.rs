//! The WebSocket upgrade check (RFC 6455 §4.1), which the cache (a handshake is
//! never cached) and the upstream's WebSocket timeouts both ask.

use http::header::UPGRADE;
use pingora::http::RequestHeader;

/// Whether Pingora forwards this request as a WebSocket handshake (the same test
/// as its `WebSocketOnly` policy: HTTP/1.1 and `Upgrade: websocket`).
pub(crate) fn is_websocket_handshake(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get(UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
}
