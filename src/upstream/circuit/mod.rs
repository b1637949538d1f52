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
pub(crate) struct CircuitBreakerConfig {
    #[serde(default = "default_consecutive_failures")]
    pub(crate) consecutive_failures: u32,
    #[serde(default = "default_open_for")]
    pub(crate) open_for: Span,
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_open_for() -> Span {
    Span(Duration::from_secs(10))
}

/// A validated circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CircuitBreakerSettings {
    pub(crate) consecutive_failures: u32,
    pub(crate) open_for: Duration,
}

impl CircuitBreakerSettings {
    /// `path` is the section's.
    pub(crate) fn from_config(
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
pub(crate) enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) struct CircuitBreaker {
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
    pub(crate) fn new(
        settings: CircuitBreakerSettings,
        open_gauge: IntGauge,
        name: String,
    ) -> Self {
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
    pub(crate) fn is_closed(&self) -> bool {
        self.hint.load(Ordering::Acquire) != TRIPPED
    }

    /// Whether selection may choose the backend at `now`, without claiming
    /// anything: closed, or half-open with the trial slot free.
    pub(crate) fn admits(&self, now: Instant) -> bool {
        self.is_closed() || self.with(|inner| inner.trial_free(now, &self.settings))
    }

    /// Like `admits`, and when the circuit is half-open, claim its one trial for the
    /// attempt about to start.
    pub(crate) fn claim(&self, now: Instant) -> bool {
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
    pub(crate) fn take_trial(&self) -> bool {
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
    pub(crate) fn heard(&self, failed: bool, trial: bool, now: Instant) {
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
    pub(crate) fn trial_abandoned(&self) {
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

    pub(crate) fn state(&self, now: Instant) -> CircuitState {
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
mod tests;
