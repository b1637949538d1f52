//! Per-route CORS answered at the edge (SPEC §2 route `cors`).
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

use crate::config::units::Span;
use crate::config::{field, header_name, ConfigErrors};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;
use serde::Deserialize;
use std::net::Ipv6Addr;
use std::time::Duration;

/// A route's `cors` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Serialized origins (`https://app.example.com`), `null`, or `["*"]` alone.
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for. Default GET, HEAD, POST: the CORS-safelisted
    /// methods, which browsers send without asking, so the default allows no more than
    /// a browser would do anyway.
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (default none).
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read beyond the safelisted ones (default none).
    pub expose_headers: Vec<String>,
    /// Let scripts send cookies and read the answer (`credentials: "include"`).
    pub allow_credentials: bool,
    /// How long browsers may reuse a preflight's answer; sent in whole seconds.
    pub max_age: Span,
}

/// The default `max_age`. Without the header browsers reuse an answer for 5 seconds,
/// which costs one preflight round trip before nearly every non-simple request; 5
/// minutes saves almost all of them while a tightened policy still reaches every
/// browser within minutes. (Browsers cap it anyway: Chromium at 2h, Firefox at 24h.)
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allow_origins: Vec::new(),
            allow_methods: vec!["GET".into(), "HEAD".into(), "POST".into()],
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            allow_credentials: false,
            max_age: Span(DEFAULT_MAX_AGE),
        }
    }
}

/// A route's CORS policy, resolved at load.
#[derive(Debug, Clone)]
pub struct Cors {
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
pub enum Verdict {
    /// Answer this preflight at the edge: 204 with `Cors::preflight_headers`, no body
    /// (and no `Content-Length`, which a 204 must not carry).
    Preflight(Preflight),
    /// Refuse this preflight with 403 and no CORS headers: a foreign origin, or a
    /// method or header that is not allowed.
    Refuse,
    /// Forward the request; on its response call `Cors::apply`. `allowed` says whether
    /// the response will carry our CORS headers (for logs; `apply` decides again).
    Actual { allowed: bool },
}

/// An allowed preflight, to be answered with `Cors::preflight_headers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preflight {
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
    pub const PREFLIGHT_FIELDS: usize = 6;

    /// A route's `cors` section; `path` is the route's (`routes[i]`), problems are
    /// reported under `routes[i].cors.…`. `None` when the section has problems.
    pub fn from_config(config: CorsConfig, path: &str, errors: &mut ConfigErrors) -> Option<Cors> {
        let path = field(path, "cors");
        let at = |name: &str| field(&path, name);
        let before = errors.errors.len();

        let origins = origins(&config.allow_origins, &at("allow_origins"), errors);
        if config.allow_credentials && matches!(origins, Some(Origins::Any)) {
            errors.push(
                at("allow_credentials"),
                "cannot be true with allow_origins: [\"*\"] (browsers refuse `*` with credentials): list the origins",
            );
        }

        let mut methods: Vec<Method> = Vec::new();
        let mut method_text = String::new();
        if config.allow_methods.is_empty() {
            errors.push(
                at("allow_methods"),
                "must list at least one method (leave it out for GET, HEAD, POST)",
            );
        }
        for (i, text) in config.allow_methods.iter().enumerate() {
            let here = format!("{}[{i}]", at("allow_methods"));
            let Some(method) = method(text, &here, errors) else {
                continue;
            };
            if !methods.contains(&method) {
                if !method_text.is_empty() {
                    method_text.push_str(", ");
                }
                method_text.push_str(method.as_str());
                methods.push(method);
            }
        }

        let (headers, allow_text) = names(&config.allow_headers, &at("allow_headers"), errors);
        let (_, expose_text) = names(&config.expose_headers, &at("expose_headers"), errors);

        if errors.errors.len() > before {
            return None;
        }
        // Built from tokens and header names joined by ", ": always valid values.
        let value = |text: &str| HeaderValue::from_str(text).ok();
        let mut preflight = vec![(header::ACCESS_CONTROL_ALLOW_METHODS, value(&method_text)?)];
        if !allow_text.is_empty() {
            preflight.push((header::ACCESS_CONTROL_ALLOW_HEADERS, value(&allow_text)?));
        }
        let max_age = HeaderValue::from(config.max_age.0.as_secs());
        preflight.push((header::ACCESS_CONTROL_MAX_AGE, max_age));
        if config.allow_credentials {
            preflight.push((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone()));
        }
        preflight.push((header::VARY, HeaderValue::from_static(PREFLIGHT_VARY)));
        Some(Cors {
            origins: origins?,
            credentials: config.allow_credentials,
            methods,
            headers,
            expose: (!expose_text.is_empty())
                .then(|| value(&expose_text))
                .flatten(),
            preflight,
        })
    }

