//! Interim responses (1xx but 101, such as `103 Early Hints`) on a caching route.
//! Pingora 0.9.1 reads the upstream's tasks in batches and, when the final
//! header of a batch turns on serving from the cache (a cacheable miss), drops
//! the whole batch, the interim headers already filtered in it included
//! (pingora-proxy `proxy_h1.rs`, `proxy_handle_upstream`: `if
//! !serve_from_cache.should_send_to_downstream() { return Ok(None) }`). So an
//! interim response that arrives with the final one never reaches the client.
//! We write it ourselves from `response_filter` and then have Pingora ignore
//! the interim headers it writes (`set_ignore_info_resp`), so it goes out once
//! either way. HTTP/1 only: Pingora's HTTP/2 server drops every interim response
//! (pingora-core `protocols/http/v2/server.rs`, `write_response_header`).
//! Upstream: none found. Delete when a batch keeps the interim headers it holds.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Whether `Parapet` writes this header itself: an interim response other than
/// 101 (the upgrade's final answer) and 100 (Pingora's own `Expect` handling).
pub(crate) fn is_forwarded_early(resp: &ResponseHeader) -> bool {
    resp.status.is_informational() && !matches!(resp.status.as_u16(), 100 | 101)
}

/// Write the interim `resp` to the client now, and have Pingora's own write of
/// it ignored.
pub(crate) async fn forward(session: &mut Session, resp: &ResponseHeader) {
    let downstream = &mut session.downstream_session;
    downstream.set_ignore_info_resp(false);
    if let Err(e) = downstream.write_response_header_ref(resp).await {
        log::debug!("could not forward an interim response: {e}");
    }
    downstream.set_ignore_info_resp(true);
}
