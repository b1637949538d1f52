//! Header rules of SPEC §3 that Pingora does not already apply.
//!
//! Request hop-by-hop fields (the standard list, everything named in `Connection`,
//! `Upgrade` unless it is a WebSocket handshake) are stripped by Pingora's default
//! `HttpUpstreamRequestPolicy` before `upstream_request_filter` runs; this module adds
//! the forwarding headers. On responses Pingora rewrites `Connection` itself; this
//! module removes the origin's other hop-by-hop fields and applies the operator's
//! `response_headers` rules.

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use std::io::Write;
use std::net::IpAddr;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// A header Parapet sets: `name` to look it up, `wire` (as configured, or in its
/// usual case) to insert it. Pingora keeps the case of every header it writes; from
/// a `HeaderName` it rebuilds that case with an allocation on every insert, from a
/// `&'static str` it does not.
#[derive(Debug, Clone)]
pub struct WireName {
    pub name: HeaderName,
    pub wire: &'static str,
}

impl WireName {
    /// A configured header name. The text is kept for the life of the process (it
    /// is configuration, loaded once).
    pub fn configured(text: &str) -> Option<WireName> {
        let name = HeaderName::from_bytes(text.as_bytes()).ok()?;
        Some(WireName {
            name,
            wire: Box::leak(text.to_string().into_boxed_str()),
        })
    }
}

/// What the request path learned about the client, for the forwarding headers.
pub struct Forwarding {
    pub peer: IpAddr,
    pub client: IpAddr,
    /// The peer is a trusted proxy: its forwarding headers are kept and extended.
    pub trusted: bool,
    pub scheme: &'static str,
}

/// Set X-Forwarded-For/-Proto/-Host and the client-IP header on an upstream request.
pub fn set_forwarding(req: &mut RequestHeader, fwd: &Forwarding, client_ip_header: &WireName) {
    let xff = match req.headers.get(&X_FORWARDED_FOR).filter(|_| fwd.trusted) {
        Some(prior) => {
            let mut buf = BytesMut::with_capacity(prior.len() + 42);
            buf.put_slice(prior.as_bytes());
            buf.put_slice(b", ");
            push_ip(&mut buf, fwd.peer);
            buf
        }
        None => ip_bytes(fwd.peer),
    };
    insert(req, "X-Forwarded-For", xff);
    if !(fwd.trusted && req.headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = HeaderValue::from_static(fwd.scheme);
        let _ = req.insert_header("X-Forwarded-Proto", proto);
    }
    if !(fwd.trusted && req.headers.contains_key(&X_FORWARDED_HOST)) {
        match host_of(req).cloned() {
            Some(host) => {
                let _ = req.insert_header("X-Forwarded-Host", host);
            }
            None => {
                req.remove_header(&X_FORWARDED_HOST);
            }
        }
    }
    insert(req, client_ip_header.wire, ip_bytes(fwd.client));
}

/// The request's host as the client sent it.
pub fn host_of(req: &RequestHeader) -> Option<&HeaderValue> {
    req.headers.get(header::HOST)
}

fn insert(req: &mut RequestHeader, name: &'static str, value: BytesMut) {
    // Built from an IP address and an existing valid value: always a valid value.
    if let Ok(v) = HeaderValue::from_maybe_shared(value.freeze()) {
        let _ = req.insert_header(name, v);
    }
}

fn ip_bytes(ip: IpAddr) -> BytesMut {
    let mut buf = BytesMut::with_capacity(40);
    push_ip(&mut buf, ip);
    buf
}

/// Write an address as text. IPv4, by far the common case, skips `fmt`, which
/// costs about 2,000 instructions an address.
fn push_ip(buf: &mut BytesMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b'.');
                }
                if octet >= 100 {
                    buf.put_u8(b'0' + octet / 100);
                }
                if octet >= 10 {
                    buf.put_u8(b'0' + octet / 10 % 10);
                }
                buf.put_u8(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            let mut text = [0u8; 48];
            let mut cursor = &mut text[..];
            let _ = write!(cursor, "{ip}");
            let len = 48 - cursor.len();
            buf.put_slice(&text[..len]);
        }
    }
}

