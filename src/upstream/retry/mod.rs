//! Which failed attempts are tried again (`upstreams.NAME.retries`, `retry_on`,
//! `retry_budget`; README "What Parapet answers itself"). A retry needs all of:
//!
//! - an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE), nothing sent to the
//!   client yet, and the request body still fully buffered for a replay;
//! - fewer than `retries` retries so far;
//! - a reason listed in `retry_on`: `connect_error` (no connection was made, a
//!   connect timeout included: nothing reached the backend), `timeout` (waiting on
//!   an open connection), `reset` (the connection broke or the backend sent
//!   something invalid), or a 5xx status the backend answered;
//! - another healthy backend to go to;
//! - a token from the upstream's budget (`budget`), so that retries stay a bounded
//!   share of the traffic when every backend is failing.
//!
//! Reconnecting after a stale pooled connection is not a retry: the request never
//! reached a backend (the proxy decides that with Pingora's own rule).

mod budget;
pub(crate) mod config;

pub(crate) use budget::RetryBudget;
pub(crate) use config::{RetryOn, RetrySettings};

use http::Method;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// Why an attempt is to be retried; the `reason` label of `parapet_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryReason {
    ConnectError,
    Timeout,
    Reset,
    Status(u16),
}

impl RetryReason {
    /// The reason for a failure after the connection was made.
    pub(crate) fn of_failure(e: &pingora::Error) -> RetryReason {
        use pingora::ErrorType::*;
        match e.etype() {
            ReadTimedout | WriteTimedout => RetryReason::Timeout,
            ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError => {
                RetryReason::ConnectError
            }
            _ => RetryReason::Reset,
        }
    }
}

/// What the request path knows about a failed attempt.
pub(crate) struct Attempt<'a> {
    pub(crate) method: &'a Method,
    /// Attempts made so far, the failed one included.
    pub(crate) attempts: u8,
    /// Part of the body went upstream and is no longer buffered for a replay.
    pub(crate) body_truncated: bool,
    /// The response head already went to the client.
    pub(crate) response_started: bool,
}

/// One upstream's retry policy, its budget and its counters.
pub(crate) struct RetryPolicy {
    retries: u8,
    on: RetryOn,
    budget: RetryBudget,
    counters: RetryCounters,
}

impl RetryPolicy {
    pub(crate) fn new(settings: &RetrySettings, counters: RetryCounters) -> RetryPolicy {
        let b = settings.budget;
        RetryPolicy {
            retries: settings.retries,
            on: settings.on,
            budget: RetryBudget::new(b.ratio, b.min_per_second, b.window),
            counters,
        }
    }

    /// A request that arrived at `at` is going to the upstream: it adds to the
    /// budget.
    pub(crate) fn request_sent(&self, at: std::time::Instant) {
        self.budget.deposit(at);
    }

    /// Retries the budget allows now.
    pub(crate) fn budget_available(&self) -> u64 {
        self.budget.available()
    }

    /// Whether an answer with `status` is worth asking for again.
    pub(crate) fn retries_status(&self, status: u16) -> bool {
        self.on.status(status)
    }

    /// Whether the attempt may be repeated at all, whatever its reason.
    pub(crate) fn may_retry(&self, attempt: &Attempt) -> bool {
        is_idempotent(attempt.method)
            && !attempt.body_truncated
            && !attempt.response_started
            && attempt.attempts <= self.retries
    }

    /// Whether to retry `attempt`, failed for `reason`. `elsewhere` says whether
    /// another backend is left; it is asked only when everything else allows the
    /// retry, and the budget is spent only when the retry happens.
    pub(crate) fn decide(
        &self,
        attempt: &Attempt,
        reason: RetryReason,
        elsewhere: impl FnOnce() -> bool,
    ) -> bool {
        if !(self.listed(reason) && self.may_retry(attempt) && elsewhere()) {
            return false;
        }
        if !self.budget.withdraw() {
            self.counters.exhausted.inc();
            return false;
        }
        self.counters.retried(reason);
        true
    }

    fn listed(&self, reason: RetryReason) -> bool {
        match reason {
            RetryReason::ConnectError => self.on.connect_error,
            RetryReason::Timeout => self.on.timeout,
            RetryReason::Reset => self.on.reset,
            RetryReason::Status(status) => self.on.status(status),
        }
    }
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// `parapet_retries_total{upstream,reason}` and
/// `parapet_retry_budget_exhausted_total{upstream}`, registered once.
pub(crate) struct RetryFamilies {
    retries: IntCounterVec,
    exhausted: IntCounterVec,
}

impl RetryFamilies {
    pub(crate) fn register(registry: &Registry) -> prometheus::Result<RetryFamilies> {
        let retries = IntCounterVec::new(
            Opts::new(
                "parapet_retries_total",
                "Attempts repeated on another backend, by what failed",
            ),
            &["upstream", "reason"],
        )?;
        let exhausted = IntCounterVec::new(
            Opts::new(
                "parapet_retry_budget_exhausted_total",
                "Retries not made because the upstream's retry budget was spent",
            ),
            &["upstream"],
        )?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(exhausted.clone()))?;
        Ok(RetryFamilies { retries, exhausted })
    }

