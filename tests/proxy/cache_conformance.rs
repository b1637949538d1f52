//! The shield against RFC 9111, RFC 9213 and RFC 9110's interim responses: what a
//! client behind it is told (the origin's `Age`, the fields meant for it, Early
//! Hints), and what is stored or refused (must-revalidate, invalid
//! `CDN-Cache-Control`, heuristic freshness). Each count is of what the
//! origin saw.

use crate::cache::{gen, shield, status_of, ttl_of};
use crate::support::client::request;
use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn age_of(resp: &Response) -> u64 {
    let age = resp
        .header("age")
        .unwrap_or_else(|| panic!("no Age: {:?}", resp.head));
    age.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_age_reaches_the_client_on_the_miss_and_the_hit() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let headers = [("Cache-Control", "max-age=10000"), ("Age", "7200")];
    let path = gen("/age", &headers, "");
    let miss = proxy.get(&path).await;
    assert_eq!(miss.status(), 200);
    assert!(status_of(&miss).contains("stored"), "{}", status_of(&miss));
    assert!((7200..7230).contains(&age_of(&miss)), "{:?}", miss.head);
    let hit = proxy.get(&path).await;
    assert!(status_of(&hit).contains("hit"), "{}", status_of(&hit));
    assert!((7200..7230).contains(&age_of(&hit)), "{:?}", hit.head);
    assert_eq!(o.state.count("/gen/age"), 1);
    // Not stored: the origin's Age goes through as it came.
    let uncached = gen(
        "/age-nostore",
        &[("Cache-Control", "no-store"), ("Age", "30")],
        "",
    );
    assert_eq!(proxy.get(&uncached).await.header("age"), Some("30"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_named_by_no_cache_reach_the_response_that_carried_them() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    // As the suite sends it: the directives on two field lines.
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let headers = [
        ("Cache-Control", "no-cache=\"a\""),
        ("a", "1"),
        ("b", "2"),
        ("Cache-Control", "max-age=3600"),
        ("Date", date.as_str()),
    ];
    let path = gen("/named", &headers, "");
    let first = proxy.get(&path).await;
    assert_eq!(first.header("a"), Some("1"), "{:?}", first.head);
    assert_eq!(first.header("b"), Some("2"));
    let second = proxy.get(&path).await;
    assert!(status_of(&second).contains("hit"), "{}", status_of(&second));
    assert_eq!(second.header("a"), None, "never reused from the store");
    assert_eq!(second.header("b"), Some("2"));
    assert_eq!(o.state.count("/gen/named"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_cache_control_is_forwarded_and_parapets_own_is_not() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let headers = [
        ("Cache-Control", "no-store"),
        ("CDN-Cache-Control", "max-age=60"),
        ("Cache-Tag", "a b"),
    ];
    let path = gen("/cdn-fwd", &headers, "");
    let first = proxy.get(&path).await;
    let second = proxy.get(&path).await;
    assert_eq!(
        o.state.count("/gen/cdn-fwd"),
        1,
        "stored by CDN-Cache-Control"
    );
    for resp in [&first, &second] {
        assert_eq!(resp.header("cdn-cache-control"), Some("max-age=60"));
        assert_eq!(resp.header("cache-tag"), None, "purge tags are ours");
        assert_eq!(resp.header("cache-control"), Some("no-store"));
    }
    let ours = gen(
        "/cdn-ours",
        &[("Parapet-CDN-Cache-Control", "max-age=60")],
        "",
    );
    let resp = proxy.get(&ours).await;
    assert_eq!(resp.header("parapet-cdn-cache-control"), None);
    proxy.get(&ours).await;
    assert_eq!(o.state.count("/gen/cdn-ours"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_cdn_cache_control_is_ignored_as_a_whole() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    for (name, value) in [
        ("/wrong-type", "max-age=\"10000\""),
        ("/unknown-type", "max-age=10000, &&&&&"),
    ] {
        let headers = [("CDN-Cache-Control", value), ("Cache-Control", "no-store")];
        let path = gen(name, &headers, "");
        proxy.get(&path).await;
        proxy.get(&path).await;
        let count = o.state.count(&format!("/gen{name}"));
        assert_eq!(count, 2, "{value}: Cache-Control: no-store decides");
    }
    let valid = gen(
        "/valid",
        &[
            ("CDN-Cache-Control", "max-age=10000"),
            ("Cache-Control", "no-store"),
        ],
        "",
    );
    proxy.get(&valid).await;
    proxy.get(&valid).await;
    assert_eq!(o.state.count("/gen/valid"), 1, "a valid one still decides");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_must_revalidate_object_is_revalidated_or_answered_504() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let headers = [
        ("Cache-Control", "max-age=1, must-revalidate"),
        ("ETag", "\"abcd\""),
    ];
    let path = gen("/mr", &headers, "");
    let stored = proxy.get(&path).await;
    assert_eq!(stored.status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let validated = proxy.get(&path).await;
    assert_eq!(validated.status(), 200, "{:?}", validated.head);
    assert_eq!(
        validated.body, stored.body,
        "the stored body, confirmed by a 304"
    );
    assert_eq!(o.state.count("/gen/mr"), 2);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    o.stop();
    let refused = proxy.get(&path).await;
    assert_eq!(refused.status(), 504, "no stale answer without the origin");
}

/// Read what comes back for one request, interim responses included, until the
/// final response's body (`Content-Length`) is complete.
async fn exchange(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = request("GET", path, &["Connection: close"]);
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out));
    read.await.expect("the answer ends").unwrap();
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_reach_the_client_and_the_final_answer_is_stored() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen(
        "/hints",
        &[("Cache-Control", "max-age=10000")],
        "interim=103",
    );
    let first = exchange(proxy.addr, &path).await;
    assert!(first.starts_with("HTTP/1.1 103"), "{first}");
    assert_eq!(first.matches(" 103 ").count(), 1, "once: {first}");
    assert!(
        first
            .to_ascii_lowercase()
            .contains("link: </style.css>; rel=preload"),
        "{first}"
    );
    assert!(first.contains("HTTP/1.1 200"), "{first}");
    let second = proxy.get(&path).await;
    assert_eq!(second.status(), 200);
    assert!(status_of(&second).contains("hit"), "{}", status_of(&second));
    assert_eq!(o.state.count("/gen/hints"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heuristic_freshness_from_last_modified_when_configured() {
    let o = origin("o").await;
    let last_modified =
        httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(100_000));
    let headers = [("Last-Modified", last_modified.as_str())];
    let off = shield(&o, json!({})).await;
    let path = gen("/lm-off", &headers, "");
    off.get(&path).await;
    off.get(&path).await;
    assert_eq!(o.state.count("/gen/lm-off"), 2, "off by default");
    drop(off);
    let on = shield(&o, json!({"heuristic": "10%", "heuristic_max": "1h"})).await;
    let path = gen("/lm-on", &headers, "");
    on.get(&path).await;
    let hit = on.get(&path).await;
    assert!(status_of(&hit).contains("hit"), "{}", status_of(&hit));
    let ttl = ttl_of(&hit);
    assert!(
        (3500..=3600).contains(&ttl),
        "10% of 100000 s, capped at 1h: {ttl}"
    );
    assert_eq!(o.state.count("/gen/lm-on"), 1);
    // A status that is not heuristically cacheable is not stored.
    let created = gen("/lm-201", &headers, "status=201");
    on.get(&created).await;
    on.get(&created).await;
    assert_eq!(o.state.count("/gen/lm-201"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_carries_the_stored_date() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    // RFC 9110 §6.6.1: the Date is the origin's, when it generated the answer;
    // a cache serves it as stored (cache-tests `other-date-update`).
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(100));
    let headers = [("Cache-Control", "max-age=10000"), ("Date", date.as_str())];
    let path = gen("/dated", &headers, "");
    let miss = proxy.get(&path).await;
    assert!(status_of(&miss).contains("stored"), "{}", status_of(&miss));
    assert_eq!(miss.header("date"), Some(date.as_str()), "{:?}", miss.head);
    let hit = proxy.get(&path).await;
    assert!(status_of(&hit).contains("hit"), "{}", status_of(&hit));
    assert_eq!(hit.header("date"), Some(date.as_str()), "{:?}", hit.head);
    assert_eq!(o.state.count("/gen/dated"), 1);
    // An answer without one still gets the proxy's clock.
    let undated = proxy.get(&gen("/undated", &[], "")).await;
    let now = undated.header("date").map(httpdate::parse_http_date);
    assert!(matches!(now, Some(Ok(_))), "{:?}", undated.head);
}
