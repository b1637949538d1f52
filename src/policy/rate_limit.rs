//! Per-route rate limiting (SPEC §2 `rate_limit`, §4 429): a GCRA (the token
//! bucket as one timestamp per key) that lets a client send `burst` requests at
//! once and then `requests_per_second` for as long as it likes. A client that stays
//! under the rate is never refused; one over it gets 429 with `Retry-After`.
//!
//! Not here: the 429 response itself, the `parapet_ratelimited_total{route}`
//! counter, and the wiring into the route table and the proxy (all by the caller).
//!
//! # The algorithm
//!
//! Each key keeps its theoretical arrival time (TAT), in nanoseconds since the
//! limiter was built (a monotonic `Instant`). With the interval `T = 1 / rate`
//! (rounded down to whole nanoseconds, so rounding only ever favours the client)
//! and the tolerance `τ = (burst - 1) * T`, a request at `now` is allowed when
//! `max(TAT, now) - now <= τ`, and then moves the TAT on by `T`. A TAT at or before
//! `now` carries no state: such a key is the same as one never seen.
//!
//! # Headers (draft-ietf-httpapi-ratelimit-headers)
//!
//! Every response of a limited route carries
//! `RateLimit-Policy: "default";q=<burst>;w=<ceil(burst / rate)>` — the bucket holds
//! `q` requests and refills completely in `w` seconds, so `q / w` is the sustained
//! rate (exactly when `burst / rate` is whole; `w` is rounded up, so the policy never
//! promises more than we allow) — and `RateLimit: "default";r=<remaining>;t=<t>`,
//! where `r` is how many more requests this key may send right now and `t` the
//! whole seconds (rounded up, at least 1) until `r` grows by one. A refused request
//! has `r=0` and `Retry-After: <t>`. Note that GCRA, unlike a fixed window, allows
//! up to `q + rate * w` requests within any one `w`-second window (a full bucket,
//! then its refill); the policy describes the bucket, not a window count.
//!
//! # Keys
//!
//! `client_ip` (the default): the client IP as `client_ip` determined it, grouped by
//! the caller (`ClientGrouping`: IPv4-mapped IPv6 as the IPv4 address, IPv6 by its
//! `client_ip.ipv6_prefix` block). `route`: one bucket for the whole route.
//! `header:NAME`: the header's (first) value as sent; a request without the header
//! is keyed by its client IP instead (in a bucket of its own, never shared with a
//! header value). A header the client controls only limits well-behaved clients:
//! use it for a header set by a trusted front (an API gateway's key id).
//!
//! # Memory
//!
//! A bounded, sharded map of key hash to TAT, not pingora-limits: that crate has
//! no GCRA, and its count-min sketch over-counts on collisions, which would refuse
//! innocent clients. Here 16 shards of `Mutex<HashMap<u64, u64>>` hold at most
//! `DEFAULT_MAX_KEYS` (100,000) keys per route, 6,250 a shard — at most 2.1 MiB
//! (16 tables of 8,192 buckets of 17 bytes; a sweep briefly holds a second table
//! and a 50 KB list for its shard), nothing until keys arrive. Keys are hashed with SipHash under a random
//! key drawn once per limiter (std's `RandomState`), so chosen keys can neither
//! target one shard nor collide on purpose; the 64-bit hash is the map key (two
//! keys colliding would share a bucket: among 100,000 keys the odds are 3e-10). A
//! new key in a full shard first drops the entries whose TAT has passed
//! (they carry no state), then, if fewer than 1/8 of the shard came free, the
//! entries with the earliest TATs (those owing the least) until 1/8 is free; so a
//! sweep runs at most once per `cap / 8` new keys. An evicted key starts over
//! with a full burst: eviction is only ever lenient, never refuses anyone, and a
//! heavy hitter (late TAT) is the last to be forgotten. The lock is held for one
//! lookup and update (or a sweep), never across an await.

use crate::config::{field, header_name, ConfigErrors};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The most keys one route's limiter remembers.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
const SHARDS: usize = 16;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A route's `rate_limit` as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The sustained rate; may be fractional (0.5 is one request every 2 s).
    pub requests_per_second: f64,
    /// Requests allowed at once; default `max(1, ceil(requests_per_second))`.
    pub burst: Option<u32>,
    /// `client_ip` (default), `route` or `header:NAME`.
    pub key: Option<String>,
}

/// What requests share a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateLimitKey {
    ClientIp,
    Route,
    /// The header's value; the client IP when the request has no such header.
    Header(HeaderName),
}

