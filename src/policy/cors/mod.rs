//! Per-route CORS answered at the edge (README "CORS").
//!
//! A route with a `cors` section owns its CORS headers: preflights are answered here
//! (204, or 403 without CORS headers) and never reach the origin; other requests are
//! forwarded whatever their `Origin` (CORS is not access control, the browser is the
//! one that blocks), and on their responses the origin's own `Access-Control-*`
//! fields are replaced by ours.
//!
//! Origins are matched as serialized origins (`scheme://host[:port]`, the default
//! port left out, as browsers send them), exactly but ASCII case-insensitively.
//! The configured list is normalized at load (scheme and host lower-cased, a lone
//! trailing `/` and a default port dropped, IPv6 hosts in their canonical form), and
//! an allowed request gets that normalized origin in `Access-Control-Allow-Origin`,
//! which is what any browser sent. `null` (sandboxed frames, `file:` pages,
//! cross-origin redirects) is an origin anyone can produce, so it never matches,
//! not even `*`, unless the list names it literally.
//!
//! Every value a response gets is built at load and shared by the responses; a
//! request without `Origin` costs one header lookup. The one allocation on the
//! request path is rewriting a response's `Vary` that does not name `Origin` yet.
//!
//! The folder: the `cors` section and its validation (`config.rs`), the request
//! side's classification (here), the fields written on answers (`headers.rs`),
//! the unit tests (`tests.rs`). The route's policy bundle (`routing::policies`)
//! calls it in both phases.

mod config;
mod headers;
#[cfg(test)]
mod tests;

pub(crate) use config::CorsConfig;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

/// A route's CORS policy, resolved at load.
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Origins,
    credentials: bool,
    /// Upper case, as `Access-Control-Request-Method` is compared (byte for byte).
    methods: Vec<Method>,
    /// Lower case; request header names are compared ASCII case-insensitively.
    headers: Vec<HeaderName>,
    expose: Option<HeaderValue>,
    /// A 204 answer's fields after `Access-Control-Allow-Origin`.
    preflight: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone)]
enum Origins {
    /// `["*"]`: every origin but `null`, answered with `*` (never with credentials).
    Any,
    /// Normalized origins, each also the `Access-Control-Allow-Origin` value it gets.
    List(Vec<HeaderValue>),
}

/// What the request side does with a request that has an `Origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Answer this preflight at the edge: 204 with `Cors::preflight_headers`, no body
    /// (and no `Content-Length`, which a 204 must not carry).
    Preflight(Preflight),
    /// Refuse this preflight with 403 and no CORS headers: a foreign origin, or a
    /// method or header that is not allowed.
    Refuse,
    /// Forward the request; on its response call `Cors::apply`, which decides
    /// whether the answer carries our CORS fields.
    Actual,
}

/// An allowed preflight, to be answered with `Cors::preflight_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Preflight {
    origin: Allowed,
}

/// Which `Access-Control-Allow-Origin` an allowed origin gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allowed {
    Any,
    Listed(usize),
}

static ALLOW_ORIGIN: HeaderName = header::ACCESS_CONTROL_ALLOW_ORIGIN;
static ANY: HeaderValue = HeaderValue::from_static("*");
static TRUE: HeaderValue = HeaderValue::from_static("true");
static ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const PREFLIGHT_VARY: &str =
    "Origin, Access-Control-Request-Method, Access-Control-Request-Headers";

impl Cors {
    /// The most fields `preflight_headers` yields: Allow-Origin, -Methods, -Headers,
    /// Max-Age, Allow-Credentials and Vary.
    pub(crate) const PREFLIGHT_FIELDS: usize = 6;

    /// What to do with a request: `None` when it has no `Origin` (CORS does not apply;
    /// forward it and still call `apply` on the response). A preflight is an `OPTIONS`
    /// with `Origin` and `Access-Control-Request-Method`; any other request with
    /// `Origin` is an actual request.
    pub(crate) fn classify(&self, req: &HeaderMap, method: &Method) -> Option<Verdict> {
        let origin = req.get(header::ORIGIN)?;
        let requested = match *method == Method::OPTIONS {
            true => req.get(header::ACCESS_CONTROL_REQUEST_METHOD),
            false => None,
        };
        let Some(requested) = requested else {
            return Some(Verdict::Actual);
        };
        let Some(origin) = self.allowed(origin) else {
            return Some(Verdict::Refuse);
        };
        let method_ok = self
            .methods
            .iter()
            .any(|m| m.as_str().as_bytes() == requested.as_bytes());
        let headers_ok = req
            .get_all(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .flat_map(|line| line.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|name| !name.is_empty())
            .all(|name| {
                self.headers
                    .iter()
                    .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
            });
        Some(match method_ok && headers_ok {
            true => Verdict::Preflight(Preflight { origin }),
            false => Verdict::Refuse,
        })
    }

    fn allowed(&self, origin: &HeaderValue) -> Option<Allowed> {
        let origin = origin.as_bytes();
        match &self.origins {
            Origins::Any => (origin != b"null").then_some(Allowed::Any),
            Origins::List(list) => list
                .iter()
                .position(|o| o.as_bytes().eq_ignore_ascii_case(origin))
                .map(Allowed::Listed),
        }
    }

    fn allow_origin(&self, allowed: Allowed) -> &HeaderValue {
        match (allowed, &self.origins) {
            (Allowed::Listed(i), Origins::List(list)) => &list[i],
            _ => &ANY,
        }
    }
}
