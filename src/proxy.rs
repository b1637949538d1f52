//! The request path: one `ProxyHttp` implementation whose hooks each hand one step
//! of the request to the policy that owns it.
//!
//! request_filter      -> request ID, framing check, route, client identity
//! upstream_peer       -> a healthy backend of the route's upstream (untried on retries)
//! upstream_request_filter -> forwarding headers, request ID, Host rewrite
//! response_filter     -> hop-by-hop stripping, request ID, response header rules
//! fail_to_connect / error_while_proxy -> retry policy
//! fail_to_proxy       -> status and error page

use crate::error_page;
use crate::observe::request_id;
use crate::policy::client_ip;
use crate::policy::framing;
use crate::policy::headers::{self, Forwarding};
use crate::policy::retry::Attempt;
use crate::routing::RouteMatch;
use crate::runtime::Runtime;
use crate::upstream::{tried_bit, Upstream};
use async_trait::async_trait;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

pub struct Parapet {
    rt: Arc<Runtime>,
}

impl Parapet {
    pub fn new(rt: Arc<Runtime>) -> Self {
        Parapet { rt }
    }
}

/// What one request collects on its way through, read by later hooks and logging.
pub struct RequestCtx {
    pub started: Instant,
    pub request_id: HeaderValue,
    pub route: Option<RouteMatch>,
    pub peer_ip: IpAddr,
    pub client_ip: IpAddr,
    pub trusted_peer: bool,
    /// Upstream attempts made so far.
    pub attempts: u8,
    /// Backends tried, a bit per backend index.
    pub tried: u64,
    /// The backend of the latest attempt.
    pub backend: Option<usize>,
}

impl Parapet {
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

    fn may_retry(&self, session: &Session, ctx: &RequestCtx) -> Option<bool> {
        let upstream = self.upstream(ctx).ok()?;
        let attempt = Attempt {
            method: &session.req_header().method,
            attempts: ctx.attempts,
            body_truncated: session.as_ref().retry_buffer_truncated(),
            response_started: session.response_written().is_some(),
        };
        Some(upstream.retry.may_retry(&attempt))
    }
}

#[async_trait]
impl ProxyHttp for Parapet {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            route: None,
            peer_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            trusted_peer: false,
            attempts: 0,
            tried: 0,
            backend: None,
        }
    }

    /// No response compression at the edge: skip Pingora's default module, which
    /// would otherwise run (disabled) on every request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let rt = &self.rt;
        let req = session.req_header();
        ctx.request_id = request_id::accept_or_generate(req.headers.get(&rt.request_id_header));
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
            crate::config::model::HashKey::Uri => session.req_header().raw_path(),
            crate::config::model::HashKey::ClientIp => {
                ip_key = ip_octets(ctx.client_ip);
                &ip_key.0[..ip_key.1]
            }
            crate::config::model::HashKey::Header(name) => session
                .req_header()
                .headers
                .get(name)
                .map(|v| v.as_bytes())
                .unwrap_or_default(),
        };
        let chosen = upstream
            .select(key, ctx.tried)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy backend"))?;
        ctx.attempts = ctx.attempts.saturating_add(1);
        ctx.tried |= tried_bit(chosen.index);
        ctx.backend = Some(chosen.index);
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
        headers::set_forwarding(req, &fwd, &self.rt.client_ip.header);
        req.insert_header(self.rt.request_id_header.clone(), ctx.request_id.clone())?;
        if let Some(host) = &self.upstream(ctx)?.host_header {
            req.insert_header(http::header::HOST, host.clone())?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::strip_response_hop_by_hop(resp);
        self.rt.response_headers.apply(resp);
        resp.insert_header(self.rt.request_id_header.clone(), ctx.request_id.clone())?;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // Nothing reached the backend, but a POST is still answered at once (SPEC §4).
        let retry = self.may_retry(session, ctx).unwrap_or(false)
            && self
                .upstream(ctx)
                .is_ok_and(|u| u.has_untried_healthy(ctx.tried));
        e.set_retry(retry);
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
        let allowed =
            e.esource() == &ErrorSource::Upstream && self.may_retry(session, ctx).unwrap_or(false);
        if !allowed {
            e.set_retry(false);
        } else if self
            .upstream(ctx)
            .is_ok_and(|u| u.has_untried_healthy(ctx.tried))
        {
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
        if log::log_enabled!(target: "parapet::access", log::Level::Debug) {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            log::debug!(
                target: "parapet::access",
                "{} {} {} status={} attempts={} backend={:?} error={:?} {}us",
                ctx.client_ip,
                session.req_header().method,
                session.req_header().uri,
                status,
                ctx.attempts,
                ctx.backend,
                e.map(|e| e.etype().as_str()),
                ctx.started.elapsed().as_micros(),
            );
        }
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
