//! The per-request context: filled as the request moves through the hooks, read by
//! later hooks and by the report at the end. Grouped by what fills it: the client,
//! the route, the upstream attempts and the timing.

use super::attempt::Attempts;
use crate::cache::CacheCtx;
use crate::observe::metrics::ActiveRequest;
use crate::observe::trace::TraceContext;
use crate::policy::client_ip::Client;
use crate::routing::{PolicyState, RouteMatch};
use http::HeaderValue;
use std::time::Instant;

pub(crate) struct RequestCtx {
    /// When the request head arrived.
    pub(crate) started: Instant,
    pub(crate) request_id: HeaderValue,
    pub(crate) trace: Option<TraceContext>,
    pub(crate) client: Client,
    /// `Strict-Transport-Security` of the TLS listener the request came in on.
    pub(crate) hsts: Option<HeaderValue>,
    pub(crate) route: Option<RouteMatch>,
    pub(crate) attempts: Attempts,
    /// The policy that refused the request, for the access log.
    pub(crate) refused_by: Option<&'static str>,
    /// What the route's policies decided in the request phase, for the response.
    pub(crate) policies: PolicyState,
    /// Request body bytes read so far, against `limits.max_request_body_bytes`.
    pub(crate) body_bytes: u64,
    /// Body read ahead that Pingora's retry buffer could not hold: sent upstream
    /// before the rest (`limits.request_buffer`).
    pub(crate) body_prefix: Option<bytes::Bytes>,
    /// Boxed, and only on caching routes: what it holds would make every request's
    /// context, and the futures that carry it, larger.
    pub(crate) cache: Option<Box<CacheCtx>>,
    /// Counts the request in `parapet_requests_active` while it lives.
    pub(crate) active: Option<ActiveRequest>,
}

impl RequestCtx {
    pub(crate) fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            trace: None,
            client: Client::default(),
            hsts: None,
            route: None,
            attempts: Attempts::default(),
            body_bytes: 0,
            body_prefix: None,
            policies: PolicyState::default(),
            refused_by: None,
            cache: None,
            active: None,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
