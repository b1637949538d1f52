//! The dashboard in a real headless Chromium: log in with the token, live figures
//! as traffic comes, a stopped backend's row turning unhealthy, a purge from the
//! box, and a page of 1,000 backends and 100 routes that keeps updating.

use super::{dashboard_proxy, CACHED, TOKEN};
use crate::support::webdriver::Browser;
use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

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

/// Whether `script` (a function body) returns true in the page, within `limit`.
async fn shows(browser: &Browser, limit: Duration, script: &str) -> bool {
    eventually(limit, async || browser.eval(script).await == json!(true)).await
}

/// Open the dashboard of `admin`: its login form first, then the board once the
/// token is typed in.
async fn logged_in(browser: &Browser, admin: SocketAddr) {
    browser.goto(&format!("http://{admin}/dashboard")).await;
    let login = "return !document.getElementById('login').hidden";
    assert!(
        shows(browser, Duration::from_secs(15), login).await,
        "no login form without the token"
    );
    browser.type_into("#token", TOKEN).await;
    browser.click("#login-button").await;
    let board = "return !document.getElementById('board').hidden";
    assert!(
        shows(browser, Duration::from_secs(15), board).await,
        "the board never showed: {}",
        browser.text("#state").await
    );
    assert!(
        !browser.url().await.contains(TOKEN),
        "the token is never in the URL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let (a, b) = (origin("a").await, origin("b").await);
    let (proxy, admin) = dashboard_proxy(&a, &b).await;
    let browser = Browser::start().await;
    logged_in(&browser, admin).await;
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

    // PARAPET_SCREENSHOT=docs/dashboard.png keeps the screenshot (the README's
    // picture), after half a minute more of traffic for the charts to show.
    let keep = std::env::var("PARAPET_SCREENSHOT").ok();
    if keep.is_some() {
        let _traffic = Traffic::start(proxy.addr);
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    if let Some(path) = keep {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::write(&path, &png).unwrap();
    }
}

/// 1,000 backends and 100 routes: every row is drawn and the page keeps polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_backends_and_a_hundred_routes() {
    let o = origin("o").await;
    // Nothing listens on these, and nothing is sent there: no health check, no route.
    let idle: Vec<SocketAddr> = (0..1000u16)
        .map(|i| SocketAddr::from(([127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8], 9)))
        .collect();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut config = Config::new()
        .upstream("app", json!({"backends": backends(&[o.addr])}))
        .upstream("many", json!({"backends": backends(&idle)}));
    for i in 0..100 {
        config = config.route(json!({"path_prefix": format!("/r{i}/"), "upstream": "app"}));
    }
    let config = config.section(
        "admin",
        json!({"address": admin.to_string(), "token": TOKEN}),
    );
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    assert_eq!(proxy.get("/r42/page").await.status(), 200);

    let browser = Browser::start().await;
    logged_in(&browser, admin).await;
    let drawn = "return document.querySelectorAll('#backends tr').length === 1001 \
                 && document.querySelectorAll('#routes tr').length === 100";
    assert!(
        shows(&browser, Duration::from_secs(20), drawn).await,
        "rows: {}",
        browser
            .eval("return document.querySelectorAll('#backends tr').length")
            .await
    );
    // Still live: the request shows, a poll later.
    let counted = eventually(Duration::from_secs(20), async || {
        browser.text("#total").await == "1"
    })
    .await;
    assert!(counted, "total {:?}", browser.text("#total").await);
    let first = browser.text("#state").await;
    let updated = eventually(Duration::from_secs(20), async || {
        browser.text("#state").await != first
    })
    .await;
    assert!(updated, "the page stopped updating at {first:?}");
}
