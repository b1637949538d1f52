//! `contrib/grafana/parapet.json`: every metric its queries name is in a real
//! `/metrics` scrape, and every family the page shows has a panel.

use super::{dashboard_proxy, BEARER, CACHED};
use crate::support::client::get_with;
use crate::support::*;
use std::collections::BTreeSet;
use std::time::Duration;

/// The metric names the PromQL expressions of `contrib/grafana/parapet.json` use.
fn grafana_metric_names() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/grafana/parapet.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    let panels = dashboard["panels"].as_array().unwrap();
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for expr in targets.iter().map(|t| t["expr"].as_str().unwrap()) {
            let mut rest = expr;
            while let Some(at) = rest.find("parapet_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.insert(name);
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_queries_name_only_exported_metrics() {
    let (a, b) = (origin("a").await, origin("b").await);
    let (proxy, admin) = dashboard_proxy(&a, &b).await;
    assert_eq!(proxy.get(CACHED).await.status(), 200);
    // A request is counted once logged, just after its answer went out.
    let mut scrape = String::new();
    let counted = eventually(Duration::from_secs(10), async || {
        scrape = get_with(admin, "/metrics", &[BEARER]).await.text();
        scrape.contains("parapet_requests_total{")
    })
    .await;
    assert!(counted, "{scrape}");
    let exported: BTreeSet<&str> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let used = grafana_metric_names();
    for name in &used {
        assert!(
            exported.contains(name.as_str()),
            "{name} is not in /metrics:\n{scrape}"
        );
    }
    // Every family the page shows has a panel too.
    for family in [
        "parapet_requests_total",
        "parapet_request_duration_seconds_bucket",
        "parapet_requests_active",
        "parapet_cache_lookups_total",
        "parapet_cache_origin_fetches_saved_total",
        "parapet_cache_served_bytes_total",
        "parapet_cache_collapsed_total",
        "parapet_cache_objects",
        "parapet_cache_size_bytes",
        "parapet_backend_healthy",
        "parapet_circuit_open",
        "parapet_upstream_attempts_total",
        "parapet_retries_total",
        "parapet_retry_budget_exhausted_total",
        "parapet_connections_active",
        "parapet_connections_refused_total",
        "parapet_ratelimited_total",
    ] {
        assert!(used.contains(family), "no Grafana panel uses {family}");
    }
}
