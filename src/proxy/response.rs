//! The response head on its way to the client (`response_filter`): invalidation
//! after an unsafe method, hop-by-hop fields, the header rules, the request ID,
//! the route's policies and `Cache-Status`. An interim response (103) goes on
//! with its hop-by-hop fields stripped and nothing added.

use super::{Parapet, RequestCtx};
use crate::cache::status::{Facts, CACHE_STATUS};
use crate::http_util::strip_response_hop_by_hop;
use crate::pingora_compat::head_edit;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

impl Parapet {
    /// `Cache-Status` for a response of a caching route.
    pub(super) fn cache_status(&self, session: &Session, ctx: &mut RequestCtx) -> Option<Facts> {
        let (shield, _) = self.caching(ctx)?;
        let cache = ctx.cache.get_or_insert_default();
        Some(shield.facts(session, cache, ctx.attempts.status))
    }

    /// Everything `response_filter` does, in order; the header edits in one pass.
    pub(super) async fn finish_response_head(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) {
        // An interim response but 101 (the upgrade's final answer) and 100
        // (Pingora's own `Expect` handling).
        let interim = resp.status.is_informational() && !matches!(resp.status.as_u16(), 100 | 101);
        if interim {
            let status = resp.status;
            head_edit::edit_response(resp, |h| strip_response_hop_by_hop(h, status));
            return;
        }
        let rt = &self.rt;
        let mut cache_status = None;
        if let Some((shield, route)) = self.caching(ctx) {
            let req = session.req_header();
            if crate::cache::invalidates(&req.method) {
                // Boxed: this await would otherwise size every request's future.
                Box::pin(shield.invalidate(req, resp, route, ctx.client.scheme)).await;
            }
            cache_status = self.cache_status(session, ctx);
        }
        let status = resp.status;
        let policies = ctx
            .route
            .and_then(|m| rt.route(m.route))
            .map(|r| &r.policies);
        let origin = session
            .downstream_session
            .req_header()
            .headers
            .get(http::header::ORIGIN);
        let from_cdn = session
            .downstream_session
            .req_header()
            .headers
            .contains_key(&crate::fleet::CDN_LOOP);
        let modules = &mut session.downstream_modules_ctx;
        head_edit::edit_response(resp, |h| {
            strip_response_hop_by_hop(h, status);
            rt.response_headers.apply(h);
            if let Some(hsts) = &ctx.hsts {
                let _ = h.try_insert(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            let _ = h.try_insert(rt.request_id_header.clone(), ctx.request_id.clone());
            if let Some(policies) = policies {
                policies.on_response(status, h, origin, modules, &ctx.policies);
            }
            if let Some(facts) = cache_status {
                if let Some(cache) = ctx.cache.as_deref() {
                    cache.restore_withheld(h);
                }
                // A CDN (another Parapet) asked: it needs the tags and directives.
                if !from_cdn {
                    crate::cache::strip_own_fields(h);
                }
                // After the entries of the caches nearer the origin (RFC 9211 §2).
                if let Some(value) = facts.header() {
                    let _ = h.try_append(CACHE_STATUS.clone(), value);
                }
                if let Some(age) = facts.fetched_age {
                    let _ = h.try_insert(http::header::AGE, age.into());
                }
            }
        });
    }
}
