//! One `upstreams.NAME` entry: what the operator wrote, and the validated settings
//! the pool is built from. Backend names are resolved once, here, as nginx does at
//! load.

use super::balancer::Algorithm;
use super::circuit::{CircuitBreakerConfig, CircuitBreakerSettings};
use super::health::{HealthCheckConfig, HealthCheckSettings};
use super::peer::{UpstreamTls, UpstreamTlsConfig};
use super::HashKey;
use crate::config::units::Span;
use crate::config::{field, header_name, require_nonzero, ConfigErrors};
use crate::upstream::retry::config::{RetryBudgetConfig, RetryOnEntry};
use crate::upstream::retry::RetrySettings;
use http::HeaderValue;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamConfig {
    pub(crate) backends: Vec<BackendConfig>,
    #[serde(default)]
    pub(crate) selection: SelectionConfig,
    pub(crate) hash_key: Option<String>,
    pub(crate) health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub(crate) timeouts: TimeoutsConfig,
    #[serde(default = "default_retries")]
    pub(crate) retries: u8,
    pub(crate) retry_on: Option<Vec<RetryOnEntry>>,
    pub(crate) retry_budget: Option<RetryBudgetConfig>,
    pub(crate) host_header: Option<String>,
    pub(crate) circuit_breaker: Option<CircuitBreakerConfig>,
    pub(crate) tls: Option<UpstreamTlsConfig>,
    #[serde(default)]
    pub(crate) http2: bool,
}

fn default_retries() -> u8 {
    1
}

/// `selection` as written. `round_robin` and `weighted` are the same weighted round
/// robin (as in nginx and HAProxy, weights are always honoured; `weighted` is kept
/// as the explicit name). `least_connections` picks the backend with the fewest
/// requests in flight per unit of weight.
#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SelectionConfig {
    #[default]
    RoundRobin,
    Weighted,
    Random,
    ConsistentHash,
    LeastConnections,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackendConfig {
    pub(crate) address: String,
    #[serde(default = "default_weight")]
    pub(crate) weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct TimeoutsConfig {
    pub(crate) connect: Span,
    pub(crate) response_header: Span,
    pub(crate) idle: Span,
    pub(crate) websocket_idle: Span,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            connect: Span(Duration::from_secs(2)),
            response_header: Span(Duration::from_secs(30)),
            idle: Span(Duration::from_secs(60)),
            websocket_idle: Span(Duration::from_secs(60)),
        }
    }
}

/// A validated upstream, ready to be built into a pool.
pub(crate) struct UpstreamSettings {
    pub(crate) name: String,
    pub(crate) backends: Vec<BackendSettings>,
    pub(crate) algorithm: Algorithm,
    pub(crate) hash_key: HashKey,
    pub(crate) health_check: Option<HealthCheckSettings>,
    pub(crate) timeouts: Timeouts,
    pub(crate) retry: RetrySettings,
    pub(crate) host_header: Option<HeaderValue>,
    /// None: no breaker, every backend's circuit stays closed.
    pub(crate) circuit_breaker: Option<CircuitBreakerSettings>,
    /// TLS to the backends.
    pub(crate) tls: Option<UpstreamTls>,
    /// HTTP/2 to the backends.
    pub(crate) http2: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BackendSettings {
    pub(crate) address: SocketAddr,
    pub(crate) weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) response_header: Duration,
    /// Pooled keep-alive connections to a backend.
    pub(crate) idle: Duration,
    /// A WebSocket with no frame either way (`upstream::websocket`).
    pub(crate) websocket_idle: Duration,
}

