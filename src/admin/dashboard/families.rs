//! The registry's metric families, read by name and label: the dashboard shows the
//! counters `/metrics` exposes, so the page, Prometheus and the Grafana dashboard
//! (contrib/grafana/parapet.json) agree on every number.

use crate::observe::metrics::Metrics;
use prometheus::proto::{Metric, MetricFamily};

pub(crate) struct Families(Vec<MetricFamily>);

impl Families {
    /// Every family of the registry.
    pub(crate) fn gather(metrics: &Metrics) -> Families {
        Families::of(metrics.registry().gather())
    }

    /// These families (the registry's gather sorts them already; sorting here keeps
    /// the lookup's binary search correct whatever the source).
    pub(crate) fn of(mut families: Vec<MetricFamily>) -> Families {
        families.sort_by(|a, b| a.name().cmp(b.name()));
        Families(families)
    }

    /// The series of family `name`; none when the family is not registered (its
    /// feature is not configured).
    pub(crate) fn metrics(&self, name: &str) -> &[Metric] {
        self.0
            .binary_search_by(|f| f.name().cmp(name))
            .map_or(&[], |i| self.0[i].get_metric())
    }

    /// The value of label `name`, "" when the series has none.
    pub(crate) fn label<'a>(m: &'a Metric, name: &str) -> &'a str {
        m.get_label()
            .iter()
            .find(|l| l.name() == name)
            .map_or("", |l| l.value())
    }

    /// A counter's or a gauge's value as a whole number.
    pub(crate) fn count(m: &Metric) -> u64 {
        let value = m.get_counter().get_value() + m.get_gauge().get_value();
        if value.is_finite() && value > 0.0 {
            value as u64
        } else {
            0
        }
    }

    /// The sum of family `name` over every series.
    pub(crate) fn total(&self, name: &str) -> u64 {
        self.metrics(name).iter().map(Families::count).sum()
    }
}
