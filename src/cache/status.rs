//! What the cache did for one response: the `Cache-Status` field (RFC 9211) sent on
//! every response of a caching route, and the short result the access log and
//! `parapet_cache_lookups_total` carry.

use pingora::cache::{CachePhase, HttpCache, NoCacheReason};
use std::io::Write;
use std::time::SystemTime;

pub(crate) static CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("cache-status");

/// The facts `Cache-Status` is written from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) phase: CachePhase,
    /// Seconds of freshness left on the served object (negative when stale).
    pub(crate) ttl: Option<i64>,
    /// The status the origin answered with, when it was asked.
    pub(crate) fwd_status: Option<u16>,
    /// The response is being stored.
    pub(crate) stored: bool,
    /// The request waited for another request's fetch of the same object.
    pub(crate) collapsed: bool,
    /// The lookup found the object under another variant (`Vary`).
    pub(crate) vary_miss: bool,
    /// A request directive (`no-cache`, `max-age`, ...) sent it to the origin.
    pub(crate) by_request: bool,
    /// The method is not one the cache answers (POST, PUT, ...).
    pub(crate) unsafe_method: bool,
    /// The object came from the disk tier.
    pub(crate) from_disk: bool,
    /// `Age` for a response served from the stored copy after an origin fetch
    /// (pingora-proxy's `cache_hit_header` adds `Age` on hits only): after a
    /// revalidation, and after a fetch of a response that was already old when
    /// it arrived (RFC 9111 §5.1: the origin's `Age` is end-to-end, and the
    /// stored copy goes without it).
    pub(crate) fetched_age: Option<u64>,
}

impl Facts {
    pub(crate) fn of(cache: &HttpCache, fwd_status: Option<u16>) -> Facts {
        let ttl = cache.maybe_cache_meta().map(|meta| {
            let now = SystemTime::now();
            match meta.fresh_until().duration_since(now) {
                Ok(left) => left.as_secs() as i64,
                Err(past) => -(past.duration().as_secs() as i64) - 1,
            }
        });
        let revalidated = matches!(
            cache.phase(),
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_)
        );
        let fetched = matches!(cache.phase(), CachePhase::Miss | CachePhase::Expired);
        Facts {
            phase: cache.phase(),
            fetched_age: cache
                .maybe_cache_meta()
                .filter(|m| revalidated || (fetched && m.epoch_override().is_some()))
                .map(|m| m.age().as_secs()),
            ttl,
            fwd_status,
            stored: cache.enabled()
                && matches!(cache.phase(), CachePhase::Miss | CachePhase::Expired),
            collapsed: cache.lock_duration().is_some(),
            vary_miss: false,
            by_request: false,
            unsafe_method: false,
            from_disk: false,
        }
    }

    /// The short result for logs and metrics.
    pub(crate) fn result(&self) -> &'static str {
        match self.phase {
            CachePhase::Hit => "hit",
            CachePhase::StaleUpdating | CachePhase::Stale => "stale",
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "revalidated",
            CachePhase::Expired => "expired",
            CachePhase::Miss => "miss",
            CachePhase::Disabled(NoCacheReason::NeverEnabled) | CachePhase::Bypass => "bypass",
            _ => "uncacheable",
        }
    }

    /// The `Cache-Status` field's value.
    pub(crate) fn header(&self) -> Option<http::HeaderValue> {
        http::HeaderValue::from_maybe_shared(bytes::Bytes::from(self.header_value())).ok()
    }

    /// The `Cache-Status` value, e.g. `parapet; fwd=uri-miss; fwd-status=200; stored`.
    pub(crate) fn header_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"parapet");
        let fwd = match self.phase {
            CachePhase::Hit | CachePhase::StaleUpdating => None,
            CachePhase::Stale | CachePhase::Expired => Some("stale"),
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => Some("stale"),
            _ if self.by_request => Some("request"),
            _ if self.unsafe_method => Some("method"),
            CachePhase::Disabled(NoCacheReason::NeverEnabled) | CachePhase::Bypass => {
                Some("bypass")
            }
            CachePhase::Disabled(
                NoCacheReason::CacheLockTimeout
                | NoCacheReason::CacheLockGiveUp
                | NoCacheReason::CacheLockRetryLimit,
            ) => Some("miss"),
            _ if self.vary_miss => Some("vary-miss"),
            _ => Some("uri-miss"),
        };
        match fwd {
            None => {
                out.extend_from_slice(b"; hit");
                if let Some(ttl) = self.ttl {
                    let _ = write!(out, "; ttl={ttl}");
                }
            }
            Some(fwd) => {
                let _ = write!(out, "; fwd={fwd}");
                if let Some(status) = self.fwd_status {
                    let _ = write!(out, "; fwd-status={status}");
                }
                if self.stored {
                    out.extend_from_slice(b"; stored");
                }
            }
        }
        if self.collapsed {
            out.extend_from_slice(b"; collapsed");
        }
        if let Some(detail) = self.detail() {
            let _ = write!(out, "; detail={detail}");
        }
        out
    }

    fn detail(&self) -> Option<&'static str> {
        match self.phase {
            CachePhase::Disabled(reason) | CachePhase::RevalidatedNoCache(reason) => match reason {
                NoCacheReason::NeverEnabled => None,
                NoCacheReason::Custom(why) => Some(why),
                NoCacheReason::OriginNotCache => Some("origin-not-cacheable"),
                NoCacheReason::ResponseTooLarge | NoCacheReason::PredictedResponseTooLarge => {
                    Some("too-large")
                }
                NoCacheReason::CacheLockTimeout => Some("lock-timeout"),
                NoCacheReason::CacheLockGiveUp => Some("lock-uncacheable"),
                NoCacheReason::CacheLockRetryLimit => Some("lock-retries"),
                NoCacheReason::UpstreamError => Some("upstream-error"),
                _ => Some("internal"),
            },
            CachePhase::Bypass => Some("predicted-uncacheable"),
            CachePhase::Hit if self.from_disk => Some("disk"),
            CachePhase::Stale => Some("stale-if-error"),
            CachePhase::StaleUpdating => Some("stale-while-revalidate"),
            _ => None,
        }
    }
}

