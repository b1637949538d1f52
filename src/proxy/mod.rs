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

mod ctx;
mod report;

pub use ctx::RequestCtx;

use crate::config::model::HashKey;
use crate::error_page;
use crate::observe::metrics::Outcome;
use crate::observe::{request_id, trace};
use crate::policy::client_ip;
use crate::policy::framing;
use crate::policy::head_edit;
use crate::policy::headers::{self, Forwarding};
use crate::policy::retry::Attempt;
use crate::runtime::Runtime;
use crate::upstream::{tried_bit, Upstream};
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

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
            attempts: ctx.attempts,
            body_truncated: session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
        };
        upstream.retry.may_retry(&attempt)
    }

    fn has_untried_backend(&self, ctx: &RequestCtx) -> bool {
        self.upstream(ctx)
            .is_ok_and(|u| u.has_untried_healthy(ctx.tried))
    }

    /// Record the end of the current attempt at its backend.
    fn attempt_ended(&self, ctx: &mut RequestCtx, outcome: Outcome, e: Option<&Error>) {
        let (Some(route), Some(backend)) = (ctx.route, ctx.backend) else {
            return;
        };
        self.rt.metrics.attempt(route.upstream, backend, outcome);
        if let Some(e) = e {
            self.rt.upstreams[route.upstream]
                .state(backend)
                .failed(e.etype().as_str());
        }
        release_backend(&self.rt, ctx);
    }
}

/// Take the current attempt out of its backend's in-flight count.
fn release_backend(rt: &Runtime, ctx: &mut RequestCtx) {
    if let (true, Some(route), Some(backend)) = (ctx.backend_busy, ctx.route, ctx.backend) {
        rt.upstreams[route.upstream].state(backend).end();
        ctx.backend_busy = false;
    }
}

fn outcome_of(e: &Error) -> Outcome {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            Outcome::Timeout
        }
        ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
            Outcome::ConnectError
        }
        _ => Outcome::Error,
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
        rt.metrics.active.inc();
        ctx.counted_active = true;
        let req = session.req_header();
        ctx.request_id = request_id::accept_or_generate(req.headers.get(&rt.request_id_header));
        if let Some(peer) = session.client_addr().and_then(|a| a.as_inet()) {
            let trusted = &rt.client_ip.trusted;
            ctx.peer_ip = peer.ip();
            ctx.trusted_peer = client_ip::is_trusted(trusted, ctx.peer_ip);
            ctx.client_ip = client_ip::client_ip(
                trusted,
                ctx.peer_ip,
                req.headers.get(&rt.client_ip.header).map(|v| v.as_bytes()),
                req.headers
                    .get(&headers::X_FORWARDED_FOR)
                    .map(|v| v.as_bytes()),
            );
        }
        if framing::has_conflicting_length(session) {
            return self.refuse(session, ctx, 400).await;
        }
        let host = req
            .uri
            .authority()
            .map(|a| a.as_str().as_bytes())
            .or_else(|| headers::host_of(req).map(|h| h.as_bytes()))
            .unwrap_or_default();
        ctx.route = rt.routes.find(host, req.uri.path().as_bytes());
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
        let ip_key;
        let key: &[u8] = match &upstream.hash_key {
            HashKey::Uri => session.req_header().raw_path(),
            HashKey::ClientIp => {
                ip_key = ip_octets(ctx.client_ip);
                &ip_key.0[..ip_key.1]
            }
            HashKey::Header(name) => session
                .req_header()
                .headers
                .get(name)
                .map(|v| v.as_bytes())
                .unwrap_or_default(),
        };
        let chosen = upstream
            .select(key, ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy backend"))?;
        upstream.state(chosen.index).begin();
        ctx.attempts = ctx.attempts.saturating_add(1);
        ctx.tried |= tried_bit(chosen.index);
        ctx.backend = Some(chosen.index);
        ctx.backend_busy = true;
        ctx.upstream_started.get_or_insert_with(Instant::now);
        Ok(chosen.peer)
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let fwd = Forwarding {
            peer: ctx.peer_ip,
            client: ctx.client_ip,
            trusted: ctx.trusted_peer,
            scheme: "http",
        };
        let rt = &self.rt;
        let host = self.upstream(ctx)?.host_header.as_ref();
        head_edit::edit_request(req, headers::UPSTREAM_ADDED, |h| {
            headers::set_forwarding(h, &fwd, &rt.client_ip.header);
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
        ctx.upstream_elapsed = ctx.upstream_started.map(|s| s.elapsed());
        self.attempt_ended(ctx, Outcome::Success, None);
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
        self.attempt_ended(ctx, outcome_of(&e), Some(&e));
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
        if upstream_failed && ctx.backend_busy {
            self.attempt_ended(ctx, outcome_of(&e), Some(&e));
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

/// An IP address as bytes for hashing, without allocating.
fn ip_octets(ip: IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => (v6.octets(), 16),
    }
}
