//! WebSocket connections through the proxy, and how long one may sit idle
//! (`upstreams.NAME.timeouts.websocket_idle`, default 60s, as nginx's
//! `proxy_read_timeout`).
//!
//! Pingora 0.9.1 forwards an HTTP/1.1 `Upgrade: websocket` handshake (its default
//! `H1UpgradePolicy::WebSocketOnly`; every other `Upgrade` is stripped and the
//! request is served as plain HTTP), and after the origin's 101 it copies bytes
//! both ways until either side closes. Two timers can end such a tunnel, and
//! neither is ours until we set them:
//!
//! - reads from the client, bounded by the session's read timeout, which the
//!   request path set to `limits.client_body_timeout` (30 s);
//! - reads from the origin, bounded by the peer's read timeout, which is the
//!   upstream's `timeouts.response_header` (30 s), and which also bounds the wait
//!   for the 101 itself.
//!
//! Each is re-armed whenever the tunnel moves a chunk in either direction
//! (Pingora's copy loops start a fresh read after every event), so each measures
//! idle time, and the tunnel ends at the shorter. So after the 101 the client side
//! gets `websocket_idle`, and a handshake's peer waits for the longer of
//! `response_header` and `websocket_idle`: the 101 still gets at least
//! `response_header`, and the origin side never cuts the tunnel before the idle
//! timeout does. An idle tunnel is closed without a close frame, as nginx does.

use crate::http_util::is_websocket_handshake;
use crate::upstream::config::Timeouts;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use std::time::Duration;

/// An upstream's WebSocket timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WebSocketIdle {
    /// No frame either way for this long closes the tunnel.
    idle: Duration,
    /// The peer's read timeout for a handshake: the 101, then the tunnel.
    handshake_read: Duration,
}

impl WebSocketIdle {
    pub(crate) fn new(t: &Timeouts) -> Self {
        WebSocketIdle {
            idle: t.websocket_idle,
            handshake_read: t.response_header.max(t.websocket_idle),
        }
    }

    /// `upstream_peer`: a handshake's origin side must outlast the idle timeout
    /// (see the module documentation); other requests keep the peer as built.
    pub(crate) fn fit_peer(&self, req: &RequestHeader, peer: &mut HttpPeer) {
        if is_websocket_handshake(req) {
            peer.options.read_timeout = Some(self.handshake_read);
        }
    }

    /// The origin answered a handshake with 101: from now on the client side is a
    /// tunnel, idle for at most `websocket_idle`, no longer a request body.
    pub(crate) fn on_switch(&self, session: &mut Session) {
        session.set_read_timeout(Some(self.idle));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(response_header: u64, websocket_idle: u64) -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(1),
            response_header: Duration::from_secs(response_header),
            idle: Duration::from_secs(60),
            websocket_idle: Duration::from_secs(websocket_idle),
        }
    }

    fn request(version: http::Version, upgrade: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/ws", None).unwrap();
        req.set_version(version);
        if let Some(value) = upgrade {
            req.insert_header(http::header::UPGRADE, value).unwrap();
        }
        req
    }

    #[test]
    fn the_origin_side_outlasts_the_idle_timeout() {
        let handshake = request(http::Version::HTTP_11, Some("websocket"));
        let mut peer = HttpPeer::new("127.0.0.1:80", false, String::new());
        WebSocketIdle::new(&timeouts(30, 60)).fit_peer(&handshake, &mut peer);
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(60)));
        // A short idle timeout does not shorten the wait for the 101.
        WebSocketIdle::new(&timeouts(30, 5)).fit_peer(&handshake, &mut peer);
        assert_eq!(peer.options.read_timeout, Some(Duration::from_secs(30)));
        // Other requests keep the peer's own timeout.
        let mut peer = HttpPeer::new("127.0.0.1:80", false, String::new());
        let plain = request(http::Version::HTTP_11, None);
        WebSocketIdle::new(&timeouts(30, 60)).fit_peer(&plain, &mut peer);
        assert_eq!(peer.options.read_timeout, None);
    }

    #[test]
    fn only_http_1_1_websocket_upgrades_are_handshakes() {
        assert!(is_websocket_handshake(&request(
            http::Version::HTTP_11,
            Some("websocket")
        )));
        assert!(is_websocket_handshake(&request(
            http::Version::HTTP_11,
            Some("WebSocket")
        )));
        assert!(!is_websocket_handshake(&request(
            http::Version::HTTP_11,
            Some("h2c")
        )));
        assert!(!is_websocket_handshake(&request(
            http::Version::HTTP_11,
            None
        )));
        assert!(!is_websocket_handshake(&request(
            http::Version::HTTP_10,
            Some("websocket")
        )));
    }
}
