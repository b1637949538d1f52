//! The circuit breaker of one backend (README: Configuration walk-through,
//! `circuit_breaker`): after `consecutive_failures` failed attempts in a row (connect
//! errors, timeouts, broken connections, 5xx answers) the circuit opens and selection
//! skips the backend for `open_for`; then it is half-open, and exactly one trial
//! request decides: a success closes it, a failure opens it again for `open_for`.
//!
//! The trial slot is claimed by selection (`claim`), taken by the attempt that
//! starts at the backend right after (`take_trial`), and freed by that attempt when
//! it ends with no outcome (`trial_abandoned`), so a request that goes away cannot
//! hold the circuit half-open. A claim that no attempt takes expires after
//! `open_for`.
//!
//! The breaker does not know about health checks: selection asks both, and a backend
//! serves only when it is healthy and its circuit admits it. Times are passed in, so
//! the state machine is tested without sleeping. Not for upstreams without a
//! `circuit_breaker`: they have no breaker at all.

use crate::config::units::Span;
use crate::config::{field, require_nonzero, ConfigErrors};
use prometheus::IntGauge;
use serde::Deserialize;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `upstreams.NAME.circuit_breaker` as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "default_open_for")]
    pub open_for: Span,
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_open_for() -> Span {
    Span(Duration::from_secs(10))
}

/// A validated circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreakerSettings {
    pub consecutive_failures: u32,
    pub open_for: Duration,
}

