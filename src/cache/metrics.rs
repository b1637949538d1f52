//! The cache's metric families (README: Observe it): lookups by result, collapsed
//! requests and the bytes answered from the cache or the origin, counted on the
//! request path; the store's size, objects and evictions, read from
//! the store when the metrics are scraped.

use super::storage::MemoryStorage;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Results of `parapet_cache_lookups_total`, as `status::Facts::result` names them.
const RESULTS: [&str; 7] = [
    "hit",
    "stale",
    "revalidated",
    "expired",
    "miss",
    "bypass",
    "uncacheable",
];

pub(crate) struct CacheMetrics {
    family: IntCounterVec,
    lookups: [IntCounter; RESULTS.len()],
    collapsed: IntCounter,
    saved: IntCounter,
    /// Body bytes answered on caching routes: from the cache, from the origin.
    served_from_cache: IntCounter,
    served_from_origin: IntCounter,
    /// `parapet_cache_tier_total{result}`: answers from an upper tier (a shield),
    /// hit or not; only with an upstream hashed by `cache_key`.
    tier: Option<[IntCounter; 2]>,
}

impl CacheMetrics {
    pub(crate) fn register(
        registry: &Registry,
        storage: &'static MemoryStorage,
        tiered: bool,
    ) -> prometheus::Result<Self> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "parapet_cache_lookups_total",
                "Requests on caching routes, by what the cache did",
            ),
            &["result"],
        )?;
        let collapsed = IntCounter::new(
            "parapet_cache_collapsed_total",
            "Requests that waited for another request's origin fetch of the same object",
        )?;
        let saved = IntCounter::new(
            "parapet_cache_origin_fetches_saved_total",
            "Requests answered from the cache without asking the origin",
        )?;
        let served = IntCounterVec::new(
            Opts::new(
                "parapet_cache_served_bytes_total",
                "Body bytes answered on caching routes, by where they came from",
            ),
            &["source"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        registry.register(Box::new(collapsed.clone()))?;
        registry.register(Box::new(saved.clone()))?;
        registry.register(Box::new(served.clone()))?;
        registry.register(Box::new(StoreGauges::new(storage)?))?;
        let tier = match tiered {
            true => {
                let tier = IntCounterVec::new(
                    Opts::new(
                        "parapet_cache_tier_total",
                        "Answers from an upper tier (a shield), by whether it had the object",
                    ),
                    &["result"],
                )?;
                registry.register(Box::new(tier.clone()))?;
                Some(["hit", "miss"].map(|r| tier.with_label_values(&[r])))
            }
            false => None,
        };
        Ok(CacheMetrics {
            lookups: RESULTS.map(|r| lookups.with_label_values(&[r])),
            family: lookups,
            collapsed,
            saved,
            served_from_cache: served.with_label_values(&["cache"]),
            served_from_origin: served.with_label_values(&["origin"]),
            tier,
        })
    }

    /// `parapet_cache_lookups_total` alone.
    pub(crate) fn lookup_families(&self) -> Vec<MetricFamily> {
        self.family.collect()
    }

    /// A response of `bytes` body bytes went to the client after the lookup that
    /// ended in `result`.
    pub(crate) fn served(&self, result: &str, bytes: u64) {
        match result {
            "hit" | "stale" => self.served_from_cache.inc_by(bytes),
            _ => self.served_from_origin.inc_by(bytes),
        }
    }

    pub(crate) fn looked_up(&self, result: &str, collapsed: bool) {
        if let Some(i) = RESULTS.iter().position(|r| *r == result) {
            self.lookups[i].inc();
        }
        if matches!(result, "hit" | "stale") {
            self.saved.inc();
        }
        if collapsed {
            self.collapsed.inc();
        }
    }
}

impl CacheMetrics {
    /// An upstream answered with a `Cache-Status` of its own: a shield.
    pub(crate) fn tier_answered(&self, hit: bool) {
        if let Some(tier) = &self.tier {
            tier[usize::from(!hit)].inc();
        }
    }
}

/// The store's own counters, read at scrape time.
struct StoreGauges {
    storage: &'static MemoryStorage,
    size: IntGauge,
    objects: IntGauge,
    evictions: IntCounter,
}

impl StoreGauges {
    fn new(storage: &'static MemoryStorage) -> prometheus::Result<StoreGauges> {
        Ok(StoreGauges {
            storage,
            size: IntGauge::new(
                "parapet_cache_size_bytes",
                "Bytes held by the cache, headers included",
            )?,
            objects: IntGauge::new("parapet_cache_objects", "Objects held by the cache")?,
            evictions: IntCounter::new(
                "parapet_cache_evictions_total",
                "Objects evicted to stay within cache.max_size",
            )?,
        })
    }
}

impl Collector for StoreGauges {
    fn desc(&self) -> Vec<&Desc> {
        [
            &self.size.desc(),
            &self.objects.desc(),
            &self.evictions.desc(),
        ]
        .into_iter()
        .flatten()
        .copied()
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.size.set(clamp(self.storage.size_bytes()));
        self.objects.set(clamp(self.storage.objects()));
        let evicted = self.storage.evictions();
        self.evictions
            .inc_by(evicted.saturating_sub(self.evictions.get()));
        let mut out = self.size.collect();
        out.extend(self.objects.collect());
        out.extend(self.evictions.collect());
        out
    }
}
