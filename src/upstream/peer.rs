//! How Parapet connects to a backend: the Pingora peer of each backend, built once
//! with the upstream's timeouts and cloned for every attempt. TLS to the origin has
//! its slot here; until it is built an upstream's `tls` key is rejected as unknown.

use super::config::Timeouts;
use pingora::upstreams::peer::HttpPeer;
use std::net::SocketAddr;
use std::path::PathBuf;

/// TLS to an upstream's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// The name sent in SNI and verified in the certificate.
    pub sni: String,
    pub verify: bool,
    /// Trust this CA bundle instead of the system's.
    pub ca: Option<PathBuf>,
}

/// The peer of one backend.
pub fn build(address: SocketAddr, tls: Option<&UpstreamTls>, t: Timeouts) -> HttpPeer {
    let sni = tls.map(|tls| tls.sni.clone()).unwrap_or_default();
    let mut peer = HttpPeer::new(address, tls.is_some(), sni);
    peer.options.connection_timeout = Some(t.connect);
    // Waiting for the response head, and between two reads after it. No write
    // timeout: Pingora registers a timer on every read and every write, and the read
    // timeout already bounds a backend that stops reading, since the response is
    // awaited while the body is sent.
    peer.options.read_timeout = Some(t.response_header);
    peer.options.idle_timeout = Some(t.idle);
    peer
}