/// Strip the origin's hop-by-hop response fields. `Connection` itself is rewritten
/// by Pingora when the response is written, but the fields it names are ours to drop.
pub fn strip_response_hop_by_hop(resp: &mut ResponseHeader) {
    // One pass over the few names present finds which of these fields the response
    // has (usually only `Connection`), so that only those are looked up and removed.
    let mut present = [false; RESPONSE_HOP_BY_HOP.len()];
    for name in resp.headers.keys() {
        if let Some(i) = RESPONSE_HOP_BY_HOP.iter().position(|h| *h == name) {
            present[i] = true;
        }
    }
    // A 101's Upgrade says what the connection switches to: it stays.
    present[6] &= resp.status != http::StatusCode::SWITCHING_PROTOCOLS;
    if present[0] {
        if let Some(connection) = resp.headers.get(header::CONNECTION).cloned() {
            for token in connection.as_bytes().split(|b| *b == b',') {
                let token = token.trim_ascii();
                // The usual values name no other header: skip parsing them.
                if token.eq_ignore_ascii_case(b"keep-alive") || token.eq_ignore_ascii_case(b"close")
                {
                    continue;
                }
                if let Ok(name) = HeaderName::from_bytes(token) {
                    resp.remove_header(&name);
                }
            }
        }
    }
    for (name, found) in RESPONSE_HOP_BY_HOP.iter().zip(present) {
        if found {
            resp.remove_header(*name);
        }
    }
}

/// The origin's hop-by-hop fields: `Connection` first, `Upgrade` last.
static RESPONSE_HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::TE,
    &header::TRAILER,
    &header::UPGRADE,
];

/// The operator's `response_headers` rules, resolved at load.
#[derive(Debug, Default, Clone)]
pub struct ResponseHeaderRules {
    pub add: Vec<(WireName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl ResponseHeaderRules {
    pub fn apply(&self, resp: &mut ResponseHeader) {
        for name in &self.remove {
            resp.remove_header(name);
        }
        for (name, value) in &self.add {
            let _ = resp.insert_header(name.wire, value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            req.append_header(n.to_string(), *v).unwrap();
        }
        req
    }

    fn get<'a>(req: &'a RequestHeader, name: &str) -> &'a str {
        req.headers.get(name).unwrap().to_str().unwrap()
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let mut req = request(&[
            ("host", "example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ]);
        let fwd = Forwarding {
            peer: "1.2.3.4".parse().unwrap(),
            client: "1.2.3.4".parse().unwrap(),
            trusted: false,
            scheme: "http",
        };
        set_forwarding(&mut req, &fwd, &WireName::configured("X-Real-IP").unwrap());
        assert_eq!(get(&req, "x-forwarded-for"), "1.2.3.4");
        assert_eq!(get(&req, "x-forwarded-proto"), "http");
        assert_eq!(get(&req, "x-forwarded-host"), "example.com");
        assert_eq!(get(&req, "x-real-ip"), "1.2.3.4");
    }

    #[test]
    fn trusted_forwarding_headers_are_extended() {
        let mut req = request(&[("host", "example.com"), ("x-forwarded-for", "6.6.6.6")]);
        let fwd = Forwarding {
            peer: "10.0.0.1".parse().unwrap(),
            client: "6.6.6.6".parse().unwrap(),
            trusted: true,
            scheme: "http",
        };
        set_forwarding(&mut req, &fwd, &WireName::configured("X-Real-IP").unwrap());
        assert_eq!(get(&req, "x-forwarded-for"), "6.6.6.6, 10.0.0.1");
        assert_eq!(get(&req, "x-real-ip"), "6.6.6.6");
    }

    #[test]
    fn addresses_are_written_as_text() {
        for ip in [
            "0.0.0.0",
            "1.20.255.9",
            "100.10.1.0",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            let mut buf = BytesMut::new();
            push_ip(&mut buf, ip.parse().unwrap());
            assert_eq!(&buf[..], ip.as_bytes());
        }
    }

    #[test]
    fn a_switching_protocols_answer_keeps_its_upgrade() {
        let mut resp = ResponseHeader::build(101, None).unwrap();
        resp.append_header("upgrade", "websocket").unwrap();
        resp.append_header("keep-alive", "timeout=5").unwrap();
        strip_response_hop_by_hop(&mut resp);
        assert_eq!(resp.headers.get("upgrade").unwrap(), "websocket");
        assert!(resp.headers.get("keep-alive").is_none());
    }

    #[test]
    fn responses_without_hop_by_hop_fields_are_untouched() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("x-a", "1").unwrap();
        resp.append_header("content-length", "0").unwrap();
        strip_response_hop_by_hop(&mut resp);
        assert_eq!(resp.headers.len(), 2);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("trailer", "x-sum").unwrap();
        strip_response_hop_by_hop(&mut resp);
        assert_eq!(resp.headers.len(), 0);
    }

    #[test]
    fn response_hop_by_hop_fields_are_removed() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for (n, v) in [
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("trailer", "x-checksum"),
            ("x-kept", "yes"),
        ] {
            resp.append_header(n, v).unwrap();
        }
        strip_response_hop_by_hop(&mut resp);
        let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }
}
