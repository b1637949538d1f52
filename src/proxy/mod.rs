//! The request path: one `ProxyHttp` implementation whose hooks each hand one step
//! of the request to the policy that owns it.
//!
//! request_filter          -> request ID, client identity, framing and limits, the target
//!                            in normal form (path, absolute form, Host), route, the
//!                            route's policies (access, rate limit, CORS, compression's
//!                            coding), trace context,
//!                            a small body read ahead (`limits.request_buffer`)
//! request_body_filter     -> the body limit, counted as the body streams
//! request_cache_filter .. cache_hit_filter, proxy_upstream_filter, response_cache_filter,
//!   cache_vary_filter, should_serve_stale -> the route's cache (`cache::Shield`)
//! upstream_peer           -> a healthy backend of the route's upstream (untried on retries;
//!                            by the cache key for a tier of shields);
//!                            a WebSocket handshake's origin side outlasts its idle timeout
//! upstream_request_filter -> forwarding headers, request ID, traceparent, Host rewrite
//! upstream_response_filter -> the attempt answered; a status in `retry_on` is retried;
//!                            after a 101 the client side idles up to `websocket_idle`
//! response_filter         -> invalidation after unsafe methods, hop-by-hop stripping,
//!                            response header rules, request ID, the route's policies
//!                            (compression, CORS, rate limit fields), Cache-Status
//! fail_to_connect / error_while_proxy -> the attempt failed; retry policy (`retry`)
//! fail_to_proxy           -> status and error page
//! logging                 -> metrics and the access log; a connection that closes with
//!                            its request body unread is marked for a lingering close

mod answer;
mod attempt;
mod ctx;
mod peer;
mod report;
mod response;
mod retry;

pub(crate) use ctx::RequestCtx;

use crate::cache::config::RouteCache;
use crate::cache::Shield;
use crate::connection;
use crate::error_page;
use crate::fleet;
use crate::http_util::target;
use crate::observe::{request_id, trace};
use crate::pingora_compat::head_edit;
use crate::policy::headers;
use crate::runtime::Runtime;
use crate::upstream::Upstream;
use async_trait::async_trait;
use pingora::cache::key::HashBinary;
use pingora::cache::RespCacheable;
use pingora::cache::{CacheKey, CacheMeta, ForcedFreshness, HitHandler, NoCacheReason};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::compression::ResponseCompressionBuilder;
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::sync::Arc;

pub(crate) struct Parapet {
    rt: Arc<Runtime>,
}

impl Parapet {
    pub(crate) fn new(rt: Arc<Runtime>) -> Self {
        Parapet { rt }
    }

    fn upstream(&self, ctx: &RequestCtx) -> Result<&Upstream> {
        ctx.route
            .map(|r| &self.rt.upstreams[r.upstream])
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route on the context"))
    }

    /// The cache and the route's cache policy, when the route caches.
    fn caching(&self, ctx: &RequestCtx) -> Option<(&Shield, &RouteCache)> {
        let route = self.rt.route(ctx.route?.route)?;
        Some((self.rt.shield.as_ref()?, route.policies.cache.as_ref()?))
    }
}

