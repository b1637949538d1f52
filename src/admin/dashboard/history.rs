//! The dashboard's last five minutes: once a second a background service reads the
//! cumulative counters the registry already holds (requests by status, the request
//! duration histogram, cache lookups) and keeps the difference from the previous
//! second in a ring of `SAMPLES` entries. The request path does no extra work, the
//! ring never grows, and the page draws its charts from it.

use super::families::Families;
use crate::runtime::Runtime;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One sample a second for five minutes.
pub(crate) const SAMPLES: usize = 300;

/// What happened in one second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Unix time, in seconds, of the end of that second.
    pub(crate) t: u64,
    /// Requests answered, by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub(crate) classes: [u64; 5],
    /// Latency quantiles of those requests, interpolated within the histogram's
    /// buckets as Prometheus' `histogram_quantile` does; 0 without requests.
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Cache lookups, and those answered from the cache (fresh or stale).
    pub(crate) lookups: u64,
    pub(crate) hits: u64,
}

/// The cumulative counters a sample is the difference of.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Totals {
    pub(crate) classes: [u64; 5],
    /// The duration histogram: (upper bound in seconds, cumulative count).
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) count: u64,
    pub(crate) lookups: u64,
    pub(crate) hits: u64,
}

impl Totals {
    pub(crate) fn read(families: &Families) -> Totals {
        let mut totals = Totals::default();
        for m in families.metrics("parapet_requests_total") {
            let class = Families::label(m, "status").as_bytes().first().copied();
            if let Some(c @ b'1'..=b'5') = class {
                totals.classes[usize::from(c - b'1')] += Families::count(m);
            }
        }
        if let Some(m) = families.metrics("parapet_request_duration_seconds").first() {
            let h = m.get_histogram();
            totals.count = h.get_sample_count();
            totals.buckets = h
                .get_bucket()
                .iter()
                .map(|b| (b.upper_bound(), b.cumulative_count()))
                .collect();
        }
        for m in families.metrics("parapet_cache_lookups_total") {
            let n = Families::count(m);
            totals.lookups += n;
            if matches!(Families::label(m, "result"), "hit" | "stale") {
                totals.hits += n;
            }
        }
        totals
    }

    /// What happened between `earlier` and these totals, ending at unix time `t`.
    fn since(&self, earlier: &Totals, t: u64) -> Sample {
        let mut classes = [0; 5];
        for (i, c) in classes.iter_mut().enumerate() {
            *c = self.classes[i].saturating_sub(earlier.classes[i]);
        }
        let count = self.count.saturating_sub(earlier.count);
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &(bound, n))| {
                let before = earlier.buckets.get(i).map_or(0, |b| b.1);
                (bound, n.saturating_sub(before))
            })
            .collect();
        Sample {
            t,
            classes,
            p50_ms: quantile(0.5, &buckets, count) * 1000.0,
            p99_ms: quantile(0.99, &buckets, count) * 1000.0,
            lookups: self.lookups.saturating_sub(earlier.lookups),
            hits: self.hits.saturating_sub(earlier.hits),
        }
    }
}

/// The `q` quantile of `count` observations in cumulative `buckets`, linear within
/// the bucket it falls in; past the last bound, that bound (as Prometheus does).
pub(crate) fn quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    let rank = q * count as f64;
    let (mut lower, mut below) = (0.0, 0u64);
    for &(upper, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let inside = cumulative.saturating_sub(below);
            if inside == 0 {
                return upper;
            }
            return lower + (upper - lower) * (rank - below as f64) / inside as f64;
        }
        (lower, below) = (upper, cumulative);
    }
    lower
}

/// The ring of the last `SAMPLES` seconds.
#[derive(Default)]
pub(crate) struct History {
    ring: Mutex<Ring>,
}

#[derive(Default)]
struct Ring {
    /// Oldest first once full; at most `SAMPLES` long.
    samples: std::collections::VecDeque<Sample>,
    last: Option<Totals>,
}

impl History {
    /// Take the totals read at unix time `t`: the first reading only sets the base.
    pub(crate) fn record(&self, t: u64, totals: Totals) {
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        if let Some(last) = &ring.last {
            let sample = totals.since(last, t);
            if ring.samples.len() == SAMPLES {
                ring.samples.pop_front();
            }
            ring.samples.push_back(sample);
        }
        ring.last = Some(totals);
    }

    /// The samples, oldest first.
    pub(crate) fn samples(&self) -> Vec<Sample> {
        self.ring
            .lock()
            .map(|r| r.samples.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// The background service that fills the ring, once a second.
pub(crate) struct Sampler {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) history: Arc<History>,
}

impl Sampler {
    /// The totals, from the three families they come from: gathering the whole
    /// registry would read every backend's series too, each second.
    fn totals(&self) -> Totals {
        let mut families = self.rt.requests.families();
        if let Some(shield) = &self.rt.shield {
            families.extend(shield.lookup_families());
        }
        Totals::read(&Families::of(families))
    }
}

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.history.record(unix_now(), self.totals()),
                _ = shutdown.changed() => return,
            }
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
