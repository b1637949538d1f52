//! From what the file says to the runtime model: every rule about configuration
//! lives here, runs once at load (and for `parapet -t`), and reports every problem
//! with the path of its field.

use super::file::*;
use super::model::*;
use super::{section, ConfigErrors};
use crate::observe::access_log::Target;
use crate::policy::client_ip::Cidr;
use crate::policy::headers::ResponseHeaderRules;
use crate::routing::HostMatch;
use http::{HeaderName, HeaderValue};
use pingora::server::configuration::ServerConf;
use serde_yaml::{Mapping, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};

pub(super) fn validate(
    server: ServerConf,
    sections: &Mapping,
    errors: &mut ConfigErrors,
) -> Option<Settings> {
    let get = |name: &str| sections.get(name).filter(|v| !v.is_null());

    let listeners = get("listeners")
        .and_then(|v| section::<Vec<Value>>(v, "listeners", errors))
        .unwrap_or_default();
    let listeners = listeners_of(&listeners, errors);

    let client_ip: ClientIpConfig = get("client_ip")
        .and_then(|v| section(v, "client_ip", errors))
        .unwrap_or_default();
    let request_id: RequestIdConfig = get("request_id")
        .and_then(|v| section(v, "request_id", errors))
        .unwrap_or_default();
    let response_headers: ResponseHeadersConfig = get("response_headers")
        .and_then(|v| section(v, "response_headers", errors))
        .unwrap_or_default();

    let upstream_values: BTreeMap<String, Value> = get("upstreams")
        .and_then(|v| section(v, "upstreams", errors))
        .unwrap_or_default();
    let mut upstreams = Vec::new();
    for (name, value) in &upstream_values {
        let path = format!("upstreams.{name}");
        if let Some(config) = section::<UpstreamConfig>(value, &path, errors) {
            upstreams.push(upstream_of(name, config, &path, errors));
        }
    }
    if upstream_values.is_empty() {
        errors.push("upstreams", "at least one upstream is required");
    }

    let route_values: Vec<Value> = get("routes")
        .and_then(|v| section(v, "routes", errors))
        .unwrap_or_default();
    let mut routes = Vec::new();
    for (i, value) in route_values.iter().enumerate() {
        let path = format!("routes[{i}]");
        if let Some(config) = section::<RouteConfig>(value, &path, errors) {
            let defined = upstream_values.contains_key(&config.upstream);
            if let Some(route) = route_of(config, &upstreams, defined, &path, errors) {
                routes.push(route);
            }
        }
    }
    if route_values.is_empty() {
        errors.push("routes", "at least one route is required");
    }

    let admin = get("admin")
        .and_then(|v| section::<AdminConfig>(v, "admin", errors))
        .and_then(|a| admin_of(a, &listeners, errors));
    let access_log = get("access_log")
        .and_then(|v| section::<AccessLogConfig>(v, "access_log", errors))
        .and_then(|a| access_log_of(a, errors));

    let settings = Settings {
        server,
        listeners,
        client_ip: ClientIpSettings {
            header: header_name(&client_ip.header, "client_ip.header", errors)?,
            trusted: client_ip
                .trusted_proxies
                .iter()
                .enumerate()
                .filter_map(|(i, text)| {
                    Cidr::parse(text)
                        .map_err(|m| errors.push(format!("client_ip.trusted_proxies[{i}]"), m))
                        .ok()
                })
                .collect(),
        },
        request_id_header: header_name(&request_id.header, "request_id.header", errors)?,
        upstreams,
        routes,
        response_headers: response_rules(&response_headers, errors),
        admin,
        access_log,
    };
    Some(settings)
}

fn listeners_of(values: &[Value], errors: &mut ConfigErrors) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let Some(listener) = section::<ListenerConfig>(value, &path, errors) else {
            continue;
        };
        let path = format!("{path}.address");
        match listener.address.parse::<SocketAddr>() {
            Err(_) => errors.push(
                path,
                format!("'{}' is not an IP:port address", listener.address),
            ),
            Ok(addr) if !seen.insert(addr) => errors.push(
                path,
                format!("'{addr}' is already used by another listener"),
            ),
            Ok(_) => out.push(listener.address),
        }
    }
    if values.is_empty() {
        errors.push("listeners", "at least one listener is required");
    }
    out
}