impl RateLimitKey {
    fn parse(text: &str, path: &str, errors: &mut ConfigErrors) -> Option<RateLimitKey> {
        match text {
            "client_ip" => Some(RateLimitKey::ClientIp),
            "route" => Some(RateLimitKey::Route),
            _ => match text.strip_prefix("header:") {
                Some(name) => header_name(name, path, errors).map(RateLimitKey::Header),
                None => {
                    let msg = format!("'{text}' is not client_ip, route or header:NAME");
                    errors.push(path, msg);
                    None
                }
            },
        }
    }
}

/// One route's limiter, built once; `check` is called for every request.
pub struct RateLimit {
    requests_per_second: f64,
    burst: u32,
    key: RateLimitKey,
    gcra: Gcra,
    /// The `RateLimit-Policy` value, the same on every response.
    policy: HeaderValue,
    table: Table,
    epoch: Instant,
}

/// What `check` decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests the key may still send at once (the `r` of `RateLimit`).
    pub remaining: u32,
    /// Whole seconds, rounded up and at least 1, until `remaining` grows by one
    /// (the `t` of `RateLimit`); when refused, until a request is allowed again
    /// (also `Retry-After`).
    pub reset: u64,
}

impl RateLimit {
    /// The `rate_limit` of the route at `path` (`routes[i]`): problems are reported
    /// under `routes[i].rate_limit.<field>`, and then there is no limiter.
    pub fn from_config(
        config: RateLimitConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<RateLimit> {
        let path = field(path, "rate_limit");
        let before = errors.errors.len();
        let rate = config.requests_per_second;
        if !(rate.is_finite() && rate > 0.0) {
            errors.push(
                field(&path, "requests_per_second"),
                "must be a number greater than 0 (0.5 is one request every 2s)",
            );
        }
        if config.burst == Some(0) {
            errors.push(field(&path, "burst"), "must be at least 1");
        }
        let key = match config.key.as_deref() {
            None => Some(RateLimitKey::ClientIp),
            Some(text) => RateLimitKey::parse(text, &field(&path, "key"), errors),
        };
        if errors.errors.len() > before {
            return None;
        }
        let burst = config.burst.unwrap_or_else(|| default_burst(rate));
        Some(RateLimit::new(rate, burst, key?, DEFAULT_MAX_KEYS))
    }

    /// A limiter remembering at most `max_keys` keys; `rate` must be positive and
    /// `burst` at least 1 (as `from_config` checks).
    pub(crate) fn new(rate: f64, burst: u32, key: RateLimitKey, max_keys: usize) -> RateLimit {
        let burst = burst.max(1);
        // Rounded down: a client spacing requests by exactly 1/rate is never early.
        let interval = ((NANOS_PER_SEC as f64 / rate) as u64).max(1);
        let gcra = Gcra {
            interval,
            tolerance: u128::from(interval) * u128::from(burst - 1),
        };
        let window = (u128::from(burst) * u128::from(interval))
            .div_ceil(u128::from(NANOS_PER_SEC))
            .max(1);
        let (mut q, mut w) = (itoa::Buffer::new(), itoa::Buffer::new());
        let policy = header_value([
            b"\"default\";q=",
            q.format(burst).as_bytes(),
            b";w=",
            w.format(window).as_bytes(),
        ]);
        RateLimit {
            requests_per_second: rate,
            burst,
            key,
            gcra,
            policy: policy.unwrap_or_else(|| HeaderValue::from_static("\"default\"")),
            table: Table::new(max_keys),
            epoch: Instant::now(),
        }
    }

    /// Count one request: keyed by `client_ip`, the route, or the configured
    /// header's value in `headers` (the client IP when it is absent). `client_ip` is
    /// the client's group (`ClientGrouping::group`), which is what one client is.
    pub fn check(&self, client_ip: IpAddr, headers: &HeaderMap) -> Decision {
        let key = self.key_hash(client_ip, headers);
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.decide(key, now)
    }

    pub fn requests_per_second(&self) -> f64 {
        self.requests_per_second
    }

    pub fn burst(&self) -> u32 {
        self.burst
    }

    pub fn key(&self) -> &RateLimitKey {
        &self.key
    }

    /// The `RateLimit-Policy` value of this route.
    pub fn policy(&self) -> &HeaderValue {
        &self.policy
    }

    /// Keys remembered now, across all shards (at most `max_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.table.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// The most keys remembered at once.
    pub fn max_keys(&self) -> usize {
        self.table.shard_cap * SHARDS
    }

    fn key_hash(&self, client_ip: IpAddr, headers: &HeaderMap) -> u64 {
        let mut h = self.table.hasher.build_hasher();
        let header = match &self.key {
            RateLimitKey::Route => {
                h.write_u8(0);
                return h.finish();
            }
            RateLimitKey::Header(name) => headers.get(name),
            RateLimitKey::ClientIp => None,
        };
        match (header, client_ip) {
            (Some(value), _) => {
                h.write_u8(1);
                h.write(value.as_bytes());
            }
            (None, IpAddr::V4(ip)) => {
                h.write_u8(4);
                h.write(&ip.octets());
            }
            (None, IpAddr::V6(ip)) => {
                h.write_u8(6);
                h.write(&ip.octets());
            }
        }
        h.finish()
    }

    /// The decision for the key hashed to `key` at `now` (nanoseconds since `epoch`).
    fn decide(&self, key: u64, now: u64) -> Decision {
        let verdict = self.table.update(key, now, self.gcra);
        Decision {
            allowed: verdict.allowed,
            remaining: u32::try_from(verdict.remaining).unwrap_or(u32::MAX),
            reset: verdict.reset.div_ceil(NANOS_PER_SEC).max(1),
        }
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("requests_per_second", &self.requests_per_second)
            .field("burst", &self.burst)
            .field("key", &self.key)
            .field("max_keys", &self.max_keys())
            .finish_non_exhaustive()
    }
}

impl Decision {
    /// The `RateLimit-Policy` and `RateLimit` fields, and `Retry-After` when the
    /// request was refused, to be set on the response.
    pub fn headers(&self, limit: &RateLimit) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
        let retry_after =
            (!self.allowed).then(|| (http::header::RETRY_AFTER, HeaderValue::from(self.reset)));
        [
            Some((RATELIMIT_POLICY.clone(), limit.policy.clone())),
            self.rate_limit_value().map(|v| (RATELIMIT.clone(), v)),
            retry_after,
        ]
        .into_iter()
        .flatten()
    }

