//! What Parapet answers itself, before or instead of an origin: refusals of
//! malformed or unwanted requests, its error pages, and CORS preflights.
//!
//! Each answer's await is boxed by its caller's side: these are rare, and their
//! state would otherwise size the future of every request.

use super::{Parapet, RequestCtx};
use crate::cache::status::CACHE_STATUS;
use crate::error_page;
use crate::http_util::host;
use crate::policy::cors::{Cors, Preflight};
use crate::policy::request_buffer::Buffered;
use crate::policy::{framing, limits};
use crate::routing::{Admission, RoutePolicies};
use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

impl Parapet {
    /// The status of a request that must not go anywhere: ambiguous framing, a bad
    /// `Host`, a head or declared body over the limits; and which check said so.
    pub(super) fn malformed(&self, session: &Session) -> Option<(u16, &'static str)> {
        if framing::has_conflicting_length(session) {
            return Some((400, "framing"));
        }
        if framing::has_bad_host(session.req_header()) {
            return Some((400, "host"));
        }
        match self.rt.limits.check_head(session) {
            limits::Verdict::Within => None,
            limits::Verdict::HeadTooLarge => Some((431, "limits")),
            limits::Verdict::BodyTooLarge => Some((413, "limits")),
        }
    }

    /// Read a body of up to `limits.request_buffer` whole before any backend is
    /// asked. A client that fails to send it gets the answer its error calls for
    /// (400 malformed, 408 too slow); one over the body limit gets 413.
    pub(super) async fn read_ahead(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let limits = &self.rt.limits;
        let buffered = limits.buffer.fill(session, limits.body_bytes).await;
        let read = match buffered {
            Err(e) => {
                ctx.refused_by = Some("request_buffer");
                return Err(e);
            }
            Ok(Buffered::Whole(read)) => read,
            Ok(Buffered::Partial(read, prefix)) => {
                ctx.body_prefix = prefix;
                read
            }
        };
        if read > limits.body_bytes {
            return self.refuse(session, ctx, 413, "limits").await;
        }
        Ok(false)
    }

    /// `redirect_https` on a cleartext listener: 301 to the same host (without its
    /// port, as nginx's `$host`), path and query over https.
    pub(super) async fn redirect_to_https(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        let req = session.req_header();
        let host = host::strip_port(host::of(req));
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let location = [b"https://", host, target.as_bytes()].concat();
        let Ok(location) = HeaderValue::from_bytes(&location) else {
            return self.refuse(session, ctx, 400, "host").await;
        };
        if host.is_empty() {
            return self.refuse(session, ctx, 400, "host").await;
        }
        ctx.refused_by = Some("redirect_https");
        let mut resp = ResponseHeader::build(301, Some(3))?;
        resp.insert_header(http::header::LOCATION, location)?;
        resp.insert_header(http::header::CONTENT_LENGTH, 0)?;
        resp.insert_header(self.rt.request_id_header.clone(), ctx.request_id.clone())?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    /// Answer at the edge with an error page; the request goes no further.
    /// `by` names the policy that refused, for the access log's `refused_by`.
    pub(super) async fn refuse(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
        by: &'static str,
    ) -> Result<bool> {
        ctx.refused_by = Some(by);
        // The rest of a malformed request, or an unread body, cannot be skipped.
        if matches!(status, 400 | 413 | 431) {
            session.set_keepalive(None);
        }
        // Boxed: rare, and its state would otherwise size every request's future.
        Box::pin(self.error_page(session, ctx, status)).await?;
        Ok(true)
    }

    /// Parapet's own answer, with `Cache-Status` on a caching route.
    pub(super) async fn error_page(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        status: u16,
    ) -> Result<()> {
        let cache_status = self.cache_status(session, ctx).and_then(|f| f.header());
        let mut extra: Vec<_> = cache_status
            .map(|v| (CACHE_STATUS.clone(), v))
            .into_iter()
            .collect();
        if let Some(route) = ctx.route.and_then(|m| self.rt.route(m.route)) {
            let modules = &mut session.downstream_modules_ctx;
            route
                .policies
                .on_refusal(modules, &ctx.policies, &mut extra);
        }
        let id_header = &self.rt.request_id_header;
        error_page::send(session, status, &ctx.request_id, id_header, extra).await
    }

    /// The route's policies that may answer first (`RoutePolicies::on_request`):
    /// `Some` when the request was answered.
    pub(super) async fn route_policies(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        policies: &RoutePolicies,
    ) -> Option<Result<bool>> {
        let grouping = self.rt.client_ip.grouping;
        let req = session.downstream_session.req_header();
        let modules = &mut session.downstream_modules_ctx;
        let admission = policies.on_request(&ctx.client, grouping, req, modules, &mut ctx.policies);
        match admission.await {
            Admission::Pass => None,
            Admission::Refuse(status, by) => Some(self.refuse(session, ctx, status, by).await),
            Admission::Preflight(cors, p) => {
                Some(Box::pin(self.preflight(session, ctx, cors, p)).await)
            }
        }
    }

    /// Answer a CORS preflight from an allowed origin: 204, never forwarded.
    pub(super) async fn preflight(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        cors: &Cors,
        preflight: Preflight,
    ) -> Result<bool> {
        let mut resp = ResponseHeader::build(204, Some(Cors::PREFLIGHT_FIELDS + 1))?;
        for (name, value) in cors.preflight_headers(preflight) {
            resp.insert_header(name.clone(), value.clone())?;
        }
        resp.insert_header(self.rt.request_id_header.clone(), ctx.request_id.clone())?;
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }
}
