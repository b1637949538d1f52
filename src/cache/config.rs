//! The `cache` section (the shared store and its defaults) and the per-route
//! `cache` / `cache_key` keys, as the operator wrote them and as the runtime uses
//! them.

use crate::config::units::{Percent, Size, Span};
use crate::config::{field, require_nonzero, ConfigErrors};
use serde::Deserialize;
use std::time::Duration;

/// The largest object the store can hold (its weights count KiB in 16 bits).
pub(crate) const LARGEST_OBJECT: u64 = super::storage::MAX_OBJECT_SIZE as u64;

/// The top-level `cache` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CacheConfig {
    pub(crate) max_size: Size,
    pub(crate) max_object_size: Size,
    /// Freshness for responses that carry none (no max-age, s-maxage or Expires);
    /// unset, such responses are not stored.
    pub(crate) default_ttl: Option<Span>,
    /// Heuristic freshness (RFC 9111 §4.2.2): this share of the time since
    /// `Last-Modified`, for the statuses that are heuristically cacheable; unset,
    /// off.
    pub(crate) heuristic: Option<Percent>,
    /// The longest heuristic freshness.
    pub(crate) heuristic_max: Span,
    /// How long a stale object may be served while it is refreshed, when the
    /// origin does not say (`stale-while-revalidate`).
    pub(crate) stale_while_revalidate: Span,
    /// How long a stale object may be served when the origin fails, when the
    /// origin does not say (`stale-if-error`).
    pub(crate) stale_if_error: Span,
    /// How long requests for an object being fetched wait for that fetch.
    pub(crate) lock_timeout: Span,
    /// The disk tier below the memory store; none by default.
    pub(crate) disk: Option<super::disk::DiskConfig>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: Size(256 << 20),
            max_object_size: Size(8 << 20),
            default_ttl: None,
            heuristic: None,
            heuristic_max: Span(Duration::from_secs(86_400)),
            stale_while_revalidate: Span(Duration::ZERO),
            stale_if_error: Span(Duration::ZERO),
            lock_timeout: Span(Duration::from_secs(5)),
            disk: None,
        }
    }
}

/// The validated `cache` section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CacheSettings {
    pub(crate) max_size: usize,
    pub(crate) max_object_size: usize,
    pub(crate) default_ttl: Option<Duration>,
    /// The share of the time since `Last-Modified`, and its cap.
    pub(crate) heuristic: Option<(f64, Duration)>,
    pub(crate) stale_while_revalidate: Duration,
    pub(crate) stale_if_error: Duration,
    pub(crate) lock_timeout: Duration,
    pub(crate) disk: Option<super::disk::DiskSettings>,
}

impl CacheSettings {
    pub(crate) fn from_config(config: CacheConfig, errors: &mut ConfigErrors) -> CacheSettings {
        let at = |name: &str| field("cache", name);
        if config.max_size.0 < 1 << 20 {
            errors.push(at("max_size"), "must be at least 1MiB");
        }
        if config.max_object_size.0 == 0 {
            errors.push(at("max_object_size"), "must be greater than 0");
        } else if config.max_object_size.0 > LARGEST_OBJECT {
            let msg = format!("must be at most {}MiB", LARGEST_OBJECT >> 20);
            errors.push(at("max_object_size"), msg);
        } else if config.max_object_size.0 > config.max_size.0 {
            errors.push(at("max_object_size"), "must not be larger than max_size");
        }
        if config.default_ttl.is_some_and(|t| t.0.is_zero()) {
            errors.push(
                at("default_ttl"),
                "must be greater than 0 (leave it out to store only what the origin marks)",
            );
        }
        if config.heuristic.is_some_and(|p| !(p.0 > 0.0 && p.0 <= 1.0)) {
            errors.push(at("heuristic"), "must be more than 0% and at most 100%");
        }
        require_nonzero(
            "cache",
            &[
                ("lock_timeout", config.lock_timeout.0),
                ("heuristic_max", config.heuristic_max.0),
            ],
            errors,
        );
        let disk = config
            .disk
            .map(|disk| super::disk::DiskSettings::from_config(disk, errors));
        CacheSettings {
            disk,
            max_size: usize::try_from(config.max_size.0).unwrap_or(usize::MAX),
            max_object_size: usize::try_from(config.max_object_size.0).unwrap_or(usize::MAX),
            default_ttl: config.default_ttl.map(|t| t.0),
            heuristic: config.heuristic.map(|p| (p.0, config.heuristic_max.0)),
            stale_while_revalidate: config.stale_while_revalidate.0,
            stale_if_error: config.stale_if_error.0,
            lock_timeout: config.lock_timeout.0,
        }
    }
}