fn upstream_of(
    name: &str,
    config: UpstreamConfig,
    path: &str,
    errors: &mut ConfigErrors,
) -> UpstreamSettings {
    let mut backends = Vec::new();
    let mut seen = HashSet::new();
    for (i, backend) in config.backends.iter().enumerate() {
        let bpath = format!("{path}.backends[{i}]");
        if backend.weight == 0 {
            errors.push(format!("{bpath}.weight"), "must be at least 1");
        } else if backend.weight > 1000 {
            errors.push(format!("{bpath}.weight"), "must be at most 1000");
        }
        match resolve(&backend.address) {
            Ok(address) if !seen.insert(address) => errors.push(
                format!("{bpath}.address"),
                format!("'{address}' is listed twice"),
            ),
            Ok(address) => backends.push(BackendSettings {
                address,
                weight: backend.weight.max(1),
            }),
            Err(m) => errors.push(format!("{bpath}.address"), m),
        }
    }
    if config.backends.is_empty() {
        errors.push(
            format!("{path}.backends"),
            "at least one backend is required",
        );
    }
    if config.retries > 10 {
        errors.push(format!("{path}.retries"), "must be at most 10");
    }
    let hash_key = match (config.selection, config.hash_key.as_deref()) {
        (_, None | Some("uri")) => HashKey::Uri,
        (_, Some("client_ip")) => HashKey::ClientIp,
        (_, Some(other)) => match other.strip_prefix("header:") {
            Some(h) => header_name(h, &format!("{path}.hash_key"), errors)
                .map(HashKey::Header)
                .unwrap_or(HashKey::Uri),
            None => {
                errors.push(
                    format!("{path}.hash_key"),
                    format!("'{other}' is not one of uri, client_ip, header:NAME"),
                );
                HashKey::Uri
            }
        },
    };
    if config.hash_key.is_some() && config.selection != Selection::ConsistentHash {
        errors.push(
            format!("{path}.hash_key"),
            "only used with `selection: consistent_hash`",
        );
    }
    let t = &config.timeouts;
    for (field, value) in [
        ("connect", t.connect),
        ("response_header", t.response_header),
    ] {
        if value.0.is_zero() {
            errors.push(format!("{path}.timeouts.{field}"), "must be greater than 0");
        }
    }
    UpstreamSettings {
        name: name.to_string(),
        backends,
        selection: config.selection,
        hash_key,
        health_check: config
            .health_check
            .map(|hc| health_check_of(name, hc, &format!("{path}.health_check"), errors)),
        timeouts: Timeouts {
            connect: t.connect.0,
            response_header: t.response_header.0,
            idle: t.idle.0,
        },
        retries: config.retries,
        host_header: config.host_header.and_then(|h| {
            HeaderValue::from_str(&h)
                .map_err(|_| errors.push(format!("{path}.host_header"), "not a valid Host value"))
                .ok()
        }),
    }
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

fn health_check_of(
    upstream: &str,
    hc: HealthCheckConfig,
    path: &str,
    errors: &mut ConfigErrors,
) -> HealthCheckSettings {
    if !hc.path.starts_with('/') {
        errors.push(format!("{path}.path"), "must start with '/'");
    }
    if hc.expect_status.is_empty() {
        errors.push(format!("{path}.expect_status"), "list at least one status");
    }
    for (i, status) in hc.expect_status.iter().enumerate() {
        if !(100..=599).contains(status) {
            errors.push(format!("{path}.expect_status[{i}]"), "not an HTTP status");
        }
    }
    for (field, value) in [("interval", hc.interval), ("timeout", hc.timeout)] {
        if value.0.is_zero() {
            errors.push(format!("{path}.{field}"), "must be greater than 0");
        }
    }
    for (field, value) in [
        ("healthy_threshold", hc.healthy_threshold),
        ("unhealthy_threshold", hc.unhealthy_threshold),
    ] {
        if value == 0 {
            errors.push(format!("{path}.{field}"), "must be at least 1");
        }
    }
    HealthCheckSettings {
        kind: hc.kind,
        path: hc.path,
        host: hc.host.unwrap_or_else(|| upstream.to_string()),
        expect_status: hc.expect_status,
        interval: hc.interval.0,
        timeout: hc.timeout.0,
        healthy_threshold: hc.healthy_threshold.max(1) as usize,
        unhealthy_threshold: hc.unhealthy_threshold.max(1) as usize,
    }
}

fn route_of(
    config: RouteConfig,
    upstreams: &[UpstreamSettings],
    defined: bool,
    path: &str,
    errors: &mut ConfigErrors,
) -> Option<RouteSettings> {
    let host = HostMatch::parse(&config.host)
        .map_err(|m| errors.push(format!("{path}.host"), m))
        .ok();
    if !config.path_prefix.starts_with('/') {
        errors.push(format!("{path}.path_prefix"), "must start with '/'");
    }
    // An upstream that is defined but invalid was reported where it is defined.
    let upstream = upstreams.iter().position(|u| u.name == config.upstream);
    if !defined {
        errors.push(
            format!("{path}.upstream"),
            format!("'{}' is not defined under `upstreams`", config.upstream),
        );
    }
    Some(RouteSettings {
        label: format!(
            "{}{}",
            config.host.trim().to_ascii_lowercase(),
            config.path_prefix
        ),
        host: host?,
        path_prefix: config.path_prefix,
        upstream: upstream?,
    })
}

fn header_name(text: &str, path: &str, errors: &mut ConfigErrors) -> Option<HeaderName> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| errors.push(path, format!("'{text}' is not a valid header name")))
        .ok()
}

