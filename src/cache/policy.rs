//! What a shared cache may store, and for how long (RFC 9111 §3 and §4.2), decided
//! once per origin response. pingora-cache's own `resp_cacheable` is not used: it
//! takes `Expires` as an absolute local time instead of `Expires - Date`, ignores
//! the origin's `Age`, turns an invalid `max-age` into the defaults' TTL, stores
//! any status, `Vary: *` and `Set-Cookie`, and keeps hop-by-hop fields. Here:
//!
//! - directives come from `Parapet-CDN-Cache-Control`, else `CDN-Cache-Control`
//!   (RFC 9213), else `Cache-Control`; a targeted field that is not a valid
//!   Structured Field Dictionary is ignored as a whole;
//! - `no-store`, bare `private`, `Vary: *`, a 206, and a request with
//!   `Authorization` (unless `public`, `s-maxage` or `must-revalidate`) are not
//!   stored; nor, by default, a response that sets a cookie (the route may store it
//!   without the cookie instead), unless `no-cache="Set-Cookie"` or
//!   `private="Set-Cookie"` already keeps the field out of the store;
//! - fields named by `no-cache="..."` / `private="..."` (RFC 9111 §5.2.2.4,
//!   §5.2.2.7) are not stored; the response that carried them still has them;
//! - lifetime: `no-cache` 0 (stored, revalidated every time), else `s-maxage`, else
//!   `max-age`, else `Expires - Date` (an invalid `Expires` is already stale), else
//!   for heuristically cacheable statuses the configured `heuristic` share of the
//!   time since `Last-Modified` or the configured `default_ttl`, else not
//!   stored; an invalid `max-age`/`s-maxage` value (negative, a fraction, a word)
//!   is a lifetime of 0;
//! - the age at receipt is the larger of the origin's `Age` (a non-negative integer,
//!   else ignored) and `now - Date`; it shortens the lifetime and counts in the `Age`
//!   of every hit;
//! - stale content only with permission: the response's `stale-while-revalidate` /
//!   `stale-if-error`, else the configured defaults; never with `must-revalidate`,
//!   `proxy-revalidate`, `s-maxage` or `no-cache`.

use super::config::{CacheSettings, SetCookie};
use crate::http_util::strip_response_hop_by_hop;
use crate::http_util::tokens;
use http::header::{self, HeaderMap, HeaderName};
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};
use pingora::cache::{CacheMeta, NoCacheReason, RespCacheable};
use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

pub(crate) static CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
pub(crate) static PARAPET_CDN_CACHE_CONTROL: HeaderName =
    HeaderName::from_static("parapet-cdn-cache-control");

/// Why a response to a request with `Authorization` is not stored.
pub(crate) const AUTHORIZATION: &str = "authorization";

/// Why a response that sets a cookie is not stored. A `Custom` reason, so the
/// predictor marks the key hit-for-miss like any other uncacheable answer.
pub(crate) const SET_COOKIE: &str = "set-cookie";

/// RFC 9111 §1.2.2's cap on delta-seconds (2^31).
const MAX_DELTA: u64 = 1 << 31;

/// Statuses a cache may store without explicit freshness (RFC 9110 §15.1).
fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// The directives that apply to Parapet: the most specific valid field present.
pub(crate) fn directives(headers: &HeaderMap) -> Option<CacheControl> {
    for name in [&PARAPET_CDN_CACHE_CONTROL, &CDN_CACHE_CONTROL] {
        if headers.contains_key(name) && valid_targeted(headers, name) {
            return CacheControl::from_headers_named(name.as_str(), headers);
        }
    }
    CacheControl::from_headers_named(header::CACHE_CONTROL.as_str(), headers)
}

/// The directives whose values are delta-seconds: integers in a targeted field.
const TARGETED_LIFETIMES: [&sfv::KeyRef; 4] = [
    sfv::KeyRef::constant("max-age"),
    sfv::KeyRef::constant("s-maxage"),
    sfv::KeyRef::constant("stale-while-revalidate"),
    sfv::KeyRef::constant("stale-if-error"),
];

/// A targeted cache-control field is a Structured Field Dictionary (RFC 9213 §2.1,
/// RFC 9651 §3.2); one that does not parse as one, or whose lifetimes are not
/// integers, is ignored as a whole, and the next field decides.
fn valid_targeted(headers: &HeaderMap, name: &HeaderName) -> bool {
    let mut joined = Vec::new();
    for (i, line) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(line.as_bytes());
    }
    // Directive names are case-insensitive as in Cache-Control (RFC 9111 §5.2):
    // the structure and the value types are what is checked here.
    joined.make_ascii_lowercase();
    let Ok(dictionary) = sfv::Parser::new(&joined).parse::<sfv::Dictionary>() else {
        return false;
    };
    TARGETED_LIFETIMES
        .iter()
        .all(|key| match dictionary.get(*key) {
            None => true,
            Some(sfv::ListEntry::Item(item)) => item.bare_item.as_integer().is_some(),
            Some(sfv::ListEntry::InnerList(_)) => false,
        })
}

