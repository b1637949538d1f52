//! The per-request context: filled as the request moves through the hooks, read by
//! later hooks and by the report at the end.

use crate::observe::trace::TraceContext;
use crate::routing::RouteMatch;
use http::HeaderValue;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

pub struct RequestCtx {
    pub started: Instant,
    pub request_id: HeaderValue,
    pub trace: Option<TraceContext>,
    pub route: Option<RouteMatch>,
    pub peer_ip: IpAddr,
    pub client_ip: IpAddr,
    pub trusted_peer: bool,
    /// Upstream attempts made so far.
    pub attempts: u8,
    /// Backends tried, a bit per backend index.
    pub tried: u64,
    /// The backend of the latest attempt, counted in its in-flight gauge until the
    /// attempt ends.
    pub backend: Option<usize>,
    pub backend_busy: bool,
    /// When the first attempt started, and how long until a response head arrived.
    pub upstream_started: Option<Instant>,
    pub upstream_elapsed: Option<Duration>,
    /// The request was counted in `parapet_connections_active`.
    pub counted_active: bool,
}

impl RequestCtx {
    pub fn new() -> Self {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            trace: None,
            route: None,
            peer_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            trusted_peer: false,
            attempts: 0,
            tried: 0,
            backend: None,
            backend_busy: false,
            upstream_started: None,
            upstream_elapsed: None,
            counted_active: false,
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}
