//! `scope: global`: one budget per key for the whole fleet, kept in Redis
//! (`fleet::RedisStore`), with local pre-aggregation so a hot key is not one
//! round trip per request.
//!
//! An instance leases a few requests of a key's budget at a time (one GCRA step
//! of `n` intervals in Redis) and spends them locally; when half a lease is
//! spent it asks for the next one in the background, so a steady key never
//! waits. A lease is sized to what this instance spent of the last one in
//! `LEASE_SPAN` (at least 1, at most half the burst), and what is not spent
//! within `2 × LEASE_SPAN` is dropped. Tokens are debited in Redis before they
//! are spent, so the fleet never admits more than the limit while Redis answers;
//! the error is the other way, at most one lease per instance per key
//! unspent when a client slows down (README "Rate limits"). A refusal is
//! remembered until Redis said a request would be allowed again.
//!
//! Redis slow or down: past `redis.timeout` the local limiter decides (fail open
//! to local: each instance then admits the route's rate on its own), counted in
//! `parapet_ratelimit_store_errors_total`; the global budget resumes with the
//! next answer.

use super::{Decision, RateLimit, NANOS_PER_SEC};
use crate::fleet::RedisStore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LEASE_SPAN: Duration = Duration::from_millis(200);

pub(crate) struct GlobalLimit {
    store: Arc<RedisStore>,
    /// `parapet:rl:<route>:`, before each key's own bytes.
    prefix: Vec<u8>,
    interval_us: u64,
    tolerance_us: u64,
    most: u32,
    leases: Mutex<HashMap<u64, Lease>>,
    max_keys: usize,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    tokens: u32,
    expires: Instant,
    /// Refused by Redis until then.
    denied_until: Option<Instant>,
    refilling: bool,
    /// Spent since the last lease arrived, and when it did.
    spent: u32,
    since: Instant,
}

/// What the local leases say without asking Redis.
pub(super) enum Quick {
    Allowed {
        remaining: u32,
        refill: bool,
    },
    Denied(Duration),
    /// No tokens here: Redis must be asked.
    Ask,
}

impl GlobalLimit {
    pub(super) fn new(limit: &RateLimit, route: &str, store: Arc<RedisStore>) -> GlobalLimit {
        let interval_us = (limit.gcra.interval / 1000).max(1);
        GlobalLimit {
            store,
            prefix: format!("parapet:rl:{route}:").into_bytes(),
            interval_us,
            tolerance_us: interval_us * u64::from(limit.burst),
            most: (limit.burst / 2).max(1),
            leases: Mutex::new(HashMap::new()),
            max_keys: limit.table.max_keys(),
        }
    }

    pub(super) fn store_key(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// Spend a leased token of `key` (its hash) if there is one.
    pub(super) fn quick(&self, key: u64, now: Instant) -> Quick {
        let Ok(mut leases) = self.leases.lock() else {
            return Quick::Ask;
        };
        let Some(lease) = leases.get_mut(&key) else {
            return Quick::Ask;
        };
        if let Some(until) = lease.denied_until {
            if now < until {
                return Quick::Denied(until - now);
            }
            lease.denied_until = None;
        }
        if lease.tokens == 0 || now >= lease.expires {
            lease.tokens = 0;
            return Quick::Ask;
        }
        lease.tokens -= 1;
        lease.spent += 1;
        let refill = !lease.refilling && lease.tokens <= self.want(lease, now) / 2;
        lease.refilling |= refill;
        Quick::Allowed {
            remaining: lease.tokens,
            refill,
        }
    }

    /// The next lease's size: what this instance spent per `LEASE_SPAN` lately.
    fn want(&self, lease: &Lease, now: Instant) -> u32 {
        let elapsed = now
            .duration_since(lease.since)
            .max(Duration::from_millis(1));
        let per_span = f64::from(lease.spent) * LEASE_SPAN.as_secs_f64() / elapsed.as_secs_f64();
        (per_span.ceil() as u32).clamp(1, self.most)
    }

    /// Ask Redis for a lease of `key` and take one request of it. `Err` when
    /// Redis did not answer in time: the caller decides locally.
    pub(super) async fn ask(
        &self,
        key: u64,
        store_key: &[u8],
        spend: bool,
    ) -> Result<Decision, ()> {
        let now = Instant::now();
        let want = self
            .leases
            .lock()
            .ok()
            .and_then(|l| l.get(&key).map(|lease| self.want(lease, now)))
            .unwrap_or(1);
        let leased = self
            .store
            .lease_bytes(store_key, self.interval_us, self.tolerance_us, want)
            .await;
        let mut leases = self.leases.lock().map_err(|_| ())?;
        if leases.len() >= self.max_keys && !leases.contains_key(&key) {
            leases.retain(|_, l| l.expires > now || l.denied_until.is_some_and(|d| d > now));
        }
        let fresh = Lease {
            tokens: 0,
            expires: now,
            denied_until: None,
            refilling: false,
            spent: 0,
            since: now,
        };
        let full = leases.len() >= self.max_keys && !leases.contains_key(&key);
        let mut scratch = fresh;
        let lease = match full {
            true => &mut scratch,
            false => leases.entry(key).or_insert(fresh),
        };
        lease.refilling = false;
        let (granted, retry_us) = match leased {
            Ok(answer) => answer,
            Err(e) => {
                log::debug!("global rate limit: redis {e}; the local limiter decides");
                return Err(());
            }
        };
        let now = Instant::now();
        if granted == 0 {
            let retry = Duration::from_micros(retry_us.max(1));
            lease.denied_until = Some(now + retry);
            return Ok(refused(retry));
        }
        lease.tokens += granted - u32::from(spend);
        lease.expires = now + 2 * LEASE_SPAN;
        lease.spent = u32::from(spend);
        lease.since = now;
        Ok(Decision {
            allowed: true,
            remaining: lease.tokens,
            reset: 1,
        })
    }
}

/// Refused for `retry`.
pub(super) fn refused(retry: Duration) -> Decision {
    let nanos = u64::try_from(retry.as_nanos()).unwrap_or(u64::MAX);
    Decision {
        allowed: false,
        remaining: 0,
        reset: nanos.div_ceil(NANOS_PER_SEC).max(1),
    }
}
