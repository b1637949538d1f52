//! The validated configuration: every section turned into what the runtime uses by
//! the module that owns it. Addresses are resolved, names are `HeaderName`s, routes
//! point at upstreams by index. No serde type is left, and the request path never
//! parses configuration.

use crate::admin::config::AdminSettings;
use crate::cache::config::CacheSettings;
use crate::fleet::config::FleetSettings;
use crate::listener::Listener;
use crate::observe::access_log::Target;
use crate::policy::client_ip::ClientIpPolicy;
use crate::policy::headers::ResponseHeaderRules;
use crate::policy::limits::RequestLimits;
use crate::routing::Route;
use crate::upstream::UpstreamSettings;
use http::HeaderName;
use pingora::server::configuration::ServerConf;

pub struct Settings {
    /// Pingora's own server keys, passed to `Server` unchanged.
    pub(crate) server: ServerConf,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) client_ip: ClientIpPolicy,
    pub(crate) request_id_header: HeaderName,
    pub(crate) upstreams: Vec<UpstreamSettings>,
    pub(crate) routes: Vec<Route>,
    pub(crate) response_headers: ResponseHeaderRules,
    pub(crate) limits: RequestLimits,
    pub(crate) admin: Option<AdminSettings>,
    pub(crate) access_log: Option<Target>,
    /// The shared cache; `None` when no route caches.
    pub(crate) cache: Option<CacheSettings>,
    /// This instance's name and the fleet's shared store.
    pub(crate) fleet: FleetSettings,
}