impl UpstreamSettings {
    /// `path` is `upstreams.NAME`. Settings come back even when some fields were
    /// wrong, so that routes naming this upstream are not reported a second time.
    pub(crate) fn from_config(
        name: &str,
        mut config: UpstreamConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> UpstreamSettings {
        let backends = backends_of(&config.backends, path, errors);
        let retry = RetrySettings::from_config(
            config.retries,
            config.retry_on.take(),
            config.retry_budget.take(),
            path,
            errors,
        );
        let hash_key = hash_key_of(&config, path, errors);
        let t = &config.timeouts;
        require_nonzero(
            &field(path, "timeouts"),
            &[
                ("connect", t.connect.0),
                ("response_header", t.response_header.0),
                ("websocket_idle", t.websocket_idle.0),
            ],
            errors,
        );
        let health_check = config.health_check.map(|hc| {
            HealthCheckSettings::from_config(name, hc, &field(path, "health_check"), errors)
        });
        let host_header = config.host_header.and_then(|h| {
            HeaderValue::from_str(&h)
                .map_err(|_| errors.push(field(path, "host_header"), "not a valid Host value"))
                .ok()
        });
        let circuit_breaker = config.circuit_breaker.map(|cb| {
            CircuitBreakerSettings::from_config(cb, &field(path, "circuit_breaker"), errors)
        });
        let tls = config
            .tls
            .and_then(|tls| UpstreamTls::from_config(tls, &field(path, "tls"), errors));
        UpstreamSettings {
            name: name.to_string(),
            backends,
            algorithm: Algorithm::of(config.selection),
            hash_key,
            health_check,
            timeouts: Timeouts {
                connect: t.connect.0,
                response_header: t.response_header.0,
                idle: t.idle.0,
                websocket_idle: t.websocket_idle.0,
            },
            retry,
            host_header,
            circuit_breaker,
            tls,
            http2: config.http2,
        }
    }

    pub(crate) fn addresses(&self) -> Vec<SocketAddr> {
        self.backends.iter().map(|b| b.address).collect()
    }
}

fn backends_of(
    configs: &[BackendConfig],
    path: &str,
    errors: &mut ConfigErrors,
) -> Vec<BackendSettings> {
    let mut backends = Vec::new();
    let mut seen = HashSet::new();
    for (i, backend) in configs.iter().enumerate() {
        let at = format!("{path}.backends[{i}]");
        if backend.weight == 0 {
            errors.push(field(&at, "weight"), "must be at least 1");
        } else if backend.weight > 1000 {
            errors.push(field(&at, "weight"), "must be at most 1000");
        }
        match resolve(&backend.address) {
            Ok(address) if !seen.insert(address) => errors.push(
                field(&at, "address"),
                format!("'{address}' is listed twice"),
            ),
            Ok(address) => backends.push(BackendSettings {
                address,
                weight: backend.weight.max(1),
            }),
            Err(m) => errors.push(field(&at, "address"), m),
        }
    }
    if configs.is_empty() {
        errors.push(field(path, "backends"), "at least one backend is required");
    }
    backends
}

fn hash_key_of(config: &UpstreamConfig, path: &str, errors: &mut ConfigErrors) -> HashKey {
    let at = field(path, "hash_key");
    let key = match config.hash_key.as_deref() {
        None | Some("uri") => HashKey::Uri,
        Some("client_ip") => HashKey::ClientIp,
        Some("cache_key") => HashKey::CacheKey,
        Some(other) => match other.strip_prefix("header:") {
            Some(h) => header_name(h, &at, errors)
                .map(HashKey::Header)
                .unwrap_or(HashKey::Uri),
            None => {
                errors.push(
                    &at,
                    format!("'{other}' is not one of uri, client_ip, cache_key, header:NAME"),
                );
                HashKey::Uri
            }
        },
    };
    if config.hash_key.is_some() && config.selection != SelectionConfig::ConsistentHash {
        errors.push(&at, "only used with `selection: consistent_hash`");
    }
    key
}

/// `IP:port`, or `name:port` resolved once, now (as nginx does at load).
fn resolve(address: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = address.parse() {
        return Ok(addr);
    }
    let not_host_port = || format!("'{address}' is not host:port");
    let (host, port) = address.rsplit_once(':').ok_or_else(not_host_port)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(not_host_port());
    }
    address
        .to_socket_addrs()
        .map_err(|e| format!("'{address}' does not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("'{address}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> (UpstreamSettings, Vec<String>) {
        let config: UpstreamConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let settings = UpstreamSettings::from_config("app", config, "upstreams.app", &mut errors);
        (settings, errors.paths())
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let (s, problems) = settings("backends: [{address: '127.0.0.1:81'}]");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.algorithm, Algorithm::RoundRobin);
        assert_eq!(s.hash_key, HashKey::Uri);
        assert_eq!(s.retry.retries, 1);
        assert_eq!(s.timeouts.connect, Duration::from_secs(2));
        assert_eq!(s.timeouts.response_header, Duration::from_secs(30));
        assert_eq!(s.timeouts.websocket_idle, Duration::from_secs(60));
        assert_eq!(s.backends[0].weight, 1);
        assert!(s.health_check.is_none() && s.host_header.is_none() && s.tls.is_none());
        assert!(s.circuit_breaker.is_none(), "no breaker unless configured");
    }

