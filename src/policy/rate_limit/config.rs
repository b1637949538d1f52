//! A route's `rate_limit` section: the serde struct, and its validation into the
//! limiter, each problem under its field's path.

use super::{RateLimit, Scope, DEFAULT_MAX_KEYS};
use crate::config::{field, header_name, ConfigErrors};
use http::HeaderName;
use serde::Deserialize;

/// A route's `rate_limit` as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    /// The sustained rate; may be fractional (0.5 is one request every 2 s).
    requests_per_second: f64,
    /// Requests allowed at once; default `max(1, ceil(requests_per_second))`.
    burst: Option<u32>,
    /// `client_ip` (default), `route` or `header:NAME`.
    key: Option<String>,
    /// `local` (default): this instance's budget; `global`: the fleet's, in Redis.
    scope: Option<String>,
}

/// What requests share a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RateLimitKey {
    ClientIp,
    Route,
    /// The header's value; the client IP when the request has no such header.
    Header(HeaderName),
}

impl RateLimitKey {
    fn parse(text: &str, path: &str, errors: &mut ConfigErrors) -> Option<RateLimitKey> {
        match text {
            "client_ip" => Some(RateLimitKey::ClientIp),
            "route" => Some(RateLimitKey::Route),
            _ => match text.strip_prefix("header:") {
                Some(name) => header_name(name, path, errors).map(RateLimitKey::Header),
                None => {
                    let msg = format!("'{text}' is not client_ip, route or header:NAME");
                    errors.push(path, msg);
                    None
                }
            },
        }
    }
}

impl RateLimit {
    /// The `rate_limit` of the route at `path` (`routes[i]`): problems are reported
    /// under `routes[i].rate_limit.<field>`, and then there is no limiter.
    pub(crate) fn from_config(
        config: RateLimitConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<RateLimit> {
        let path = field(path, "rate_limit");
        let before = errors.errors.len();
        let rate = config.requests_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            errors.push(
                field(&path, "requests_per_second"),
                "must be a number greater than 0 (0.5 is one request every 2s)",
            );
        }
        if config.burst == Some(0) {
            errors.push(field(&path, "burst"), "must be at least 1");
        }
        let key = match config.key.as_deref() {
            None => Some(RateLimitKey::ClientIp),
            Some(text) => RateLimitKey::parse(text, &field(&path, "key"), errors),
        };
        let scope = match config.scope.as_deref() {
            None | Some("local") => Scope::Local,
            Some("global") => Scope::Global,
            Some(other) => {
                let msg = format!("'{other}' is not local or global");
                errors.push(field(&path, "scope"), msg);
                Scope::Local
            }
        };
        if errors.errors.len() > before {
            return None;
        }
        let burst = config.burst.unwrap_or_else(|| default_burst(rate));
        Some(RateLimit::new(rate, burst, key?, DEFAULT_MAX_KEYS, scope))
    }
}

pub(super) fn default_burst(rate: f64) -> u32 {
    rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}
