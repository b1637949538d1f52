//! Active health checks (SPEC §2 `health_check`), built on Pingora's `HttpHealthCheck`
//! and `TcpHealthCheck`. A backend is ejected after `unhealthy_threshold` failed
//! checks in a row and readmitted after `healthy_threshold` good ones; every change
//! is logged.

use super::balancer::HealthCheck;
use crate::config::file::HealthCheckKind;
use crate::config::model::{HealthCheckSettings, UpstreamSettings};
use crate::observe::metrics::Metrics;
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::{Error, ErrorType};
use std::net::SocketAddr;
use std::sync::Arc;

pub fn build(
    index: usize,
    upstream: &UpstreamSettings,
    settings: &HealthCheckSettings,
    metrics: Arc<Metrics>,
) -> pingora::Result<HealthCheck> {
    let observer = Box::new(ReportHealthChanges {
        upstream: upstream.name.clone(),
        index,
        addresses: upstream.backends.iter().map(|b| b.address).collect(),
        metrics,
    });
    let check: Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> = match settings.kind {
        HealthCheckKind::Tcp => {
            let mut check = TcpHealthCheck::new();
            check.consecutive_success = settings.healthy_threshold;
            check.consecutive_failure = settings.unhealthy_threshold;
            check.peer_template.options.connection_timeout = Some(settings.timeout);
            check.health_changed_callback = Some(observer);
            check
        }
        HealthCheckKind::Http => {
            let mut check = HttpHealthCheck::new(&settings.host, false);
            let mut req = RequestHeader::build("GET", settings.path.as_bytes(), None)?;
            req.insert_header("Host", &settings.host)?;
            req.insert_header("User-Agent", "parapet-health-check")?;
            check.req = req;
            check.consecutive_success = settings.healthy_threshold;
            check.consecutive_failure = settings.unhealthy_threshold;
            check.peer_template.options.connection_timeout = Some(settings.timeout);
            check.peer_template.options.total_connection_timeout = Some(settings.timeout);
            check.peer_template.options.read_timeout = Some(settings.timeout);
            check.peer_template.options.write_timeout = Some(settings.timeout);
            let expected = settings.expect_status.clone();
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
    index: usize,
    addresses: Vec<SocketAddr>,
    metrics: Arc<Metrics>,
}

#[async_trait]
impl HealthObserve for ReportHealthChanges {
    async fn observe(&self, target: &Backend, healthy: bool) {
        let backend = target
            .addr
            .as_inet()
            .and_then(|a| self.addresses.iter().position(|b| b == a));
        if let Some(series) = backend.and_then(|b| self.metrics.backend(self.index, b)) {
            series.healthy.set(i64::from(healthy));
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
