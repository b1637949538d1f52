//! Active health checks (README: Configuration walk-through, `health_check`), built on
//! Pingora's `HttpHealthCheck` and `TcpHealthCheck`. A backend is ejected after
//! `unhealthy_threshold` failed checks in a row and readmitted after
//! `healthy_threshold` good ones; every change is logged.

use super::backend::BackendState;
use super::balancer::HealthCheck;
use super::peer::UpstreamTls;
use crate::config::units::Span;
use crate::config::{field, require_nonzero, ConfigErrors};
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::{Error, ErrorType};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// `upstreams.NAME.health_check` as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HealthCheckConfig {
    #[serde(rename = "type")]
    pub(crate) kind: ProbeKind,
    #[serde(default = "default_health_path")]
    pub(crate) path: String,
    pub(crate) host: Option<String>,
    #[serde(default = "default_expect_status")]
    pub(crate) expect_status: Vec<u16>,
    #[serde(default = "default_interval")]
    pub(crate) interval: Span,
    #[serde(default = "default_check_timeout")]
    pub(crate) timeout: Span,
    #[serde(default = "default_healthy_threshold")]
    pub(crate) healthy_threshold: u32,
    #[serde(default = "default_unhealthy_threshold")]
    pub(crate) unhealthy_threshold: u32,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProbeKind {
    Http,
    Tcp,
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

/// A validated health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HealthCheckSettings {
    pub(crate) probe: Probe,
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
    pub(crate) healthy_threshold: usize,
    pub(crate) unhealthy_threshold: usize,
}

/// What one check does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A TCP connection is made.
    Tcp,
    /// `GET path` with `Host: host` is answered with one of `expect_status`.
    Http {
        path: String,
        host: String,
        expect_status: Vec<u16>,
    },
}

impl HealthCheckSettings {
    /// `path` is the section's; `upstream` is the default `Host` of HTTP checks.
    pub(crate) fn from_config(
        upstream: &str,
        hc: HealthCheckConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> HealthCheckSettings {
        if !hc.path.starts_with('/') {
            errors.push(field(path, "path"), "must start with '/'");
        }
        if hc.expect_status.is_empty() {
            errors.push(field(path, "expect_status"), "list at least one status");
        }
        for (i, status) in hc.expect_status.iter().enumerate() {
            if !(100..=599).contains(status) {
                errors.push(format!("{path}.expect_status[{i}]"), "not an HTTP status");
            }
        }
        require_nonzero(
            path,
            &[("interval", hc.interval.0), ("timeout", hc.timeout.0)],
            errors,
        );
        for (name, value) in [
            ("healthy_threshold", hc.healthy_threshold),
            ("unhealthy_threshold", hc.unhealthy_threshold),
        ] {
            if value == 0 {
                errors.push(field(path, name), "must be at least 1");
            }
        }
        let probe = match hc.kind {
            ProbeKind::Tcp => Probe::Tcp,
            ProbeKind::Http => Probe::Http {
                path: hc.path,
                host: hc.host.unwrap_or_else(|| upstream.to_string()),
                expect_status: hc.expect_status,
            },
        };
        HealthCheckSettings {
            probe,
            interval: hc.interval.0,
            timeout: hc.timeout.0,
            healthy_threshold: hc.healthy_threshold.max(1) as usize,
            unhealthy_threshold: hc.unhealthy_threshold.max(1) as usize,
        }
    }
}

/// The check of upstream `name`, whose backends (in configuration order) are
/// `addresses` with their `states`. An HTTP check speaks TLS to an upstream
/// reached over TLS, verified as its requests are.
pub(crate) fn build(
    name: &str,
    addresses: Vec<SocketAddr>,
    states: Vec<Arc<BackendState>>,
    settings: &HealthCheckSettings,
    tls: Option<&UpstreamTls>,
) -> pingora::Result<HealthCheck> {
    let observer = Box::new(ReportHealthChanges {
        upstream: name.to_string(),
        addresses,
        states,
    });
    let check: Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> = match &settings.probe
    {
        Probe::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_success = settings.healthy_threshold;
            check.consecutive_failure = settings.unhealthy_threshold;
            check.peer_template.options.connection_timeout = Some(settings.timeout);
            check.health_changed_callback = Some(observer);
            check
        }
        Probe::Http {
            path,
            host,
            expect_status,
        } => {
            let mut check = HttpHealthCheck::new(host, tls.is_some());
            if let Some(tls) = tls {
                let options = &mut check.peer_template.options;
                check.peer_template.sni = tls.sni.clone();
                options.verify_cert = tls.verify;
                options.verify_hostname = tls.verify;
                options.ca = tls.ca.clone();
            }
            let mut req = RequestHeader::build("GET", path.as_bytes(), None)?;
            req.insert_header("Host", host)?;
            req.insert_header("User-Agent", "parapet-health-check")?;
            check.req = req;
            check.consecutive_success = settings.healthy_threshold;
            check.consecutive_failure = settings.unhealthy_threshold;
            check.peer_template.options.connection_timeout = Some(settings.timeout);
            check.peer_template.options.total_connection_timeout = Some(settings.timeout);
            check.peer_template.options.read_timeout = Some(settings.timeout);
            check.peer_template.options.write_timeout = Some(settings.timeout);
            let expected = expect_status.clone();
            check.validator = Some(Box::new(move |resp| {
                if expected.contains(&resp.status.as_u16()) {
                    Ok(())
                } else {
                    Error::e_explain(
                        ErrorType::CustomCode("unexpected status", resp.status.as_u16()),
                        "during http health check",
                    )
                }
            }));
            check.health_changed_callback = Some(observer);
            Box::new(check)
        }
    };
    Ok(HealthCheck {
        check,
        interval: settings.interval,
    })
}

