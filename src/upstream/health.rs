//! Active health checks (SPEC §2 `health_check`), built on Pingora's `HttpHealthCheck`
//! and `TcpHealthCheck`. A backend is ejected after `unhealthy_threshold` failed
//! checks in a row and readmitted after `healthy_threshold` good ones; every change
//! is logged.

use super::balancer::HealthCheck;
use crate::config::file::HealthCheckKind;
use crate::config::model::HealthCheckSettings;
use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::lb::health_check::{HealthObserve, HttpHealthCheck, TcpHealthCheck};
use pingora::lb::Backend;
use pingora::{Error, ErrorType};

pub fn build(upstream: &str, settings: &HealthCheckSettings) -> pingora::Result<HealthCheck> {
    let observer = Box::new(LogHealthChanges {
        upstream: upstream.to_string(),
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

struct LogHealthChanges {
    upstream: String,
}

#[async_trait]
impl HealthObserve for LogHealthChanges {
    async fn observe(&self, target: &Backend, healthy: bool) {
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
