//! Prometheus metrics (README: Observe it) in a registry of our own, served by the admin
//! listener. Every series the request path touches is resolved to a handle ahead
//! of time or once on first use, so a request increments atomics and never hashes
//! label values. Labels are bounded: route and upstream names come from the
//! configuration, backends are configured addresses, statuses are status codes.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::sync::OnceLock;
use std::time::Duration;

/// The registry the admin listener renders. Each feature registers its own
/// families in it when it is built (requests here, backends in `upstream`).
/// The families of optional features (the cache, rate limits, the circuit
/// breaker) exist only where those are configured, not as placeholders.
#[derive(Default)]
pub(crate) struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every series.
    pub(crate) fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Per route: its labels and its request counters, one per status code seen.
struct RouteSeries {
    route: String,
    upstream: String,
    by_status: Box<[OnceLock<IntCounter>]>,
}

/// The client requests: how many, by route, upstream and status; how long; and
/// how many are in progress.
pub(crate) struct RequestMetrics {
    requests: IntCounterVec,
    duration: Histogram,
    routes: Vec<RouteSeries>,
    /// Requests that matched no route.
    unrouted: RouteSeries,
    active: IntGauge,
}

/// A request counted in `parapet_requests_active` until this is dropped.
pub(crate) struct ActiveRequest(IntGauge);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}

const STATUSES: usize = 600;

impl RequestMetrics {
    /// `routes` are (route label, upstream name), in route order.
    pub(crate) fn register(
        registry: &Registry,
        routes: &[(&str, &str)],
    ) -> prometheus::Result<Self> {
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
        let active = IntGauge::new("parapet_requests_active", "Client requests in progress")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(active.clone()))?;
        let series = |route: &str, upstream: &str| RouteSeries {
            route: route.to_string(),
            upstream: upstream.to_string(),
            by_status: (0..STATUSES).map(|_| OnceLock::new()).collect(),
        };
        Ok(RequestMetrics {
            requests,
            duration,
            routes: routes.iter().map(|(r, u)| series(r, u)).collect(),
            unrouted: series("none", "none"),
            active,
        })
    }

    /// `parapet_requests_total` and `parapet_request_duration_seconds` alone, for
    /// the dashboard's history: read once a second, without the other families.
    pub(crate) fn families(&self) -> Vec<MetricFamily> {
        let mut families = self.requests.collect();
        families.extend(self.duration.collect());
        families
    }

    /// Count a request as in progress until the returned guard is dropped.
    pub(crate) fn begin(&self) -> ActiveRequest {
        self.active.inc();
        ActiveRequest(self.active.clone())
    }

    /// Count one finished request. `route` is `None` when no route matched.
    pub(crate) fn request_done(&self, route: Option<usize>, status: u16, elapsed: Duration) {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_route_and_status() {
        let metrics = Metrics::default();
        let m = RequestMetrics::register(metrics.registry(), &[("*/", "app")]).unwrap();
        let active = m.begin();
        for _ in 0..7 {
            m.request_done(Some(0), 200, Duration::from_millis(2));
        }
        m.request_done(Some(0), 502, Duration::from_millis(2));
        m.request_done(None, 404, Duration::from_millis(2));
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("parapet_requests_active 1"), "{text}");
        drop(active);
        assert!(String::from_utf8(metrics.render())
            .unwrap()
            .contains("parapet_requests_active 0"));
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
        assert!(text.contains("parapet_request_duration_seconds_count 9"));
    }
}
