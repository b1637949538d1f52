//! The disk tier's metric families: its size and objects, read from its index at
//! scrape time, and counters moved as it works.

use super::DiskTier;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, Registry};

/// Counters the tier moves itself.
pub(crate) struct DiskCounters {
    pub(super) hits: IntCounter,
    pub(super) writes: IntCounter,
    pub(super) evictions: IntCounter,
    pub(super) read_errors: IntCounter,
    pub(super) write_errors: IntCounter,
}

impl DiskCounters {
    pub(crate) fn new() -> prometheus::Result<Self> {
        Ok(DiskCounters {
            hits: IntCounter::new(
                "parapet_cache_disk_hits_total",
                "Lookups answered from the disk tier",
            )?,
            writes: IntCounter::new(
                "parapet_cache_disk_writes_total",
                "Objects written to the disk tier",
            )?,
            evictions: IntCounter::new(
                "parapet_cache_disk_evictions_total",
                "Object files removed to stay within cache.disk.max_size",
            )?,
            read_errors: IntCounter::new(
                "parapet_cache_disk_read_errors_total",
                "Disk tier reads that failed or found a damaged file (served as misses)",
            )?,
            write_errors: IntCounter::new(
                "parapet_cache_disk_write_errors_total",
                "Disk tier writes, removals and rewrites that failed",
            )?,
        })
    }
}

/// The tier's families, registered as one collector.
pub(super) struct DiskGauges {
    tier: &'static DiskTier,
    bytes: IntGauge,
    objects: IntGauge,
}

impl DiskGauges {
    pub(super) fn register(registry: &Registry, tier: &'static DiskTier) -> prometheus::Result<()> {
        let gauges = DiskGauges {
            tier,
            bytes: IntGauge::new(
                "parapet_cache_disk_bytes",
                "Bytes of object files in the disk tier",
            )?,
            objects: IntGauge::new("parapet_cache_disk_objects", "Objects in the disk tier")?,
        };
        registry.register(Box::new(gauges))
    }

    fn counters(&self) -> [&IntCounter; 5] {
        let c = &self.tier.counters;
        [
            &c.hits,
            &c.writes,
            &c.evictions,
            &c.read_errors,
            &c.write_errors,
        ]
    }
}

impl Collector for DiskGauges {
    fn desc(&self) -> Vec<&Desc> {
        let mut out: Vec<&Desc> = self.bytes.desc();
        out.extend(self.objects.desc());
        for counter in self.counters() {
            out.extend(counter.desc());
        }
        out
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.bytes.set(clamp(self.tier.bytes()));
        self.objects.set(clamp(self.tier.objects()));
        let mut out = self.bytes.collect();
        out.extend(self.objects.collect());
        for counter in self.counters() {
            out.extend(counter.collect());
        }
        out
    }
}