    /// `"default";r=<remaining>;t=<reset>`.
    fn rate_limit_value(&self) -> Option<HeaderValue> {
        let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
        header_value([
            b"\"default\";r=",
            r.format(self.remaining).as_bytes(),
            b";t=",
            t.format(self.reset).as_bytes(),
        ])
    }
}

/// A header value of four parts, put together on the stack.
fn header_value(parts: [&[u8]; 4]) -> Option<HeaderValue> {
    let mut buf = [0u8; 64];
    let mut len = 0;
    for part in parts {
        buf.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    HeaderValue::from_bytes(&buf[..len]).ok()
}

fn default_burst(rate: f64) -> u32 {
    rate.ceil().clamp(1.0, f64::from(u32::MAX)) as u32
}

/// The GCRA parameters, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Gcra {
    /// `T`: one request's worth of time, `1 / rate`.
    interval: u64,
    /// `τ = (burst - 1) * T`: how far ahead of now the TAT may run.
    tolerance: u128,
}

/// One GCRA step, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Verdict {
    allowed: bool,
    /// The key's TAT after this request.
    tat: u64,
    /// Requests the key may still send at `now`.
    remaining: u64,
    /// Until `remaining` grows by one (when refused: until a request is allowed).
    reset: u64,
}

/// GCRA: the request at `now` of a key whose TAT is `tat`. Pure, for tests.
fn gcra(tat: u64, now: u64, interval: u64, tolerance: u128) -> Verdict {
    let (now, interval) = (u128::from(now), u128::from(interval.max(1)));
    let start = u128::from(tat).max(now);
    let allowed = start - now <= tolerance;
    let tat = if allowed { start + interval } else { start };
    // How far the key is ahead of now, against the full bucket `burst * T`.
    let debt = tat - now;
    let limit = tolerance + interval;
    let remaining = limit.saturating_sub(debt) / interval;
    // `remaining` grows when `debt` falls to `limit - (remaining + 1) * T`.
    let reset = debt + (remaining + 1) * interval - limit;
    let clamp = |n: u128| u64::try_from(n).unwrap_or(u64::MAX);
    Verdict {
        allowed,
        tat: clamp(tat),
        remaining: clamp(remaining),
        reset: clamp(reset),
    }
}

/// Key hash to TAT, in `SHARDS` bounded shards.
struct Table {
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    shard_cap: usize,
}

