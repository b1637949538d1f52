//! The live state of one backend: requests in flight, how long its answers took,
//! the latest failure, its circuit breaker, and its series of
//! `parapet_upstream_attempts_total`, `parapet_backend_healthy` and
//! `parapet_circuit_open`, which this module registers. The request path reaches it through an `Arc`, so an attempt can hold
//! its backend until it ends.

use super::circuit::{CircuitBreaker, CircuitBreakerSettings, CircuitState};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Outcome of one upstream attempt, a label of `parapet_upstream_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
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
    pub(crate) fn of(e: &pingora::Error) -> Outcome {
        use pingora::ErrorType::*;
        match e.etype() {
            ConnectTimedout | ReadTimedout | WriteTimedout => Outcome::Timeout,
            ConnectRefused | ConnectNoRoute | ConnectError => Outcome::ConnectError,
            _ => Outcome::Error,
        }
    }
}

/// The metric families of backends, registered once for every upstream.
pub(crate) struct BackendFamilies {
    attempts: IntCounterVec,
    healthy: IntGaugeVec,
    circuit_open: IntGaugeVec,
}

impl BackendFamilies {
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<BackendFamilies> {
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
        let circuit_open = IntGaugeVec::new(
            Opts::new(
                "parapet_circuit_open",
                "1 while the backend's circuit breaker is open or half-open",
            ),
            &["upstream", "backend"],
        )?;
        registry.register(Box::new(attempts.clone()))?;
        registry.register(Box::new(healthy.clone()))?;
        registry.register(Box::new(circuit_open.clone()))?;
        Ok(BackendFamilies {
            attempts,
            healthy,
            circuit_open,
        })
    }

    /// A fresh state for `backend` of `upstream`, with its series resolved now, so
    /// that an attempt increments an atomic and never hashes label values. Only a
    /// backend with a circuit breaker has a `parapet_circuit_open` series.
    pub(crate) fn state(
        &self,
        upstream: &str,
        backend: &str,
        breaker: Option<CircuitBreakerSettings>,
    ) -> BackendState {
        let healthy = self.healthy.with_label_values(&[upstream, backend]);
        healthy.set(1);
        let circuit = breaker.map(|settings| {
            let gauge = self.circuit_open.with_label_values(&[upstream, backend]);
            let name = format!("upstream {upstream} backend {backend}");
            CircuitBreaker::new(settings, gauge, name)
        });
        BackendState {
            in_flight: AtomicI64::new(0),
            answers: AtomicU64::new(0),
            answer_micros: AtomicU64::new(0),
            last_error: Mutex::new(None),
            attempts: OUTCOMES.map(|o| {
                self.attempts
                    .with_label_values(&[upstream, backend, o.label()])
            }),
            healthy,
            circuit,
        }
    }
}

/// Live state of one backend, for the request path and the admin listener.
pub(crate) struct BackendState {
    in_flight: AtomicI64,
    /// Response heads received, and the microseconds they took in all, since start:
    /// the dashboard's latency is the difference between two of its reads.
    answers: AtomicU64,
    answer_micros: AtomicU64,
    /// The kind of the latest failed attempt (e.g. `ConnectRefused`).
    last_error: Mutex<Option<&'static str>>,
    attempts: [IntCounter; 4],
    healthy: IntGauge,
    /// None without `circuit_breaker`: then every check below is this `Option`'s.
    circuit: Option<CircuitBreaker>,
}

impl BackendState {
    /// An attempt starts here; whether it is the trial of a half-open circuit (the
    /// one selection just claimed).
    pub(crate) fn begin(&self) -> bool {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.circuit.as_ref().is_some_and(|c| c.take_trial())
    }

    /// An attempt ends; `trial` when it was the trial and had no outcome, which
    /// frees the trial for the next request.
    pub(crate) fn end(&self, trial: bool) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(c) = self.circuit.as_ref().filter(|_| trial) {
            c.trial_abandoned();
        }
    }

    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Count an attempt's outcome; a failure becomes the backend's latest error.
    pub(crate) fn attempted(&self, outcome: Outcome, error: Option<&pingora::Error>) {
        self.attempts[outcome as usize].inc();
        if let Some(e) = error {
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(e.etype().as_str());
            }
        }
    }

    /// A response head arrived `elapsed` after the attempt began.
    pub(crate) fn answered_after(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.answer_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// (response heads, their microseconds in all) since start.
    pub(crate) fn answer_times(&self) -> (u64, u64) {
        let answers = self.answers.load(Ordering::Relaxed);
        (answers, self.answer_micros.load(Ordering::Relaxed))
    }

    pub(crate) fn last_error(&self) -> Option<&'static str> {
        self.last_error.lock().ok().and_then(|l| *l)
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        self.healthy.set(i64::from(healthy));
    }

    /// Tell the circuit breaker how an attempt went: `failed` for a connection
    /// failure, a timeout, a broken connection or a 5xx answer; `trial` when it was
    /// the half-open trial.
    pub(crate) fn breaker_hears(&self, failed: bool, trial: bool) {
        if let Some(c) = &self.circuit {
            c.heard(failed, trial, Instant::now());
        }
    }

    /// Whether the circuit lets selection choose this backend now (always without a
    /// breaker). Claims nothing.
    pub(crate) fn admits(&self) -> bool {
        self.circuit
            .as_ref()
            .is_none_or(|c| c.is_closed() || c.admits(Instant::now()))
    }

    /// `admits`, claiming the trial of a half-open circuit for the attempt about to
    /// begin here: call it only for the backend that will be used.
    pub(crate) fn claim(&self) -> bool {
        self.circuit
            .as_ref()
            .is_none_or(|c| c.is_closed() || c.claim(Instant::now()))
    }

    /// The circuit's state, when the backend has a breaker.
    pub(crate) fn circuit(&self) -> Option<CircuitState> {
        self.circuit.as_ref().map(|c| c.state(Instant::now()))
    }

    /// For tests that drive the circuit with their own clock.
    #[cfg(test)]
    pub(crate) fn breaker(&self) -> Option<&CircuitBreaker> {
        self.circuit.as_ref()
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
        let state = families.state("app", "127.0.0.1:1", None);
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
        assert!(
            !text.contains("parapet_circuit_open"),
            "no breaker, no series"
        );
        assert_eq!(state.circuit(), None);
        assert!(state.admits() && state.claim() && !state.begin());
    }

    #[test]
    fn a_breaker_has_its_circuit_series() {
        let registry = Registry::new();
        let families = BackendFamilies::register(&registry).unwrap();
        let breaker = CircuitBreakerSettings {
            consecutive_failures: 1,
            open_for: std::time::Duration::from_secs(10),
        };
        let state = families.state("app", "127.0.0.1:2", Some(breaker));
        let series = |value: u8| {
            let mut text = Vec::new();
            let encoder = prometheus::TextEncoder::new();
            prometheus::Encoder::encode(&encoder, &registry.gather(), &mut text).unwrap();
            let line =
                format!("parapet_circuit_open{{backend=\"127.0.0.1:2\",upstream=\"app\"}} {value}");
            String::from_utf8(text).unwrap().contains(&line)
        };
        assert!(series(0));
        assert_eq!(state.circuit(), Some(CircuitState::Closed));
        state.breaker_hears(true, false);
        assert!(series(1));
        assert_eq!(state.circuit(), Some(CircuitState::Open));
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
