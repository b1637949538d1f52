//! Everything the request path reads, built once from the validated settings and
//! shared by `Arc`. Starting it yields the background services (health checks) that
//! the server must run beside the proxy.

use crate::config::model::{ClientIpSettings, Settings};
use crate::policy::headers::ResponseHeaderRules;
use crate::routing::RouteTable;
use crate::upstream::Upstream;
use http::HeaderName;
use pingora::services::ServiceWithDependents;

pub struct Runtime {
    pub routes: RouteTable,
    pub upstreams: Vec<Upstream>,
    pub client_ip: ClientIpSettings,
    pub request_id_header: HeaderName,
    pub response_headers: ResponseHeaderRules,
}

impl Runtime {
    /// Build the runtime from validated settings, returning it with the background
    /// services it needs.
    pub fn build(
        settings: Settings,
    ) -> pingora::Result<(Runtime, Vec<Box<dyn ServiceWithDependents>>)> {
        let mut upstreams = Vec::with_capacity(settings.upstreams.len());
        let mut services = Vec::new();
        for spec in &settings.upstreams {
            let (upstream, service) = Upstream::build(spec)?;
            upstreams.push(upstream);
            services.extend(service);
        }
        let runtime = Runtime {
            routes: RouteTable::new(settings.routes),
            upstreams,
            client_ip: settings.client_ip,
            request_id_header: settings.request_id_header,
            response_headers: settings.response_headers,
        };
        Ok((runtime, services))
    }
}
