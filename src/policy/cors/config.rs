//! A route's `cors` section: the serde struct, and its validation into `Cors`
//! (origins normalized, methods and header names checked, the preflight's fields
//! built once), each problem under its field's path.

use super::{Cors, Origins, PREFLIGHT_VARY, TRUE};
use crate::config::units::Span;
use crate::config::{field, header_name, ConfigErrors};
use http::header::{self, HeaderName, HeaderValue};
use http::Method;
use serde::Deserialize;
use std::net::Ipv6Addr;
use std::time::Duration;

/// A route's `cors` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CorsConfig {
    /// Serialized origins (`https://app.example.com`), `null`, or `["*"]` alone.
    pub(super) allow_origins: Vec<String>,
    /// Methods a preflight may ask for. Default GET, HEAD, POST: the CORS-safelisted
    /// methods, which browsers send without asking, so the default allows no more than
    /// a browser would do anyway.
    pub(super) allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (default none).
    pub(super) allow_headers: Vec<String>,
    /// Response headers scripts may read beyond the safelisted ones (default none).
    pub(super) expose_headers: Vec<String>,
    /// Let scripts send cookies and read the answer (`credentials: "include"`).
    pub(super) allow_credentials: bool,
    /// How long browsers may reuse a preflight's answer; sent in whole seconds.
    pub(super) max_age: Span,
}

/// The default `max_age`. Without the header browsers reuse an answer for 5 seconds,
/// which costs one preflight round trip before nearly every non-simple request; 5
/// minutes saves almost all of them while a tightened policy still reaches every
/// browser within minutes. (Browsers cap it anyway: Chromium at 2h, Firefox at 24h.)
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);

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
impl Cors {
    /// A route's `cors` section; `path` is the route's (`routes[i]`), problems are
    /// reported under `routes[i].cors.…`. `None` when the section has problems.
    pub(crate) fn from_config(
        config: CorsConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Cors> {
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
pub(super) fn normalize_origin(text: &str) -> Result<String, String> {
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
