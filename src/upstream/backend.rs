//! The live state of one backend: requests in flight, the latest failure, and its
//! series of `parapet_upstream_attempts_total` and `parapet_backend_healthy`, which
//! this module registers. The request path reaches it through an `Arc`, so an
//! attempt can hold its backend until it ends.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

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

    /// The outcome a failure stands for.
    pub fn of(e: &pingora::Error) -> Outcome {
        use pingora::ErrorType::*;
        match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => Outcome::Timeout,
            ConnectRefused | ConnectNoRoute | ConnectError => Outcome::ConnectError,
            _ => Outcome::Error,
        }
    }
}

/// The metric families of backends, registered once for every upstream.
pub struct BackendFamilies {
    attempts: IntCounterVec,
    healthy: IntGaugeVec,
}

impl BackendFamilies {
    pub fn register(registry: &Registry) -> prometheus::Result<BackendFamilies> {
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
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(healthy.clone()))?;
        Ok(BackendFamilies { attempts, healthy })
    }

    /// A fresh state for `backend` of `upstream`, with its series resolved now, so
    /// that an attempt increments an atomic and never hashes label values.
    pub fn state(&self, upstream: &str, backend: &str) -> BackendState {
        let healthy = self.healthy.with_label_values(&[upstream, backend]);
        healthy.set(1);
        BackendState {
            in_flight: AtomicI64::new(0),
            last_error: Mutex::new(None),
            attempts: OUTCOMES.map(|o| {
                self.attempts
                    .with_label_values(&[upstream, backend, o.label()])
            }),
            healthy,
        }
    }
}

/// Live state of one backend, for the request path and the admin listener.
pub struct BackendState {
    in_flight: AtomicI64,
    /// The kind of the latest failed attempt (e.g. `ConnectRefused`).
    last_error: Mutex<Option<&'static str>>,
    attempts: [IntCounter; 4],
    healthy: IntGauge,
}

impl BackendState {
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Count an attempt's outcome; a failure becomes the backend's latest error.
    pub fn attempted(&self, outcome: Outcome, error: Option<&pingora::Error>) {
        self.attempts[outcome as usize].inc();
        if let Some(e) = error {
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.etype().as_str());
            }
        }
    }

    pub fn last_error(&self) -> Option<&'static str> {
        self.last_error.lock().ok().and_then(|l| *l)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.set(i64::from(healthy));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::{Error, ErrorType};

    #[test]
    fn attempts_are_counted_by_outcome() {
        let registry = Registry::new();
        let families = BackendFamilies::register(&registry).unwrap();
        let state = families.state("app", "127.0.0.1:1");
        let refused = Error::new_up(ErrorType::ConnectRefused);
        state.attempted(Outcome::of(&refused), Some(&refused));
        state.attempted(Outcome::Success, None);
        state.set_healthy(false);
        assert_eq!(state.last_error(), Some("ConnectRefused"));
        let mut text = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        prometheus::Encoder::encode(&encoder, &registry.gather(), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        let series = |outcome: &str| {
            format!("parapet_upstream_attempts_total{{backend=\"127.0.0.1:1\",outcome=\"{outcome}\",upstream=\"app\"}} 1")
        };
        assert!(text.contains(&series("connect_error")), "{text}");
        assert!(text.contains(&series("success")), "{text}");
        assert!(
            text.contains("parapet_backend_healthy{backend=\"127.0.0.1:1\",upstream=\"app\"} 0")
        );
    }

    #[test]
    fn timeouts_and_broken_connections_are_told_apart() {
        let outcome = |t| Outcome::of(&Error::new_up(t));
        assert_eq!(outcome(ErrorType::ConnectTimedout), Outcome::Timeout);
        assert_eq!(outcome(ErrorType::ReadTimedout), Outcome::Timeout);
        assert_eq!(outcome(ErrorType::ConnectNoRoute), Outcome::ConnectError);
        assert_eq!(outcome(ErrorType::ConnectionClosed), Outcome::Error);
    }
}
