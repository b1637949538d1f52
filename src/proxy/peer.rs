//! `upstream_peer`: which backend of the route's upstream this attempt goes to.

use super::{Parapet, RequestCtx};
use pingora::cache::key::CacheHashKey;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

impl Parapet {
    /// A healthy backend not tried yet by this request, keyed as the upstream's
    /// `hash_key` says (the cache key's hash for a tier of shields); a WebSocket
    /// handshake's peer outlasts the idle timeout; the attempt begins.
    pub(super) fn choose_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let upstream = self.upstream(ctx)?;
        let cache_key = || {
            let (shield, route) = self.caching(ctx)?;
            Some(
                shield
                    .key(session.req_header(), route, ctx.client.scheme)
                    .primary_bin(),
            )
        };
        let key = upstream.key_of(session.req_header(), ctx.client.ip, cache_key);
        let mut chosen = upstream
            .select(key.as_bytes(), ctx.attempts.tried)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy backend"))?;
        upstream
            .websocket
            .fit_peer(session.req_header(), &mut chosen.peer);
        if ctx.attempts.count == 0 {
            upstream.retry.request_sent(ctx.started);
        }
        ctx.body_bytes = 0;
        ctx.attempts
            .begin(chosen.index, upstream.state(chosen.index));
        Ok(chosen.peer)
    }
}