    #[test]
    fn each_problem_names_its_field() {
        let (s, problems) = settings(
            "{backends: [{address: nope}, {address: '127.0.0.1:81', weight: 0}, {address: '127.0.0.1:81'}],
              retries: 11, hash_key: client_ip, timeouts: {connect: 0ms, websocket_idle: 0s}, host_header: \"a\\nb\",
              circuit_breaker: {consecutive_failures: 0, open_for: 0s}}",
        );
        assert_eq!(
            problems,
            [
                "upstreams.app.backends[0].address",
                "upstreams.app.backends[1].weight",
                "upstreams.app.backends[2].address",
                "upstreams.app.retries",
                "upstreams.app.hash_key",
                "upstreams.app.timeouts.connect",
                "upstreams.app.timeouts.websocket_idle",
                "upstreams.app.host_header",
                "upstreams.app.circuit_breaker.consecutive_failures",
                "upstreams.app.circuit_breaker.open_for",
            ]
        );
        assert_eq!(s.backends.len(), 1);
    }

    #[test]
    fn hash_keys_and_selections() {
        let (s, problems) = settings(
            "{backends: [{address: '127.0.0.1:81'}], selection: consistent_hash, hash_key: 'header:X-User'}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.algorithm, Algorithm::Ketama);
        assert_eq!(s.hash_key, HashKey::Header("x-user".parse().unwrap()));
        let (s, _) = settings("{backends: [{address: '127.0.0.1:81'}], selection: weighted}");
        assert_eq!(s.algorithm, Algorithm::RoundRobin);
        let (_, problems) = settings(
            "{backends: [{address: '127.0.0.1:81'}], selection: consistent_hash, hash_key: cookie}",
        );
        assert_eq!(problems, ["upstreams.app.hash_key"]);
        let (s, problems) =
            settings("{backends: [{address: '127.0.0.1:81'}], selection: least_connections}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(s.algorithm, Algorithm::LeastConnections);
        let (_, problems) = settings(
            "{backends: [{address: '127.0.0.1:81'}], selection: least_connections, hash_key: uri}",
        );
        assert_eq!(problems, ["upstreams.app.hash_key"]);
        let (s, problems) = settings(
            "{backends: [{address: '127.0.0.1:81'}], circuit_breaker: {consecutive_failures: 3, open_for: 1s}}",
        );
        assert!(problems.is_empty(), "{problems:?}");
        let breaker = s.circuit_breaker.unwrap();
        assert_eq!(breaker.consecutive_failures, 3);
        assert_eq!(breaker.open_for, Duration::from_secs(1));
        let (_, problems) = settings("{backends: []}");
        assert_eq!(problems, ["upstreams.app.backends"]);
    }

    #[test]
    fn names_resolve_once() {
        assert_eq!(
            resolve("localhost:80").map(|a| a.port()),
            Ok(80),
            "localhost resolves"
        );
        assert!(resolve("no-port").is_err());
        assert!(resolve(":80").is_err());
        assert!(resolve("host:99999").is_err());
    }
}