fn response_rules(
    config: &ResponseHeadersConfig,
    errors: &mut ConfigErrors,
) -> ResponseHeaderRules {
    let mut rules = ResponseHeaderRules::default();
    for (name, value) in &config.add {
        let path = format!("response_headers.add.{name}");
        let name = header_name(name, &path, errors);
        let value = HeaderValue::from_str(value)
            .map_err(|_| errors.push(&path, "not a valid header value"))
            .ok();
        if let (Some(n), Some(v)) = (name, value) {
            rules.add.push((n, v));
        }
    }
    for (i, name) in config.remove.iter().enumerate() {
        let path = format!("response_headers.remove[{i}]");
        if let Some(n) = header_name(name, &path, errors) {
            rules.remove.push(n);
        }
    }
    rules
}

fn admin_of(
    config: AdminConfig,
    listeners: &[String],
    errors: &mut ConfigErrors,
) -> Option<AdminSettings> {
    let addr = match config.address.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let msg = format!("'{}' is not an IP:port address", config.address);
            errors.push("admin.address", msg);
            return None;
        }
    };
    if listeners
        .iter()
        .any(|l| l.parse::<SocketAddr>().ok() == Some(addr))
    {
        errors.push(
            "admin.address",
            format!("'{addr}' is already a proxy listener"),
        );
    }
    if config.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        errors.push(
            "admin.token",
            "must not be empty (leave it out to need no token)",
        );
    }
    Some(AdminSettings {
        address: config.address,
        token: config.token,
    })
}

fn access_log_of(config: AccessLogConfig, errors: &mut ConfigErrors) -> Option<Target> {
    if config.path == "stderr" {
        return Some(Target::Stderr);
    }
    let path = std::path::PathBuf::from(&config.path);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if config.path.is_empty() || path.is_dir() {
        errors.push("access_log.path", "must be a file path or `stderr`");
        return None;
    }
    if dir.is_some_and(|d| !d.is_dir()) {
        errors.push(
            "access_log.path",
            format!("the directory of '{}' does not exist", config.path),
        );
    }
    Some(Target::File(path))
}
