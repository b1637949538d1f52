//! Everything the request path reads, built once from the validated settings by
//! `load::assemble` and shared by `Arc`.

use crate::cache::Shield;
use crate::connection::caps::ConnectionGates;
use crate::connection::handoff::Handoff;
use crate::fleet::RedisStore;
use crate::listener::ListenerPolicies;
use crate::observe::access_log::AccessLog;
use crate::observe::metrics::{Metrics, RequestMetrics};
use crate::policy::client_ip::ClientIpPolicy;
use crate::policy::headers::ResponseHeaderRules;
use crate::policy::limits::RequestLimits;
use crate::routing::{Route, RouteTable};
use crate::upstream::Upstream;
use http::{HeaderName, HeaderValue};
use std::sync::Arc;

pub(crate) struct Runtime {
    pub(crate) listeners: ListenerPolicies,
    /// The listeners' connection caps and the count of open connections.
    pub(crate) connections: Arc<ConnectionGates>,
    /// Set once a graceful upgrade hands the listeners over.
    pub(crate) handoff: Arc<Handoff>,
    /// Some route compresses its answers: Pingora's compression module is added.
    pub(crate) compresses: bool,
    pub(crate) routes: RouteTable,
    pub(crate) upstreams: Vec<Upstream>,
    pub(crate) client_ip: ClientIpPolicy,
    pub(crate) request_id_header: HeaderName,
    pub(crate) response_headers: ResponseHeaderRules,
    pub(crate) limits: RequestLimits,
    pub(crate) metrics: Metrics,
    pub(crate) requests: RequestMetrics,
    pub(crate) access_log: Option<AccessLog>,
    /// The cache, when some route caches.
    pub(crate) shield: Option<Shield>,
    /// This instance's `CDN-Loop` member.
    pub(crate) name: HeaderValue,
    /// The fleet's shared store, when `redis` is set.
    pub(crate) store: Option<Arc<RedisStore>>,
}

impl Runtime {
    /// The route a `RouteMatch` found.
    pub(crate) fn route(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }
}
