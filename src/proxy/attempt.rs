//! The upstream attempts of one request: how many were made, which backends they
//! went to, and the one in progress. An attempt in progress is counted in its
//! backend's in-flight gauge by an `InFlight` guard, so the count ends exactly once
//! however the attempt ends: with an outcome (`answered`, `end`), or when the
//! request goes away first (the guard is dropped with the context).
//!
//! Outcomes also go to the backend's circuit breaker: a 5xx answer or a failure
//! counts against it, any other answer for it. When the attempt is the trial of a
//! half-open circuit, the guard carries the trial, and a trial that ends without
//! an outcome frees it for the next request.

use crate::upstream::{tried_bit, BackendState, Outcome};
use pingora::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Attempts {
    /// Attempts made so far.
    pub(crate) count: u8,
    /// Backends tried, a bit per backend index.
    pub(crate) tried: u64,
    /// The backend of the latest attempt.
    pub(crate) backend: Option<usize>,
    /// When the first attempt started, and how long until a response head arrived.
    pub(crate) started: Option<Instant>,
    pub(crate) elapsed: Option<Duration>,
    /// The status of the latest response head from a backend.
    pub(crate) status: Option<u16>,
    current: Option<InFlight>,
}

/// One attempt in progress at its backend.
struct InFlight {
    state: Arc<BackendState>,
    began: Instant,
    /// The trial of the backend's half-open circuit, not yet decided.
    trial: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.state.end(self.trial);
    }
}

impl Attempts {
    /// Start an attempt at backend `index`, just chosen by `Upstream::select`. An
    /// attempt still in progress ends uncounted (Pingora does not start one without
    /// ending the last).
    pub(crate) fn begin(&mut self, index: usize, state: &Arc<BackendState>) {
        let trial = state.begin();
        let began = Instant::now();
        self.current = Some(InFlight {
            state: state.clone(),
            began,
            trial,
        });
        self.count = self.count.saturating_add(1);
        self.tried |= tried_bit(index);
        self.backend = Some(index);
        self.started.get_or_insert(began);
    }

    /// The backend answered with a response head of `status`; a 5xx counts against
    /// its circuit.
    pub(crate) fn answered(&mut self, status: u16) {
        let now = Instant::now();
        self.elapsed = self.started.map(|s| now - s);
        if let Some(attempt) = &self.current {
            attempt.state.answered_after(now - attempt.began);
        }
        self.status = Some(status);
        self.finish(Outcome::Success, None, status >= 500);
    }

    /// End the attempt in progress with its outcome, a failure; nothing when none is.
    pub(crate) fn end(&mut self, outcome: Outcome, error: Option<&Error>) {
        self.finish(outcome, error, outcome != Outcome::Success);
    }

    fn finish(&mut self, outcome: Outcome, error: Option<&Error>, failed: bool) {
        if let Some(mut attempt) = self.current.take() {
            attempt.state.attempted(outcome, error);
            attempt.state.breaker_hears(failed, attempt.trial);
            attempt.trial = false;
        }
    }

    /// End the attempt in progress, if any, without counting an outcome: the
    /// request is over.
    pub(crate) fn release(&mut self) {
        self.current = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::circuit::CircuitBreakerSettings;
    use crate::upstream::circuit::CircuitState;
    use crate::upstream::BackendFamilies;
    use pingora::ErrorType;

    fn backend() -> Arc<BackendState> {
        let families = BackendFamilies::register(&prometheus::Registry::new()).unwrap();
        Arc::new(families.state("app", "127.0.0.1:1", None))
    }

    /// A backend whose circuit opens for 10 s after 2 failures.
    fn guarded_backend() -> Arc<BackendState> {
        let families = BackendFamilies::register(&prometheus::Registry::new()).unwrap();
        let breaker = CircuitBreakerSettings {
            consecutive_failures: 2,
            open_for: Duration::from_secs(10),
        };
        Arc::new(families.state("app", "127.0.0.1:1", Some(breaker)))
    }

    /// A guarded backend whose circuit opened 20 s ago: half-open now.
    fn half_open_backend() -> Arc<BackendState> {
        let state = guarded_backend();
        let breaker = state.breaker().unwrap();
        let past = Instant::now() - Duration::from_secs(20);
        breaker.heard(true, false, past);
        breaker.heard(true, false, past);
        assert_eq!(state.circuit(), Some(CircuitState::HalfOpen));
        state
    }

    #[test]
    fn five_hundreds_and_failures_count_against_the_circuit() {
        let state = guarded_backend();
        let mut attempts = Attempts::default();
        let refused = Error::new_up(ErrorType::ConnectRefused);
        for status in [502, 200, 503, 404] {
            attempts.begin(0, &state);
            attempts.answered(status);
        }
        assert_eq!(
            state.circuit(),
            Some(CircuitState::Closed),
            "successes reset"
        );
        attempts.begin(0, &state);
        attempts.answered(500);
        attempts.begin(0, &state);
        attempts.end(Outcome::ConnectError, Some(&refused));
        assert_eq!(state.circuit(), Some(CircuitState::Open));
        assert!(!state.admits() && !state.claim());
        assert_eq!(state.in_flight(), 0);
        assert_eq!(state.answer_times().0, 5, "answers are timed, failures not");
    }

    #[test]
    fn answers_and_failures_reach_the_circuit() {
        let state = half_open_backend();
        assert!(state.admits() && state.claim() && !state.admits());
        let mut attempts = Attempts::default();
        attempts.begin(0, &state);
        attempts.answered(404);
        assert_eq!(
            state.circuit(),
            Some(CircuitState::Closed),
            "a 404 is a success"
        );

        let state = half_open_backend();
        assert!(state.claim());
        attempts.begin(0, &state);
        let timeout = Error::new_up(ErrorType::ReadTimedout);
        attempts.end(Outcome::Timeout, Some(&timeout));
        assert!(!state.admits(), "the failed trial opened the circuit again");
    }

    #[test]
    fn a_trial_that_goes_away_frees_the_circuit() {
        let state = half_open_backend();
        assert!(state.claim());
        let mut attempts = Attempts::default();
        attempts.begin(0, &state);
        assert!(!state.admits(), "the trial is in flight");
        attempts.release();
        assert_eq!(state.in_flight(), 0);
        assert!(state.admits(), "the next request may try");
        assert_eq!(state.circuit(), Some(CircuitState::HalfOpen));

        assert!(state.claim());
        attempts.begin(0, &state);
        drop(attempts);
        assert!(state.admits(), "dropping the request frees the trial too");
    }

    #[test]
    fn the_in_flight_count_ends_once_however_the_attempt_ends() {
        let (a, b) = (backend(), backend());
        let mut attempts = Attempts::default();
        attempts.begin(0, &a);
        assert_eq!((a.in_flight(), attempts.current.is_some()), (1, true));
        let refused = Error::new_up(ErrorType::ConnectRefused);
        attempts.end(Outcome::ConnectError, Some(&refused));
        attempts.end(Outcome::ConnectError, Some(&refused));
        assert_eq!(a.in_flight(), 0);
        assert_eq!(a.last_error(), Some("ConnectRefused"));

        attempts.begin(1, &b);
        assert_eq!(
            (attempts.count, attempts.tried, attempts.backend),
            (2, 0b11, Some(1))
        );
        attempts.answered(200);
        assert!(attempts.elapsed.is_some() && attempts.current.is_none());
        assert_eq!(attempts.status, Some(200));
        assert_eq!(b.in_flight(), 0);

        attempts.begin(1, &b);
        drop(attempts);
        assert_eq!(b.in_flight(), 0, "dropping the request ends its attempt");
    }
}
