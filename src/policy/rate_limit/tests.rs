use super::*;

use super::config::default_burst;
use super::table::{gcra, lock};
use crate::config::ConfigErrors;
use http::{HeaderName, HeaderValue};

const SEC: u64 = NANOS_PER_SEC;

/// Keys remembered now, across all shards (at most `max_keys`).
fn tracked_keys(limit: &RateLimit) -> usize {
    limit.table.shards.iter().map(|s| lock(s).len()).sum()
}

fn limiter(rate: f64, burst: u32) -> RateLimit {
    RateLimit::new(
        rate,
        burst,
        RateLimitKey::ClientIp,
        DEFAULT_MAX_KEYS,
        Scope::Local,
    )
}

/// Which of the requests of one key, at `times`, are allowed.
fn allowed(limit: &RateLimit, times: impl IntoIterator<Item = u64>) -> Vec<bool> {
    times
        .into_iter()
        .map(|t| limit.decide(7, t).allowed)
        .collect()
}

/// The ideal arrival times of `n` requests at `rate`, rounded up to whole
/// nanoseconds (never earlier than the rate).
fn at_rate(rate: f64, n: u64) -> impl Iterator<Item = u64> {
    (0..n).map(move |i| (i as f64 * SEC as f64 / rate).ceil() as u64)
}

#[test]
fn a_client_at_exactly_the_rate_is_never_refused() {
    for rate in [50.0, 5.0, 3.0, 7.0, 1.0, 0.5, 0.3, 1000.0, 333.3] {
        for burst in [1, default_burst(rate), 100] {
            let limit = limiter(rate, burst);
            let got = allowed(&limit, at_rate(rate, 1000));
            assert!(got.iter().all(|a| *a), "rate {rate} burst {burst}");
        }
    }
    // Also right after spending the whole burst.
    let limit = limiter(10.0, 20);
    assert!(allowed(&limit, [0; 20]).iter().all(|a| *a));
    let later = at_rate(10.0, 1000).skip(1).map(|t| t + SEC / 10);
    assert!(allowed(&limit, later).iter().all(|a| *a));
}

#[test]
fn a_burst_is_allowed_at_once_and_the_next_request_told_when() {
    let limit = limiter(10.0, 5);
    let got: Vec<_> = (0..6).map(|_| limit.decide(1, 0)).collect();
    let remaining: Vec<_> = got.iter().map(|d| d.remaining).collect();
    assert_eq!(remaining, [4, 3, 2, 1, 0, 0]);
    assert!(got[..5].iter().all(|d| d.allowed) && !got[5].allowed);
    // One token is back after 1/10 s: one second, rounded up.
    assert_eq!(got[5].reset, 1);
    // In nanoseconds: the refused request may come again in exactly 100ms.
    let g = limit.gcra;
    let v = gcra(5 * SEC / 10, 0, g.interval, g.tolerance);
    assert_eq!((v.allowed, v.reset, v.tat), (false, SEC / 10, 5 * SEC / 10));

    let slow = limiter(0.25, 2);
    assert_eq!(allowed(&slow, [0, 0, 0]), [true, true, false]);
    assert_eq!(slow.decide(7, 0).reset, 4);
    assert_eq!(slow.decide(7, SEC / 2).reset, 4, "3.5s rounds up");
    assert_eq!(slow.decide(7, 3 * SEC).reset, 1);
}

#[test]
fn a_refused_client_recovers_by_waiting() {
    let limit = limiter(10.0, 5);
    assert_eq!(allowed(&limit, [0; 6]).iter().filter(|a| **a).count(), 5);
    let next = SEC / 10;
    assert_eq!(
        allowed(&limit, [next - 1, next, next]),
        [false, true, false]
    );
    // Waiting burst * T from the last TAT gives the whole burst back.
    let full = 6 * SEC / 10;
    assert_eq!(
        allowed(&limit, [full; 6]),
        [true, true, true, true, true, false]
    );
    let d = limit.decide(8, 10 * SEC);
    assert_eq!((d.allowed, d.remaining), (true, 4));
}

#[test]
fn fractional_rates() {
    let limit = limiter(0.5, 1);
    let got = allowed(&limit, [0, SEC, 2 * SEC - 1, 2 * SEC, 3 * SEC, 4 * SEC]);
    assert_eq!(got, [true, false, false, true, false, true]);
    assert_eq!(limit.decide(7, 4 * SEC).reset, 2);
    let limit = limiter(2.5, 3);
    assert_eq!(allowed(&limit, [0, 0, 0, 0]), [true, true, true, false]);
    assert_eq!(allowed(&limit, [SEC * 2 / 5]), [true]);
    assert_eq!(default_burst(0.5), 1);
    assert_eq!(default_burst(2.5), 3);
    assert_eq!(default_burst(50.0), 50);
}

#[test]
fn thirty_at_once_at_five_per_second_allow_five_and_spread_over_six_seconds_all() {
    let limit = limiter(5.0, 5);
    assert_eq!(allowed(&limit, [0; 30]).iter().filter(|a| **a).count(), 5);
    let limit = limiter(5.0, 5);
    let spread = (0..30).map(|i| i * SEC / 5);
    assert!(allowed(&limit, spread).iter().all(|a| *a));
}

