//! Header rules (README: Headers) that Pingora does not already apply.
//!
//! Request hop-by-hop fields (the standard list, everything named in `Connection`,
//! `Upgrade` unless it is a WebSocket handshake) are stripped by Pingora's default
//! `HttpUpstreamRequestPolicy` before `upstream_request_filter` runs; this module adds
//! the forwarding headers. On responses Pingora rewrites `Connection` itself; this
//! module removes the origin's other hop-by-hop fields and applies the operator's
//! `response_headers` rules.

use crate::config::{header_name, ConfigErrors};
use crate::http_util::ascii::put_ip;
use crate::http_util::tokens;
use crate::policy::client_ip::Client;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// How many fields Parapet adds to an upstream request at most: X-Forwarded-For,
/// -Proto and -Host, the client-IP header, the request ID and traceparent.
pub const UPSTREAM_ADDED: usize = 6;

/// Set X-Forwarded-For/-Proto/-Host and the client-IP header on an upstream request.
pub fn set_forwarding(headers: &mut HeaderMap, client: &Client, client_ip_header: &HeaderName) {
    let trusted = client.trusted_peer;
    let peer = ip_value(client.peer);
    let prior = headers.get_all(&X_FORWARDED_FOR);
    let xff = match prior.iter().next().filter(|_| trusted) {
        Some(_) => {
            // Several field lines are one list, combined in order with ", " (RFC 9110
            // §5.3): the origin gets one line, all of them and then the peer.
            let len: usize = prior.iter().map(|line| line.len() + 2).sum();
            let mut buf = BytesMut::with_capacity(len + IpText::MAX);
            for line in prior.iter() {
                buf.put_slice(line.as_bytes());
                buf.put_slice(b", ");
            }
            put_ip(&mut buf, client.peer);
            HeaderValue::from_maybe_shared(buf.freeze()).ok()
        }
        None => peer.clone(),
    };
    insert(headers, &X_FORWARDED_FOR, xff);
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = HeaderValue::from_static(client.scheme.as_str());
        let _ = headers.try_insert(X_FORWARDED_PROTO.clone(), proto);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match headers.get(header::HOST).cloned() {
            Some(host) => {
                let _ = headers.try_insert(X_FORWARDED_HOST.clone(), host);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
    // Usually the client is the peer: the same value (one allocation) serves both.
    let ip = if client.ip == client.peer {
        peer
    } else {
        ip_value(client.ip)
    };
    insert(headers, client_ip_header, ip);
}

fn insert(headers: &mut HeaderMap, name: &HeaderName, value: Option<HeaderValue>) {
    // Built from an IP address and an existing valid value: always a valid value.
    if let Some(v) = value {
        let _ = headers.try_insert(name.clone(), v);
    }
}

/// An address as a header value, in one allocation shared by its clones.
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    let mut text = IpText {
        bytes: [0; IpText::MAX],
        len: 0,
    };
    let mut unwritten = &mut text.bytes[..];
    put_ip(&mut unwritten, ip);
    text.len = IpText::MAX - unwritten.len();
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).ok()
}

/// An address's text, stored inline.
struct IpText {
    bytes: [u8; IpText::MAX],
    len: usize,
}

impl IpText {
    /// The longest text form of an address (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255`).
    const MAX: usize = 45;
}

