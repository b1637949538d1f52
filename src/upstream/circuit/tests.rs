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