/// A route's `cache_key` as written: which parts of the query make the key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CacheKeyConfig {
    pub(crate) query: Option<QueryConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum QueryConfig {
    /// `all` or `none`.
    Word(String),
    /// The parameters kept, by name.
    Keep(Vec<String>),
}

/// Which query parameters are part of a route's cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryKey {
    /// The whole query, as sent.
    All,
    /// No query: `/a?x=1` and `/a?x=2` are one object.
    None,
    /// Only these parameters, in the order sent.
    Keep(Vec<String>),
}

/// A route's `cache` as written: `true` / `false`, or a map of options (a map
/// enables caching).
#[derive(Debug, Default)]
pub(crate) enum RouteCacheConfig {
    #[default]
    Off,
    On(RouteCacheOptions),
}

/// The options of a route's `cache` map.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RouteCacheOptions {
    pub(crate) set_cookie: SetCookie,
    pub(crate) client_directives: ClientDirectives,
}

/// What the cache does with a response that sets a cookie.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SetCookie {
    /// Not stored, and the key is marked hit-for-miss (as nginx's proxy_cache and
    /// Varnish's built-in VCL refuse it).
    #[default]
    Refuse,
    /// Stored without its `Set-Cookie` fields; the fetching client still gets them.
    Strip,
}

/// Whether the client's request directives (RFC 9111 §5.2.1) count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ClientDirectives {
    #[default]
    Honor,
    /// As nginx and Varnish do by default: a client cannot send a stored object
    /// back to the origin, nor keep a response out of the store.
    Ignore,
}

impl<'de> Deserialize<'de> for RouteCacheConfig {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RouteCacheConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a map of cache options")
            }
            fn visit_bool<E>(self, on: bool) -> Result<RouteCacheConfig, E> {
                Ok(match on {
                    true => RouteCacheConfig::On(RouteCacheOptions::default()),
                    false => RouteCacheConfig::Off,
                })
            }
            // Through the map itself, so an error names the option's own path.
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RouteCacheConfig, A::Error> {
                let de = serde::de::value::MapAccessDeserializer::new(map);
                RouteCacheOptions::deserialize(de).map(RouteCacheConfig::On)
            }
        }
        de.deserialize_any(Visit)
    }
}

/// What caching means on one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteCache {
    pub(crate) query: QueryKey,
    pub(crate) set_cookie: SetCookie,
    pub(crate) client_directives: ClientDirectives,
}