#[test]
fn huge_and_tiny_rates_do_not_overflow() {
    let limit = limiter(1e-12, u32::MAX);
    assert!(limit.decide(1, u64::MAX - 1).allowed);
    assert!(limit.decide(1, u64::MAX).allowed);
    let limit = limiter(1e12, 1);
    assert_eq!(limit.gcra.interval, 1);
    assert_eq!(allowed(&limit, [5, 5, 6]), [true, false, true]);
}

use crate::policy::client_ip::ClientGrouping;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn keyed(key: RateLimitKey) -> RateLimit {
    // One request per 1000s: a second one in the test's lifetime is refused.
    RateLimit::new(0.001, 1, key, DEFAULT_MAX_KEYS, Scope::Local)
}

#[test]
fn client_ips_have_buckets_of_their_own() {
    let limit = keyed(RateLimitKey::ClientIp);
    let none = HeaderMap::new();
    assert!(decided(limit.check(ip("10.0.0.1"), &none)).allowed);
    assert!(!decided(limit.check(ip("10.0.0.1"), &none)).allowed);
    assert!(decided(limit.check(ip("10.0.0.2"), &none)).allowed);
    assert!(decided(limit.check(ip("2001:db8::1"), &none)).allowed);
    // As the caller groups them: one /64, and a mapped address as its IPv4 one.
    let group = |s| ClientGrouping::default().group(ip(s));
    assert!(decided(limit.check(group("2001:db8:1::1"), &none)).allowed);
    assert!(!decided(limit.check(group("2001:db8:1::2"), &none)).allowed);
    assert!(!decided(limit.check(group("::ffff:10.0.0.2"), &none)).allowed);
}

#[test]
fn a_route_key_is_one_bucket() {
    let limit = keyed(RateLimitKey::Route);
    let none = HeaderMap::new();
    assert!(decided(limit.check(ip("10.0.0.1"), &none)).allowed);
    assert!(!decided(limit.check(ip("10.0.0.2"), &none)).allowed);
    assert_eq!(tracked_keys(&limit), 1);
}

#[test]
fn a_header_key_uses_the_value_or_else_the_client_ip() {
    let limit = keyed(RateLimitKey::Header(HeaderName::from_static("x-api-key")));
    let with = |v: &'static str| {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", HeaderValue::from_static(v));
        h
    };
    let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
    assert!(decided(limit.check(a, &with("k1"))).allowed);
    assert!(
        !decided(limit.check(b, &with("k1"))).allowed,
        "same key, other ip"
    );
    assert!(decided(limit.check(a, &with("k2"))).allowed);
    let none = HeaderMap::new();
    assert!(
        decided(limit.check(a, &none)).allowed,
        "ip bucket apart from k1, k2"
    );
    assert!(!decided(limit.check(a, &none)).allowed);
    assert!(decided(limit.check(b, &none)).allowed);
    // A value that spells an address is not that address's bucket.
    assert!(decided(limit.check(b, &with("10.0.0.1"))).allowed);
}

#[test]
fn a_flood_of_distinct_keys_stays_within_the_cap() {
    let limit = keyed(RateLimitKey::ClientIp);
    assert_eq!(limit.table.max_keys(), DEFAULT_MAX_KEYS);
    let none = HeaderMap::new();
    for i in 0..1_000_000u128 {
        let client = IpAddr::V6((0x2001_0db8_u128 << 96 | i).into());
        assert!(decided(limit.check(client, &none)).allowed);
        if i % 1000 == 0 {
            assert!(tracked_keys(&limit) <= DEFAULT_MAX_KEYS);
        }
    }
    let kept = tracked_keys(&limit);
    assert!(
        kept <= DEFAULT_MAX_KEYS && kept > DEFAULT_MAX_KEYS / 2,
        "{kept}"
    );
    // The tables never grew past 8,192 buckets (7,168 entries) each.
    for shard in limit.table.shards.iter() {
        assert!(lock(shard).capacity() <= 7168);
    }
}

#[test]
fn eviction_forgets_the_least_indebted_first_and_stateless_keys_before_all() {
    let limit = RateLimit::new(1.0, 5, RateLimitKey::ClientIp, 1600, Scope::Local);
    let heavy = 0x5555_5555_5555_5555;
    assert_eq!((0..7).filter(|_| limit.decide(heavy, 0).allowed).count(), 5);
    // Many fresh keys (owing 1s each) at the same moment as the heavy hitter.
    let spread = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for i in 1..200_000 {
        limit.decide(spread(i), 0);
        assert!(tracked_keys(&limit) <= 1600);
    }
    assert!(!limit.decide(heavy, 0).allowed, "still owes 5s");
    // Later, every fresh key has no state left and goes first; the heavy
    // hitter, owing 3s against a tolerance of 4s, may send 2 more, not 5.
    for i in 200_000..202_000 {
        limit.decide(spread(i), 2 * SEC);
        assert!(tracked_keys(&limit) <= 1600);
    }
    let more = (0..5).filter(|_| limit.decide(heavy, 2 * SEC).allowed);
    assert_eq!(more.count(), 2);
}

