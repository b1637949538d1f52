//! Small HTTP helpers shared by the request path, the access log and the admin
//! listener: numbers and addresses as ASCII, hand-written JSON, the elements of a
//! comma-separated list, the request target and host in normal form, the scheme,
//! address blocks, the hop-by-hop response fields and the WebSocket upgrade check. None of
//! them knows about configuration or policy. (Heads edited as plain header maps:
//! `pingora_compat::head_edit`.)

pub(crate) mod ascii;
mod cidr;
mod hop_by_hop;
pub(crate) mod host;
pub(crate) mod json;
pub(crate) mod path;
mod scheme;
pub(crate) mod target;
mod tokens;
mod upgrade;

pub(crate) use cidr::Cidr;
pub(crate) use hop_by_hop::strip_response_hop_by_hop;
pub(crate) use scheme::Scheme;
pub(crate) use tokens::tokens;
pub(crate) use upgrade::is_websocket_handshake;

/// The `Content-Length` of a head, when it has one that is a number.
pub(crate) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
}