/// The keys are already keyed hashes: the map uses them as they are.
type Shard = HashMap<u64, u64, BuildHasherDefault<PreHashed>>;

impl Table {
    fn new(max_keys: usize) -> Table {
        Table {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_cap: max_keys.div_ceil(SHARDS).max(1),
        }
    }

    fn update(&self, key: u64, now: u64, g: Gcra) -> Verdict {
        // The map's buckets use the low bits, its tags the top 7: shard on others.
        let mut shard = lock(&self.shards[(key >> 32) as usize % SHARDS]);
        if let Some(tat) = shard.get_mut(&key) {
            let verdict = gcra(*tat, now, g.interval, g.tolerance);
            *tat = verdict.tat;
            return verdict;
        }
        // A key not held is one with no state: its first request is always allowed.
        let verdict = gcra(0, now, g.interval, g.tolerance);
        if shard.len() >= self.shard_cap {
            make_room(&mut shard, now, self.shard_cap);
        }
        shard.insert(key, verdict.tat);
        verdict
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // A panic elsewhere cannot leave a TAT half-written: keep serving.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Free at least 1/8 of a full shard: first the keys without state, then those
/// owing the least (earliest TAT), which is only ever lenient. The survivors move
/// to a fresh table of `cap`: removing in place would leave tombstones, and the
/// table would double to clear them.
fn make_room(shard: &mut Shard, now: u64, cap: usize) {
    let target = cap - (cap / 8).max(1);
    let live = shard.values().filter(|tat| **tat > now).count();
    let cut = match live.checked_sub(target) {
        None | Some(0) => now,
        Some(excess) => {
            let mut tats: Vec<u64> = shard.values().copied().filter(|t| *t > now).collect();
            *tats.select_nth_unstable(excess - 1).1
        }
    };
    let mut kept = Shard::with_capacity_and_hasher(cap, BuildHasherDefault::default());
    kept.extend(shard.drain().filter(|(_, tat)| *tat > cut));
    *shard = kept;
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `parapet_ratelimited_total{route}`: requests refused with 429, per route with a
/// rate limit (registered only when some route has one).
pub struct RateLimitMetrics {
    by_route: Vec<Option<prometheus::IntCounter>>,
}

impl RateLimitMetrics {
    /// `routes` are (label, whether the route is limited), in route order.
    pub fn register(
        registry: &prometheus::Registry,
        routes: &[(&str, bool)],
    ) -> prometheus::Result<RateLimitMetrics> {
        if !routes.iter().any(|(_, limited)| *limited) {
            return Ok(RateLimitMetrics {
                by_route: Vec::new(),
            });
        }
        let refused = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "parapet_ratelimited_total",
                "Requests refused with 429 by the route's rate limit",
            ),
            &["route"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        let by_route = routes
            .iter()
            .map(|(label, limited)| limited.then(|| refused.with_label_values(&[*label])))
            .collect();
        Ok(RateLimitMetrics { by_route })
    }

    pub fn refused(&self, route: usize) {
        if let Some(Some(counter)) = self.by_route.get(route) {
            counter.inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = NANOS_PER_SEC;

    fn limiter(rate: f64, burst: u32) -> RateLimit {
        RateLimit::new(rate, burst, RateLimitKey::ClientIp, DEFAULT_MAX_KEYS)
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
        RateLimit::new(0.001, 1, key, DEFAULT_MAX_KEYS)
    }

    #[test]
    fn client_ips_have_buckets_of_their_own() {
        let limit = keyed(RateLimitKey::ClientIp);
        let none = HeaderMap::new();
        assert!(limit.check(ip("10.0.0.1"), &none).allowed);
        assert!(!limit.check(ip("10.0.0.1"), &none).allowed);
        assert!(limit.check(ip("10.0.0.2"), &none).allowed);
        assert!(limit.check(ip("2001:db8::1"), &none).allowed);
        // As the caller groups them: one /64, and a mapped address as its IPv4 one.
        let group = |s| ClientGrouping::default().group(ip(s));
        assert!(limit.check(group("2001:db8:1::1"), &none).allowed);
        assert!(!limit.check(group("2001:db8:1::2"), &none).allowed);
        assert!(!limit.check(group("::ffff:10.0.0.2"), &none).allowed);
    }

    #[test]
    fn a_route_key_is_one_bucket() {
        let limit = keyed(RateLimitKey::Route);
        let none = HeaderMap::new();
        assert!(limit.check(ip("10.0.0.1"), &none).allowed);
        assert!(!limit.check(ip("10.0.0.2"), &none).allowed);
        assert_eq!(limit.tracked_keys(), 1);
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
        assert!(limit.check(a, &with("k1")).allowed);
        assert!(!limit.check(b, &with("k1")).allowed, "same key, other ip");
        assert!(limit.check(a, &with("k2")).allowed);
        let none = HeaderMap::new();
        assert!(limit.check(a, &none).allowed, "ip bucket apart from k1, k2");
        assert!(!limit.check(a, &none).allowed);
        assert!(limit.check(b, &none).allowed);
        // A value that spells an address is not that address's bucket.
        assert!(limit.check(b, &with("10.0.0.1")).allowed);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_cap() {
        let limit = keyed(RateLimitKey::ClientIp);
        assert_eq!(limit.max_keys(), DEFAULT_MAX_KEYS);
        let none = HeaderMap::new();
        for i in 0..1_000_000u128 {
            let client = IpAddr::V6((0x2001_0db8_u128 << 96 | i).into());
            assert!(limit.check(client, &none).allowed);
            if i % 1000 == 0 {
                assert!(limit.tracked_keys() <= DEFAULT_MAX_KEYS);
            }
        }
        let kept = limit.tracked_keys();
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
        let limit = RateLimit::new(1.0, 5, RateLimitKey::ClientIp, 1600);
        let heavy = 0x5555_5555_5555_5555;
        assert_eq!((0..7).filter(|_| limit.decide(heavy, 0).allowed).count(), 5);
        // Many fresh keys (owing 1s each) at the same moment as the heavy hitter.
        let spread = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in 1..200_000 {
            limit.decide(spread(i), 0);
            assert!(limit.tracked_keys() <= 1600);
        }
        assert!(!limit.decide(heavy, 0).allowed, "still owes 5s");
        // Later, every fresh key has no state left and goes first; the heavy
        // hitter, owing 3s against a tolerance of 4s, may send 2 more, not 5.
        for i in 200_000..202_000 {
            limit.decide(spread(i), 2 * SEC);
            assert!(limit.tracked_keys() <= 1600);
        }
        let more = (0..5).filter(|_| limit.decide(heavy, 2 * SEC).allowed);
        assert_eq!(more.count(), 2);
    }

    /// `cargo test --release --lib rate_limit::tests::cost -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn cost() {
        let limit = RateLimit::new(1e6, 1000, RateLimitKey::ClientIp, DEFAULT_MAX_KEYS);
        let none = HeaderMap::new();
        let clients: Vec<IpAddr> = (0..1000u32).map(|i| IpAddr::V4(i.into())).collect();
        let start = Instant::now();
        let n = 10_000_000;
        let mut allowed = 0;
        for i in 0..n {
            allowed += usize::from(limit.check(clients[i % 1000], &none).allowed);
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
        assert_eq!(limit.requests_per_second(), 50.0);
        assert_eq!(limit.burst(), 50);
        assert_eq!(limit.key(), &RateLimitKey::ClientIp);
        assert_eq!(config("{requests_per_second: 0.5}").0.unwrap().burst(), 1);
        let limit = config("{requests_per_second: 2, burst: 7, key: route}")
            .0
            .unwrap();
        assert_eq!((limit.burst(), limit.key()), (7, &RateLimitKey::Route));
        let limit = config("{requests_per_second: 1, key: 'header:X-Api-Key'}").0;
        let key = HeaderName::from_static("x-api-key");
        assert_eq!(limit.unwrap().key(), &RateLimitKey::Header(key));
        let limit = config("{requests_per_second: 1, key: client_ip}").0;
        assert_eq!(limit.unwrap().key(), &RateLimitKey::ClientIp);
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
        assert_eq!(limit.policy(), "\"default\";q=100;w=2");
        assert_eq!(
            header_strings(limit.decide(1, 0), &limit),
            [
                pair("ratelimit-policy", "\"default\";q=100;w=2"),
                pair("ratelimit", "\"default\";r=99;t=1"),
            ]
        );

        let limit = limiter(0.5, 2);
        assert_eq!(limit.policy(), "\"default\";q=2;w=4");
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
        assert_eq!(limiter(3.0, 3).policy(), "\"default\";q=3;w=1");
        assert_eq!(limiter(2.0, 3).policy(), "\"default\";q=3;w=2");
        assert_eq!(
            limiter(1e-12, u32::MAX).decide(1, 0).remaining,
            u32::MAX - 1
        );
    }
}
