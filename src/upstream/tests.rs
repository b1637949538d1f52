use super::*;
use crate::upstream::circuit::CircuitState;
use std::time::{Duration, Instant};

#[test]
fn keys_come_from_the_request() {
    let yaml =
        "{backends: [{address: '127.0.0.1:1'}], selection: consistent_hash, hash_key: client_ip}";
    let mut errors = crate::config::ConfigErrors::default();
    let mut settings = UpstreamSettings::from_config(
        "app",
        serde_yaml::from_str(yaml).unwrap(),
        "upstreams.app",
        &mut errors,
    );
    let mut req = RequestHeader::build("GET", b"/a?b", None).unwrap();
    req.insert_header("X-User", "u1").unwrap();
    let key_of = |settings: &UpstreamSettings| {
        let upstream = build(settings);
        let ip = "10.1.2.3".parse().unwrap();
        upstream.key_of(&req, ip, || None).as_bytes().to_vec()
    };
    assert_eq!(key_of(&settings), [10, 1, 2, 3]);
    settings.hash_key = HashKey::Uri;
    assert_eq!(key_of(&settings), b"/a?b");
    settings.hash_key = HashKey::Header(HeaderName::from_static("x-user"));
    assert_eq!(key_of(&settings), b"u1");
    settings.hash_key = HashKey::Header(HeaderName::from_static("x-none"));
    assert_eq!(key_of(&settings), b"");
}

/// The upstream of `settings`, its metrics in a registry of its own.
fn build(settings: &UpstreamSettings) -> Upstream {
    let registry = prometheus::Registry::new();
    let families = BackendFamilies::register(&registry).unwrap();
    let retry_families = RetryFamilies::register(&registry).unwrap();
    Upstream::build(settings, &families, &retry_families)
        .unwrap()
        .0
}

fn upstream(yaml: &str) -> Upstream {
    let mut errors = crate::config::ConfigErrors::default();
    let config = serde_yaml::from_str(yaml).unwrap();
    let settings = UpstreamSettings::from_config("app", config, "upstreams.app", &mut errors);
    assert!(errors.errors.is_empty(), "{errors}");
    build(&settings)
}

/// Select `n` times, each attempt beginning and answering at once.
fn chosen(u: &Upstream, n: usize) -> Vec<usize> {
    (0..n)
        .map(|_| {
            let index = u.select(b"", 0).unwrap().index;
            assert!(!u.state(index).begin(), "no trial");
            u.state(index).end(false);
            index
        })
        .collect()
}

const THREE: &str =
    "backends: [{address: '127.0.0.1:1'}, {address: '127.0.0.1:2'}, {address: '127.0.0.1:3'}]";

#[test]
fn least_connections_avoids_the_busy_backend() {
    let u = upstream(&format!("{{{THREE}, selection: least_connections}}"));
    assert_eq!(chosen(&u, 6), [0, 1, 2, 0, 1, 2], "idle backends alternate");
    u.state(0).begin();
    u.state(2).begin();
    u.state(2).begin();
    assert!(chosen(&u, 5).iter().all(|&i| i == 1));
    // A retry goes to an untried backend even when it is busier...
    assert_eq!(u.select(b"", tried_bit(1)).unwrap().index, 0);
    assert!(u.has_untried_healthy(tried_bit(1)));
    // ...and to the least busy of all when every one was tried.
    assert_eq!(u.select(b"", 0b111).unwrap().index, 1);
    assert!(!u.has_untried_healthy(0b111));
}

#[test]
fn least_connections_honours_weights() {
    let u = upstream(
        "{backends: [{address: '127.0.0.1:1', weight: 3}, {address: '127.0.0.1:2'}],
          selection: least_connections}",
    );
    let idle = chosen(&u, 40);
    assert_eq!(idle.iter().filter(|&&i| i == 0).count(), 30);
    // Two in flight on weight 3 weigh less than one on weight 1.
    u.state(0).begin();
    u.state(0).begin();
    u.state(1).begin();
    assert!(chosen(&u, 4).iter().all(|&i| i == 0));
}

/// Open the circuit of backend `index`, at `at`.
fn trip(u: &Upstream, index: usize, at: Instant) {
    let breaker = u.state(index).breaker().unwrap();
    breaker.heard(true, false, at);
    breaker.heard(true, false, at);
}

#[test]
fn open_circuits_are_skipped_by_every_selection() {
    let breaker = "circuit_breaker: {consecutive_failures: 2, open_for: 10s}";
    for selection in [
        "round_robin",
        "random",
        "consistent_hash",
        "least_connections",
    ] {
        let u = upstream(&format!("{{{THREE}, selection: {selection}, {breaker}}}"));
        trip(&u, 1, Instant::now());
        let got = chosen(&u, 30);
        assert!(!got.contains(&1), "{selection}: {got:?}");
        assert!(got.contains(&0) || got.contains(&2), "{selection}");
        assert!(!u.has_untried_healthy(tried_bit(0) | tried_bit(2)));
        assert_eq!(u.select(b"", tried_bit(0)).unwrap().index, 2, "{selection}");
        trip(&u, 0, Instant::now());
        trip(&u, 2, Instant::now());
        assert!(
            u.select(b"", 0).is_none(),
            "{selection}: all open means 503"
        );
        assert!(u.is_healthy(1), "health is another matter");
    }
}

#[test]
fn a_half_open_backend_takes_exactly_one_trial() {
    let breaker = "circuit_breaker: {consecutive_failures: 2, open_for: 10s}";
    for selection in ["round_robin", "least_connections"] {
        let u = upstream(&format!("{{{THREE}, selection: {selection}, {breaker}}}"));
        trip(&u, 1, Instant::now() - Duration::from_secs(20));
        let mut trials = 0;
        for _ in 0..9 {
            let index = u.select(b"", 0).unwrap().index;
            if u.state(index).begin() {
                assert_eq!(index, 1);
                trials += 1;
            }
            // Nothing ends: the trial stays in flight.
        }
        assert_eq!(trials, 1, "{selection}");
        assert_eq!(u.state(1).in_flight(), 1, "{selection}");
        // The trial succeeds: the backend is back.
        u.state(1).breaker_hears(false, true);
        u.state(1).end(false);
        assert_eq!(u.state(1).circuit(), Some(CircuitState::Closed));
        assert!(chosen(&u, 30).contains(&1), "{selection}");
    }
}
