//! What is dropped from the store: the objects an unsafe request invalidates
//! (RFC 9111 §4.4) and the purges by URL or tag (README: Observe it).

use super::config::RouteCache;
use super::{key, Shield};
use crate::http_util::{host, Scheme};
use pingora::cache::CacheKey;
use pingora::http::{RequestHeader, ResponseHeader};

impl Shield {
    /// After a successful unsafe request (POST, PUT, DELETE, PATCH, ...): drop the
    /// stored responses for its URI and for the `Location` and `Content-Location`
    /// it answered with, when they are on the same host (RFC 9111 §4.4: only an
    /// unsafe method, only a 2xx or 3xx answer). Call it for requests whose method
    /// [`invalidates`].
    pub(crate) async fn invalidate(
        &self,
        req: &RequestHeader,
        resp: &ResponseHeader,
        route: &RouteCache,
        scheme: Scheme,
    ) {
        let status = resp.status.as_u16();
        if !invalidates(&req.method) || !(200..400).contains(&status) {
            return;
        }
        let mut keys = vec![key::primary(req, scheme, &route.query)];
        for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
            let target = resp
                .headers
                .get(&name)
                .and_then(|v| same_host_target(req, v.as_bytes()));
            if let Some(target) = target {
                let host = host::of(req);
                let (path, q) = (target.path(), target.query());
                keys.push(key::primary_of(host, path, q, scheme, &route.query));
            }
        }
        for primary in keys {
            self.drop_key(primary, false).await;
        }
    }

    /// Purge what is stored for `path_and_query` on `host` (with or without a
    /// port) under `route`'s key rule, for both schemes; `soft` marks it stale
    /// instead. How many objects were purged.
    pub(crate) async fn purge_url(
        &self,
        host: &str,
        path_and_query: &str,
        route: &RouteCache,
        soft: bool,
    ) -> usize {
        let (path, q) = match path_and_query.split_once('?') {
            Some((path, q)) => (path, Some(q)),
            None => (path_and_query, None),
        };
        let mut purged = 0;
        for scheme in [Scheme::Http, Scheme::Https] {
            let primary = key::primary_of(host.as_bytes(), path, q, scheme, &route.query);
            purged += usize::from(self.drop_key(primary, soft).await);
        }
        purged
    }

    /// Purge every object stored with one of `tags`. How many were purged.
    pub(crate) async fn purge_tags(&self, tags: &[String], soft: bool) -> usize {
        let mut purged = 0;
        for tag in tags {
            purged += match self.tiered {
                Some(tiered) => tiered.purge_tag(tag, soft).await,
                None => self.storage.purge_tag(tag, soft),
            };
        }
        purged
    }

    /// Drop (or expire) the object at `primary`; whether there was one.
    async fn drop_key(&self, primary: Vec<u8>, soft: bool) -> bool {
        use pingora::cache::{PurgeOutcome, PurgeTarget, PurgeType};
        let span = pingora::cache::trace::Span::inactive().handle();
        let compact = CacheKey::new(primary, "").to_compact();
        let target = PurgeTarget::Active(&compact);
        let outcome = match soft {
            true => self.store.expire(target, &span).await,
            false => {
                self.store
                    .purge(target, PurgeType::Invalidation, &span)
                    .await
            }
        };
        match outcome {
            Ok(PurgeOutcome::Purged(_) | PurgeOutcome::Expired) => true,
            Ok(PurgeOutcome::NotFound) => false,
            Err(e) => {
                log::warn!("cache purge failed: {e}");
                false
            }
        }
    }
}

/// Whether an answer to `method` invalidates what is stored for its URI: the
/// unsafe methods (RFC 9110 §9.2.1: all but GET, HEAD, OPTIONS and TRACE).
pub(crate) fn invalidates(method: &http::Method) -> bool {
    use http::Method;
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The path and query of a `Location`-like reference when it points at the
/// request's own host: an absolute path always does; an absolute URI when its
/// authority is the request's host. (Relative paths such as `item/5` are not
/// resolved: the origin's own URI is still invalidated.)
fn same_host_target(req: &RequestHeader, reference: &[u8]) -> Option<http::uri::PathAndQuery> {
    let text = std::str::from_utf8(reference).ok()?;
    if text.starts_with('/') && !text.starts_with("//") {
        return text.parse().ok();
    }
    let uri: http::Uri = text.parse().ok()?;
    let host = host::of(req);
    if !uri
        .authority()?
        .as_str()
        .as_bytes()
        .eq_ignore_ascii_case(host)
    {
        return None;
    }
    uri.path_and_query().cloned()
}
