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

pub struct RequestCtx {
    /// When the request head arrived.
    pub started: Instant,
    pub request_id: HeaderValue,
    pub trace: Option<TraceContext>,
    pub client: Client,
    /// `Strict-Transport-Security` of the TLS listener the request came in on.
    pub hsts: Option<HeaderValue>,
    pub route: Option<RouteMatch>,
    pub attempts: Attempts,
    /// The policy that refused the request, for the access log.
    pub refused_by: Option<&'static str>,
    /// What the route's policies decided in the request phase, for the response.
    pub policies: PolicyState,
    /// Request body bytes read so far, against `limits.max_request_body_bytes`.
    pub body_bytes: u64,
    /// Body read ahead that Pingora's retry buffer could not hold: sent upstream
    /// before the rest (`limits.request_buffer`).
    pub body_prefix: Option<bytes::Bytes>,
    /// Boxed, and only on caching routes: what it holds would make every request's
    /// context, and the futures that carry it, larger.
    pub cache: Option<Box<CacheCtx>>,
    /// Counts the request in `parapet_requests_active` while it lives.
    pub active: Option<ActiveRequest>,
}

impl RequestCtx {
    pub fn new() -> Self {
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
