//! The dispatcher: each of Parapet's sections goes to the module that owns it
//! (deserialized on its own, so one mistake does not hide the next), and what spans
//! two sections is checked here: routes name upstreams, the admin listener must not
//! take a proxy listener's address. Runs once at load (and for `parapet -t`).

use super::Settings;
use crate::admin::config::{AdminConfig, AdminSettings};
use crate::cache::config::CacheSettings;
use crate::config::{section, section_or_default, ConfigErrors};
use crate::fleet::config::{FleetSettings, RedisConfig};
use crate::listener::Listener;
use crate::observe::access_log::{AccessLogConfig, Target};
use crate::observe::request_id;
use crate::policy::client_ip::ClientIpPolicy;
use crate::policy::headers::ResponseHeaderRules;
use crate::policy::limits::RequestLimits;
use crate::routing::config::{RouteConfig, UpstreamNames};
use crate::routing::Route;
use crate::upstream::config::UpstreamConfig;
use crate::upstream::UpstreamSettings;
use pingora::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;

/// The top-level keys that belong to Parapet; every other key must be one of
/// Pingora's own server keys.
pub(super) const SECTIONS: &[&str] = &[
    "listeners",
    "client_ip",
    "request_id",
    "upstreams",
    "routes",
    "response_headers",
    "admin",
    "access_log",
    "cache",
    "limits",
    "name",
    "redis",
];

pub(super) fn validate(
    server: ServerConf,
    sections: &Mapping,
    errors: &mut ConfigErrors,
) -> Option<Settings> {
    let get = |name: &str| sections.get(name).filter(|v| !v.is_null());

    let listeners: Vec<Value> = section_or_default(get("listeners"), "listeners", errors);
    let listeners = Listener::list_from_config(&listeners, errors);
    let client_ip = section_or_default(get("client_ip"), "client_ip", errors);
    let client_ip = ClientIpPolicy::from_config(client_ip, errors);
    let request_id = section_or_default(get("request_id"), "request_id", errors);
    let request_id_header = request_id::header_from_config(request_id, errors);
    let response_headers = section_or_default(get("response_headers"), "response_headers", errors);
    let response_headers = ResponseHeaderRules::from_config(response_headers, errors);
    let limits = section_or_default(get("limits"), "limits", errors);
    let limits = RequestLimits::from_config(limits, errors);

    let upstream_values: BTreeMap<String, Value> =
        section_or_default(get("upstreams"), "upstreams", errors);
    let upstreams = upstreams_of(&upstream_values, errors);
    let names = UpstreamNames {
        valid: upstreams.iter().map(|u| u.name.as_str()).collect(),
        defined: upstream_values.keys().map(String::as_str).collect(),
    };
    let routes = routes_of(get("routes"), &names, errors);

    let admin = get("admin")
        .and_then(|v| section::<AdminConfig>(v, "admin", errors))
        .and_then(|a| AdminSettings::from_config(a, &listeners, errors));
    let access_log = get("access_log")
        .and_then(|v| section::<AccessLogConfig>(v, "access_log", errors))
        .and_then(|a| Target::from_config(a, errors));
    let cache = section_or_default(get("cache"), "cache", errors);
    let cache = CacheSettings::from_config(cache, errors);
    let caching = routes.iter().any(|r| r.policies.cache.is_some());
    let name = get("name").and_then(|v| section::<String>(v, "name", errors));
    let redis = get("redis").and_then(|v| section::<RedisConfig>(v, "redis", errors));
    let fleet = FleetSettings::from_config(name, redis, errors);
    fleet_uses(&fleet, &routes, &upstreams, errors);

    Some(Settings {
        server,
        listeners,
        client_ip: client_ip?,
        request_id_header: request_id_header?,
        upstreams,
        routes,
        response_headers,
        limits,
        admin,
        access_log,
        cache: caching.then_some(cache),
        fleet,
    })
}

/// What needs the fleet's pieces has them: a global rate limit needs `redis`,
/// and an upstream hashed by `cache_key` is used only by caching routes.
fn fleet_uses(
    fleet: &FleetSettings,
    routes: &[Route],
    upstreams: &[UpstreamSettings],
    errors: &mut ConfigErrors,
) {
    for (i, route) in routes.iter().enumerate() {
        let global = route
            .policies
            .rate_limit
            .as_ref()
            .is_some_and(|l| l.is_global());
        if global && fleet.redis.is_none() {
            let why = "global needs the top-level redis section (redis: {url: redis://...})";
            errors.push(format!("routes[{i}].rate_limit.scope"), why);
        }
        let by_cache_key = upstreams
            .get(route.upstream)
            .is_some_and(|u| u.hash_key == crate::upstream::HashKey::CacheKey);
        if by_cache_key && route.policies.cache.is_none() {
            let name = upstreams
                .get(route.upstream)
                .map_or("", |u| u.name.as_str());
            let why = format!(
                "upstream {name} is hashed by cache_key, which only a route with cache: true has"
            );
            errors.push(format!("routes[{i}].upstream"), why);
        }
    }
}

fn upstreams_of(
    values: &BTreeMap<String, Value>,
    errors: &mut ConfigErrors,
) -> Vec<UpstreamSettings> {
    if values.is_empty() {
        errors.push("upstreams", "at least one upstream is required");
    }
    values
        .iter()
        .filter_map(|(name, value)| {
            let path = format!("upstreams.{name}");
            let config = section::<UpstreamConfig>(value, &path, errors)?;
            Some(UpstreamSettings::from_config(name, config, &path, errors))
        })
        .collect()
}

fn routes_of(
    value: Option<&Value>,
    names: &UpstreamNames,
    errors: &mut ConfigErrors,
) -> Vec<Route> {
    let values: Vec<Value> = section_or_default(value, "routes", errors);
    if values.is_empty() {
        errors.push("routes", "at least one route is required");
    }
    values
        .iter()
        .enumerate()
        .filter_map(|(i, value)| {
            let path = format!("routes[{i}]");
            let config = section::<RouteConfig>(value, &path, errors)?;
            Route::from_config(config, names, &path, errors)
        })
        .collect()
}
