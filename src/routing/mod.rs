//! Host and path prefix to route, first match wins (README "Configuration
//! walk-through", `routes`). Built once at load; matching allocates nothing. A route
//! carries the policies that apply to its requests, so a hook asks the matched route
//! rather than a global table.

pub(crate) mod config;
mod policies;

pub(crate) use policies::Admission;
pub(crate) use policies::{PolicyState, RoutePolicies};

use crate::http_util::host;
use pingora::http::RequestHeader;

/// One route: where its requests go and what applies to them on the way.
#[derive(Debug)]
pub(crate) struct Route {
    /// The route's label in metrics: its host pattern and path prefix.
    pub(crate) label: String,
    pub(crate) host: HostMatch,
    pub(crate) path_prefix: String,
    /// Index of the upstream in the runtime's list.
    pub(crate) upstream: usize,
    pub(crate) policies: RoutePolicies,
}

/// How a route matches the request's host (port ignored, ASCII case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostMatch {
    /// `*`: every host.
    Any,
    /// `app.example.com`.
    Exact(String),
    /// `*.example.com`: any subdomain of example.com, not example.com itself.
    Suffix(String),
}

impl HostMatch {
    pub(crate) fn parse(text: &str) -> Result<HostMatch, String> {
        let text = text.trim().to_ascii_lowercase();
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        if text == "*" {
            Ok(HostMatch::Any)
        } else if let Some(suffix) = text.strip_prefix("*.") {
            match valid(suffix) {
                true => Ok(HostMatch::Suffix(format!(".{suffix}"))),
                false => Err(format!(
                    "'{text}' is not a host pattern like '*.example.com'"
                )),
            }
        } else if valid(&text) {
            Ok(HostMatch::Exact(text))
        } else {
            Err(format!(
                "'{text}' is not a host name, '*.suffix' or '*' (ports are not part of a route)"
            ))
        }
    }

    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostMatch::Any => true,
            HostMatch::Exact(name) => host.eq_ignore_ascii_case(name.as_bytes()),
            HostMatch::Suffix(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// The compiled route table.
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

/// A matched route: its position in the table and the upstream it sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteMatch {
    pub(crate) route: usize,
    pub(crate) upstream: usize,
}

impl RouteTable {
    pub(crate) fn new(routes: Vec<Route>) -> Self {
        RouteTable { routes }
    }

    /// The route of a request: by HTTP/2's `:authority`, else by `Host`, and by the
    /// path; both in normal form by then (`http_util::target`, which also makes an
    /// absolute-form target's authority the `Host`).
    pub(crate) fn route_for(&self, req: &RequestHeader) -> Option<RouteMatch> {
        self.find(host::of(req), req.uri.path().as_bytes())
    }

    /// The route at `index`, as a `RouteMatch` gave it.
    pub(crate) fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The first route whose host and path prefix match. `host` may carry a port.
    pub(crate) fn find(&self, host: &[u8], path: &[u8]) -> Option<RouteMatch> {
        let host = host::strip_port(host);
        let host = host.strip_suffix(b".").unwrap_or(host);
        self.routes
            .iter()
            .position(|r| r.host.matches(host) && path.starts_with(r.path_prefix.as_bytes()))
            .map(|route| RouteMatch {
                route,
                upstream: self.routes[route].upstream,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(routes: &[(&str, &str, usize)]) -> RouteTable {
        RouteTable::new(
            routes
                .iter()
                .map(|(h, p, u)| Route {
                    label: format!("{h}{p}"),
                    host: HostMatch::parse(h).unwrap(),
                    path_prefix: p.to_string(),
                    upstream: *u,
                    policies: RoutePolicies::default(),
                })
                .collect(),
        )
    }

    #[test]
    fn first_match_wins() {
        let t = table(&[
            ("*.example.com", "/api/", 0),
            ("www.example.com", "/", 1),
            ("*", "/", 2),
        ]);
        let up = |h: &str, p: &str| t.find(h.as_bytes(), p.as_bytes()).map(|m| m.upstream);
        assert_eq!(up("a.example.com", "/api/x"), Some(0));
        assert_eq!(up("WWW.Example.COM:8080", "/api/x"), Some(0));
        assert_eq!(up("www.example.com", "/page"), Some(1));
        assert_eq!(up("example.com", "/api/x"), Some(2));
        assert_eq!(up("other.org", "/"), Some(2));
    }

    #[test]
    fn no_route_is_none() {
        let t = table(&[("app.example.com", "/", 0)]);
        assert_eq!(t.find(b"other.example.com", b"/"), None);
        assert_eq!(t.find(b"[::1]:80", b"/"), None);
        assert!(t.find(b"app.example.com.", b"/").is_some());
    }

    #[test]
    fn the_host_comes_from_the_target_before_the_header() {
        let t = table(&[("a.test", "/", 0), ("b.test", "/", 1)]);
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.insert_header("Host", "b.test:8080").unwrap();
        assert_eq!(t.route_for(&req).map(|m| m.upstream), Some(1));
        // An HTTP/2 request's `:authority` is in the URI (Pingora keeps only the
        // path of an HTTP/1.1 absolute-form target there; `Host` then decides).
        let mut req = RequestHeader::build("GET", b"/x", None).unwrap();
        req.set_uri(http::Uri::from_static("http://a.test/x"));
        req.insert_header("Host", "b.test").unwrap();
        assert_eq!(host::of(&req), b"a.test");
        assert_eq!(t.route_for(&req).map(|m| m.upstream), Some(0));
        let req = RequestHeader::build("GET", b"/x", None).unwrap();
        assert_eq!(t.route_for(&req), None);
    }

    #[test]
    fn patterns_are_validated() {
        assert!(HostMatch::parse("*.").is_err());
        assert!(HostMatch::parse("exa mple.com").is_err());
        assert!(HostMatch::parse("example.com:80").is_err());
        assert_eq!(HostMatch::parse("*").unwrap(), HostMatch::Any);
    }
}
