//! The runtime model: what the proxy uses, built once from the file by `validate`.
//! Addresses are resolved, names are `HeaderName`s, routes point at upstreams by
//! index. The request path never parses configuration.

use super::file::{HealthCheckKind, Selection};
use crate::observe::access_log::Target;
use crate::policy::client_ip::Cidr;
use crate::policy::headers::ResponseHeaderRules;
use crate::routing::HostMatch;
use http::{HeaderName, HeaderValue};
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;
use std::time::Duration;

pub struct Settings {
    /// Pingora's own server keys, passed to `Server` unchanged.
    pub server: ServerConf,
    pub listeners: Vec<String>,
    pub client_ip: ClientIpSettings,
    pub request_id_header: HeaderName,
    pub upstreams: Vec<UpstreamSettings>,
    pub routes: Vec<RouteSettings>,
    pub response_headers: ResponseHeaderRules,
    pub admin: Option<AdminSettings>,
    pub access_log: Option<Target>,
}

pub struct AdminSettings {
    pub address: String,
    pub token: Option<String>,
}

pub struct ClientIpSettings {
    pub header: HeaderName,
    pub trusted: Vec<Cidr>,
}

pub struct UpstreamSettings {
    pub name: String,
    pub backends: Vec<BackendSettings>,
    pub selection: Selection,
    pub hash_key: HashKey,
    pub health_check: Option<HealthCheckSettings>,
    pub timeouts: Timeouts,
    pub retries: u8,
    pub host_header: Option<HeaderValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendSettings {
    pub address: SocketAddr,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Uri,
    ClientIp,
    Header(HeaderName),
}

pub struct HealthCheckSettings {
    pub kind: HealthCheckKind,
    pub path: String,
    pub host: String,
    pub expect_status: Vec<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: usize,
    pub unhealthy_threshold: usize,
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub response_header: Duration,
    pub idle: Duration,
}

pub struct RouteSettings {
    /// The route's label in metrics: its host pattern and path prefix.
    pub label: String,
    pub host: HostMatch,
    pub path_prefix: String,
    pub upstream: usize,
}