/// Decide whether `resp` may be stored and build its cache metadata.
/// `authorization`: the request carried `Authorization`; `set_cookie`: the route's
/// choice for responses that set a cookie.
pub(crate) fn cacheable(
    resp: &ResponseHeader,
    authorization: bool,
    set_cookie: SetCookie,
    settings: &CacheSettings,
    now: SystemTime,
) -> RespCacheable {
    use RespCacheable::Uncacheable;
    let status = resp.status.as_u16();
    let headers = &resp.headers;
    if !(200..600).contains(&status) || status == 206 || status == 304 {
        return Uncacheable(NoCacheReason::Custom("status"));
    }
    let cc = directives(headers);
    let has = |f: fn(&CacheControl) -> bool| cc.as_ref().is_some_and(f);
    let s_maxage = cc.as_ref().is_some_and(|c| c.has_key("s-maxage"));
    if has(CacheControl::no_store) || has(CacheControl::private) {
        return Uncacheable(NoCacheReason::OriginNotCache);
    }
    let shared_explicitly = has(CacheControl::public) || s_maxage;
    if authorization && !(shared_explicitly || has(CacheControl::must_revalidate)) {
        return Uncacheable(NoCacheReason::Custom(AUTHORIZATION));
    }
    let sets_cookie =
        headers.contains_key(header::SET_COOKIE) && !cc.as_ref().is_some_and(names_set_cookie);
    if sets_cookie && set_cookie == SetCookie::Refuse {
        return Uncacheable(NoCacheReason::Custom(SET_COOKIE));
    }
    if vary_star(headers) {
        return Uncacheable(NoCacheReason::Custom("vary-star"));
    }
    let Some(lifetime) = lifetime(cc.as_ref(), headers, status, settings, now) else {
        return Uncacheable(NoCacheReason::OriginNotCache);
    };
    let age = age_at_receipt(headers, now);
    let fresh_until = match lifetime.checked_sub(age) {
        Some(left) if !left.is_zero() => now + left,
        // Stored already stale: the next request revalidates.
        _ => now - Duration::from_secs(1),
    };
    let (swr, sie) = stale_windows(cc.as_ref(), settings);
    let mut stored = resp.clone();
    prepare_for_storage(&mut stored, cc.as_ref());
    if sets_cookie {
        stored.remove_header(&header::SET_COOKIE);
    }
    let mut meta = CacheMeta::new(fresh_until, now, swr, sie, stored);
    if !age.is_zero() {
        meta.set_epoch_override(now - age);
    }
    if has(CacheControl::no_cache) {
        meta.disable_serve_stale();
    }
    RespCacheable::Cacheable(meta)
}

/// The freshness lifetime; `None` when the response gives none and no heuristic
/// applies.
fn lifetime(
    cc: Option<&CacheControl>,
    headers: &HeaderMap,
    status: u16,
    settings: &CacheSettings,
    now: SystemTime,
) -> Option<Duration> {
    if let Some(cc) = cc {
        if cc.no_cache() {
            return Some(Duration::ZERO);
        }
        // An invalid value (negative, quoted, a fraction) makes the response stale.
        for name in ["s-maxage", "max-age"] {
            if cc.has_key(name) {
                let secs = match name {
                    "s-maxage" => cc.s_maxage(),
                    _ => cc.max_age(),
                };
                let secs = secs
                    .ok()
                    .flatten()
                    .map_or(0, |s| u64::from(s).min(MAX_DELTA));
                return Some(Duration::from_secs(secs));
            }
        }
    }
    let mut expires = headers.get_all(header::EXPIRES).iter();
    if let Some(first) = expires.next() {
        let (Some(expires), None) = (http_date(Some(first)), expires.next()) else {
            return Some(Duration::ZERO);
        };
        let date = http_date(headers.get(header::DATE)).unwrap_or(now);
        return Some(expires.duration_since(date).unwrap_or(Duration::ZERO));
    }
    let public = cc.is_some_and(|c| c.public());
    if !(heuristically_cacheable(status) || public) {
        return None;
    }
    heuristic(headers, settings, now).or(settings.default_ttl)
}