/// Whether a `Cache-Status` value says its nearest cache (the last member,
/// RFC 9211 §2) answered from its store.
pub(crate) fn is_hit(value: &[u8]) -> bool {
    let last = crate::http_util::tokens(value)
        .next_back()
        .unwrap_or_default();
    last.split(|b| *b == b';')
        .skip(1)
        .any(|p| p.trim_ascii() == b"hit")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(phase: CachePhase) -> Facts {
        Facts {
            phase,
            ttl: None,
            fwd_status: None,
            stored: false,
            collapsed: false,
            vary_miss: false,
            by_request: false,
            unsafe_method: false,
            from_disk: false,
            fetched_age: None,
        }
    }

    fn text(f: Facts) -> String {
        String::from_utf8(f.header_value()).unwrap()
    }

    #[test]
    fn the_nearest_member_says_whether_it_hit() {
        assert!(is_hit(b"parapet; hit; ttl=5"));
        assert!(is_hit(b"origin-cache; fwd=miss, parapet; hit"));
        assert!(!is_hit(b"parapet; hit, parapet; fwd=uri-miss; stored"));
        assert!(!is_hit(b"hit"));
    }

    #[test]
    fn hits_and_misses() {
        let hit = Facts {
            ttl: Some(58),
            ..facts(CachePhase::Hit)
        };
        assert_eq!(text(hit), "parapet; hit; ttl=58");
        assert_eq!(hit.result(), "hit");
        let miss = Facts {
            fwd_status: Some(200),
            stored: true,
            ..facts(CachePhase::Miss)
        };
        assert_eq!(text(miss), "parapet; fwd=uri-miss; fwd-status=200; stored");
        let collapsed = Facts {
            collapsed: true,
            ttl: Some(10),
            ..facts(CachePhase::Hit)
        };
        assert_eq!(text(collapsed), "parapet; hit; ttl=10; collapsed");
        let from_disk = Facts {
            from_disk: true,
            ttl: Some(9),
            ..facts(CachePhase::Hit)
        };
        assert_eq!(text(from_disk), "parapet; hit; ttl=9; detail=disk");
        let vary = Facts {
            vary_miss: true,
            ..facts(CachePhase::Miss)
        };
        assert_eq!(text(vary), "parapet; fwd=vary-miss");
    }

    #[test]
    fn what_was_not_stored_says_why() {
        let not = Facts {
            fwd_status: Some(200),
            ..facts(CachePhase::Disabled(NoCacheReason::OriginNotCache))
        };
        assert_eq!(
            text(not),
            "parapet; fwd=uri-miss; fwd-status=200; detail=origin-not-cacheable"
        );
        assert_eq!(not.result(), "uncacheable");
        let method = Facts {
            unsafe_method: true,
            ..facts(CachePhase::Disabled(NoCacheReason::NeverEnabled))
        };
        assert_eq!(text(method), "parapet; fwd=method");
        assert_eq!(
            text(facts(CachePhase::Bypass)),
            "parapet; fwd=bypass; detail=predicted-uncacheable"
        );
        let revalidated = Facts {
            fwd_status: Some(304),
            ..facts(CachePhase::Revalidated)
        };
        assert_eq!(text(revalidated), "parapet; fwd=stale; fwd-status=304");
        let swr = Facts {
            ttl: Some(-3),
            ..facts(CachePhase::StaleUpdating)
        };
        assert_eq!(
            text(swr),
            "parapet; hit; ttl=-3; detail=stale-while-revalidate"
        );
    }
}