/// Logs every change and keeps `parapet_backend_healthy` up to date.
struct ReportHealthChanges {
    upstream: String,
    addresses: Vec<SocketAddr>,
    states: Vec<Arc<BackendState>>,
}

#[async_trait]
impl HealthObserve for ReportHealthChanges {
    async fn observe(&self, target: &Backend, healthy: bool) {
        let backend = target
            .addr
            .as_inet()
            .and_then(|a| self.addresses.iter().position(|b| b == a));
        if let Some(state) = backend.and_then(|b| self.states.get(b)) {
            state.set_healthy(healthy);
        }
        match healthy {
            true => log::warn!(
                "upstream {} backend {} is healthy again",
                self.upstream,
                target.addr
            ),
            false => log::warn!(
                "upstream {} backend {} is unhealthy: ejected",
                self.upstream,
                target.addr
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(yaml: &str) -> (HealthCheckSettings, Vec<String>) {
        let config: HealthCheckConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let at = "upstreams.app.health_check";
        let settings = HealthCheckSettings::from_config("app", config, at, &mut errors);
        (settings, errors.paths())
    }

    #[test]
    fn an_http_check_defaults_to_the_upstream_as_host() {
        let (s, problems) = settings("{type: http, path: /health}");
        assert!(problems.is_empty(), "{problems:?}");
        let expected = Probe::Http {
            path: "/health".into(),
            host: "app".into(),
            expect_status: vec![200],
        };
        assert_eq!(s.probe, expected);
        assert_eq!((s.healthy_threshold, s.unhealthy_threshold), (2, 3));
        assert_eq!(s.interval, Duration::from_secs(2));
    }

    #[test]
    fn each_problem_names_its_field() {
        let (s, problems) = settings(
            "{type: tcp, path: health, expect_status: [99], interval: 0s, healthy_threshold: 0}",
        );
        assert_eq!(s.probe, Probe::Tcp);
        let at = |f: &str| format!("upstreams.app.health_check.{f}");
        assert_eq!(
            problems,
            [
                at("path"),
                at("expect_status[0]"),
                at("interval"),
                at("healthy_threshold")
            ]
        );
        let (_, problems) = settings("{type: http, expect_status: []}");
        assert_eq!(problems, [at("expect_status")]);
    }
}
