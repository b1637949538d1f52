//! Requests whose framing is ambiguous, or whose `Host` is missing, repeated or
//! invalid, never reach an origin (400, README: What Parapet answers itself; RFC 9112 §3.2).
//!
//! Pingora already rejects invalid header bytes, bad Content-Length values and a
//! non-chunked final Transfer-Encoding. A request with both Content-Length and
//! Transfer-Encoding it accepts per RFC 9112 §6.3 by dropping Content-Length; as an
//! edge proxy we refuse it instead, because such requests are the raw material of
//! request smuggling against origins that disagree on which header wins.

use crate::http_util::host;
use http::header::{HOST, TRANSFER_ENCODING};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// `true` when the request carried both Content-Length and Transfer-Encoding.
pub(crate) fn has_conflicting_length(session: &Session) -> bool {
    if !session.req_header().headers.contains_key(TRANSFER_ENCODING) {
        return false;
    }
    // Pingora removed Content-Length from the parsed header; the raw bytes still show it.
    session
        .as_downstream()
        .as_http1()
        .is_some_and(|h1| raw_has_content_length(&h1.get_headers_raw_bytes()))
}

/// `true` when an HTTP/1.1 request has no `Host`, two of them, or one that is not
/// `host[:port]` (RFC 9112 §3.2: answered 400). HTTP/1.0 may leave it out; an empty
/// `Host` is valid (a target without authority).
pub(crate) fn has_bad_host(req: &RequestHeader) -> bool {
    let mut hosts = req.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => !host::is_valid(host.as_bytes()),
        (None, _) => req.version == http::Version::HTTP_11,
        (Some(_), Some(_)) => true,
    }
}

fn raw_has_content_length(raw: &[u8]) -> bool {
    raw.split(|b| *b == b'\n')
        .skip(1)
        .any(|line| line.len() > 15 && line[..15].eq_ignore_ascii_case(b"content-length:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_content_length_in_raw_head() {
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(raw_has_content_length(raw));
        let raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(!raw_has_content_length(raw));
    }

    #[test]
    fn hosts_are_checked_as_rfc_9112_says() {
        let req = |version, hosts: &[&str]| {
            let mut r = RequestHeader::build("GET", b"/", None).unwrap();
            r.set_version(version);
            for h in hosts {
                r.append_header("Host", *h).unwrap();
            }
            has_bad_host(&r)
        };
        let v11 = http::Version::HTTP_11;
        // What a valid host is: `http_util::host`'s tests.
        assert!(!req(v11, &["example.com:8080"]));
        assert!(req(v11, &["exa mple.com"]));
        assert!(req(v11, &[]), "HTTP/1.1 needs a Host");
        assert!(!req(http::Version::HTTP_10, &[]), "HTTP/1.0 need not");
        assert!(req(v11, &["a.test", "b.test"]), "two Host lines");
    }
}
