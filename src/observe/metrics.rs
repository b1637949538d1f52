//! Prometheus metrics of SPEC §5 in a registry of our own, served by the admin
//! listener. Every series the request path touches is resolved to a handle ahead
//! of time or once on first use, so a request increments atomics and never hashes
//! label values. Labels are bounded: route and upstream names come from the
//! configuration, backends are configured addresses, statuses are status codes.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// Outcome of one upstream attempt, a label of `parapet_upstream_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered with a response head (any status).
    Success,
    /// The connection could not be made (refused, reset, unreachable).
    ConnectError,
    /// Connecting or waiting for the response timed out.
    Timeout,
    /// The connection broke or the backend sent something invalid.
    Error,
}

const OUTCOMES: [Outcome; 4] = [
    Outcome::Success,
    Outcome::ConnectError,
    Outcome::Timeout,
    Outcome::Error,
];

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ConnectError => "connect_error",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// Per route: its labels and its request counters, one per status code seen.
struct RouteSeries {
    route: String,
    upstream: String,
    by_status: Box<[OnceLock<IntCounter>]>,
}

/// Per backend: attempt counters by outcome and the health gauge.
pub struct BackendSeries {
    attempts: [IntCounter; 4],
    pub healthy: IntGauge,
}

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: Histogram,
    routes: Vec<RouteSeries>,
    /// Requests that matched no route.
    unrouted: RouteSeries,
    backends: Vec<Vec<BackendSeries>>,
    pub active: IntGauge,
    pub ratelimited: IntCounterVec,
    pub cache_size: IntGauge,
}

/// What the metrics need to know about the configuration.
pub struct Layout<'a> {
    /// (route label, upstream name) per route.
    pub routes: Vec<(String, &'a str)>,
    /// (upstream name, backend addresses) per upstream.
    pub upstreams: Vec<(&'a str, Vec<String>)>,
}

const STATUSES: usize = 600;

impl Metrics {
    pub fn new(layout: &Layout) -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "parapet_requests_total",
                "Client requests answered, by route, upstream and status",
            ),
            &["route", "upstream", "status"],
        )?;
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                "parapet_request_duration_seconds",
                "Time from request head to the end of logging",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
        )?;
        let attempts = IntCounterVec::new(
            Opts::new(
                "parapet_upstream_attempts_total",
                "Attempts to reach a backend, by outcome",
            ),
            &["upstream", "backend", "outcome"],
        )?;
        let healthy = IntGaugeVec::new(
            Opts::new(
                "parapet_backend_healthy",
                "1 while the backend passes its health checks",
            ),
            &["upstream", "backend"],
        )?;
        let circuit = IntGaugeVec::new(
            Opts::new(
                "parapet_circuit_open",
                "1 while the backend's circuit is open (no circuit breaker yet: always 0)",
            ),
            &["upstream", "backend"],
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "parapet_cache_lookups_total",
                "Cache lookups by result (no cache yet)",
            ),
            &["result"],
        )?;
        let cache_size = IntGauge::new(
            "parapet_cache_size_bytes",
            "Bytes held by the cache (no cache yet)",
        )?;
        let ratelimited = IntCounterVec::new(
            Opts::new(
                "parapet_ratelimited_total",
                "Requests refused with 429 (no rate limits yet)",
            ),
            &["route"],
        )?;
        let active = IntGauge::new("parapet_connections_active", "Client requests in progress")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(healthy.clone()))?;
        registry.register(Box::new(circuit.clone()))?;
        registry.register(Box::new(cache_lookups.clone()))?;
        registry.register(Box::new(cache_size.clone()))?;
        registry.register(Box::new(ratelimited.clone()))?;
        registry.register(Box::new(active.clone()))?;

        let series = |route: &str, upstream: &str| RouteSeries {
            route: route.to_string(),
            upstream: upstream.to_string(),
            by_status: (0..STATUSES).map(|_| OnceLock::new()).collect(),
        };
        let routes = layout.routes.iter().map(|(r, u)| series(r, u)).collect();
        for (route, _) in &layout.routes {
            ratelimited.with_label_values(&[route]);
        }
        let backends = layout
            .upstreams
            .iter()
            .map(|(upstream, addresses)| {
                addresses
                    .iter()
                    .map(|backend| {
                        circuit
                            .with_label_values(&[*upstream, backend.as_str()])
                            .set(0);
                        let h = healthy.with_label_values(&[*upstream, backend.as_str()]);
                        h.set(1);
                        BackendSeries {
                            attempts: OUTCOMES.map(|o| {
                                attempts.with_label_values(&[
                                    *upstream,
                                    backend.as_str(),
                                    o.label(),
                                ])
                            }),
                            healthy: h,
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Metrics {
            registry,
            requests,
            duration,
            routes,
            unrouted: series("none", "none"),
            backends,
            active,
            ratelimited,
            cache_size,
        })
    }

    /// Count one finished request. `route` is `None` when no route matched.
    pub fn request_done(&self, route: Option<usize>, status: u16, elapsed: Duration) {
        let series = route
            .and_then(|r| self.routes.get(r))
            .unwrap_or(&self.unrouted);
        let slot = (status as usize).min(STATUSES - 1);
        series.by_status[slot]
            .get_or_init(|| {
                let code = status.to_string();
                self.requests
                    .with_label_values(&[&series.route, &series.upstream, &code])
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    pub fn attempt(&self, upstream: usize, backend: usize, outcome: Outcome) {
        if let Some(b) = self.backends.get(upstream).and_then(|u| u.get(backend)) {
            b.attempts[outcome as usize].inc();
        }
    }

    pub fn backend(&self, upstream: usize, backend: usize) -> Option<&BackendSeries> {
        self.backends.get(upstream)?.get(backend)
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_status() {
        let layout = Layout {
            routes: vec![("*/".into(), "app")],
            upstreams: vec![("app", vec!["127.0.0.1:1".into()])],
        };
        let m = Metrics::new(&layout).unwrap();
        for _ in 0..7 {
            m.request_done(Some(0), 200, Duration::from_millis(2));
        }
        m.request_done(Some(0), 502, Duration::from_millis(2));
        m.request_done(None, 404, Duration::from_millis(2));
        m.attempt(0, 0, Outcome::Timeout);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains(r#"parapet_requests_total{route="*/",status="200",upstream="app"} 7"#),
            "{text}"
        );
        assert!(
            text.contains(r#"parapet_requests_total{route="*/",status="502",upstream="app"} 1"#)
        );
        assert!(
            text.contains(r#"parapet_requests_total{route="none",status="404",upstream="none"} 1"#)
        );
        assert!(text.contains(r#"parapet_upstream_attempts_total{backend="127.0.0.1:1",outcome="timeout",upstream="app"} 1"#));
        assert!(text.contains("parapet_request_duration_seconds_count 9"));
    }
}
