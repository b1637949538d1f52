//! The end of a request: metrics and the access log line, both fed from the
//! context. Runs in `logging`, which Pingora calls on every path.

use super::RequestCtx;
use crate::error_page;
use crate::observe::access_log::Record;
use crate::runtime::Runtime;
use http::header;
use pingora::proxy::Session;
use pingora::Error;
use std::time::SystemTime;

/// nginx's convention for "the client closed the connection before the answer".
const CLIENT_CLOSED: u16 = 499;

pub(super) fn finish(rt: &Runtime, session: &Session, e: Option<&Error>, ctx: &mut RequestCtx) {
    ctx.attempts.release();
    ctx.active = None;
    let status = match (session.response_written(), e) {
        (Some(resp), _) => resp.status.as_u16(),
        (None, Some(e)) => match error_page::status_for(e) {
            0 => CLIENT_CLOSED,
            code => code,
        },
        (None, None) => CLIENT_CLOSED,
    };
    let duration = ctx.started.elapsed();
    rt.requests
        .request_done(ctx.route.map(|r| r.route), status, duration);
    if let (Some(shield), Some(result)) = (&rt.shield, ctx.cache.as_ref().and_then(|c| c.result)) {
        shield.served(result, session.body_bytes_sent() as u64);
    }
    let Some(log) = &rt.access_log else {
        return;
    };
    let req = session.req_header();
    log.record(&Record {
        time: SystemTime::now(),
        request_id: ctx.request_id.as_bytes(),
        trace_id: ctx.trace.as_ref().map(|t| &t.trace_id),
        client_ip: ctx.client.ip,
        method: req.method.as_str(),
        scheme: ctx.client.scheme.as_str(),
        protocol: protocol(req.version),
        host: Some(crate::http_util::host::of(req)).filter(|h| !h.is_empty()),
        path: req.uri.path_and_query().map_or("/", |p| p.as_str()),
        status,
        bytes_in: session.body_bytes_read() as u64,
        bytes_out: session.body_bytes_sent() as u64,
        upstream: ctx.route.map(|r| r.upstream),
        backend: ctx.attempts.backend,
        attempts: ctx.attempts.count,
        cache: ctx.cache.as_ref().and_then(|c| c.result),
        refused_by: ctx.refused_by,
        duration,
        upstream_duration: ctx.attempts.elapsed,
        user_agent: req.headers.get(header::USER_AGENT).map(|u| u.as_bytes()),
    });
}

fn protocol(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}
