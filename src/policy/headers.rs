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
use crate::policy::client_ip::Client;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// How many fields Parapet adds to an upstream request at most: X-Forwarded-For,
/// -Proto and -Host, the client-IP header, the request ID and traceparent.
pub(crate) const UPSTREAM_ADDED: usize = 6;

/// Set X-Forwarded-For/-Proto/-Host and the client-IP header on an upstream request.
pub(crate) fn set_forwarding(
    headers: &mut HeaderMap,
    client: &Client,
    client_ip_header: &HeaderName,
) {
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

/// The `response_headers` section as the operator wrote it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct ResponseHeadersConfig {
    pub(crate) add: BTreeMap<String, String>,
    pub(crate) remove: Vec<String>,
}

/// The operator's `response_headers` rules, resolved at load.
#[derive(Debug, Default, Clone)]
pub(crate) struct ResponseHeaderRules {
    pub(crate) add: Vec<(HeaderName, HeaderValue)>,
    pub(crate) remove: Vec<HeaderName>,
}

impl ResponseHeaderRules {
    pub(crate) fn from_config(config: ResponseHeadersConfig, errors: &mut ConfigErrors) -> Self {
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

    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
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
