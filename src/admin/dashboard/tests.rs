use super::families::Families;
use super::history::{quantile, History, Totals, SAMPLES};
use crate::observe::metrics::{Metrics, RequestMetrics};
use std::time::Duration;

#[test]
fn quantiles_interpolate_within_buckets() {
    // 10 observations: 5 under 1 ms, 5 between 1 and 2 ms.
    let buckets = [(0.001, 5), (0.002, 10), (0.005, 10)];
    assert_eq!(quantile(0.5, &buckets, 10), 0.001);
    assert!((quantile(0.75, &buckets, 10) - 0.0015).abs() < 1e-9);
    assert_eq!(quantile(0.99, &[], 0), 0.0);
    // Past the last bound: that bound.
    assert_eq!(quantile(0.99, &[(0.001, 1)], 10), 0.001);
}

#[test]
fn the_ring_keeps_the_last_five_minutes_of_differences() {
    let metrics = Metrics::default();
    let requests = RequestMetrics::register(metrics.registry(), &[("*/", "app")]).unwrap();
    let history = History::default();
    let read = || Totals::read(&Families::gather(&metrics));
    history.record(0, read());
    assert!(
        history.samples().is_empty(),
        "the first reading is the base"
    );
    for second in 1..=(SAMPLES as u64 + 50) {
        for _ in 0..3 {
            requests.request_done(Some(0), 200, Duration::from_millis(2));
        }
        requests.request_done(None, 503, Duration::from_millis(40));
        history.record(second, read());
    }
    let samples = history.samples();
    assert_eq!(samples.len(), SAMPLES, "the ring never grows past its size");
    // The sampler reads only the request families: the same totals.
    assert_eq!(Totals::read(&Families::of(requests.families())), read());
    assert_eq!(samples[0].t, 51);
    let newest = samples[SAMPLES - 1];
    assert_eq!(newest.t, SAMPLES as u64 + 50);
    assert_eq!(newest.classes, [0, 3, 0, 0, 1]);
    assert!(newest.p50_ms > 1.0 && newest.p50_ms <= 2.5, "{newest:?}");
    assert!(newest.p99_ms > 25.0 && newest.p99_ms <= 50.0, "{newest:?}");
}
