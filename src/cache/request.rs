//! The client's say (RFC 9111 §5.2.1): request directives that pingora-cache reads
//! nowhere. `no-cache` (or `Pragma: no-cache` without `Cache-Control`), `max-age`
//! and `min-fresh` send a stored object back to the origin to be revalidated;
//! `max-stale` lets a stale one be served, unless the stored response forbids it;
//! `no-store` keeps the response out of the cache; `only-if-cached` gets a 504
//! rather than an origin fetch.

use super::policy;
use crate::http_util::tokens;
use pingora::cache::cache_control::{CacheControl, DirectiveKey};
use pingora::cache::CacheMeta;
use pingora::http::RequestHeader;
use std::time::{Duration, SystemTime};

/// The request directives that matter to the cache.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestDirectives {
    /// The request carries `Authorization`.
    pub(crate) authorization: bool,
    pub(crate) no_cache: bool,
    pub(crate) no_store: bool,
    pub(crate) only_if_cached: bool,
    pub(crate) max_age: Option<u64>,
    pub(crate) min_fresh: Option<u64>,
    /// `max-stale` alone allows any staleness (`u64::MAX`).
    pub(crate) max_stale: Option<u64>,
}

/// What the directives make of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// As the object's own freshness says.
    AsStored,
    /// Revalidate with the origin, even if fresh.
    Revalidate,
    /// Serve it although stale.
    ServeStale,
    /// Not for this request: fetch from the origin, leaving the object stored.
    Bypass,
}

impl RequestDirectives {
    pub(crate) fn of(req: &RequestHeader) -> RequestDirectives {
        let authorization = req.headers.contains_key(http::header::AUTHORIZATION);
        let Some(cc) = CacheControl::from_headers_named("cache-control", &req.headers) else {
            let pragma = req
                .headers
                .get_all(http::header::PRAGMA)
                .iter()
                .any(|v| tokens(v.as_bytes()).any(|d| d.eq_ignore_ascii_case(b"no-cache")));
            return RequestDirectives {
                no_cache: pragma,
                authorization,
                ..RequestDirectives::default()
            };
        };
        let seconds = |name: &str| -> Option<Option<u64>> {
            let value = cc.directives.get(&DirectiveKey::from_lowercase(name))?;
            Some(value.as_ref().map(|v| {
                // An invalid value is read as 0: the strictest reading of a
                // freshness demand.
                v.parse_as_delta_seconds().map_or(0, u64::from)
            }))
        };
        RequestDirectives {
            authorization,
            no_cache: cc.has_directive(&DirectiveKey::NoCache),
            no_store: cc.no_store(),
            only_if_cached: cc.only_if_cached(),
            max_age: seconds("max-age").map(|v| v.unwrap_or(0)),
            min_fresh: seconds("min-fresh").map(|v| v.unwrap_or(0)),
            max_stale: seconds("max-stale").map(|v| v.unwrap_or(u64::MAX)),
        }
    }

    /// For a route that ignores the client's directives: only what is not a
    /// directive, the credentials (RFC 9111 §3.5 still applies).
    pub(crate) fn credentials_only(req: &RequestHeader) -> RequestDirectives {
        RequestDirectives {
            authorization: req.headers.contains_key(http::header::AUTHORIZATION),
            ..RequestDirectives::default()
        }
    }

    /// Whether any directive can change what the cache does.
    pub(crate) fn any(&self) -> bool {
        *self != RequestDirectives::default()
    }

    pub(crate) fn verdict(&self, meta: &CacheMeta, now: SystemTime) -> Verdict {
        // RFC 9111 §3.5: a stored response answers a request with Authorization
        // only when it says it may.
        if self.authorization && !shared_with_authorization(meta) {
            return Verdict::Bypass;
        }
        let age = meta.age().as_secs();
        let left = meta.fresh_until().duration_since(now).ok();
        let too_old = self.max_age.is_some_and(|max| age > max);
        let not_fresh_enough = self
            .min_fresh
            .is_some_and(|min| left.is_none_or(|l| l < Duration::from_secs(min)));
        if self.no_cache || too_old || not_fresh_enough {
            return Verdict::Revalidate;
        }
        if left.is_none() {
            let stale_for = now
                .duration_since(meta.fresh_until())
                .unwrap_or(Duration::ZERO)
                .as_secs();
            let allowed = self.max_stale.is_some_and(|max| stale_for <= max);
            if allowed && !forbids_stale(meta) {
                return Verdict::ServeStale;
            }
        }
        Verdict::AsStored
    }
}

