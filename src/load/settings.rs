//! The validated configuration: every section turned into what the runtime uses by
//! the module that owns it. Addresses are resolved, names are `HeaderName`s, routes
//! point at upstreams by index. No serde type is left, and the request path never
//! parses configuration.

use crate::admin::config::AdminSettings;
use crate::cache::config::CacheSettings;
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
    pub server: ServerConf,
    pub listeners: Vec<Listener>,
    pub client_ip: ClientIpPolicy,
    pub request_id_header: HeaderName,
    pub upstreams: Vec<UpstreamSettings>,
    pub routes: Vec<Route>,
    pub response_headers: ResponseHeaderRules,
    pub limits: RequestLimits,
    pub admin: Option<AdminSettings>,
    pub access_log: Option<Target>,
    /// The shared cache; `None` when no route caches.
    pub cache: Option<CacheSettings>,
}
