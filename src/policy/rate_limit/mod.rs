//! Per-route rate limiting (README "Rate limits"): a GCRA (the token bucket as one
//! timestamp per key) that lets a client send `burst` requests at once and then `requests_per_second` for as long as it likes. A client that stays
//! under the rate is never refused; one over it gets 429 with `Retry-After`.
//!
//! The whole feature is this folder: the route's `rate_limit` section and its
//! validation (`config.rs`), the check (here) over the bounded key table
//! (`table.rs`), the response fields (`headers.rs`) and the
//! `parapet_ratelimited_total{route}` counter (`metrics.rs`). The route's policy
//! bundle (`routing::policies`) calls it in the request phase and the response
//! phase; the 429 page itself is the proxy's (`error_page`).
//!
//!
//! # Keys
//!
//! `client_ip` (the default): the client IP as `client_ip` determined it, grouped by
//! the caller (`ClientGrouping`: IPv4-mapped IPv6 as the IPv4 address, IPv6 by its
//! `client_ip.ipv6_prefix` block). `route`: one bucket for the whole route.
//! `header:NAME`: the header's (first) value as sent; a request without the header
//! is keyed by its client IP instead (in a bucket of its own, never shared with a
//! header value). A header the client controls only limits well-behaved clients:

mod config;
mod global;
mod headers;
pub(crate) mod metrics;
mod table;
#[cfg(test)]
mod tests;

pub(crate) use config::{RateLimitConfig, RateLimitKey};

use crate::fleet::RedisStore;
use global::{GlobalLimit, Quick};
use http::{HeaderMap, HeaderValue};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;
use table::{Gcra, Table};

/// The most keys one route's limiter remembers.
pub(crate) const DEFAULT_MAX_KEYS: usize = 100_000;
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One route's limiter, built once; `check` is called for every request.
pub(crate) struct RateLimit {
    requests_per_second: f64,
    burst: u32,
    key: RateLimitKey,
    gcra: Gcra,
    /// The `RateLimit-Policy` value, the same on every response.
    policy: HeaderValue,
    table: Table,
    epoch: Instant,
    /// This route's `parapet_ratelimited_total{route}`, once registered.
    refused: Option<prometheus::IntCounter>,
    /// `scope: global`: the fleet's budget in Redis, once the store is attached.
    scope: Scope,
    global: Option<Arc<GlobalLimit>>,
}

/// Whose budget a key spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// This instance's alone.
    Local,
    /// The fleet's, in Redis.
    Global,
}

/// What `check` could decide at once.
pub(crate) enum Check {
    Decided(Decision),
    /// The fleet's store must be asked (`ask_store`).
    AskStore(StoreAsk),
}

/// A key whose global budget has no local lease yet.
pub(crate) struct StoreAsk {
    key: u64,
    store_key: Vec<u8>,
}

/// What `check` decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub(crate) allowed: bool,
    /// Requests the key may still send at once (the `r` of `RateLimit`).
    remaining: u32,
    /// Whole seconds, rounded up and at least 1, until `remaining` grows by one
    /// (the `t` of `RateLimit`); when refused, until a request is allowed again
    /// (also `Retry-After`).
    reset: u64,
}

impl RateLimit {
    /// A limiter remembering at most `max_keys` keys; `rate` must be positive and
    /// `burst` at least 1 (as `from_config` checks).
    fn new(rate: f64, burst: u32, key: RateLimitKey, max_keys: usize, scope: Scope) -> RateLimit {
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
        let policy = headers::header_value([
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
            refused: None,
            scope,
            global: None,
        }
    }

    pub(crate) fn is_global(&self) -> bool {
        self.scope == Scope::Global
    }

    /// Give a `scope: global` limiter of the route labelled `route` its store.
    pub(crate) fn attach_store(&mut self, route: &str, store: &Arc<RedisStore>) {
        if self.scope == Scope::Global {
            self.global = Some(Arc::new(GlobalLimit::new(self, route, store.clone())));
        }
    }

    /// The request phase: count one request, and a refusal in
    /// `parapet_ratelimited_total`. Keyed by `client_ip`, the route, or the configured
    /// header's value in `headers` (the client IP when it is absent). `client_ip` is
    /// the client's group (`ClientGrouping::group`), which is what one client is.
    pub(crate) fn check(&self, client_ip: IpAddr, headers: &HeaderMap) -> Check {
        let key = self.key_hash(client_ip, headers);
        let Some(global) = &self.global else {
            return Check::Decided(self.counted(self.decide_now(key)));
        };
        match global.quick(key, Instant::now()) {
            Quick::Allowed { remaining, refill } => {
                if refill {
                    let (global, store_key) = (global.clone(), self.store_key(client_ip, headers));
                    tokio::spawn(async move {
                        let _ = global.ask(key, &global.store_key(&store_key), false).await;
                    });
                }
                Check::Decided(Decision {
                    allowed: true,
                    remaining,
                    reset: 1,
                })
            }
            Quick::Denied(retry) => Check::Decided(self.counted(global::refused(retry))),
            Quick::Ask => Check::AskStore(StoreAsk {
                key,
                store_key: self.store_key(client_ip, headers),
            }),
        }
    }

    /// The fleet's store's decision for a key `check` could not decide; this
    /// instance's own when the store does not answer within `redis.timeout`.
    pub(crate) async fn ask_store(&self, ask: StoreAsk) -> Decision {
        let asked = match &self.global {
            Some(global) => {
                global
                    .ask(ask.key, &global.store_key(&ask.store_key), true)
                    .await
            }
            None => Err(()),
        };
        self.counted(asked.unwrap_or_else(|()| self.decide_now(ask.key)))
    }

    fn counted(&self, decision: Decision) -> Decision {
        if !decision.allowed {
            if let Some(refused) = &self.refused {
                refused.inc();
            }
        }
        decision
    }

    fn decide_now(&self, key: u64) -> Decision {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.decide(key, now)
    }

    /// The key as the whole fleet names it (the hash is this process's own).
    fn store_key(&self, client_ip: IpAddr, headers: &HeaderMap) -> Vec<u8> {
        let header = match &self.key {
            RateLimitKey::Route => return b"route".to_vec(),
            RateLimitKey::Header(name) => headers.get(name),
            RateLimitKey::ClientIp => None,
        };
        match header {
            Some(value) => [b"h:", value.as_bytes()].concat(),
            None => client_ip.to_string().into_bytes(),
        }
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
            .field("max_keys", &self.table.max_keys())
            .finish_non_exhaustive()
    }
}
