//! The admin listener's `/dashboard`: the page and its data behind the token
//! (here), the page itself in a real headless Chromium (`browser`), and the Grafana
//! dashboard's queries against a real `/metrics` scrape (`grafana`).

mod browser;
mod grafana;

use crate::support::client::get_with;
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) const TOKEN: &str = "dash-s3cret";
pub(crate) const BEARER: &str = "Authorization: Bearer dash-s3cret";
/// A URL the demo origin answers as cacheable for ten minutes.
pub(crate) const CACHED: &str = "/gen/x?set-Cache-Control=max-age%3D600";

/// Parapet in front of `a` and `b` (upstream `app`: health checks every 200 ms, a
/// circuit breaker, retries), a caching route for `/gen/`, a rate-limited catch-all
/// route, a capped extra listener and the admin listener with the token; every
/// optional metric family exists. The proxy and the admin address.
pub(crate) async fn dashboard_proxy(a: &Origin, b: &Origin) -> (Proxy, SocketAddr) {
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
    // The hit's body came from the cache, the miss's from the origin: the same size.
    let from_cache = doc["shield"]["bytes_from_cache"].as_u64().unwrap();
    assert!(from_cache > 0, "{doc}");
    assert_eq!(
        doc["shield"]["bytes_from_origin"].as_u64(),
        Some(from_cache)
    );
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