#[async_trait]
impl ProxyHttp for Parapet {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// Pingora's compression module only when some route compresses (it starts
    /// disabled, and `encoding` turns it on per request); otherwise no module runs.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        if self.rt.compresses {
            modules.add_module(ResponseCompressionBuilder::enable(0));
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = &self.rt;
        ctx.active = Some(rt.requests.begin());
        connection::keep_alive(session, rt.limits.keepalive_timeout, &rt.handoff);
        // A response write (hits and refusals too) that makes no progress for this
        // long ends the connection; Pingora sets no downstream write timeout.
        session.set_write_timeout(Some(rt.limits.send_timeout));
        let req = session.req_header();
        ctx.request_id = request_id::accept_or_generate(req.headers.get(&rt.request_id_header));
        ctx.client = rt.client_ip.resolve(session);
        if let Some((status, by)) = self.malformed(session) {
            return self.refuse(session, ctx, status, by).await;
        }
        if fleet::is_loop(&session.req_header().headers, &rt.name) {
            return self.refuse(session, ctx, 508, "cdn_loop").await;
        }
        let listener = rt.listeners.of(session);
        let encoded_slash = listener
            .as_ref()
            .map_or_else(Default::default, |l| l.encoded_slash);
        if let Err(by) = target::normalize(session.req_header_mut(), encoded_slash) {
            return self.refuse(session, ctx, 400, by).await;
        }
        if let Some(listener) = listener {
            ctx.hsts = listener.hsts.cloned();
            if listener.redirect_https {
                return Box::pin(self.redirect_to_https(session, ctx)).await;
            }
        }
        let req = session.req_header();
        ctx.route = rt.routes.route_for(req);
        let Some(route) = ctx.route.and_then(|m| rt.route(m.route)) else {
            return self.refuse(session, ctx, 404, "routing").await;
        };
        if let Some(answered) = self.route_policies(session, ctx, &route.policies).await {
            return answered;
        }
        let req = session.req_header();
        ctx.trace = Some(trace::accept_or_start(req.headers.get(&trace::TRACEPARENT)));
        // Each wait for more of the body is bounded (the head is read by then).
        session.set_read_timeout(Some(rt.limits.body_timeout));
        if rt.limits.buffer.wants(session) {
            // Boxed: its state would otherwise size the future of every request.
            return Box::pin(self.read_ahead(session, ctx)).await;
        }
        Ok(false)
    }

    /// Bodies are counted against `limits.max_request_body_bytes` as they stream
    /// (from the start again on each attempt: a retry replays the buffered body).
    /// After a 101 what streams is a WebSocket's frames, which no body limit bounds.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if session.was_upgraded() {
            return Ok(());
        }
        if let Some(prefix) = ctx.body_prefix.take() {
            *body = Some(match body.take() {
                Some(rest) => [prefix, rest].concat().into(),
                None => prefix,
            });
        }
        let len = body.as_ref().map_or(0, |b| b.len());
        match self.rt.limits.body_within(&mut ctx.body_bytes, len) {
            true => Ok(()),
            false => Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit"),
        }
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        if let Some((shield, route)) = self.caching(ctx) {
            shield.enable(session, route, ctx.cache.insert(Box::default()));
        }
        Ok(())
    }

    fn cache_key_callback(&self, session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        let (shield, route) = self
            .caching(ctx)
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no cache on this route"))?;
        Ok(shield.key(session.req_header(), route, ctx.client.scheme))
    }

    async fn cache_hit_filter(
        &self,
        session: &mut Session,
        meta: &CacheMeta,
        hit_handler: &mut HitHandler,
        is_fresh: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<ForcedFreshness>> {
        let shield = self.rt.shield.as_ref();
        Ok(match (shield, ctx.cache.as_deref_mut()) {
            (Some(shield), Some(cache)) => {
                shield.hit_filter(session, meta, is_fresh, hit_handler, cache)
            }
            _ => None,
        })
    }

    /// A request with `only-if-cached` that the cache cannot answer gets a 504.
    async fn proxy_upstream_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        match self.caching(ctx) {
            Some((shield, _)) if ctx.cache.as_deref().is_some_and(|c| !shield.may_fetch(c)) => {
                session.cache.disable(NoCacheReason::DeclinedToUpstream);
                let refused = self.refuse(session, ctx, 504, "only-if-cached").await;
                refused.map(|_| false)
            }
            _ => Ok(true),
        }
    }

    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        Ok(match &self.rt.shield {
            Some(shield) => shield.cacheable(resp, ctx.cache.get_or_insert_default()),
            None => RespCacheable::Uncacheable(NoCacheReason::NeverEnabled),
        })
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        let variance = crate::cache::vary::variance(meta, req);
        // Before any attempt, this is the lookup: a miss now is a variant miss.
        if let Some(cache) = ctx.cache.as_deref_mut() {
            cache.variant_lookup |= variance.is_some() && ctx.attempts.count == 0;
        }
        variance
    }

    /// Stale objects are served only within the windows the origin or the
    /// configuration granted (they are in the stored metadata): while one request
    /// refreshes the object, and when the origin fails or no backend is healthy.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        error.is_none_or(|e| {
            e.esource() == &ErrorSource::Upstream
                || matches!(e.etype(), ErrorType::HTTPStatus(500..=599))
        })
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        self.choose_peer(session, ctx)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let rt = &self.rt;
        let host = self.upstream(ctx)?.host_header.as_ref();
        head_edit::edit_request(req, headers::UPSTREAM_ADDED, |h| {
            headers::set_forwarding(h, &ctx.client, &rt.client_ip.header);
            let _ = h.try_insert(rt.request_id_header.clone(), ctx.request_id.clone());
            if let Some(trace) = &ctx.trace {
                let _ = h.try_insert(trace::TRACEPARENT.clone(), trace.header.clone());
            }
            if let Some(host) = host {
                let _ = h.try_insert(http::header::HOST, host.clone());
            }
            // Our member after those already there (RFC 8586 §2: never removed).
            let _ = h.try_append(fleet::CDN_LOOP.clone(), rt.name.clone());
        })
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.attempts.answered(resp.status.as_u16());
        self.retry_answer(session, ctx, resp.status.as_u16())?;
        if resp.status == http::StatusCode::SWITCHING_PROTOCOLS {
            self.upstream(ctx)?.websocket.on_switch(session);
        }
        if let Some((shield, _)) = self.caching(ctx) {
            shield.upstream_answered(session, resp, ctx.cache.get_or_insert_default());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.finish_response_head(session, resp, ctx).await;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.after_connect_failure(session, ctx, &mut e);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        self.after_failure(session, ctx, &mut e, client_reused);
        e
    }

    /// An answer dropped to be retried, and a client that stopped reading while
    /// the cache fill it started goes on (`limits.client_send_timeout`), are not
    /// worth a warning.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        e: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        e.etype() == &retry::RETRY_ANSWER || error_page::status_for(e) == 0
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let mut status = error_page::status_for(e);
        if let (Some((shield, _)), Some(cache)) = (self.caching(ctx), ctx.cache.as_deref()) {
            status = shield.failure_status(cache, status);
        }
        if status > 0 && session.response_written().is_none() {
            // The connection is not reused after this (below): the page says so.
            session.set_keepalive(None);
            if ctx.request_id.is_empty() {
                ctx.request_id = request_id::generate();
            }
            if let Err(write_error) = self.error_page(session, ctx, status).await {
                log::debug!("could not send the {status} error page: {write_error}");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Clients that go away or break the protocol (a malformed chunk, a body that
    /// stalls: any error of the downstream side), failures we answered on purpose
    /// (404, 503) and the end of a WebSocket (an idle timeout, a side that
    /// vanished) are not errors of the proxy: they are reported at debug level only.
    fn suppress_error_log(&self, session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        let quiet = matches!(e.etype(), ErrorType::HTTPStatus(_))
            || *e.esource() == ErrorSource::Downstream
            || error_page::status_for(e) == 0
            || session.was_upgraded();
        if quiet {
            log::debug!("request ended: {e}");
        }
        quiet
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        crate::pingora_compat::linger::mark_if_body_unread(session);
        report::finish(&self.rt, session, e, ctx);
    }
}