impl CircuitBreakerSettings {
    /// `path` is the section's.
    pub fn from_config(
        config: CircuitBreakerConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> CircuitBreakerSettings {
        if config.consecutive_failures == 0 {
            errors.push(field(path, "consecutive_failures"), "must be at least 1");
        }
        require_nonzero(path, &[("open_for", config.open_for.0)], errors);
        CircuitBreakerSettings {
            consecutive_failures: config.consecutive_failures.max(1),
            open_for: config.open_for.0,
        }
    }
}

/// What `/status` shows of a circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

/// `CircuitBreaker::hint`: the phase, readable without the lock.
const CLOSED: u8 = 0;
/// Closed, with failures counted: a success has a count to reset.
const FAILING: u8 = 1;
/// Open or half-open.
const TRIPPED: u8 = 2;

/// The breaker of one backend. Closed and doing well, the request path reads one
/// atomic; every change of phase happens under a small lock of this backend.
pub struct CircuitBreaker {
    settings: CircuitBreakerSettings,
    hint: AtomicU8,
    inner: Mutex<Inner>,
    /// `parapet_circuit_open` of this backend.
    open_gauge: IntGauge,
    /// "upstream NAME backend ADDRESS", for the log.
    name: String,
}

struct Inner {
    /// Failures in a row while closed.
    failures: u32,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    /// Skipped until `until`; then half-open (with the trial slot free).
    Open {
        until: Instant,
    },
    HalfOpen {
        trial: Trial,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trial {
    Free,
    /// Selection chose this backend for the trial at `at`; its attempt has not
    /// started yet.
    Claimed {
        at: Instant,
    },
    /// The trial attempt is in progress.
    Running,
}

impl CircuitBreaker {
    pub fn new(settings: CircuitBreakerSettings, open_gauge: IntGauge, name: String) -> Self {
        open_gauge.set(0);
        CircuitBreaker {
            settings,
            hint: AtomicU8::new(CLOSED),
            inner: Mutex::new(Inner {
                failures: 0,
                phase: Phase::Closed,
            }),
            open_gauge,
            name,
        }
    }

    /// Closed: every request may go (no lock taken).
    pub fn is_closed(&self) -> bool {
        self.hint.load(Ordering::Acquire) != TRIPPED
    }

    /// Whether selection may choose the backend at `now`, without claiming
    /// anything: closed, or half-open with the trial slot free.
    pub fn admits(&self, now: Instant) -> bool {
        self.is_closed() || self.with(|inner| inner.trial_free(now, &self.settings))
    }

    /// Like `admits`, and when the circuit is half-open, claim its one trial for the
    /// attempt about to start.
    pub fn claim(&self, now: Instant) -> bool {
        if self.is_closed() {
            return true;
        }
        self.with(|inner| {
            if !inner.trial_free(now, &self.settings) {
                return false;
            }
            if matches!(inner.phase, Phase::Open { .. }) {
                log::warn!(
                    "{}: circuit half-open, sending one trial request",
                    self.name
                );
            }
            inner.phase = Phase::HalfOpen {
                trial: Trial::Claimed { at: now },
            };
            true
        })
    }

    /// An attempt starts at this backend: whether it is the trial claimed for it.
    pub fn take_trial(&self) -> bool {
        if self.is_closed() {
            return false;
        }
        self.with(|inner| match inner.phase {
            Phase::HalfOpen {
                trial: Trial::Claimed { .. },
            } => {
                inner.phase = Phase::HalfOpen {
                    trial: Trial::Running,
                };
                true
            }
            _ => false,
        })
    }

    /// An attempt's outcome: `failed` for a connection failure, a timeout, a broken
    /// connection or a 5xx answer; `trial` when it was the half-open trial.
    pub fn heard(&self, failed: bool, trial: bool, now: Instant) {
        if !failed && !trial && self.hint.load(Ordering::Acquire) == CLOSED {
            return;
        }
        self.with(|inner| match (inner.phase, failed) {
            (Phase::Closed, false) => inner.failures = 0,
            (Phase::Closed, true) => {
                inner.failures += 1;
                if inner.failures >= self.settings.consecutive_failures {
                    self.open(inner, now);
                    log::warn!(
                        "{}: circuit open for {:?} after {} failures in a row",
                        self.name,
                        self.settings.open_for,
                        inner.failures
                    );
                }
            }
            (Phase::HalfOpen { .. }, false) if trial => {
                inner.failures = 0;
                inner.phase = Phase::Closed;
                self.open_gauge.set(0);
                log::warn!("{}: circuit closed, the trial request succeeded", self.name);
            }
            (Phase::HalfOpen { .. }, true) if trial => {
                self.open(inner, now);
                log::warn!(
                    "{}: circuit open again for {:?}, the trial request failed",
                    self.name,
                    self.settings.open_for
                );
            }
            // Attempts that started before the circuit opened do not decide.
            _ => {}
        });
    }

    /// The trial attempt ended without an outcome (the request went away): the
    /// next request may try.
    pub fn trial_abandoned(&self) {
        self.with(|inner| {
            if inner.phase
                == (Phase::HalfOpen {
                    trial: Trial::Running,
                })
            {
                inner.phase = Phase::HalfOpen { trial: Trial::Free };
            }
        });
    }

    pub fn state(&self, now: Instant) -> CircuitState {
        self.with(|inner| match inner.phase {
            Phase::Closed => CircuitState::Closed,
            Phase::Open { until } if now < until => CircuitState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        })
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.failures = 0;
        inner.phase = Phase::Open {
            until: now + self.settings.open_for,
        };
        self.open_gauge.set(1);
    }

    /// Run `f` under the lock, then publish the phase for lock-free readers.
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let out = f(&mut inner);
        let hint = match inner.phase {
            Phase::Closed if inner.failures == 0 => CLOSED,
            Phase::Closed => FAILING,
            _ => TRIPPED,
        };
        self.hint.store(hint, Ordering::Release);
        out
    }
}

impl Inner {
    /// Open and past `until`, or half-open with no trial (a claim no attempt took
    /// counts as none once `open_for` has passed).
    fn trial_free(&self, now: Instant, settings: &CircuitBreakerSettings) -> bool {
        match self.phase {
            Phase::Closed => true,
            Phase::Open { until } => now >= until,
            Phase::HalfOpen { trial: Trial::Free } => true,
            Phase::HalfOpen {
                trial: Trial::Claimed { at },
            } => now >= at + settings.open_for,
            Phase::HalfOpen {
                trial: Trial::Running,
            } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    fn breaker(failures: u32) -> CircuitBreaker {
        let gauge = IntGauge::new("circuit_open", "test").unwrap();
        let settings = CircuitBreakerSettings {
            consecutive_failures: failures,
            open_for: OPEN_FOR,
        };
        CircuitBreaker::new(settings, gauge, "upstream app backend b".into())
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    /// Open `b` at `t0` with failures.
    fn trip(b: &CircuitBreaker, t0: Instant) {
        for _ in 0..b.settings.consecutive_failures {
            assert!(b.claim(t0));
            assert!(!b.take_trial());
            b.heard(true, false, t0);
        }
        assert_eq!(b.state(t0), CircuitState::Open);
    }

    #[test]
    fn failures_in_a_row_open_the_circuit() {
        let (b, t0) = (breaker(3), Instant::now());
        b.heard(true, false, t0);
        b.heard(true, false, t0);
        assert!(b.is_closed() && b.admits(t0));
        assert_eq!(b.open_gauge.get(), 0);
        b.heard(true, false, t0);
        assert!(!b.is_closed() && !b.admits(t0) && !b.claim(t0));
        assert_eq!(b.state(t0), CircuitState::Open);
        assert_eq!(b.open_gauge.get(), 1);
        assert!(
            !b.claim(secs(t0, 9)),
            "open skips until open_for has passed"
        );
        // Late outcomes of attempts from before do not decide anything.
        b.heard(false, false, secs(t0, 1));
        assert_eq!(b.state(secs(t0, 1)), CircuitState::Open);
    }

    #[test]
    fn a_success_resets_the_count() {
        let (b, t0) = (breaker(3), Instant::now());
        for _ in 0..5 {
            b.heard(true, false, t0);
            b.heard(true, false, t0);
            b.heard(false, false, t0);
        }
        assert_eq!(b.state(t0), CircuitState::Closed);
        assert_eq!(b.hint.load(Ordering::Relaxed), CLOSED);
    }

    #[test]
    fn after_open_for_exactly_one_trial_goes() {
        let (b, t0) = (breaker(2), Instant::now());
        trip(&b, t0);
        let later = secs(t0, 10);
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert!(b.admits(later));
        assert!(b.claim(later), "the trial");
        assert!(!b.admits(later) && !b.claim(later), "only one trial");
        assert!(b.take_trial());
        assert!(!b.take_trial(), "one attempt takes the trial");
        assert!(!b.claim(secs(t0, 100)), "a running trial holds the slot");
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert_eq!(b.open_gauge.get(), 1);
    }

    #[test]
    fn a_trial_success_closes() {
        let (b, t0) = (breaker(2), Instant::now());
        trip(&b, t0);
        let later = secs(t0, 11);
        assert!(b.claim(later) && b.take_trial());
        b.heard(false, true, later);
        assert_eq!(b.state(later), CircuitState::Closed);
        assert!(b.is_closed() && b.claim(later) && b.claim(later));
        assert_eq!(b.open_gauge.get(), 0);
        // The count starts again from zero.
        b.heard(true, false, later);
        assert!(b.is_closed());
        b.heard(true, false, later);
        assert!(!b.is_closed());
    }

    #[test]
    fn a_trial_failure_opens_again() {
        let (b, t0) = (breaker(2), Instant::now());
        trip(&b, t0);
        let later = secs(t0, 10);
        assert!(b.claim(later) && b.take_trial());
        // A request that was in flight before the circuit opened decides nothing.
        b.heard(false, false, later);
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        b.heard(true, true, later);
        assert_eq!(b.state(later), CircuitState::Open);
        assert!(!b.claim(secs(t0, 19)), "open for open_for again");
        assert!(b.claim(secs(t0, 20)));
    }

    #[test]
    fn a_trial_dropped_without_an_outcome_frees_the_slot() {
        let (b, t0) = (breaker(1), Instant::now());
        trip(&b, t0);
        let later = secs(t0, 10);
        assert!(b.claim(later) && b.take_trial());
        b.trial_abandoned();
        assert_eq!(b.state(later), CircuitState::HalfOpen);
        assert!(b.claim(later), "the next request is the trial");
        assert!(b.take_trial());
        b.heard(false, true, later);
        assert!(b.is_closed());
        b.trial_abandoned();
        assert!(b.is_closed(), "nothing to free once closed");
    }

    #[test]
    fn a_claim_no_attempt_takes_expires() {
        let (b, t0) = (breaker(1), Instant::now());
        trip(&b, t0);
        assert!(b.claim(secs(t0, 10)));
        assert!(!b.claim(secs(t0, 19)));
        assert!(b.claim(secs(t0, 20)));
    }

    #[test]
    fn each_problem_names_its_field() {
        let check = |yaml: &str| {
            let config: CircuitBreakerConfig = serde_yaml::from_str(yaml).unwrap();
            let mut errors = ConfigErrors::default();
            let at = "upstreams.app.circuit_breaker";
            let settings = CircuitBreakerSettings::from_config(config, at, &mut errors);
            let problems: Vec<String> = errors
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect();
            (settings, problems)
        };
        let (s, problems) = check("{}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((s.consecutive_failures, s.open_for), (5, OPEN_FOR));
        let (s, problems) = check("{consecutive_failures: 3, open_for: 1s}");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            (s.consecutive_failures, s.open_for),
            (3, Duration::from_secs(1))
        );
        let (_, problems) = check("{consecutive_failures: 0, open_for: 0s}");
        assert_eq!(
            problems,
            [
                "upstreams.app.circuit_breaker.consecutive_failures: must be at least 1",
                "upstreams.app.circuit_breaker.open_for: must be greater than 0",
            ]
        );
        assert!(serde_yaml::from_str::<CircuitBreakerConfig>("{failures: 3}").is_err());
    }
}
