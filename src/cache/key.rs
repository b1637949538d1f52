//! The cache key: scheme, host without case differences, port, path and the query
//! as the route keeps it, written as one URL (`http://example.com:80/a?b=1`). A URL
//! frames its parts unambiguously (a host holds no `:` or `/` outside IPv6
//! brackets, a path no `?`), so two virtual hosts or two ports never share an
//! object. The method is not part of the key: a HEAD is answered from a stored GET.

use super::config::QueryKey;
use crate::http_util::host;
use crate::http_util::Scheme;
use pingora::http::RequestHeader;

/// The primary key of `req`, which arrived with `scheme`.
pub(crate) fn primary(req: &RequestHeader, scheme: Scheme, query: &QueryKey) -> Vec<u8> {
    let uri = &req.uri;
    primary_of(host::of(req), uri.path(), uri.query(), scheme, query)
}

/// The primary key of `path` and `query` on `authority` (a host, maybe with a port).
pub(crate) fn primary_of(
    authority: &[u8],
    path: &str,
    q: Option<&str>,
    scheme: Scheme,
    query: &QueryKey,
) -> Vec<u8> {
    let (host, port) = split_port(authority);
    let host = host.strip_suffix(b".").unwrap_or(host);
    let path = path.as_bytes();
    let mut key = Vec::with_capacity(16 + host.len() + path.len() + 32);
    key.extend_from_slice(scheme.as_str().as_bytes());
    key.extend_from_slice(b"://");
    key.extend(host.iter().map(u8::to_ascii_lowercase));
    key.push(b':');
    match port {
        Some(port) => key.extend_from_slice(port),
        None => key.extend_from_slice(match scheme {
            Scheme::Http => b"80",
            Scheme::Https => b"443",
        }),
    }
    key.extend_from_slice(path);
    if let Some(q) = q {
        push_query(&mut key, q.as_bytes(), query);
    }
    key
}

/// `?` and the query's kept parameters (none: nothing is written).
fn push_query(key: &mut Vec<u8>, q: &[u8], rule: &QueryKey) {
    match rule {
        QueryKey::None => {}
        QueryKey::All => {
            key.push(b'?');
            key.extend_from_slice(q);
        }
        QueryKey::Keep(names) => {
            let mut first = true;
            for pair in q.split(|b| *b == b'&') {
                let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
                if names.iter().any(|n| n.as_bytes() == name) {
                    key.push(if first { b'?' } else { b'&' });
                    key.extend_from_slice(pair);
                    first = false;
                }
            }
        }
    }
}

/// `host:port` into host and port; `[v6]:port` keeps its brackets.
fn split_port(authority: &[u8]) -> (&[u8], Option<&[u8]>) {
    let port_colon = match authority.first() {
        Some(b'[') => authority
            .iter()
            .position(|b| *b == b']')
            .filter(|end| authority.get(end + 1) == Some(&b':'))
            .map(|end| end + 1),
        _ => authority.iter().rposition(|b| *b == b':'),
    };
    match port_colon {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: &str, host: &str, scheme: Scheme, query: &QueryKey) -> String {
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        if !host.is_empty() {
            req.insert_header("Host", host).unwrap();
        }
        String::from_utf8(primary(&req, scheme, query)).unwrap()
    }

    #[test]
    fn hosts_differ_ports_differ_case_does_not() {
        let all = QueryKey::All;
        let http = Scheme::Http;
        assert_eq!(
            key("/a?b=1", "Example.COM", http, &all),
            "http://example.com:80/a?b=1"
        );
        assert_eq!(
            key("/a", "example.com:80", http, &all),
            "http://example.com:80/a"
        );
        assert_eq!(
            key("/a", "example.com.", http, &all),
            "http://example.com:80/a"
        );
        assert_eq!(
            key("/a", "example.com:8080", http, &all),
            "http://example.com:8080/a"
        );
        assert_eq!(key("/a", "other.com", http, &all), "http://other.com:80/a");
        assert_eq!(key("/a", "[::1]:81", http, &all), "http://[::1]:81/a");
        assert_eq!(key("/a", "[::1]", http, &all), "http://[::1]:80/a");
        assert_eq!(key("/A", "h", Scheme::Https, &all), "https://h:443/A");
    }

    #[test]
    fn the_route_decides_what_of_the_query_counts() {
        let http = Scheme::Http;
        assert_eq!(
            key("/a?x=1&y=2", "h", http, &QueryKey::None),
            "http://h:80/a"
        );
        let keep = QueryKey::Keep(vec!["y".into(), "z".into()]);
        assert_eq!(
            key("/a?x=1&y=2&z&zz=3", "h", http, &keep),
            "http://h:80/a?y=2&z"
        );
        assert_eq!(key("/a?x=1", "h", http, &keep), "http://h:80/a");
    }
}