fn shared_with_authorization(meta: &CacheMeta) -> bool {
    policy::directives(meta.headers())
        .is_some_and(|cc| cc.public() || cc.has_key("s-maxage") || cc.must_revalidate())
}

/// `must-revalidate`, `proxy-revalidate`, `s-maxage` and `no-cache` in the stored
/// response forbid serving it stale, whatever the client accepts.
fn forbids_stale(meta: &CacheMeta) -> bool {
    policy::directives(meta.headers()).is_some_and(|cc| {
        cc.must_revalidate() || cc.proxy_revalidate() || cc.has_key("s-maxage") || cc.no_cache()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::ResponseHeader;

    fn req(fields: &[(&str, &str)]) -> RequestDirectives {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in fields {
            r.append_header(n.to_string(), *v).unwrap();
        }
        RequestDirectives::of(&r)
    }

    /// A meta created 100 s before `now`, fresh until `fresh_for` seconds after creation.
    fn meta(fresh_for: u64, cc: &str) -> (CacheMeta, SystemTime) {
        let now = SystemTime::now();
        let created = now - Duration::from_secs(100);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("cache-control", cc).unwrap();
        let meta = CacheMeta::new(
            created + Duration::from_secs(fresh_for),
            created,
            0,
            0,
            resp,
        );
        (meta, now)
    }

    #[test]
    fn directives_are_read_from_cache_control_or_pragma() {
        assert!(!req(&[]).any());
        assert!(req(&[("pragma", "no-cache")]).no_cache);
        assert!(!req(&[("pragma", "no-cache"), ("cache-control", "max-age=5")]).no_cache);
        let d = req(&[(
            "cache-control",
            "max-age=5, min-fresh=2, max-stale, only-if-cached, no-store",
        )]);
        assert_eq!(
            (d.max_age, d.min_fresh, d.max_stale),
            (Some(5), Some(2), Some(u64::MAX))
        );
        assert!(d.only_if_cached && d.no_store);
        assert_eq!(
            req(&[("cache-control", "max-stale=30")]).max_stale,
            Some(30)
        );
        assert_eq!(req(&[("cache-control", "max-age=x")]).max_age, Some(0));
    }

    #[test]
    fn freshness_demands_send_the_object_back_to_the_origin() {
        let (fresh, now) = meta(160, "max-age=160");
        assert_eq!(req(&[]).verdict(&fresh, now), Verdict::AsStored);
        let revalidate =
            |fields: &[(&str, &str)]| req(fields).verdict(&fresh, now) == Verdict::Revalidate;
        assert!(revalidate(&[("cache-control", "no-cache")]));
        assert!(revalidate(&[("cache-control", "max-age=50")]), "100 s old");
        assert!(!revalidate(&[("cache-control", "max-age=150")]));
        assert!(
            revalidate(&[("cache-control", "min-fresh=120")]),
            "60 s left"
        );
        assert!(!revalidate(&[("cache-control", "min-fresh=30")]));
    }

    #[test]
    fn max_stale_serves_stale_only_when_the_origin_allows_it() {
        let (stale, now) = meta(40, "max-age=40");
        let verdict = |cc: &str| req(&[("cache-control", cc)]).verdict(&stale, now);
        assert_eq!(verdict("max-stale"), Verdict::ServeStale);
        assert_eq!(verdict("max-stale=90"), Verdict::ServeStale, "60 s stale");
        assert_eq!(verdict("max-stale=30"), Verdict::AsStored);
        let (strict, now) = meta(40, "max-age=40, must-revalidate");
        let d = req(&[("cache-control", "max-stale")]);
        assert_eq!(d.verdict(&strict, now), Verdict::AsStored);
    }

    #[test]
    fn authorization_is_answered_only_by_responses_that_allow_it() {
        let auth = req(&[("authorization", "Bearer x")]);
        assert!(auth.any());
        let (plain, now) = meta(160, "max-age=160");
        assert_eq!(auth.verdict(&plain, now), Verdict::Bypass);
        for allowed in [
            "public, max-age=160",
            "s-maxage=160",
            "max-age=160, must-revalidate",
        ] {
            let (m, now) = meta(160, allowed);
            assert_eq!(auth.verdict(&m, now), Verdict::AsStored, "{allowed}");
        }
    }
}