impl RouteCache {
    /// A route's `cache` and `cache_key`; `path` is `routes[i]`. `None` when the
    /// route does not cache.
    pub(crate) fn from_config(
        cache: RouteCacheConfig,
        key: Option<CacheKeyConfig>,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<RouteCache> {
        let RouteCacheConfig::On(options) = cache else {
            if key.is_some() {
                errors.push(field(path, "cache_key"), "only used with `cache: true`");
            }
            return None;
        };
        let at = format!("{path}.cache_key.query");
        let query = match key.and_then(|k| k.query) {
            None => QueryKey::All,
            Some(QueryConfig::Word(w)) if w == "all" => QueryKey::All,
            Some(QueryConfig::Word(w)) if w == "none" => QueryKey::None,
            Some(QueryConfig::Word(w)) => {
                errors.push(
                    at,
                    format!("'{w}' is not all, none or a list of parameters"),
                );
                QueryKey::All
            }
            Some(QueryConfig::Keep(names)) if names.is_empty() => QueryKey::None,
            Some(QueryConfig::Keep(names)) => {
                if names.iter().any(|n| n.is_empty() || n.contains(['&', '='])) {
                    errors.push(at, "parameter names must be non-empty, without '&' or '='");
                }
                QueryKey::Keep(names)
            }
        };
        Some(RouteCache {
            query,
            set_cookie: options.set_cookie,
            client_directives: options.client_directives,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> (CacheSettings, Vec<String>) {
        let config: CacheConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let settings = CacheSettings::from_config(config, &mut errors);
        (settings, errors.paths())
    }

    #[test]
    fn defaults_store_only_what_the_origin_marks_and_serve_no_stale() {
        let (s, problems) = settings("{}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((s.max_size, s.max_object_size), (256 << 20, 8 << 20));
        assert_eq!(s.default_ttl, None);
        assert_eq!(s.heuristic, None, "heuristic freshness is off");
        assert_eq!(s.stale_while_revalidate, Duration::ZERO);
        assert_eq!(s.stale_if_error, Duration::ZERO);
        assert_eq!(s.lock_timeout, Duration::from_secs(5));
    }

    #[test]
    fn each_problem_names_its_field() {
        let (_, problems) = settings("{max_size: 512KiB, default_ttl: 0s, lock_timeout: 0s}");
        assert_eq!(
            problems,
            [
                "cache.max_size",
                "cache.max_object_size",
                "cache.default_ttl",
                "cache.lock_timeout"
            ]
        );
        let (_, problems) = settings("{max_object_size: 1GiB, max_size: 2GiB}");
        assert_eq!(problems, ["cache.max_object_size"]);
        let (_, problems) = settings("{heuristic: 0%, heuristic_max: 0s}");
        assert_eq!(problems, ["cache.heuristic", "cache.heuristic_max"]);
        let (s, problems) = settings("{heuristic: 10%}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.heuristic, Some((0.1, Duration::from_secs(86_400))));
        let (s, problems) = settings("{max_size: 64MiB, max_object_size: 1MiB, default_ttl: 1m}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.default_ttl, Some(Duration::from_secs(60)));
    }

    fn route(cache: bool, key: &str) -> (Option<RouteCache>, Vec<String>) {
        let key = (!key.is_empty()).then(|| serde_yaml::from_str(key).unwrap());
        let cache = match cache {
            true => RouteCacheConfig::On(RouteCacheOptions::default()),
            false => RouteCacheConfig::Off,
        };
        let mut errors = ConfigErrors::default();
        let got = RouteCache::from_config(cache, key, "routes[0]", &mut errors);
        (got, errors.paths())
    }

    #[test]
    fn route_keys_keep_all_none_or_named_parameters() {
        let query = |key: &str| route(true, key).0.map(|c| c.query);
        assert_eq!(query(""), Some(QueryKey::All));
        assert_eq!(query("{query: all}"), Some(QueryKey::All));
        assert_eq!(query("{query: none}"), Some(QueryKey::None));
        assert_eq!(
            query("{query: [page, lang]}"),
            Some(QueryKey::Keep(vec!["page".into(), "lang".into()]))
        );
        assert_eq!(route(false, "").0, None);
        assert_eq!(route(false, "{query: none}").1, ["routes[0].cache_key"]);
        assert_eq!(
            route(true, "{query: some}").1,
            ["routes[0].cache_key.query"]
        );
        assert_eq!(
            route(true, "{query: ['a=b']}").1,
            ["routes[0].cache_key.query"]
        );
    }

    #[test]
    fn a_cache_map_enables_caching_with_its_options() {
        let parse = |yaml: &str| -> RouteCacheConfig { serde_yaml::from_str(yaml).unwrap() };
        assert!(matches!(parse("false"), RouteCacheConfig::Off));
        let RouteCacheConfig::On(defaults) = parse("true") else {
            panic!("true enables")
        };
        assert_eq!(defaults.set_cookie, SetCookie::Refuse);
        assert_eq!(defaults.client_directives, ClientDirectives::Honor);
        let RouteCacheConfig::On(o) = parse("{set_cookie: strip, client_directives: ignore}")
        else {
            panic!("a map enables")
        };
        assert_eq!(
            (o.set_cookie, o.client_directives),
            (SetCookie::Strip, ClientDirectives::Ignore)
        );
        assert!(matches!(parse("{}"), RouteCacheConfig::On(_)));
        for bad in ["{set_cookie: keep}", "{cookies: strip}", "yes please"] {
            assert!(
                serde_yaml::from_str::<RouteCacheConfig>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
