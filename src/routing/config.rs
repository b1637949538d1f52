//! One entry of `routes` as the operator wrote it, and its validation into a
//! `Route`. Each per-route policy adds its key here and converts it with its own
//! module's `from_config`.

use super::{HostMatch, Route, RoutePolicies};
use crate::cache::config::{CacheKeyConfig, RouteCache, RouteCacheConfig};
use crate::config::{field, ConfigErrors};
use crate::policy::access::{AccessConfig, AccessList};
use crate::policy::compression::{Compression, CompressionConfig};
use crate::policy::cors::{Cors, CorsConfig};
use crate::policy::rate_limit::{RateLimit, RateLimitConfig};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteConfig {
    #[serde(default = "default_route_host")]
    pub(crate) host: String,
    #[serde(default = "default_path_prefix")]
    pub(crate) path_prefix: String,
    pub(crate) upstream: String,
    /// Store and answer from the cache (GET and HEAD): `true`, or a map of options.
    #[serde(default)]
    pub(crate) cache: RouteCacheConfig,
    pub(crate) cache_key: Option<CacheKeyConfig>,
    /// CIDR allow and deny lists on the client IP.
    pub(crate) access: Option<AccessConfig>,
    /// Cross-origin requests answered at the edge.
    pub(crate) cors: Option<CorsConfig>,
    /// Requests per second and burst.
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// Answers compressed at the edge.
    pub(crate) compression: Option<CompressionConfig>,
}

fn default_route_host() -> String {
    "*".into()
}
fn default_path_prefix() -> String {
    "/".into()
}

/// How routes find their upstream: `valid` names the upstreams that were built, in
/// the runtime's order; `defined` every name in the file, so that a route naming an
/// upstream that is defined but wrong is not reported a second time.
pub(crate) struct UpstreamNames<'a> {
    pub(crate) valid: Vec<&'a str>,
    pub(crate) defined: Vec<&'a str>,
}

impl Route {
    /// `path` is `routes[i]`. `None` when the route cannot be built; its problems
    /// are in `errors`.
    pub(crate) fn from_config(
        config: RouteConfig,
        upstreams: &UpstreamNames,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Route> {
        let host = HostMatch::parse(&config.host)
            .map_err(|m| errors.push(field(path, "host"), m))
            .ok();
        if !config.path_prefix.starts_with('/') {
            errors.push(field(path, "path_prefix"), "must start with '/'");
        }
        let cache = RouteCache::from_config(config.cache, config.cache_key, path, errors);
        let access = config
            .access
            .and_then(|a| AccessList::from_config(a, &field(path, "access"), errors));
        let cors = config.cors.and_then(|c| Cors::from_config(c, path, errors));
        let rate_limit = config
            .rate_limit
            .and_then(|r| RateLimit::from_config(r, path, errors));
        let compression = config
            .compression
            .and_then(|c| Compression::from_config(c, path, errors));
        let upstream = upstreams.valid.iter().position(|u| *u == config.upstream);
        if !upstreams.defined.contains(&config.upstream.as_str()) {
            errors.push(
                field(path, "upstream"),
                format!("'{}' is not defined under `upstreams`", config.upstream),
            );
        }
        Some(Route {
            label: format!(
                "{}{}",
                config.host.trim().to_ascii_lowercase(),
                config.path_prefix
            ),
            host: host?,
            path_prefix: config.path_prefix,
            upstream: upstream?,
            policies: RoutePolicies {
                cache,
                access,
                cors,
                rate_limit,
                compression,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> (Option<Route>, Vec<String>) {
        let config: RouteConfig = serde_yaml::from_str(yaml).unwrap();
        let names = UpstreamNames {
            valid: vec!["other", "app"],
            defined: vec!["other", "app", "broken"],
        };
        let mut errors = ConfigErrors::default();
        let route = Route::from_config(config, &names, "routes[0]", &mut errors);
        (route, errors.paths())
    }

    #[test]
    fn a_route_points_at_its_upstream_by_index() {
        let (r, problems) = route("{host: '*.Example.com', path_prefix: /api/, upstream: app}");
        let r = r.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(r.upstream, 1);
        assert_eq!(r.label, "*.example.com/api/");
        assert_eq!(r.host, HostMatch::Suffix(".example.com".into()));
        assert_eq!(r.policies.cache, None);
        let (r, _) = route("{upstream: app, cache: true, cache_key: {query: none}}");
        let query = r.unwrap().policies.cache.map(|c| c.query);
        assert_eq!(query, Some(crate::cache::config::QueryKey::None));
    }

    #[test]
    fn each_problem_names_its_field() {
        let (r, problems) = route("{host: 'a b', path_prefix: api, upstream: nope}");
        assert!(r.is_none());
        assert_eq!(
            problems,
            [
                "routes[0].host",
                "routes[0].path_prefix",
                "routes[0].upstream"
            ]
        );
        // Defined but invalid: reported where it is defined, not here.
        let (r, problems) = route("{upstream: broken}");
        assert!(r.is_none() && problems.is_empty());
    }
}
