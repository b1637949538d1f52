//! The request path: one `ProxyHttp` implementation whose hooks each hand one step
//! of the request to the policy that owns it.
//!
//! request_filter          -> request ID, trace context, framing check, route, client identity
//! upstream_peer           -> a healthy backend of the route's upstream (untried on retries)
//! upstream_request_filter -> forwarding headers, request ID, traceparent, Host rewrite
//! upstream_response_filter -> the attempt succeeded
//! response_filter         -> hop-by-hop stripping, response header rules, request ID
//! fail_to_connect / error_while_proxy -> the attempt failed; retry policy
//! fail_to_proxy           -> status and error page
//! logging                 -> metrics and the access log

mod attempt;
mod ctx;
mod report;

pub use ctx::RequestCtx;

use crate::error_page;
use crate::http_util::head_edit;
use crate::observe::{request_id, trace};
use crate::policy::framing;
use crate::policy::headers;
use crate::policy::retry::Attempt;
use crate::runtime::Runtime;
use crate::upstream::{Outcome, Upstream};
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::sync::Arc;

pub struct Parapet {
    rt: Arc<Runtime>,
}

impl Parapet {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Parapet { rt }
    }

    fn upstream(&self, ctx: &RequestCtx) -> Result<&Upstream> {
        ctx.route
            .map(|r| &self.rt.upstreams[r.upstream])
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route on the context"))
    }

    /// Answer at the edge with an error page; the request goes no further.
    async fn refuse(&self, session: &mut Session, ctx: &RequestCtx, status: u16) -> Result<bool> {
        if status == 400 {
            session.set_keepalive(None);
        }
        error_page::send(session, status, &ctx.request_id, &self.rt.request_id_header).await?;
        Ok(true)
    }

    fn may_retry(&self, session: &Session, ctx: &RequestCtx) -> bool {
        let Ok(upstream) = self.upstream(ctx) else {
            return false;
        };
        let attempt = Attempt {
            method: &session.req_header().method,
            attempts: ctx.attempts.count,
            body_truncated: session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
        };
        upstream.retry.may_retry(&attempt)
    }

    fn has_untried_backend(&self, ctx: &RequestCtx) -> bool {
        self.upstream(ctx)
            .is_ok_and(|u| u.has_untried_healthy(ctx.attempts.tried))
    }
}

#[async_trait]
impl ProxyHttp for Parapet {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new()
    }

    /// No response compression at the edge: skip Pingora's default module, which
    /// would otherwise run (disabled) on every request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = &self.rt;
        ctx.active = Some(rt.requests.begin());
        let req = session.req_header();
        ctx.request_id = request_id::accept_or_generate(req.headers.get(&rt.request_id_header));
        ctx.client = rt.client_ip.resolve(session);
        if framing::has_conflicting_length(session) {
            return self.refuse(session, ctx, 400).await;
        }
        ctx.route = rt.routes.route_for(req);
        if ctx.route.is_none() {
            return self.refuse(session, ctx, 404).await;
        }
        ctx.trace = Some(trace::accept_or_start(req.headers.get(&trace::TRACEPARENT)));
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let upstream = self.upstream(ctx)?;
        let key = upstream.key_of(session.req_header(), ctx.client.ip);
        let chosen = upstream
            .select(key.as_bytes(), ctx.attempts.tried)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy backend"))?;
        ctx.attempts
            .begin(chosen.index, upstream.state(chosen.index));
        Ok(chosen.peer)
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
        })
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.attempts.answered();
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let rt = &self.rt;
        let status = resp.status;
        head_edit::edit_response(resp, |h| {
            headers::strip_response_hop_by_hop(h, status);
            rt.response_headers.apply(h);
            let _ = h.try_insert(rt.request_id_header.clone(), ctx.request_id.clone());
        });
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        ctx.attempts.end(Outcome::of(&e), Some(&e));
        // Nothing reached the backend, but a POST is still answered at once (SPEC §4).
        e.set_retry(self.may_retry(session, ctx) && self.has_untried_backend(ctx));
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
        let upstream_failed = e.esource() == &ErrorSource::Upstream;
        if upstream_failed {
            ctx.attempts.end(Outcome::of(&e), Some(&e));
        }
        if !(upstream_failed && self.may_retry(session, ctx)) {
            e.set_retry(false);
        } else if self.has_untried_backend(ctx) {
            e.set_retry(true);
        } else {
            // Only the backend just tried is left: go back to it only when the failure
            // was a stale pooled connection (Pingora's own rule).
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let status = error_page::status_for(e);
        if status > 0 && session.response_written().is_none() {
            if ctx.request_id.is_empty() {
                ctx.request_id = request_id::generate();
            }
            let sent =
                error_page::send(session, status, &ctx.request_id, &self.rt.request_id_header);
            if let Err(write_error) = sent.await {
                log::debug!("could not send the {status} error page: {write_error}");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Clients that go away and failures we answered on purpose (404, 503) are not
    /// errors of the proxy: they are reported at debug level only.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, e: &Error) -> bool {
        let quiet = matches!(e.etype(), ErrorType::HTTPStatus(_)) || error_page::status_for(e) == 0;
        if quiet {
            log::debug!("request ended: {e}");
        }
        quiet
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        report::finish(&self.rt, session, e, ctx);
    }
}
