//! The request path's side of response compression (`policy::compression`): the
//! route's policy picks the coding and says which answers qualify; Pingora's
//! compression module, added only when some route compresses, does the work, told
//! the coding through `pingora_compat::compression`.

use super::{Parapet, RequestCtx};
use crate::pingora_compat as compat;
use crate::policy::compression::{self, Compression};
use http::header::ACCEPT_ENCODING;
use pingora::http::ResponseHeader;
use pingora::modules::http::compression::ResponseCompression;
use pingora::proxy::Session;

impl Parapet {
    /// On a compressing route, tell the module the one coding to use: the
    /// client's preference among the route's (the module reads it from an
    /// `Accept-Encoding` of that coding alone).
    pub(super) fn start_compression(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        policy: &Compression,
    ) {
        let accept = session.req_header().headers.get_all(ACCEPT_ENCODING);
        let Some(algorithm) = policy.negotiate(accept) else {
            return;
        };
        let Some(module) = session
            .downstream_modules_ctx
            .get_mut::<ResponseCompression>()
        else {
            return;
        };
        if compat::compression::choose(module, algorithm, compression::level(algorithm)) {
            ctx.compressing = true;
        }
    }

    /// An answer that does not qualify (type, size, a range) goes out as it is.
    pub(super) fn settle_compression(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        resp: &ResponseHeader,
    ) {
        let policy = ctx
            .route
            .and_then(|m| self.rt.route(m.route))
            .and_then(|r| r.policies.compression.as_ref());
        if policy.is_some_and(|p| !p.applies_to(resp)) {
            stop_compression(session);
        }
    }
}

/// Parapet's own answers (error pages) go out as they are.
pub(super) fn stop_compression(session: &mut Session) {
    if let Some(module) = session
        .downstream_modules_ctx
        .get_mut::<ResponseCompression>()
    {
        if module.is_header_phase() {
            module.adjust_level(0);
        }
    }
}
