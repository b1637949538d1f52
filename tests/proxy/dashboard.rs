//! The admin listener's `/dashboard`: the page and its data behind the token, and
//! the page itself in a real headless Chromium (live figures, a backend turning
//! unhealthy, a purge from its box). The Grafana dashboard's queries name only
//! metrics a real `/metrics` scrape has.

use crate::support::client::get_with;
use crate::support::webdriver::Browser;
use crate::support::*;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "dash-s3cret";
const BEARER: &str = "Authorization: Bearer dash-s3cret";
/// A URL the demo origin answers as cacheable for ten minutes.
const CACHED: &str = "/gen/x?set-Cache-Control=max-age%3D600";

/// Parapet in front of `a` and `b` (upstream `app`: health checks every 200 ms, a
/// circuit breaker, retries), a caching route for `/gen/`, a rate-limited catch-all
/// route, a capped extra listener and the admin listener with the token; every
/// optional metric family exists. The proxy and the admin address.
async fn dashboard_proxy(a: &Origin, b: &Origin) -> (Proxy, SocketAddr) {
    let check = json!({
        "type": "http", "path": "/health", "interval": "200ms", "timeout": "500ms",
        "healthy_threshold": 1, "unhealthy_threshold": 1
    });
    let app = json!({
        "backends": backends(&[a.addr, b.addr]),
        "health_check": check,
        "retries": 1,
        "circuit_breaker": {"consecutive_failures": 5, "open_for": "1s"}
    });
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let capped = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = Config::new()
        .upstream("app", app)
        .route(json!({"path_prefix": "/gen/", "upstream": "app", "cache": true}))
        .route(json!({"upstream": "app",
            "rate_limit": {"requests_per_second": 10000, "burst": 10000}}))
        .section("cache", json!({}))
        .listener(json!({"address": capped.to_string(), "max_connections": 100}))
        .section(
            "admin",
            json!({"address": admin.to_string(), "token": TOKEN}),
        );
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    proxy.wait_accepting(capped).await;
    (proxy, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_data_need_the_token() {
    let (a, b) = (origin("a").await, origin("b").await);
    let (proxy, admin) = dashboard_proxy(&a, &b).await;
    for path in ["/dashboard", "/dashboard/data"] {
        let resp = get(admin, path).await;
        assert_eq!(resp.status(), 401, "{path} without the token");
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
        let wrong = get_with(admin, path, &["Authorization: Bearer dash-s3cre"]).await;
        assert_eq!(wrong.status(), 401, "{path} with a wrong token");
    }
    // The page without the token is its login form, and names no figure.
    let page = get(admin, "/dashboard").await;
    let html = page.text();
    assert!(html.contains(r#"<form id="login""#), "{html}");
    assert!(
        !html.contains(&a.addr.to_string()),
        "the page holds no data"
    );
    let csp = page
        .header("content-security-policy")
        .unwrap_or("")
        .to_string();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing external"
    );
    // The script and style sheet hold no data and load without the token.
    let script = get(admin, "/dashboard/app.js").await;
    assert_eq!(script.status(), 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.text().contains("sessionStorage"));
    assert_eq!(get(admin, "/dashboard/style.css").await.status(), 200);
    // Everything else still needs the token.
    assert_eq!(get(admin, "/dashboard/other").await.status(), 401);
    assert_eq!(
        get_with(admin, "/dashboard/other", &[BEARER])
            .await
            .status(),
        404
    );

    assert_eq!(proxy.get(CACHED).await.status(), 200);
    assert_eq!(proxy.get(CACHED).await.status(), 200);
    let data = get_with(admin, "/dashboard/data", &[BEARER]).await;
    assert_eq!(data.status(), 200);
    assert_eq!(data.header("content-type"), Some("application/json"));
    // A request is counted once logged, just after its answer went out.
    let mut doc = serde_json::Value::Null;
    let counted = eventually(Duration::from_secs(10), async || {
        let data = get_with(admin, "/dashboard/data", &[BEARER]).await;
        doc = serde_json::from_slice(&data.body).unwrap();
        doc["requests"]["classes"][1] == 2
    })
    .await;
    assert!(counted, "{doc}");
    assert_eq!(doc["about"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc["about"]["config_file"]
        .as_str()
        .is_some_and(|f| f.ends_with("parapet.yaml")));
    assert_eq!(doc["shield"]["lookups"]["miss"], 1, "{doc}");
    assert_eq!(doc["shield"]["lookups"]["hit"], 1, "{doc}");
    assert_eq!(doc["shield"]["hit_ratio"], 0.5, "{doc}");
    assert_eq!(doc["shield"]["tiers"][0]["objects"], 1, "{doc}");
    let backends = doc["upstreams"][0]["backends"].as_array().unwrap();
    assert_eq!(backends.len(), 2);
    assert_eq!(backends[0]["circuit"], "closed");
    let routes = doc["routes"].as_array().unwrap();
    assert_eq!(routes.len(), 2, "both configured routes: {doc}");
    assert_eq!(routes[0]["upstream"], "app");
    assert_eq!(routes[0]["requests"], 2);
    assert_eq!(routes[1]["upstream"], "app");
    // The ring fills once a second and stays bounded.
    let sampled = eventually(Duration::from_secs(10), async || {
        let data = get_with(admin, "/dashboard/data", &[BEARER]).await;
        let doc: serde_json::Value = serde_json::from_slice(&data.body).unwrap();
        doc["history"].as_array().is_some_and(|h| !h.is_empty())
    })
    .await;
    assert!(sampled, "no history sample");
}

/// Requests to the proxy until dropped: a cached path, pages and a 404.
struct Traffic(Arc<AtomicBool>);

impl Traffic {
    fn start(proxy: SocketAddr) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        tokio::spawn(async move {
            let paths = [CACHED, CACHED, CACHED, "/page", "/status/404"];
            for i in 0.. {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let _ = get(proxy, paths[i % paths.len()]).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Traffic(stop)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let (a, b) = (origin("a").await, origin("b").await);
    let (proxy, admin) = dashboard_proxy(&a, &b).await;
    let browser = Browser::start().await;
    let page = format!("http://{admin}/dashboard");
    browser.goto(&page).await;
    let login_shown = eventually(Duration::from_secs(15), async || {
        browser
            .eval("return !document.getElementById('login').hidden")
            .await
            == json!(true)
    })
    .await;
    assert!(login_shown, "no login form without the token");

    browser.type_into("#token", TOKEN).await;
    browser.click("#login-button").await;
    let board = eventually(Duration::from_secs(15), async || {
        browser
            .eval("return !document.getElementById('board').hidden")
            .await
            == json!(true)
    })
    .await;
    assert!(
        board,
        "the board never showed: {}",
        browser.text("#state").await
    );
    assert!(
        !browser.url().await.contains(TOKEN),
        "the token is never in the URL"
    );
    let hit_ratio_before = browser.text("#hit-ratio").await;
    assert_eq!(hit_ratio_before, "0.0%");
    assert_eq!(browser.text("#total").await, "0");

    // Traffic shows as a request rate and a hit ratio.
    let traffic = Traffic::start(proxy.addr);
    let live = eventually(Duration::from_secs(20), async || {
        let rps = browser.text("#rps").await;
        rps.parse::<u64>().is_ok_and(|n| n > 0)
            && browser.text("#hit-ratio").await != hit_ratio_before
    })
    .await;
    assert!(
        live,
        "rate {:?}, hit ratio {:?}",
        browser.text("#rps").await,
        browser.text("#hit-ratio").await
    );
    let row = |addr: SocketAddr| format!("tr[data-backend=\"{addr}\"]");
    let class_of = async |addr: SocketAddr| {
        let script = format!(
            "const r = document.querySelector({}); return r ? r.className : 'missing';",
            json!(row(addr))
        );
        browser
            .eval(&script)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(class_of(b.addr).await, "healthy");

    // A stopped backend turns unhealthy within a few health-check intervals
    // (200 ms each) and a poll.
    b.stop();
    let ejected = eventually(Duration::from_secs(15), async || {
        class_of(b.addr).await == "unhealthy"
    })
    .await;
    assert!(ejected, "b's row: {:?}", class_of(b.addr).await);
    assert_eq!(class_of(a.addr).await, "healthy");
    drop(traffic);

    // A purge from the box: the next request is a miss.
    let stored = proxy.get(CACHED).await;
    assert!(
        stored
            .header("cache-status")
            .is_some_and(|s| s.contains("hit")),
        "{:?}",
        stored.header("cache-status")
    );
    let fetched = a.state.count("/gen/x") + b.state.count("/gen/x");
    // The host the test client sends.
    browser.type_into("#purge-host", "test").await;
    browser.type_into("#purge-value", CACHED).await;
    browser.click("#purge-button").await;
    let purged = eventually(Duration::from_secs(10), async || {
        browser.text("#purge-result").await == "purged 1 object"
    })
    .await;
    assert!(purged, "{:?}", browser.text("#purge-result").await);
    let after = proxy.get(CACHED).await;
    assert_eq!(after.status(), 200);
    let status = after.header("cache-status").unwrap_or("").to_string();
    assert!(status.contains("fwd=uri-miss"), "{status}");
    assert_eq!(
        a.state.count("/gen/x") + b.state.count("/gen/x"),
        fetched + 1
    );

    // A URL never stored: the box says nothing matched.
    browser.type_into("#purge-value", "/gen/never-stored").await;
    browser.click("#purge-button").await;
    let none = eventually(Duration::from_secs(10), async || {
        browser.text("#purge-result").await == "nothing stored matched (404)"
    })
    .await;
    assert!(none, "{:?}", browser.text("#purge-result").await);

    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    // PARAPET_SCREENSHOT=docs/dashboard.png keeps it (the README's picture).
    let keep = std::env::var("PARAPET_SCREENSHOT")
        .map(|p| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
        .unwrap_or_else(|_| browser.dir.join("dashboard.png"));
    // (The browser's directory goes with it; a kept screenshot is elsewhere.)
    std::fs::write(&keep, &png).unwrap();
}

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
