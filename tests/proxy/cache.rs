//! The origin shield: what is stored, what is answered from the store, and how
//! many requests the origin saw. The origin's `/gen` path answers with the headers
//! a test asks for (`set-NAME=VALUE`) and a body that counts its fetches.

use crate::support::client::{get_with, raw, request};
use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A `/gen` target whose response carries these headers (and `extra` query parameters).
pub(crate) fn gen(path: &str, headers: &[(&str, &str)], extra: &str) -> String {
    let mut out = format!("/gen{path}?");
    for (name, value) in headers {
        out.push_str(&format!("set-{name}={}&", encode(value)));
    }
    out.push_str(extra);
    out
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Parapet with one caching catch-all route in front of `o`, and `cache` settings.
pub(crate) async fn shield(o: &Origin, cache: serde_json::Value) -> Proxy {
    let config = Config::new()
        .upstream("app", json!({"backends": backends(&[o.addr]), "retries": 0}))
        .route(json!({"path_prefix": "/nocache/", "upstream": "app"}))
        .route(json!({"path_prefix": "/noquery/", "upstream": "app", "cache": true, "cache_key": {"query": "none"}}))
        .route(json!({"upstream": "app", "cache": true}))
        .section("cache", cache);
    Proxy::start(&config).await
}

/// The `ttl` of the response's `Cache-Status`.
pub(crate) fn ttl_of(resp: &Response) -> i64 {
    let status = status_of(resp);
    let ttl = status
        .split("ttl=")
        .nth(1)
        .and_then(|t| t.split(';').next());
    ttl.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no ttl in {status}"))
}

pub(crate) fn status_of(resp: &Response) -> String {
    resp.header("cache-status").unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_get_is_a_hit_with_age() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen("/a", &[("Cache-Control", "max-age=60")], "");
    let first = proxy.get(&path).await;
    assert_eq!(first.status(), 200);
    assert!(
        status_of(&first).starts_with("parapet; fwd=uri-miss; fwd-status=200; stored"),
        "{}",
        status_of(&first)
    );
    let second = proxy.get(&path).await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.body, first.body, "the stored body");
    assert!(
        status_of(&second).starts_with("parapet; hit; ttl="),
        "{}",
        status_of(&second)
    );
    assert!(second.header("age").is_some(), "Age on a hit");
    assert_eq!(o.state.count("/gen/a"), 1, "one origin fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_may_not_be_stored_reaches_the_origin_every_time() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let cases = [
        ("/no-store", vec![("Cache-Control", "no-store, max-age=60")]),
        ("/private", vec![("Cache-Control", "private, max-age=60")]),
        ("/no-freshness", vec![]),
        (
            "/vary-star",
            vec![("Cache-Control", "max-age=60"), ("Vary", "*")],
        ),
        (
            "/cookie",
            vec![("Cache-Control", "max-age=60"), ("Set-Cookie", "id=1")],
        ),
        (
            "/cdn-says-no",
            vec![
                ("Cache-Control", "max-age=60"),
                ("CDN-Cache-Control", "no-store"),
            ],
        ),
    ];
    for (name, headers) in &cases {
        let path = gen(name, headers, "");
        for _ in 0..2 {
            let resp = proxy.get(&path).await;
            assert_eq!(resp.status(), 200, "{name}");
            assert!(
                status_of(&resp).contains("fwd="),
                "{name}: {}",
                status_of(&resp)
            );
        }
        assert_eq!(
            o.state.count(&format!("/gen{name}")),
            2,
            "{name} was stored"
        );
    }
    // A route without `cache: true` neither stores nor says Cache-Status.
    let path = format!(
        "/nocache{}",
        gen("/x", &[("Cache-Control", "max-age=60")], "")
    );
    for _ in 0..2 {
        let resp = proxy.get(&path).await;
        assert_eq!(resp.header("cache-status"), None);
    }
    assert_eq!(o.state.count("/nocache/gen/x"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_age_counts_and_shortens_freshness() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen(
        "/aged",
        &[("Cache-Control", "max-age=600"), ("Age", "100")],
        "",
    );
    proxy.get(&path).await;
    let hit = proxy.get(&path).await;
    let age: u64 = hit.header("age").unwrap().parse().unwrap();
    assert!((100..110).contains(&age), "Age {age}");
    let ttl = ttl_of(&hit);
    assert!((490..=500).contains(&ttl), "ttl {ttl}");
    // Already older than its lifetime: stored stale, revalidated next time.
    let old = gen(
        "/old",
        &[("Cache-Control", "max-age=60"), ("Age", "120")],
        "",
    );
    proxy.get(&old).await;
    proxy.get(&old).await;
    assert_eq!(o.state.count("/gen/old"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_revalidates_with_the_etag_and_a_304_refreshes_the_object() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen(
        "/etag",
        &[("Cache-Control", "no-cache"), ("ETag", "\"v1\"")],
        "",
    );
    let first = proxy.get(&path).await;
    let second = proxy.get(&path).await;
    assert_eq!(o.state.count("/gen/etag"), 2, "revalidated every time");
    assert_eq!(second.status(), 200);
    assert_eq!(
        second.body, first.body,
        "the origin said 304: the stored body"
    );
    assert_eq!(status_of(&second), "parapet; fwd=stale; fwd-status=304");
    assert_eq!(
        second.header("x-gen"),
        Some("2"),
        "the 304's fields update the object"
    );
    assert!(second.header("age").is_some(), "Age after revalidation too");
    // Last-Modified works the same way.
    let lm = "Wed, 01 Dec 2026 10:00:00 GMT";
    let dated = gen(
        "/lm",
        &[("Cache-Control", "max-age=0"), ("Last-Modified", lm)],
        "",
    );
    let first = proxy.get(&dated).await;
    let second = proxy.get(&dated).await;
    assert_eq!(o.state.count("/gen/lm"), 2);
    assert_eq!((second.status(), &second.body), (200, &first.body));
    assert_eq!(second.header("x-gen"), Some("2"));
    // The client's own conditional request is answered 304 from a fresh object.
    let fresh = gen(
        "/etag-fresh",
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v2\"")],
        "",
    );
    proxy.get(&fresh).await;
    let conditional = get_with(proxy.addr, &fresh, &["If-None-Match: \"v2\""]).await;
    assert_eq!(conditional.status(), 304);
    assert_eq!(o.state.count("/gen/etag-fresh"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_variants_apart() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen(
        "/vary",
        &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Encoding")],
        "",
    );
    let gzip = get_with(proxy.addr, &path, &["Accept-Encoding: gzip"]).await;
    let br = get_with(proxy.addr, &path, &["Accept-Encoding: br"]).await;
    assert!(gzip.text().contains("ae=gzip") && br.text().contains("ae=br"));
    assert_eq!(o.state.count("/gen/vary"), 2);
    let again = get_with(proxy.addr, &path, &["Accept-Encoding: gzip"]).await;
    assert_eq!(again.body, gzip.body);
    assert!(status_of(&again).contains("hit"), "{}", status_of(&again));
    let none = proxy.get(&path).await;
    assert!(none.text().contains("ae=-"), "{}", none.text());
    assert_eq!(o.state.count("/gen/vary"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_misses_make_one_fetch() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen("/herd", &[("Cache-Control", "max-age=60")], "delay=300");
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (addr, path) = (proxy.addr, path.clone());
            tokio::spawn(async move { get_with(addr, &path, &[]).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for t in tasks {
        let resp = t.await.unwrap();
        assert_eq!(resp.status(), 200);
        bodies.push(resp.body);
    }
    assert_eq!(o.state.count("/gen/herd"), 1, "one origin fetch");
    assert!(bodies.iter().all(|b| *b == bodies[0]), "identical answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_of_an_uncacheable_url_do_not_queue() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let delay = 300;
    let path = gen(
        "/herd-nostore",
        &[("Cache-Control", "no-store")],
        &format!("delay={delay}"),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (addr, path) = (proxy.addr, path.clone());
            tokio::spawn(async move { get_with(addr, &path, &[]).await.status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let waves = started.elapsed().as_millis() / delay;
    assert_eq!(
        o.state.count("/gen/herd-nostore"),
        50,
        "each request reached the origin"
    );
    // Serially, one after another, this would be 50 origin delays; a leader and
    // then everyone at once is 2.
    assert!(waves < 10, "the requests queued: {waves} origin delays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_invalidate_the_uri_and_its_locations() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let send = async |method: &str, path: &str| {
        let req = request(method, path, &["Content-Length: 0"]);
        raw(proxy.addr, req.as_bytes(), method)
            .await
            .unwrap()
            .status()
    };
    let item = gen("/item", &[("Cache-Control", "max-age=60")], "");
    let list = gen("/list", &[("Cache-Control", "max-age=60")], "");
    proxy.get(&item).await;
    proxy.get(&list).await;
    assert_eq!(send("POST", &item).await, 200);
    proxy.get(&item).await;
    assert_eq!(o.state.count("/gen/item"), 3, "GET, POST, GET again");
    // A DELETE elsewhere whose answer names the list in Location.
    let elsewhere = gen("/elsewhere", &[("Location", &list)], "");
    assert_eq!(send("DELETE", &elsewhere).await, 200);
    proxy.get(&list).await;
    assert_eq!(
        o.state.count("/gen/list"),
        2,
        "invalidated through Location"
    );
    // A failed one invalidates nothing, not even what its Location names.
    let failed = gen("/put-fail", &[("Location", &item)], "status=500");
    assert_eq!(send("PUT", &failed).await, 500);
    proxy.get(&item).await;
    assert_eq!(o.state.count("/gen/item"), 3, "still stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_directives_are_honoured() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen("/req", &[("Cache-Control", "max-age=60")], "");
    proxy.get(&path).await;
    let forced = get_with(proxy.addr, &path, &["Cache-Control: no-cache"]).await;
    assert_eq!(o.state.count("/gen/req"), 2, "no-cache goes to the origin");
    assert!(
        status_of(&forced).contains("fwd="),
        "{}",
        status_of(&forced)
    );
    get_with(proxy.addr, &path, &["Pragma: no-cache"]).await;
    assert_eq!(o.state.count("/gen/req"), 3);
    get_with(proxy.addr, &path, &["Cache-Control: max-age=3600"]).await;
    assert_eq!(o.state.count("/gen/req"), 3, "young enough");
    get_with(proxy.addr, &path, &["Cache-Control: min-fresh=3600"]).await;
    assert_eq!(
        o.state.count("/gen/req"),
        4,
        "not fresh enough for the client"
    );

    let missing = gen("/absent", &[("Cache-Control", "max-age=60")], "");
    let resp = get_with(proxy.addr, &missing, &["Cache-Control: only-if-cached"]).await;
    assert_eq!(resp.status(), 504);
    assert_eq!(o.state.count("/gen/absent"), 0);
    let resp = get_with(proxy.addr, &path, &["Cache-Control: only-if-cached"]).await;
    assert_eq!(resp.status(), 200, "stored: answered");

    let unstored = gen("/nostore-req", &[("Cache-Control", "max-age=60")], "");
    get_with(proxy.addr, &unstored, &["Cache-Control: no-store"]).await;
    proxy.get(&unstored).await;
    assert_eq!(o.state.count("/gen/nostore-req"), 2, "no-store kept it out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_range_are_answered_from_a_stored_get() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen("/ranged", &[("Cache-Control", "max-age=60")], "");
    let full = proxy.get(&path).await;
    let head = raw(proxy.addr, request("HEAD", &path, &[]).as_bytes(), "HEAD")
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.body.is_empty());
    let range = get_with(proxy.addr, &path, &["Range: bytes=0-3"]).await;
    assert_eq!(range.status(), 206);
    assert_eq!(range.body, full.body[..4]);
    assert_eq!(o.state.count("/gen/ranged"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_needs_the_origins_permission() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let private = gen("/auth", &[("Cache-Control", "max-age=60")], "");
    for _ in 0..2 {
        get_with(proxy.addr, &private, &["Authorization: Bearer x"]).await;
    }
    assert_eq!(o.state.count("/gen/auth"), 2);
    let public = gen(
        "/auth-public",
        &[("Cache-Control", "public, max-age=60")],
        "",
    );
    for _ in 0..2 {
        get_with(proxy.addr, &public, &["Authorization: Bearer x"]).await;
    }
    assert_eq!(o.state.count("/gen/auth-public"), 1);
    // Stored for everyone, but not to be shown to a request with credentials
    // unless the origin allows it.
    let shared = gen("/auth-stored", &[("Cache-Control", "max-age=60")], "");
    proxy.get(&shared).await;
    let with_auth = get_with(proxy.addr, &shared, &["Authorization: Bearer x"]).await;
    assert_eq!(with_auth.status(), 200);
    assert_eq!(o.state.count("/gen/auth-stored"), 2, "went to the origin");
    proxy.get(&shared).await;
    assert_eq!(
        o.state.count("/gen/auth-stored"),
        2,
        "still stored for the others"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_keep_hosts_apart_and_follow_the_routes_query_rule() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen("/host", &[("Cache-Control", "max-age=60")], "");
    for host in ["a.test", "b.test", "A.TEST"] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        raw(proxy.addr, req.as_bytes(), "GET").await.unwrap();
    }
    assert_eq!(
        o.state.count("/gen/host"),
        2,
        "a.test and A.TEST are one host"
    );
    let q1 = format!(
        "/noquery{}",
        gen("/q", &[("Cache-Control", "max-age=60")], "x=1")
    );
    let q2 = format!(
        "/noquery{}",
        gen("/q", &[("Cache-Control", "max-age=60")], "x=2")
    );
    proxy.get(&q1).await;
    let second = proxy.get(&q2).await;
    assert!(status_of(&second).contains("hit"), "{}", status_of(&second));
    assert_eq!(o.state.count("/noquery/gen/q"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_stays_within_max_size() {
    let o = origin("o").await;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = Config::single(&[o.addr])
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section(
            "cache",
            json!({"max_size": "1MiB", "max_object_size": "256KiB", "default_ttl": "1m"}),
        )
        .section("admin", json!({"address": admin.to_string()}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    // 4 MiB of 64 KiB objects, each stored (by the configured default TTL).
    for i in 0..64 {
        let resp = proxy.get(&format!("/bytes/65536?n={i}")).await;
        assert_eq!(resp.status(), 200);
    }
    let metrics = get(admin, "/metrics").await.text();
    let size = metrics
        .lines()
        .find_map(|l| l.strip_prefix("parapet_cache_size_bytes "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("parapet_cache_size_bytes");
    assert!(size > 0 && size <= 1 << 20, "size {size}");
    assert!(
        metrics.contains("parapet_cache_evictions_total"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_are_counted_and_logged() {
    let o = origin("o").await;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = scratch_dir("cache-log");
    let log = dir.join("access.log");
    let config = Config::single(&[o.addr])
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section("admin", json!({"address": admin.to_string()}))
        .section("access_log", json!({"path": log}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    let path = gen("/counted", &[("Cache-Control", "max-age=60")], "");
    proxy.get(&path).await;
    proxy.get(&path).await;
    let metrics = get(admin, "/metrics").await.text();
    assert!(
        metrics.contains("parapet_cache_lookups_total{result=\"hit\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("parapet_cache_lookups_total{result=\"miss\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("parapet_cache_objects 1"), "{metrics}");
    assert!(
        metrics.contains("parapet_cache_origin_fetches_saved_total 1"),
        "{metrics}"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&get(admin, "/status").await.body).unwrap();
    assert_eq!(status["cache"]["objects"], 1);
    let logged = eventually(Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    })
    .await;
    assert!(logged);
    let text = std::fs::read_to_string(&log).unwrap();
    // A line is written after its response went out: the two may come in either order.
    let mut results: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["cache"].to_string())
        .collect();
    results.sort();
    assert_eq!(results, ["\"hit\"", "\"miss\""]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_stale_when_the_origin_is_down() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let allowed = gen(
        "/sie",
        &[("Cache-Control", "max-age=0, stale-if-error=60")],
        "",
    );
    let strict = gen(
        "/strict",
        &[(
            "Cache-Control",
            "max-age=0, must-revalidate, stale-if-error=60",
        )],
        "",
    );
    let stored = proxy.get(&allowed).await;
    proxy.get(&strict).await;
    o.stop();
    let stale = proxy.get(&allowed).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.body, stored.body);
    assert!(
        status_of(&stale).contains("fwd=stale"),
        "{}",
        status_of(&stale)
    );
    let refused = proxy.get(&strict).await;
    assert_eq!(
        refused.status(),
        504,
        "must-revalidate: no stale without the origin (RFC 9111 §5.2.2.2)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_stale_when_no_backend_is_healthy() {
    let o = origin("o").await;
    let check =
        json!({"type": "tcp", "interval": "100ms", "timeout": "100ms", "unhealthy_threshold": 1});
    let config = Config::single(&[o.addr])
        .upstream_key("app", "health_check", check)
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section("cache", json!({"stale_if_error": "1m"}));
    let proxy = Proxy::start(&config).await;
    let path = gen("/down", &[("Cache-Control", "max-age=0")], "");
    let stored = proxy.get(&path).await;
    o.stop();
    let ejected = eventually(Duration::from_secs(10), async || {
        proxy.get(&gen("/other", &[], "")).await.status() == 503
    })
    .await;
    assert!(ejected, "the backend was never ejected");
    let stale = proxy.get(&path).await;
    assert_eq!(
        stale.status(),
        200,
        "the configured stale_if_error allows it"
    );
    assert_eq!(stale.body, stored.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let delay = 1000;
    let cc = [("Cache-Control", "max-age=0, stale-while-revalidate=60")];
    let path = gen("/swr", &cc, &format!("delay={delay}"));
    let stored = proxy.get(&path).await;
    let started = Instant::now();
    for _ in 0..5 {
        let resp = proxy.get(&path).await;
        assert_eq!(resp.body, stored.body, "the stale object, at once");
        assert!(status_of(&resp).contains("hit"), "{}", status_of(&resp));
    }
    // Each of those would have waited a whole origin delay had it gone upstream.
    assert!(
        started.elapsed() < Duration::from_millis(delay),
        "waited for the origin"
    );
    let refreshed = eventually(Duration::from_secs(5), async || {
        o.state.count("/gen/swr") == 2
    })
    .await;
    assert!(refreshed, "no background refresh");
    let fresh = eventually(Duration::from_secs(5), async || {
        proxy.get(&path).await.header("x-gen") == Some("2")
    })
    .await;
    assert!(fresh, "the refreshed object is served");
    assert!(
        o.state.count("/gen/swr") <= 3,
        "refreshed once per stale period"
    );
}

/// Parapet with a caching route and an admin listener.
async fn shield_with_admin(o: &Origin) -> (Proxy, SocketAddr) {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = Config::single(&[o.addr])
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section("admin", json!({"address": admin.to_string()}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    (proxy, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_url_drops_the_object() {
    let o = origin("o").await;
    let (proxy, admin) = shield_with_admin(&o).await;
    let path = gen("/purged", &[("Cache-Control", "max-age=60")], "");
    proxy.get(&path).await;
    proxy.get(&path).await;
    assert_eq!(o.state.count("/gen/purged"), 1);
    let purge = format!("PURGE {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    let resp = raw(admin, purge.as_bytes(), "PURGE").await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text());
    assert_eq!(resp.text(), "{\"purged\":1}\n");
    proxy.get(&path).await;
    assert_eq!(o.state.count("/gen/purged"), 2, "refetched after the purge");
    let again = raw(admin, purge.as_bytes(), "PURGE").await.unwrap();
    assert_eq!(again.status(), 200, "stored again by the refetch");
    let gone = raw(admin, purge.as_bytes(), "PURGE").await.unwrap();
    assert_eq!(gone.status(), 404, "nothing left to purge");

    let body = format!("{{\"host\":\"test\",\"path\":\"{path}\"}}");
    proxy.get(&path).await;
    assert_eq!(purge_post(admin, &body).await.status(), 200);
    proxy.get(&path).await;
    assert_eq!(o.state.count("/gen/purged"), 4);
    assert_eq!(purge_post(admin, "{\"hots\":\"test\"}").await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_purge_marks_stale_so_the_next_request_revalidates() {
    let o = origin("o").await;
    let (proxy, admin) = shield_with_admin(&o).await;
    let path = gen(
        "/soft",
        &[("Cache-Control", "max-age=60"), ("ETag", "\"s\"")],
        "",
    );
    let stored = proxy.get(&path).await;
    let body = format!("{{\"host\":\"test\",\"path\":\"{path}\",\"soft\":true}}");
    assert_eq!(purge_post(admin, &body).await.status(), 200);
    let revalidated = proxy.get(&path).await;
    assert_eq!(
        o.state.count("/gen/soft"),
        2,
        "the stale object went back to the origin"
    );
    assert_eq!(
        revalidated.body, stored.body,
        "and came back 304: the same body"
    );
    assert!(
        status_of(&revalidated).contains("fwd-status=304"),
        "{}",
        status_of(&revalidated)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_by_tag_drops_every_object_with_the_tag() {
    let o = origin("o").await;
    let (proxy, admin) = shield_with_admin(&o).await;
    let tagged = |name: &str, tags: &str| {
        gen(
            name,
            &[("Cache-Control", "max-age=60"), ("Cache-Tag", tags)],
            "",
        )
    };
    let a = tagged("/t1", "product-1 shoes");
    let b = gen(
        "/t2",
        &[
            ("Cache-Control", "max-age=60"),
            ("Surrogate-Key", "shoes,hats"),
        ],
        "",
    );
    let c = tagged("/t3", "hats");
    for path in [&a, &b, &c] {
        let resp = proxy.get(path).await;
        assert_eq!(resp.header("cache-tag"), None, "tags are not forwarded");
        assert_eq!(resp.header("surrogate-key"), None);
    }
    let resp = purge_post(admin, "{\"tags\":[\"shoes\"]}").await;
    assert_eq!(resp.text(), "{\"purged\":2}\n");
    for path in [&a, &b, &c] {
        proxy.get(path).await;
    }
    let fetches = |p: &str| o.state.count(p);
    assert_eq!(
        (fetches("/gen/t1"), fetches("/gen/t2"), fetches("/gen/t3")),
        (2, 2, 1)
    );
    assert_eq!(
        purge_post(admin, "{\"tags\":[\"nothing\"]}").await.status(),
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_shorter_than_its_content_length_is_never_stored() {
    let o = origin("o").await;
    let proxy = shield(&o, json!({})).await;
    let path = gen("/short", &[("Cache-Control", "max-age=60")], "short=100");
    for _ in 0..2 {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        conn.send(request("GET", &path, &[]).as_bytes())
            .await
            .unwrap();
        // Either the failure came before the head went out (a 502), or the client
        // sees a cut body; never a whole 200.
        if let Ok(resp) = conn.response("GET").await {
            assert_eq!(resp.status(), 502, "{}", resp.text());
        }
    }
    assert_eq!(
        o.state.count("/gen/short"),
        2,
        "the broken response was not stored"
    );
}
