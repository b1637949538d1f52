//! Everything the request path reads, built once from the validated settings and
//! shared by `Arc`. Building it yields the background services (health checks, the
//! access log writer) that the server must run beside the proxy.

use crate::config::model::{AdminSettings, ClientIpSettings, Settings};
use crate::observe::access_log::{self, AccessLog};
use crate::observe::metrics::{Layout, Metrics};
use crate::policy::headers::ResponseHeaderRules;
use crate::routing::RouteTable;
use crate::upstream::Upstream;
use http::HeaderName;
use pingora::services::background::background_service;
use pingora::services::ServiceWithDependents;
use pingora::{Error, ErrorType};
use std::sync::Arc;
use std::time::Duration;

pub struct Runtime {
    pub routes: RouteTable,
    pub upstreams: Vec<Upstream>,
    pub client_ip: ClientIpSettings,
    pub request_id_header: HeaderName,
    pub response_headers: ResponseHeaderRules,
    pub metrics: Arc<Metrics>,
    pub access_log: Option<AccessLog>,
}

/// A built runtime, what it needs running, and the admin listener's settings.
pub struct Built {
    pub runtime: Runtime,
    pub services: Vec<Box<dyn ServiceWithDependents>>,
    pub admin: Option<AdminSettings>,
}

impl Runtime {
    /// `grace` is how long in-flight requests may finish after shutdown starts.
    pub fn build(settings: Settings, grace: Duration) -> pingora::Result<Built> {
        let layout = Layout {
            routes: settings
                .routes
                .iter()
                .map(|r| {
                    (
                        r.label.clone(),
                        settings.upstreams[r.upstream].name.as_str(),
                    )
                })
                .collect(),
            upstreams: settings
                .upstreams
                .iter()
                .map(|u| (u.name.as_str(), addresses(u)))
                .collect(),
        };
        let metrics = Metrics::new(&layout)
            .map_err(|e| Error::because(ErrorType::InternalError, "registering metrics", e))?;
        let metrics = Arc::new(metrics);

        let mut upstreams = Vec::with_capacity(settings.upstreams.len());
        let mut services = Vec::new();
        for (index, spec) in settings.upstreams.iter().enumerate() {
            let (upstream, service) = Upstream::build(index, spec, &metrics)?;
            upstreams.push(upstream);
            services.extend(service);
        }
        let access_log = settings.access_log.map(|target| {
            let names = settings
                .upstreams
                .iter()
                .map(|u| (u.name.clone(), addresses(u)))
                .collect();
            let (log, writer) = access_log::channel(target, names, grace);
            services.push(Box::new(background_service("access log", writer)) as Box<_>);
            log
        });
        let runtime = Runtime {
            routes: RouteTable::new(settings.routes),
            upstreams,
            client_ip: settings.client_ip,
            request_id_header: settings.request_id_header,
            response_headers: settings.response_headers,
            metrics,
            access_log,
        };
        Ok(Built {
            runtime,
            services,
            admin: settings.admin,
        })
    }
}

fn addresses(u: &crate::config::model::UpstreamSettings) -> Vec<String> {
    u.backends.iter().map(|b| b.address.to_string()).collect()
}