impl AsRef<[u8]> for IpText {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Strip the origin's hop-by-hop response fields. `Connection` itself is rewritten
/// by Pingora when the response is written, but the fields it names are ours to drop.
/// A 101 keeps `Upgrade` and gets `Connection: Upgrade`: the client's connection
/// switches too, and Pingora writes no `Connection` on a 1xx.
pub fn strip_response_hop_by_hop(headers: &mut HeaderMap, status: http::StatusCode) {
    // One pass over the few names present finds which of these fields the response
    // has (usually only `Connection`), so that only those are looked up and removed.
    let mut present = [false; RESPONSE_HOP_BY_HOP.len()];
    for name in headers.keys() {
        if let Some(i) = RESPONSE_HOP_BY_HOP.iter().position(|h| *h == name) {
            present[i] = true;
        }
    }
    // A 101's Upgrade says what the connection switches to: it stays.
    let switching = status == http::StatusCode::SWITCHING_PROTOCOLS;
    present[6] &= !switching;
    if present[0] {
        remove_connection_options(headers);
    }
    for (name, found) in RESPONSE_HOP_BY_HOP.iter().zip(present) {
        if found {
            headers.remove(*name);
        }
    }
    if switching {
        // RFC 9110 §7.8: a sender of `Upgrade` names it in `Connection`.
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    }
}

/// Remove the fields named in every `Connection` line (one list, RFC 9110 §5.3 and
/// §7.6.1). The names are gathered first: removing needs the map that holds them.
fn remove_connection_options(headers: &mut HeaderMap) {
    let mut named: Vec<HeaderName> = Vec::new();
    let options = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|line| tokens(line.as_bytes()));
    for token in options {
        // The usual values name no other header (`upgrade` names one that is
        // hop-by-hop anyway, or a 101's, which stays): skip parsing them.
        if token.eq_ignore_ascii_case(b"keep-alive")
            || token.eq_ignore_ascii_case(b"close")
            || token.eq_ignore_ascii_case(b"upgrade")
        {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token) {
            named.push(name);
        }
    }
    for name in &named {
        headers.remove(name);
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

/// The `response_headers` section as the operator wrote it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseHeadersConfig {
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

/// The operator's `response_headers` rules, resolved at load.
#[derive(Debug, Default, Clone)]
pub struct ResponseHeaderRules {
    pub add: Vec<(HeaderName, HeaderValue)>,
    pub remove: Vec<HeaderName>,
}

impl ResponseHeaderRules {
    pub fn from_config(config: ResponseHeadersConfig, errors: &mut ConfigErrors) -> Self {
        let mut rules = ResponseHeaderRules::default();
        for (name, value) in &config.add {
            let path = format!("response_headers.add.{name}");
            let name = header_name(name, &path, errors);
            let value = HeaderValue::from_str(value)
                .map_err(|_| errors.push(&path, "not a valid header value"))
                .ok();
            if let (Some(n), Some(v)) = (name, value) {
                rules.add.push((n, v));
            }
        }
        for (i, name) in config.remove.iter().enumerate() {
            let path = format!("response_headers.remove[{i}]");
            if let Some(n) = header_name(name, &path, errors) {
                rules.remove.push(n);
            }
        }
        rules
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.add {
            let _ = headers.try_insert(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        fields
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    /// The headers an upstream request gets from a peer with these headers.
    fn forwarded(fields: &[(&'static str, &'static str)], client: &Client) -> HeaderMap {
        let mut headers = map(fields);
        set_forwarding(&mut headers, client, &HeaderName::from_static("x-real-ip"));
        headers
    }

    fn forwarding(peer: &str, client: &str, trusted: bool) -> Client {
        Client {
            peer: peer.parse().unwrap(),
            ip: client.parse().unwrap(),
            trusted_peer: trusted,
            scheme: crate::http_util::Scheme::Http,
        }
    }

    #[test]
    fn untrusted_forwarding_headers_are_replaced() {
        let fields = [
            ("host", "example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
        ];
        let h = forwarded(&fields, &forwarding("1.2.3.4", "1.2.3.4", false));
        assert_eq!(h["x-forwarded-for"], "1.2.3.4");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-real-ip"], "1.2.3.4");
    }

    #[test]
    fn the_longest_addresses_fit() {
        for ip in [
            "255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:1.2.3.4",
        ] {
            let h = forwarded(&[], &forwarding(ip, ip, false));
            assert_eq!(h["x-forwarded-for"], ip);
            assert_eq!(h["x-real-ip"], ip);
        }
    }

    #[test]
    fn trusted_forwarding_headers_are_extended() {
        let fields = [("host", "example.com"), ("x-forwarded-for", "6.6.6.6")];
        let h = forwarded(&fields, &forwarding("10.0.0.1", "6.6.6.6", true));
        assert_eq!(h["x-forwarded-for"], "6.6.6.6, 10.0.0.1");
        assert_eq!(h["x-real-ip"], "6.6.6.6");
    }

    #[test]
    fn several_forwarded_for_lines_are_forwarded_as_one() {
        let mut headers = map(&[("x-forwarded-for", "1.1.1.1")]);
        headers.append(
            &X_FORWARDED_FOR,
            HeaderValue::from_static("2.2.2.2, 3.3.3.3"),
        );
        let client = forwarding("10.0.0.1", "3.3.3.3", true);
        set_forwarding(&mut headers, &client, &HeaderName::from_static("x-real-ip"));
        let lines: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(lines, ["1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1"]);
        // From an untrusted peer, every line is replaced.
        let mut headers = map(&[("x-forwarded-for", "1.1.1.1")]);
        headers.append(&X_FORWARDED_FOR, HeaderValue::from_static("2.2.2.2"));
        let client = forwarding("10.0.0.1", "10.0.0.1", false);
        set_forwarding(&mut headers, &client, &HeaderName::from_static("x-real-ip"));
        let lines: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(lines, ["10.0.0.1"]);
    }

    #[test]
    fn every_connection_line_names_hop_by_hop_fields() {
        let mut resp = map(&[
            ("connection", "x-first"),
            ("x-first", "1"),
            ("x-second", "2"),
            ("x-kept", "3"),
        ]);
        resp.append(
            header::CONNECTION,
            HeaderValue::from_static("close, x-second"),
        );
        strip_response_hop_by_hop(&mut resp, http::StatusCode::OK);
        let names: Vec<_> = resp.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn a_switching_protocols_answer_keeps_its_upgrade() {
        let mut resp = map(&[
            ("connection", "Upgrade, X-Secret"),
            ("x-secret", "1"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        strip_response_hop_by_hop(&mut resp, http::StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.get("upgrade").unwrap(), "websocket");
        assert_eq!(resp.get("connection").unwrap(), "Upgrade");
        assert!(resp.get("keep-alive").is_none() && resp.get("x-secret").is_none());
        assert!(resp.get("sec-websocket-accept").is_some());
        // Without an origin `Connection` the client is still told.
        let mut resp = map(&[("upgrade", "websocket")]);
        strip_response_hop_by_hop(&mut resp, http::StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(resp.get("connection").unwrap(), "Upgrade");
    }

    #[test]
    fn responses_without_hop_by_hop_fields_are_untouched() {
        let mut resp = map(&[("x-a", "1"), ("content-length", "0")]);
        strip_response_hop_by_hop(&mut resp, http::StatusCode::OK);
        assert_eq!(resp.len(), 2);
        let mut resp = map(&[("trailer", "x-sum")]);
        strip_response_hop_by_hop(&mut resp, http::StatusCode::OK);
        assert_eq!(resp.len(), 0);
    }

    #[test]
    fn response_hop_by_hop_fields_are_removed() {
        let mut resp = map(&[
            ("connection", "x-secret, keep-alive"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("trailer", "x-checksum"),
            ("x-kept", "yes"),
        ]);
        strip_response_hop_by_hop(&mut resp, http::StatusCode::OK);
        let names: Vec<_> = resp.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn response_rules_are_validated_with_field_paths() {
        let config: ResponseHeadersConfig = serde_yaml::from_str(
            "{add: {Via: '1.1 parapet', 'Bad Name': x, X-Bad-Value: \"a\\nb\"}, remove: [Server, 'a b']}",
        )
        .unwrap();
        let mut errors = ConfigErrors::default();
        let rules = ResponseHeaderRules::from_config(config, &mut errors);
        let paths = errors.paths();
        assert_eq!(
            paths,
            [
                "response_headers.add.Bad Name",
                "response_headers.add.X-Bad-Value",
                "response_headers.remove[1]"
            ]
        );
        assert_eq!(rules.add.len(), 1);
        assert_eq!(rules.remove, [header::SERVER]);
    }
}