    /// The series of `upstream`, resolved now for every reason its policy lists.
    pub(crate) fn counters(&self, upstream: &str, on: &RetryOn) -> RetryCounters {
        let series = |reason: &str| self.retries.with_label_values(&[upstream, reason]);
        RetryCounters {
            transport: [
                on.connect_error.then(|| series("connect_error")),
                on.timeout.then(|| series("timeout")),
                on.reset.then(|| series("reset")),
            ],
            statuses: on
                .statuses()
                .map(|s| (s, series(itoa::Buffer::new().format(s))))
                .collect(),
            exhausted: self.exhausted.with_label_values(&[upstream]),
        }
    }
}

pub(crate) struct RetryCounters {
    /// connect_error, timeout, reset: present when listed.
    transport: [Option<IntCounter>; 3],
    statuses: Vec<(u16, IntCounter)>,
    exhausted: IntCounter,
}

impl RetryCounters {
    fn retried(&self, reason: RetryReason) {
        let counter = match reason {
            RetryReason::ConnectError => self.transport[0].as_ref(),
            RetryReason::Timeout => self.transport[1].as_ref(),
            RetryReason::Reset => self.transport[2].as_ref(),
            RetryReason::Status(status) => self
                .statuses
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, c)| c),
        };
        if let Some(counter) = counter {
            counter.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::config::RetryBudgetSettings;
    use super::*;
    use std::time::Duration;

    fn policy(retries: u8, on: RetryOn, min_per_second: u32) -> (RetryPolicy, Registry) {
        let registry = Registry::new();
        let families = RetryFamilies::register(&registry).unwrap();
        let settings = RetrySettings {
            retries,
            on,
            budget: RetryBudgetSettings {
                ratio: 0.2,
                min_per_second,
                window: Duration::from_secs(10),
            },
        };
        let counters = families.counters("app", &on);
        (RetryPolicy::new(&settings, counters), registry)
    }

    fn attempt(method: &Method, attempts: u8) -> Attempt<'_> {
        Attempt {
            method,
            attempts,
            body_truncated: false,
            response_started: false,
        }
    }

    fn metric(registry: &Registry, name: &str, label: Option<&str>) -> u64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric())
            .filter(|m| label.is_none_or(|l| m.get_label().iter().any(|p| p.value() == l)))
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    #[test]
    fn idempotent_methods_retry_within_the_count() {
        let (policy, _) = policy(2, RetryOn::TRANSPORT, 10);
        assert!(policy.may_retry(&attempt(&Method::GET, 1)));
        assert!(policy.may_retry(&attempt(&Method::DELETE, 2)));
        assert!(!policy.may_retry(&attempt(&Method::GET, 3)));
    }

    #[test]
    fn post_is_never_replayed() {
        let (policy, _) = policy(5, RetryOn::TRANSPORT, 10);
        assert!(!policy.may_retry(&attempt(&Method::POST, 1)));
        assert!(!policy.may_retry(&attempt(&Method::PATCH, 1)));
    }

    #[test]
    fn nothing_is_retried_once_the_client_saw_a_response() {
        let (policy, _) = policy(2, RetryOn::TRANSPORT, 10);
        let mut a = attempt(&Method::GET, 1);
        a.response_started = true;
        assert!(!policy.may_retry(&a));
        let mut a = attempt(&Method::PUT, 1);
        a.body_truncated = true;
        assert!(!policy.may_retry(&a));
    }

    #[test]
    fn only_listed_reasons_with_somewhere_to_go_are_retried_and_counted() {
        let (policy, registry) = policy(2, RetryOn::TRANSPORT, 10);
        let get = attempt(&Method::GET, 1);
        assert!(policy.decide(&get, RetryReason::Reset, || true));
        assert!(!policy.decide(&get, RetryReason::Timeout, || false));
        assert!(!policy.decide(&get, RetryReason::Status(503), || true));
        assert!(!policy.retries_status(503));
        let mut asked = false;
        let post = attempt(&Method::POST, 1);
        assert!(!policy.decide(&post, RetryReason::ConnectError, || {
            asked = true;
            true
        }));
        assert!(!asked, "no need to look for a backend for a POST");
        assert_eq!(metric(&registry, "parapet_retries_total", Some("reset")), 1);
        assert_eq!(metric(&registry, "parapet_retries_total", None), 1);
    }

    #[test]
    fn the_budget_bounds_retries_and_counts_its_refusals() {
        let (policy, registry) = policy(1, retry_on("[connect_error, 503]"), 0);
        for _ in 0..10 {
            policy.request_sent(std::time::Instant::now());
        }
        let get = attempt(&Method::GET, 1);
        let retried = (0..5)
            .filter(|_| policy.decide(&get, RetryReason::Status(503), || true))
            .count();
        assert_eq!(retried, 2, "20% of 10 requests");
        assert_eq!(metric(&registry, "parapet_retries_total", Some("503")), 2);
        let exhausted = "parapet_retry_budget_exhausted_total";
        assert_eq!(metric(&registry, exhausted, Some("app")), 3);
    }

    fn retry_on(list: &str) -> RetryOn {
        let yaml = format!("{{backends: [{{address: '127.0.0.1:1'}}], retry_on: {list}}}");
        let config: crate::upstream::config::UpstreamConfig = serde_yaml::from_str(&yaml).unwrap();
        let mut errors = crate::config::ConfigErrors::default();
        let path = "upstreams.app";
        crate::upstream::UpstreamSettings::from_config("app", config, path, &mut errors)
            .retry
            .on
    }
}
