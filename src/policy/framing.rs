//! Requests whose framing is ambiguous never reach an origin (SPEC §4: 400).
//!
//! Pingora already rejects invalid header bytes, bad Content-Length values and a
//! non-chunked final Transfer-Encoding. A request with both Content-Length and
//! Transfer-Encoding it accepts per RFC 9112 §6.3 by dropping Content-Length; as an
//! edge proxy we refuse it instead, because such requests are the raw material of
//! request smuggling against origins that disagree on which header wins.

use http::header::TRANSFER_ENCODING;
use pingora::proxy::Session;

/// `true` when the request carried both Content-Length and Transfer-Encoding.
pub fn has_conflicting_length(session: &Session) -> bool {
    if !session.req_header().headers.contains_key(TRANSFER_ENCODING) {
        return false;
    }
    // Pingora removed Content-Length from the parsed header; the raw bytes still show it.
    session
        .as_downstream()
        .as_http1()
        .is_some_and(|h1| raw_has_content_length(&h1.get_headers_raw_bytes()))
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
}
