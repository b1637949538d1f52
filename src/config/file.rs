//! What the operator wrote: the serde structs of Parapet's own sections of the YAML
//! file. Unknown keys are errors (`deny_unknown_fields`) so a typo never passes
//! silently. Nothing here is used on the request path: `validate` turns these into
//! the runtime model.

use super::units::Span;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The top-level keys that belong to Parapet; every other key must be one of
/// Pingora's own server keys.
pub const SECTIONS: &[&str] = &[
    "listeners",
    "client_ip",
    "request_id",
    "upstreams",
    "routes",
    "response_headers",
    "admin",
    "access_log",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientIpConfig {
    /// Set on every upstream request to the client IP as Parapet determined it.
    pub header: String,
    /// Peers (CIDR or single address) allowed to supply X-Forwarded-For and `header`.
    pub trusted_proxies: Vec<String>,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        ClientIpConfig {
            header: "X-Real-IP".into(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RequestIdConfig {
    pub header: String,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig {
            header: "X-Request-Id".into(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    RoundRobin,
    Weighted,
    Random,
    ConsistentHash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub backends: Vec<BackendConfig>,
    #[serde(default = "default_selection")]
    pub selection: Selection,
    pub hash_key: Option<String>,
    pub health_check: Option<HealthCheckConfig>,
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    #[serde(default = "default_retries")]
    pub retries: u8,
    pub host_header: Option<String>,
}

fn default_selection() -> Selection {
    Selection::RoundRobin
}

fn default_retries() -> u8 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    pub address: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Http,
    Tcp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    #[serde(default = "default_health_path")]
    pub path: String,
    pub host: Option<String>,
    #[serde(default = "default_expect_status")]
    pub expect_status: Vec<u16>,
    #[serde(default = "default_interval")]
    pub interval: Span,
    #[serde(default = "default_check_timeout")]
    pub timeout: Span,
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
}

fn default_health_path() -> String {
    "/".into()
}
fn default_expect_status() -> Vec<u16> {
    vec![200]
}
fn default_interval() -> Span {
    Span(Duration::from_secs(2))
}
fn default_check_timeout() -> Span {
    Span(Duration::from_secs(1))
}
fn default_healthy_threshold() -> u32 {
    2
}
fn default_unhealthy_threshold() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutsConfig {
    pub connect: Span,
    pub response_header: Span,
    pub idle: Span,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig {
            connect: Span(Duration::from_secs(2)),
            response_header: Span(Duration::from_secs(30)),
            idle: Span(Duration::from_secs(60)),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default = "default_route_host")]
    pub host: String,
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    pub upstream: String,
}

fn default_route_host() -> String {
    "*".into()
}
fn default_path_prefix() -> String {
    "/".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseHeadersConfig {
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub address: String,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// A file path, or `stderr`.
    pub path: String,
}
