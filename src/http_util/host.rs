//! The host of a request (`Host`, or the authority of its target): what a valid one
//! looks like (RFC 9112 §3.2, RFC 3986 §3.2.2), and its one spelling, so that
//! routing, the cache key and the origin see the same name.

use pingora::http::RequestHeader;

/// `uri-host [":" port]`: a reg-name or IPv4 address, or an IPv6 literal in brackets.
pub(crate) fn is_valid(value: &[u8]) -> bool {
    let (host, port) = value.split_at(name_end(value));
    if host.first() == Some(&b'[') && host.last() != Some(&b']') {
        return false;
    }
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.len() <= 5 && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    let host_ok = match host.first() {
        Some(b'[') => std::str::from_utf8(&host[1..host.len() - 1])
            .is_ok_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok()),
        // reg-name: unreserved, pct-encoded and sub-delims.
        _ => host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(b)),
    };
    port_ok && host_ok
}

/// `value` (a host, maybe with a port) lowercased (host names are case-insensitive,
/// RFC 3986 §3.2.2) and without the trailing dot of a fully qualified name (the
/// same name in DNS), its port kept; `None` when it is spelled so already.
pub(crate) fn normalized(value: &[u8]) -> Option<Vec<u8>> {
    let (name, port) = value.split_at(name_end(value));
    let dot = name.len() > 1 && name.ends_with(b".");
    if !dot && !value.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    let name = &name[..name.len() - usize::from(dot)];
    let mut out = Vec::with_capacity(value.len());
    out.extend(name.iter().map(u8::to_ascii_lowercase));
    out.extend_from_slice(port);
    Some(out)
}

/// The host a request is for (possibly with a port). Before `http_util::target`
/// ran (and for purges), as the client sent it: so `find` and the cache key still
/// fold case and a trailing dot themselves.
pub(crate) fn of(req: &RequestHeader) -> &[u8] {
    req.uri
        .authority()
        .map(|a| a.as_str().as_bytes())
        .or_else(|| req.headers.get(http::header::HOST).map(|h| h.as_bytes()))
        .unwrap_or_default()
}

/// `host` without its port (an IPv6 literal keeps its brackets).
pub(crate) fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        // [v6]:port
        return match host.iter().position(|b| *b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|b| *b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

/// Where the name ends and `:port` (if any) begins: after an IPv6 literal's `]`.
fn name_end(value: &[u8]) -> usize {
    let from = match value.first() {
        Some(b'[') => value
            .iter()
            .position(|b| *b == b']')
            .map_or(value.len(), |end| end + 1),
        _ => 0,
    };
    value[from..]
        .iter()
        .position(|b| *b == b':')
        .map_or(value.len(), |colon| from + colon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_host() {
        let normal = |v: &str| normalized(v.as_bytes()).map(|n| String::from_utf8(n).unwrap());
        assert_eq!(normal("WWW.Example.COM."), Some("www.example.com".into()));
        assert_eq!(normal("www.example.com."), Some("www.example.com".into()));
        assert_eq!(normal("Example.ORG.:8080"), Some("example.org:8080".into()));
        assert_eq!(normal("[::FFFF:1]:80"), Some("[::ffff:1]:80".into()));
        for already in [
            "www.example.com",
            "a.test:8080",
            "[::1]:80",
            "10.0.0.1",
            "",
            ".",
        ] {
            assert_eq!(normal(already), None, "{already}");
        }
    }

    #[test]
    fn validity() {
        for good in [
            "example.com",
            "example.com:8080",
            "[::1]:80",
            "[::1]",
            "",
            "a_b.test",
        ] {
            assert!(is_valid(good.as_bytes()), "{good}");
        }
        for bad in [
            "exa mple.com",
            "example.com:80x",
            "[::1",
            "[nope]",
            "a/b",
            "a@b",
            "[::1]x",
        ] {
            assert!(!is_valid(bad.as_bytes()), "{bad}");
        }
    }
}