/// `cargo test --release --lib rate_limit::tests::cost -- --ignored --nocapture`
#[test]
#[ignore]
fn cost() {
    let limit = RateLimit::new(
        1e6,
        1000,
        RateLimitKey::ClientIp,
        DEFAULT_MAX_KEYS,
        Scope::Local,
    );
    let none = HeaderMap::new();
    let clients: Vec<IpAddr> = (0..1000u32).map(|i| IpAddr::V4(i.into())).collect();
    let start = Instant::now();
    let n = 10_000_000;
    let mut allowed = 0;
    for i in 0..n {
        allowed += usize::from(decided(limit.check(clients[i % 1000], &none)).allowed);
    }
    let ns = start.elapsed().as_nanos() / n as u128;
    println!("check: {ns} ns ({allowed} allowed)");
}

fn config(yaml: &str) -> (Option<RateLimit>, Vec<String>) {
    let config: RateLimitConfig = serde_yaml::from_str(yaml).unwrap();
    let mut errors = ConfigErrors::default();
    let got = RateLimit::from_config(config, "routes[0]", &mut errors);
    (got, errors.paths())
}

#[test]
fn defaults() {
    let limit = config("{requests_per_second: 50}").0.unwrap();
    assert_eq!(limit.requests_per_second, 50.0);
    assert_eq!(limit.burst, 50);
    assert_eq!(&limit.key, &RateLimitKey::ClientIp);
    assert_eq!(config("{requests_per_second: 0.5}").0.unwrap().burst, 1);
    let limit = config("{requests_per_second: 2, burst: 7, key: route}")
        .0
        .unwrap();
    assert_eq!((limit.burst, &limit.key), (7, &RateLimitKey::Route));
    let limit = config("{requests_per_second: 1, key: 'header:X-Api-Key'}").0;
    let key = HeaderName::from_static("x-api-key");
    assert_eq!(&limit.unwrap().key, &RateLimitKey::Header(key));
    let limit = config("{requests_per_second: 1, key: client_ip}").0;
    assert_eq!(&limit.unwrap().key, &RateLimitKey::ClientIp);
}

#[test]
fn each_problem_names_its_field() {
    let at = |f: &str| format!("routes[0].rate_limit.{f}");
    for bad in ["0", "-1", "-0.5", ".nan", ".inf"] {
        let yaml = format!("{{requests_per_second: {bad}}}");
        let (got, paths) = config(&yaml);
        assert!(got.is_none());
        assert_eq!(paths, [at("requests_per_second")], "{bad}");
    }
    assert_eq!(
        config("{requests_per_second: 1, burst: 0}").1,
        [at("burst")]
    );
    for key in ["ip", "'header:'", "'header:X Api'", "Route", "header"] {
        let (got, paths) = config(&format!("{{requests_per_second: 1, key: {key}}}"));
        assert!(got.is_none());
        assert_eq!(paths, [at("key")], "{key}");
    }
    let (got, paths) = config("{requests_per_second: 0, burst: 0, key: ip}");
    assert!(got.is_none());
    assert_eq!(paths, [at("requests_per_second"), at("burst"), at("key")]);
    let unknown = "{requests_per_second: 1, brust: 2}";
    assert!(serde_yaml::from_str::<RateLimitConfig>(unknown).is_err());
    assert!(serde_yaml::from_str::<RateLimitConfig>("{burst: 2}").is_err());
}

fn header_strings(d: Decision, limit: &RateLimit) -> Vec<(String, String)> {
    d.headers(limit)
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

#[test]
fn headers_are_as_documented() {
    let pair = |n: &str, v: &str| (n.to_string(), v.to_string());
    let limit = limiter(50.0, 100);
    assert_eq!(limit.policy, "\"default\";q=100;w=2");
    assert_eq!(
        header_strings(limit.decide(1, 0), &limit),
        [
            pair("ratelimit-policy", "\"default\";q=100;w=2"),
            pair("ratelimit", "\"default\";r=99;t=1"),
        ]
    );

    let limit = limiter(0.5, 2);
    assert_eq!(limit.policy, "\"default\";q=2;w=4");
    assert_eq!(allowed(&limit, [0, 0]), [true, true]);
    let refused = limit.decide(7, 0);
    assert_eq!(
        header_strings(refused, &limit),
        [
            pair("ratelimit-policy", "\"default\";q=2;w=4"),
            pair("ratelimit", "\"default\";r=0;t=2"),
            pair("retry-after", "2"),
        ]
    );
    // w is rounded up; 1/3 s rounds down to whole nanoseconds.
    assert_eq!(limiter(3.0, 3).policy, "\"default\";q=3;w=1");
    assert_eq!(limiter(2.0, 3).policy, "\"default\";q=3;w=2");
    assert_eq!(
        limiter(1e-12, u32::MAX).decide(1, 0).remaining,
        u32::MAX - 1
    );
}

/// A local limiter decides at once.
fn decided(check: Check) -> Decision {
    match check {
        Check::Decided(d) => d,
        Check::AskStore(_) => panic!("a local limiter asked the store"),
    }
}