    /// What to do with a request: `None` when it has no `Origin` (CORS does not apply;
    /// forward it and still call `apply` on the response). A preflight is an `OPTIONS`
    /// with `Origin` and `Access-Control-Request-Method`; any other request with
    /// `Origin` is an actual request.
    pub fn classify(&self, req: &HeaderMap, method: &Method) -> Option<Verdict> {
        let origin = req.get(header::ORIGIN)?;
        let allowed = self.allowed(origin);
        let requested = match *method == Method::OPTIONS {
            true => req.get(header::ACCESS_CONTROL_REQUEST_METHOD),
            false => None,
        };
        let Some(requested) = requested else {
            return Some(Verdict::Actual {
                allowed: allowed.is_some(),
            });
        };
        let Some(origin) = allowed else {
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

    /// The fields of the 204 answer to an allowed preflight, in order (at most
    /// `PREFLIGHT_FIELDS`).
    pub fn preflight_headers(
        &self,
        preflight: Preflight,
    ) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let origin = (&ALLOW_ORIGIN, self.allow_origin(preflight.origin));
        std::iter::once(origin).chain(self.preflight.iter().map(|(n, v)| (n, v)))
    }

    /// The response side, for every forwarded request of this route (call it where
    /// cache hits pass too, so the answer follows each request's `Origin`): the
    /// origin's `Access-Control-*` fields are removed, `Vary` gets `Origin`, and when
    /// `request_origin` (the request's `Origin`) is allowed, our fields are added.
    pub fn apply(&self, request_origin: Option<&HeaderValue>, resp: &mut HeaderMap) {
        strip_access_control(resp);
        vary_on_origin(resp);
        let Some(origin) = request_origin.and_then(|o| self.allowed(o)) else {
            return;
        };
        resp.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin).clone(),
        );
        if self.credentials {
            resp.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
        }
        if let Some(expose) = &self.expose {
            resp.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
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

fn origins(texts: &[String], path: &str, errors: &mut ConfigErrors) -> Option<Origins> {
    if texts.is_empty() {
        errors.push(path, "must list at least one origin, or be [\"*\"]");
        return None;
    }
    if texts.len() == 1 && texts[0] == "*" {
        return Some(Origins::Any);
    }
    let mut list = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if text == "*" {
            errors.push(here, "'*' must be the only origin listed");
            continue;
        }
        let parsed = normalize_origin(text).and_then(|o| {
            HeaderValue::from_str(&o).map_err(|_| format!("'{text}' is not a valid origin"))
        });
        match parsed {
            Ok(origin) if !list.contains(&origin) => list.push(origin),
            Ok(_) => {}
            Err(message) => errors.push(here, message),
        }
    }
    Some(Origins::List(list))
}

/// A configured origin in the form browsers serialize it: `scheme://host[:port]`,
/// scheme and host in lower case, without a default port or a trailing `/`.
fn normalize_origin(text: &str) -> Result<String, String> {
    let bad = |why: &str| format!("'{text}' is not an origin like https://app.example.com: {why}");
    if text.eq_ignore_ascii_case("null") {
        return Ok("null".into());
    }
    let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(bad("bad scheme"));
    }
    let scheme = scheme.to_ascii_lowercase();
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(bad("an origin has no path, query or fragment"));
    }
    if rest.contains('@') {
        return Err(bad("an origin has no user name or password"));
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
        let addr: Ipv6Addr = addr.parse().map_err(|_| bad("bad IPv6 address"))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| bad("bad port"))?),
        };
        (format!("[{addr}]"), port)
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        };
        if !host.is_ascii() {
            return Err(bad("write an international name in its xn-- form"));
        }
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !host_ok {
            return Err(bad("bad host"));
        }
        (host.to_ascii_lowercase(), port)
    };
    let port = match port {
        None => None,
        // `u16::from_str` takes a leading '+': only digits are a port.
        Some(p) => Some(
            Some(p)
                .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        ),
    };
    let default = match scheme.as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    };
    Ok(match port.filter(|p| Some(*p) != default) {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// A configured method, upper-cased (`get` means GET: browsers send methods in upper
/// case and compare the answer byte for byte).
fn method(text: &str, path: &str, errors: &mut ConfigErrors) -> Option<Method> {
    let upper = text.to_ascii_uppercase();
    let method = match upper.as_str() {
        "*" => None,
        _ => Method::from_bytes(upper.as_bytes()).ok(),
    };
    if method.is_none() {
        errors.push(path, format!("'{text}' is not a method name"));
    }
    method
}

/// Configured header names (`path` is the list's) and the list as a field value, in
/// the spelling written.
fn names(texts: &[String], path: &str, errors: &mut ConfigErrors) -> (Vec<HeaderName>, String) {
    let mut names = Vec::new();
    let mut text = String::new();
    for (i, written) in texts.iter().enumerate() {
        let here = format!("{path}[{i}]");
        if written == "*" {
            errors.push(here, "wildcards are not supported: list the header names");
            continue;
        }
        let Some(name) = header_name(written, &here, errors) else {
            continue;
        };
        if !names.contains(&name) {
            if !text.is_empty() {
                text.push_str(", ");
            }
            text.push_str(written);
            names.push(name);
        }
    }
    (names, text)
}

/// Remove every `Access-Control-*` field (the origin's, on a route where we own them).
fn strip_access_control(resp: &mut HeaderMap) {
    const PREFIX: &str = "access-control-";
    // Usually there are none: one pass over the names finds that.
    while let Some(name) = resp
        .keys()
        .find(|n| n.as_str().starts_with(PREFIX))
        .cloned()
    {
        resp.remove(&name);
    }
}

/// Make `Vary` include `Origin`: the answer depends on it. Kept as it is when it
/// already names `Origin` or is `*`; otherwise `Origin` is appended to its list, in
/// one field line.
fn vary_on_origin(resp: &mut HeaderMap) {
    let mut lines = resp.get_all(header::VARY).iter().peekable();
    if lines.peek().is_none() {
        resp.insert(header::VARY, ORIGIN.clone());
        return;
    }
    let mut joined = Vec::new();
    for line in lines {
        for token in line.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token == b"*" || token.eq_ignore_ascii_case(b"origin") {
                return;
            }
            if !token.is_empty() {
                joined.extend_from_slice(token);
                joined.extend_from_slice(b", ");
            }
        }
    }
    joined.extend_from_slice(b"Origin");
    // Parts of valid values joined by ", ": a valid value.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        resp.insert(header::VARY, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> (Option<Cors>, Vec<String>) {
        let config: CorsConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let cors = Cors::from_config(config, "routes[0]", &mut errors);
        (cors, errors.paths())
    }

    fn cors(yaml: &str) -> Cors {
        let (cors, problems) = load(yaml);
        assert!(problems.is_empty(), "{problems:?}");
        cors.unwrap()
    }

    const APP: &str = "{allow_origins: ['https://app.example.com', 'http://localhost:3000'], \
        allow_methods: [GET, POST, PUT, DELETE], allow_headers: [Content-Type, Authorization], \
        expose_headers: [X-Request-Id], allow_credentials: true, max_age: 10m}";

    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        fields
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    fn preflight(origin: &'static str, method: &'static str, headers: &'static str) -> HeaderMap {
        let mut req = map(&[
            ("origin", origin),
            ("access-control-request-method", method),
        ]);
        if !headers.is_empty() {
            req.insert(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_static(headers),
            );
        }
        req
    }

    fn fields<'a>(it: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>) -> Vec<String> {
        it.map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect()
    }

    /// The response fields of a forwarded request with `origin`, sorted.
    fn answered(cors: &Cors, origin: Option<&'static str>, resp: &mut HeaderMap) -> Vec<String> {
        let origin = origin.map(HeaderValue::from_static);
        cors.apply(origin.as_ref(), resp);
        let mut got = fields(resp.iter());
        got.sort();
        got
    }

    #[test]
    fn an_allowed_preflight_is_answered_with_exact_fields() {
        let cors = cors(APP);
        let req = preflight(
            "https://app.example.com",
            "PUT",
            "authorization,content-type",
        );
        let Some(Verdict::Preflight(p)) = cors.classify(&req, &Method::OPTIONS) else {
            panic!("not answered");
        };
        assert_eq!(
            fields(cors.preflight_headers(p)),
            [
                "access-control-allow-origin: https://app.example.com",
                "access-control-allow-methods: GET, POST, PUT, DELETE",
                "access-control-allow-headers: Content-Type, Authorization",
                "access-control-max-age: 600",
                "access-control-allow-credentials: true",
                "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ]
        );
        assert_eq!(cors.preflight_headers(p).count(), Cors::PREFLIGHT_FIELDS);

        // Without headers requested, credentials or allowed headers.
        let cors = self::cors("{allow_origins: ['*']}");
        let req = preflight("https://any.example", "POST", "");
        let Some(Verdict::Preflight(p)) = cors.classify(&req, &Method::OPTIONS) else {
            panic!("not answered");
        };
        assert_eq!(
            fields(cors.preflight_headers(p)),
            [
                "access-control-allow-origin: *",
                "access-control-allow-methods: GET, HEAD, POST",
                "access-control-max-age: 300",
                "vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
            ]
        );
    }

    #[test]
    fn preflights_from_foreign_origins_or_for_other_methods_or_headers_are_refused() {
        let cors = cors(APP);
        let refused = |req: HeaderMap| cors.classify(&req, &Method::OPTIONS);
        let refuse = Some(Verdict::Refuse);
        assert_eq!(
            refused(preflight("https://evil.example", "GET", "")),
            refuse
        );
        assert_eq!(
            refused(preflight("https://app.example.com.evil", "GET", "")),
            refuse
        );
        assert_eq!(
            refused(preflight("https://app.example.com:8443", "GET", "")),
            refuse
        );
        assert_eq!(refused(preflight("null", "GET", "")), refuse);
        assert_eq!(
            refused(preflight("https://app.example.com", "PATCH", "")),
            refuse
        );
        // Methods are compared as sent, byte for byte.
        assert_eq!(
            refused(preflight("https://app.example.com", "put", "")),
            refuse
        );
        assert_eq!(
            refused(preflight(
                "https://app.example.com",
                "PUT",
                "content-type, x-secret"
            )),
            refuse
        );
        // Each requested header must be allowed, in any case and over several lines.
        let mut req = preflight("https://app.example.com", "PUT", "CONTENT-TYPE");
        req.append(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static(" authorization ,"),
        );
        assert!(matches!(refused(req), Some(Verdict::Preflight(_))));
    }

    #[test]
    fn requests_without_origin_and_plain_options_are_not_preflights() {
        let cors = cors(APP);
        let req = map(&[("access-control-request-method", "PUT")]);
        assert_eq!(cors.classify(&req, &Method::OPTIONS), None);
        assert_eq!(cors.classify(&HeaderMap::new(), &Method::GET), None);
        let req = map(&[("origin", "https://app.example.com")]);
        let allowed = Some(Verdict::Actual { allowed: true });
        assert_eq!(cors.classify(&req, &Method::OPTIONS), allowed);
        // A GET with Access-Control-Request-Method is an actual request.
        let req = preflight("https://evil.example", "PUT", "");
        let foreign = Some(Verdict::Actual { allowed: false });
        assert_eq!(cors.classify(&req, &Method::GET), foreign);
    }

    #[test]
    fn an_allowed_actual_request_gets_our_fields_and_vary_appended() {
        let cors = cors(APP);
        let req = map(&[("origin", "https://app.example.com")]);
        let allowed = Some(Verdict::Actual { allowed: true });
        assert_eq!(cors.classify(&req, &Method::POST), allowed);
        let mut resp = map(&[
            ("vary", "Accept-Encoding"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-methods", "PATCH"),
            ("content-type", "text/plain"),
        ]);
        assert_eq!(
            answered(&cors, Some("https://app.example.com"), &mut resp),
            [
                "access-control-allow-credentials: true",
                "access-control-allow-origin: https://app.example.com",
                "access-control-expose-headers: X-Request-Id",
                "content-type: text/plain",
                "vary: Accept-Encoding, Origin",
            ]
        );
        // Applied twice (or to a response already varying on Origin): no duplicate.
        cors.apply(req.get(header::ORIGIN), &mut resp);
        assert_eq!(resp.get_all(header::VARY).iter().count(), 1);
        assert_eq!(resp["vary"], "Accept-Encoding, Origin");
        let mut resp = map(&[("vary", "origin")]);
        cors.apply(None, &mut resp);
        assert_eq!(resp["vary"], "origin");
        let mut resp = map(&[("vary", "*")]);
        cors.apply(None, &mut resp);
        assert_eq!(resp["vary"], "*");
        // Vary over two lines becomes one list.
        let mut resp = map(&[("vary", "Accept-Encoding")]);
        resp.append(header::VARY, HeaderValue::from_static("Accept-Language"));
        cors.apply(None, &mut resp);
        assert_eq!(
            resp.get_all(header::VARY).iter().collect::<Vec<_>>(),
            ["Accept-Encoding, Accept-Language, Origin"]
        );
    }

    #[test]
    fn credentials_are_never_answered_with_a_star() {
        let cors = cors("{allow_origins: ['https://a.example'], allow_credentials: true}");
        let mut resp = HeaderMap::new();
        let got = answered(&cors, Some("https://a.example"), &mut resp);
        assert!(got.contains(&"access-control-allow-origin: https://a.example".into()));
        assert!(got.contains(&"access-control-allow-credentials: true".into()));
        let (cors, problems) = load("{allow_origins: ['*'], allow_credentials: true}");
        assert!(cors.is_none());
        assert_eq!(problems, ["routes[0].cors.allow_credentials"]);
    }

    #[test]
    fn a_star_without_credentials_answers_star() {
        let cors = cors("{allow_origins: ['*'], expose_headers: [X-A, x-b]}");
        let mut resp = HeaderMap::new();
        assert_eq!(
            answered(&cors, Some("https://whoever.example"), &mut resp),
            [
                "access-control-allow-origin: *",
                "access-control-expose-headers: X-A, x-b",
                "vary: Origin",
            ]
        );
        // `null` only when listed literally.
        let mut resp = HeaderMap::new();
        assert_eq!(answered(&cors, Some("null"), &mut resp), ["vary: Origin"]);
        let cors = self::cors("{allow_origins: ['null']}");
        let mut resp = HeaderMap::new();
        let got = answered(&cors, Some("null"), &mut resp);
        assert_eq!(got[0], "access-control-allow-origin: null");
    }

    #[test]
    fn foreign_or_absent_origins_get_no_cors_fields_but_the_origins_are_stripped() {
        let cors = cors(APP);
        for origin in [Some("https://evil.example"), None] {
            let mut resp = map(&[
                ("access-control-allow-origin", "https://evil.example"),
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-private-network", "true"),
                ("x-kept", "1"),
            ]);
            resp.append(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            assert_eq!(
                answered(&cors, origin, &mut resp),
                ["vary: Origin", "x-kept: 1"]
            );
        }
    }

    #[test]
    fn origins_match_case_insensitively_as_normalized() {
        let cors =
            cors("{allow_origins: ['HTTPS://App.Example.COM:443/', 'http://[0:0::1]:8080']}");
        let mut resp = HeaderMap::new();
        let got = answered(&cors, Some("https://APP.example.com"), &mut resp);
        assert_eq!(
            got[0],
            "access-control-allow-origin: https://app.example.com"
        );
        let req = preflight("http://[::1]:8080", "GET", "");
        let Some(Verdict::Preflight(p)) = cors.classify(&req, &Method::OPTIONS) else {
            panic!("not answered");
        };
        let first = cors.preflight_headers(p).next().unwrap();
        assert_eq!(first.1, "http://[::1]:8080");
    }

    #[test]
    fn origins_are_normalized_or_refused() {
        let ok = |t: &str| normalize_origin(t).unwrap();
        assert_eq!(ok("https://a.example.com"), "https://a.example.com");
        assert_eq!(ok("HTTPS://A.Example.com/"), "https://a.example.com");
        assert_eq!(ok("https://a.example.com:443"), "https://a.example.com");
        assert_eq!(ok("http://a.example.com:80"), "http://a.example.com");
        assert_eq!(ok("http://a.example.com:443"), "http://a.example.com:443");
        assert_eq!(ok("http://127.0.0.1:3000"), "http://127.0.0.1:3000");
        assert_eq!(ok("https://[2001:DB8::0:1]"), "https://[2001:db8::1]");
        assert_eq!(ok("app-scheme://local_host"), "app-scheme://local_host");
        assert_eq!(ok("null"), "null");
        for bad in [
            "https://a.example.com/x",
            "https://a.example.com?q",
            "https://u@a.example.com",
            "a.example.com",
            "https://",
            "https://:443",
            "https://a.example.com:",
            "https://a.example.com:0",
            "https://a.example.com:70000",
            "https://a.example.com:+80",
            "https://bücher.example",
            "https://a b.example",
            "https://[::1",
            "https://[nope]",
            "1https://a.example",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_problem_names_its_field() {
        let (cors, problems) = load(
            "{allow_origins: ['https://a.example.com/x', 'https://b.example', '*'], \
             allow_methods: [GET, 'BAD METHOD', '*'], allow_headers: [X-Ok, 'Bad Header', '*'], \
             expose_headers: ['x:y']}",
        );
        assert!(cors.is_none());
        assert_eq!(
            problems,
            [
                "routes[0].cors.allow_origins[0]",
                "routes[0].cors.allow_origins[2]",
                "routes[0].cors.allow_methods[1]",
                "routes[0].cors.allow_methods[2]",
                "routes[0].cors.allow_headers[1]",
                "routes[0].cors.allow_headers[2]",
                "routes[0].cors.expose_headers[0]",
            ]
        );
        assert_eq!(load("{}").1, ["routes[0].cors.allow_origins"]);
        assert_eq!(
            load("{allow_origins: []}").1,
            ["routes[0].cors.allow_origins"]
        );
        assert_eq!(
            load("{allow_origins: ['*', 'https://a.example']}").1,
            ["routes[0].cors.allow_origins[0]"]
        );
        assert_eq!(
            load("{allow_origins: ['*'], allow_methods: []}").1,
            ["routes[0].cors.allow_methods"]
        );
        assert!(serde_yaml::from_str::<CorsConfig>("{allow_origin: ['*']}").is_err());
    }

    #[test]
    fn defaults_allow_the_safelisted_methods_for_five_minutes() {
        let config = CorsConfig::default();
        assert_eq!(config.allow_methods, ["GET", "HEAD", "POST"]);
        assert!(config.allow_headers.is_empty() && config.expose_headers.is_empty());
        assert!(!config.allow_credentials);
        assert_eq!(config.max_age.0, Duration::from_secs(300));

        let cors = cors("{allow_origins: ['https://a.example'], allow_methods: [get, Put, GET]}");
        assert_eq!(cors.methods, [Method::GET, Method::PUT]);
        assert!(cors.headers.is_empty() && cors.expose.is_none() && !cors.credentials);
        let mut resp = HeaderMap::new();
        assert_eq!(
            answered(&cors, Some("https://a.example"), &mut resp),
            [
                "access-control-allow-origin: https://a.example",
                "vary: Origin"
            ]
        );
    }
}
