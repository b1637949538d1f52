//! SPEC §3 header rules, seen from both ends.

use crate::support::client::{get_with, raw, request};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_hop_by_hop_headers_are_stripped() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let hop = [
        "Connection: keep-alive, X-Nominated",
        "X-Nominated: secret",
        "Keep-Alive: timeout=5",
        "Proxy-Authorization: Basic Zm9vOmJhcg==",
        "Proxy-Authenticate: Basic",
        "Proxy-Connection: keep-alive",
        "TE: trailers",
        "Trailer: X-Checksum",
        "Upgrade: h2c",
        "X-Kept: yes",
    ];
    let resp = get_with(proxy.addr, "/echo", &hop).await;
    assert_eq!(resp.status(), 200);
    for name in [
        "connection",
        "x-nominated",
        "keep-alive",
        "proxy-authorization",
        "proxy-authenticate",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(
            resp.echoed(name),
            None,
            "{name} reached the origin:\n{}",
            resp.text()
        );
    }
    assert_eq!(resp.echoed("x-kept").as_deref(), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_request_bodies_are_reframed_not_lost() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let mut req = request("POST", "/echo", &["Transfer-Encoding: chunked"]).into_bytes();
    req.extend_from_slice(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let resp = raw(proxy.addr, &req, "POST").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().contains("body-bytes: 11"), "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_is_forwarded_as_one() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let ws = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];
    let resp = get_with(proxy.addr, "/echo", &ws).await;
    assert_eq!(resp.echoed("upgrade").as_deref(), Some("websocket"));
    assert_eq!(resp.echoed("connection").as_deref(), Some("Upgrade"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_hop_by_hop_headers_are_stripped() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let resp = proxy.get("/hop").await;
    assert_eq!(resp.status(), 200);
    for name in [
        "x-secret",
        "keep-alive",
        "proxy-connection",
        "upgrade",
        "trailer",
    ] {
        assert_eq!(
            resp.header(name),
            None,
            "{name} reached the client: {:?}",
            resp.head
        );
    }
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    assert_eq!(resp.header("x-kept"), Some("yes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_from_untrusted_clients_are_replaced() {
    let o = origin("o").await;
    let config =
        Config::single(&[o.addr]).section("client_ip", json!({"trusted_proxies": ["10.0.0.0/8"]}));
    let proxy = Proxy::start(&config).await;
    let spoof = [
        "X-Forwarded-For: 6.6.6.6",
        "X-Real-IP: 6.6.6.6",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: evil.example",
    ];
    let resp = get_with(proxy.addr, "/echo", &spoof).await;
    assert_eq!(resp.echoed("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(resp.echoed("x-real-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(resp.echoed("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(resp.echoed("x-forwarded-host").as_deref(), Some("test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_trusted_proxies_are_extended() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr]).section(
        "client_ip",
        json!({"header": "X-Client-IP", "trusted_proxies": ["127.0.0.1"]}),
    );
    let proxy = Proxy::start(&config).await;
    let forwarded = ["X-Forwarded-For: 6.6.6.6", "X-Forwarded-Proto: https"];
    let resp = get_with(proxy.addr, "/echo", &forwarded).await;
    assert_eq!(
        resp.echoed("x-forwarded-for").as_deref(),
        Some("6.6.6.6, 127.0.0.1")
    );
    assert_eq!(resp.echoed("x-client-ip").as_deref(), Some("6.6.6.6"));
    assert_eq!(resp.echoed("x-forwarded-proto").as_deref(), Some("https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_round_trip() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;

    let resp = get_with(proxy.addr, "/echo", &["X-Request-Id: my-id.42"]).await;
    assert_eq!(resp.header("x-request-id"), Some("my-id.42"));
    assert_eq!(resp.echoed("x-request-id").as_deref(), Some("my-id.42"));

    let resp = get_with(proxy.addr, "/echo", &["X-Request-Id: bad id!"]).await;
    let generated = resp.header("x-request-id").unwrap().to_string();
    assert_ne!(generated, "bad id!");
    assert_eq!(generated.len(), 32);
    assert_eq!(resp.echoed("x-request-id"), Some(generated));

    let a = proxy.get("/echo").await;
    let b = proxy.get("/echo").await;
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
    assert_eq!(
        a.echoed("x-request-id").as_deref(),
        a.header("x-request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_kept_or_rewritten_and_response_rules_apply() {
    let o = origin("o").await;
    let config = Config::new()
        .upstream("kept", json!({"backends": backends(&[o.addr])}))
        .upstream(
            "rewritten",
            json!({"backends": backends(&[o.addr]), "host_header": "origin.internal"}),
        )
        .route(json!({"path_prefix": "/rw/", "upstream": "rewritten"}))
        .route(json!({"upstream": "kept"}))
        .section(
            "response_headers",
            json!({"add": {"Via": "1.1 parapet"}, "remove": ["X-Origin"]}),
        );
    let proxy = Proxy::start(&config).await;
    let kept = proxy.get("/echo").await;
    assert_eq!(kept.echoed("host").as_deref(), Some("test"));
    assert_eq!(kept.header("via"), Some("1.1 parapet"));
    assert_eq!(kept.header("x-origin"), None);
    let rewritten = proxy.get("/rw/echo").await;
    assert_eq!(rewritten.echoed("host").as_deref(), Some("origin.internal"));
    assert_eq!(
        rewritten.echoed("x-forwarded-host").as_deref(),
        Some("test")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_targets_reach_the_origin_in_normal_form() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    // A normal path and every query go byte for byte; other paths in their normal
    // form, an absolute-form target in origin form (tests/proxy/normalization.rs).
    for (target, received) in [
        (
            "/echo/a%2Fb;c/d?x=1&y=%7b%7D&&z",
            "/echo/a%2Fb;c/d?x=1&y=%7b%7D&&z",
        ),
        (
            "/echo/a%2Fb;c/./../d?x=1&y=%7B%7D&&z",
            "/echo/d?x=1&y=%7B%7D&&z",
        ),
        ("/echo?", "/echo?"),
        ("http://test/echo/absolute?q=1", "/echo/absolute?q=1"),
    ] {
        let resp = raw(proxy.addr, request("GET", target, &[]).as_bytes(), "GET")
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{target}");
        let first = resp.text().lines().next().unwrap_or_default().to_string();
        assert_eq!(first, format!("GET {received} HTTP/1.1"), "{target}");
    }
    // A target that is not UTF-8 is refused by Pingora's parser and goes no further.
    let before = o.state.count("/echo");
    let resp = raw(
        proxy.addr,
        b"GET /echo/\xff\xfe HTTP/1.1\r\nHost: test\r\n\r\n",
        "GET",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(o.state.count("/echo"), before);
    // Header values and the added fields arrive whatever the case of the names.
    let resp = get_with(proxy.addr, "/echo", &["X-Mixed-Case: Value"]).await;
    assert_eq!(resp.echoed("x-mixed-case").as_deref(), Some("Value"));
    assert_eq!(resp.echoed("x-forwarded-proto").as_deref(), Some("http"));
}
