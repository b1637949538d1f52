//! `CDN-Loop` (RFC 8586): every instance adds its own name to the requests it
//! forwards and refuses (508 Loop Detected, RFC 5842 §7.2) one that already
//! carries it. The field is never removed. A client can forge it, which costs it
//! nothing but its own request.

use crate::http_util::tokens;
use http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) static CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");

/// Whether `name` is one of the `cdn-id`s in the request's `CDN-Loop` lines.
pub(crate) fn is_loop(headers: &HeaderMap, name: &HeaderValue) -> bool {
    headers.get_all(&CDN_LOOP).iter().any(|line| {
        tokens(line.as_bytes()).any(|member| {
            let id = member.split(|b| *b == b';').next().unwrap_or_default();
            id.trim_ascii().eq_ignore_ascii_case(name.as_bytes())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_with_our_name_is_a_loop() {
        let name = HeaderValue::from_static("edge-1");
        let mut h = HeaderMap::new();
        assert!(!is_loop(&h, &name));
        h.append(&CDN_LOOP, HeaderValue::from_static("cloudflare, edge-10"));
        assert!(!is_loop(&h, &name));
        h.append(
            &CDN_LOOP,
            HeaderValue::from_static("shield-2; tier=shield, Edge-1 ; x=1"),
        );
        assert!(is_loop(&h, &name));
    }
}
