//! The runtime assembled from the validated settings: every feature's runtime
//! object, its metrics registered, and the background services (health checks, the
//! access log writer, the hand-off watch) that the server must run beside the proxy.

use super::Settings;
use crate::admin::config::AdminSettings;
use crate::cache::Shield;
use crate::connection::caps::ConnectionGates;
use crate::connection::handoff::{Handoff, HandoffWatch};
use crate::fleet::RedisStore;
use crate::listener::ListenerPolicies;
use crate::memory::AllocatorPurge;
use crate::observe::access_log;
use crate::observe::metrics::{Metrics, RequestMetrics};
use crate::routing::{RoutePolicies, RouteTable};
use crate::runtime::Runtime;
use crate::upstream::retry::RetryFamilies;
use crate::upstream::{BackendFamilies, Upstream};
use pingora::services::background::background_service;
use pingora::services::ServiceWithDependents;
use pingora::{Error, ErrorType};
use std::sync::Arc;
use std::time::Duration;

/// A built runtime, what it needs running, and the admin listener's settings.
pub(crate) struct Built {
    pub(crate) runtime: Runtime,
    pub(crate) services: Vec<Box<dyn ServiceWithDependents>>,
    pub(crate) admin: Option<AdminSettings>,
}

/// `grace` is how long in-flight requests may finish after shutdown starts.
pub(crate) fn assemble(mut settings: Settings, grace: Duration) -> pingora::Result<Built> {
    let registering = |e| Error::because(ErrorType::InternalError, "registering metrics", e);
    let metrics = Metrics::default();
    let requests = RequestMetrics::register(metrics.registry(), &route_labels(&settings))
        .map_err(registering)?;
    let families = BackendFamilies::register(metrics.registry()).map_err(registering)?;
    let connections = ConnectionGates::register(
        metrics.registry(),
        &settings.listeners,
        settings.client_ip.grouping,
    )
    .map_err(registering)?;
    let retry_families = RetryFamilies::register(metrics.registry()).map_err(registering)?;
    RoutePolicies::register_metrics(metrics.registry(), &mut settings.routes)
        .map_err(registering)?;
    let store = match settings.fleet.redis.take() {
        Some(redis) => Some(RedisStore::new(redis, metrics.registry()).map_err(registering)?),
        None => None,
    };
    if let Some(store) = &store {
        RoutePolicies::attach_store(&mut settings.routes, store);
    }
    let upper_tier = settings
        .upstreams
        .iter()
        .any(|u| u.hash_key == crate::upstream::HashKey::CacheKey);
    let handoff = Arc::new(Handoff::default());
    let shield = match settings.cache {
        Some(cache) => Some(
            Shield::build(cache, handoff.clone(), metrics.registry(), upper_tier)
                .map_err(registering)?,
        ),
        None => None,
    };

    let mut upstreams = Vec::with_capacity(settings.upstreams.len());
    let watch = background_service("hand-off watch", HandoffWatch(handoff.clone()));
    let purge = background_service("allocator purge", AllocatorPurge);
    let mut services: Vec<Box<dyn ServiceWithDependents>> = vec![Box::new(watch), Box::new(purge)];
    if let Some(rebuild) = shield.as_ref().and_then(Shield::disk_index_service) {
        services.push(Box::new(background_service("cache disk index", rebuild)));
    }
    for spec in &settings.upstreams {
        let (upstream, service) = Upstream::build(spec, &families, &retry_families)?;
        upstreams.push(upstream);
        services.extend(service);
    }
    let access_log = settings.access_log.map(|target| {
        let names = settings
            .upstreams
            .iter()
            .map(|u| {
                let backends = u.addresses().iter().map(|a| a.to_string()).collect();
                (u.name.clone(), backends)
            })
            .collect();
        let (log, writer) = access_log::channel(target, names, grace);
        services.push(Box::new(background_service("access log", writer)) as Box<_>);
        log
    });
    let compresses = settings
        .routes
        .iter()
        .any(|r| r.policies.compression.is_some());
    let runtime = Runtime {
        listeners: ListenerPolicies::new(&settings.listeners),
        connections: Arc::new(connections),
        handoff,
        compresses,
        routes: RouteTable::new(settings.routes),
        upstreams,
        client_ip: settings.client_ip,
        request_id_header: settings.request_id_header,
        response_headers: settings.response_headers,
        limits: settings.limits,
        metrics,
        requests,
        access_log,
        shield,
        name: settings.fleet.name,
        store,
    };
    Ok(Built {
        runtime,
        services,
        admin: settings.admin,
    })
}

/// (route label, upstream name) per route, for the request metrics.
fn route_labels(settings: &Settings) -> Vec<(&str, &str)> {
    settings
        .routes
        .iter()
        .map(|r| {
            (
                r.label.as_str(),
                settings.upstreams[r.upstream].name.as_str(),
            )
        })
        .collect()
}