/// Heuristic freshness (RFC 9111 §4.2.2): a share of the time between
/// `Last-Modified` and `Date` (or now), capped, as Traffic Server and Varnish
/// offer it. `None` when off, or without a usable `Last-Modified`.
fn heuristic(headers: &HeaderMap, settings: &CacheSettings, now: SystemTime) -> Option<Duration> {
    let (share, cap) = settings.heuristic?;
    let modified = http_date(headers.get(header::LAST_MODIFIED))?;
    let date = http_date(headers.get(header::DATE)).unwrap_or(now);
    let since = date.duration_since(modified).ok()?;
    Some(since.mul_f64(share).min(cap)).filter(|d| !d.is_zero())
}

/// How old the response already was when it arrived (RFC 9111 §4.2.3).
fn age_at_receipt(headers: &HeaderMap, now: SystemTime) -> Duration {
    // Of a list (`Age: 7200, 0`, or two lines) the first member counts, and of a
    // member with parameters its value, as other caches read it; anything but
    // digits (a sign, a fraction, a word) is ignored.
    let age_value = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split([',', ';']).next())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map(|v| v.parse::<u64>().unwrap_or(MAX_DELTA).min(MAX_DELTA))
        .unwrap_or(0);
    let apparent = http_date(headers.get(header::DATE))
        .and_then(|date| now.duration_since(date).ok())
        .unwrap_or(Duration::ZERO);
    apparent.max(Duration::from_secs(age_value))
}

fn stale_windows(cc: Option<&CacheControl>, settings: &CacheSettings) -> (u32, u32) {
    let forbidden = cc.is_some_and(|c| {
        c.must_revalidate() || c.proxy_revalidate() || c.has_key("s-maxage") || c.no_cache()
    });
    if forbidden {
        return (0, 0);
    }
    let secs = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
    let swr = cc
        .and_then(|c| c.stale_while_revalidate().ok().flatten())
        .unwrap_or_else(|| secs(settings.stale_while_revalidate));
    let sie = cc
        .and_then(|c| c.stale_if_error().ok().flatten())
        .unwrap_or_else(|| secs(settings.stale_if_error));
    (swr, sie)
}

/// What is never stored: hop-by-hop fields and those `Connection` names, fields
/// `private="..."`/`no-cache="..."` name, the origin's `Age` (hits get their own).
fn prepare_for_storage(stored: &mut ResponseHeader, cc: Option<&CacheControl>) {
    let status = stored.status;
    crate::pingora_compat::head_edit::edit_response(stored, |h| {
        strip_response_hop_by_hop(h, status);
        h.remove(header::AGE);
    });
    if let Some(cc) = cc {
        cc.strip_private_headers(stored);
    }
}

/// The fields of `resp` kept out of its stored copy `stored` on purpose
/// (`Set-Cookie`, and the fields a qualified `no-cache` or `private` names), for
/// the client whose request fetched it: it is served from the store as the body
/// arrives, yet the response is its own. `None` when there are none.
pub(crate) fn withheld(resp: &ResponseHeader, stored: &HeaderMap) -> Option<HeaderMap> {
    let cc = directives(&resp.headers);
    let named = cc.iter().flat_map(|cc| {
        let no_cache = cc.no_cache_field_names().into_iter().flatten();
        no_cache.chain(cc.private_field_names().into_iter().flatten())
    });
    let mut out: Option<HeaderMap> = None;
    let mut keep = |name: HeaderName| {
        let kept = out.as_ref().is_some_and(|o| o.contains_key(&name));
        if kept || stored.contains_key(&name) {
            return;
        }
        for value in resp.headers.get_all(&name) {
            out.get_or_insert_default()
                .append(name.clone(), value.clone());
        }
    };
    keep(header::SET_COOKIE);
    for name in named.filter_map(|n| HeaderName::from_bytes(n).ok()) {
        keep(name);
    }
    out
}

/// Whether a qualified `no-cache="..."` or `private="..."` names `Set-Cookie`
/// (the stored copy then goes without it, whatever the route says).
fn names_set_cookie(cc: &CacheControl) -> bool {
    let named = |names: Option<pingora::cache::cache_control::ListValueIter<'_>>| {
        names.is_some_and(|mut names| names.any(|n| n.eq_ignore_ascii_case(b"set-cookie")))
    };
    named(cc.no_cache_field_names()) || named(cc.private_field_names())
}

fn vary_star(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::VARY)
        .iter()
        .any(|v| tokens(v.as_bytes()).any(|name| name == b"*"))
}

fn http_date(value: Option<&http::HeaderValue>) -> Option<SystemTime> {
    let text = value?.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok()
}

#[cfg(test)]
mod tests;
