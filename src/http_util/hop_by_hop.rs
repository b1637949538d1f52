//! The origin's hop-by-hop response fields (RFC 9110 §7.6.1): they describe one
//! connection and are not forwarded to the client.

use super::tokens;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Strip the origin's hop-by-hop response fields. `Connection` itself is rewritten
/// by Pingora when the response is written, but the fields it names are ours to drop.
/// A 101 keeps `Upgrade` and gets `Connection: Upgrade`: the client's connection
/// switches too, and Pingora writes no `Connection` on a 1xx.
pub(crate) fn strip_response_hop_by_hop(headers: &mut HeaderMap, status: http::StatusCode) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        fields
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
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
}
