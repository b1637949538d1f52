//! Edge policy: what is refused before it reaches an origin, and with which status.

use crate::support::client::{raw, request};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_refuse_with_403_before_the_origin() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr])
        .routes(json!([
            {"path_prefix": "/denied/", "upstream": "app", "access": {"allow": ["0.0.0.0/0"], "deny": ["127.0.0.0/8"]}},
            {"path_prefix": "/others/", "upstream": "app", "access": {"allow": ["10.0.0.0/8"]}},
            {"path_prefix": "/mine/", "upstream": "app", "access": {"allow": ["127.0.0.1"]}},
            {"upstream": "app"}
        ]))
        // A trusted proxy on loopback may say who the client is.
        .section("client_ip", json!({"trusted_proxies": ["127.0.0.1"]}));
    let proxy = Proxy::start(&config).await;
    for path in ["/denied/x", "/others/x"] {
        let resp = proxy.get(path).await;
        assert_eq!(resp.status(), 403, "{path}");
        assert!(
            resp.text().starts_with("403 forbidden\nrequest_id: "),
            "{}",
            resp.text()
        );
    }
    assert_eq!(proxy.get("/mine/x").await.status(), 200);
    // The client as a trusted proxy reports it, not the peer, is what the list sees.
    let via =
        crate::support::client::get_with(proxy.addr, "/others/x", &["X-Forwarded-For: 10.1.2.3"])
            .await;
    assert_eq!(via.status(), 200);
    let via =
        crate::support::client::get_with(proxy.addr, "/mine/x", &["X-Forwarded-For: 10.1.2.3"])
            .await;
    assert_eq!(via.status(), 403);
    assert_eq!(o.state.count("/denied"), 0);
    assert_eq!(o.state.count("/others"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_a_bad_host_get_400() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    for bad in [
        &b"GET /h HTTP/1.1\r\n\r\n"[..],
        &b"GET /h HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"[..],
        &b"GET /h HTTP/1.1\r\nHost: a b\r\n\r\n"[..],
        &b"GET /h HTTP/1.1\r\nHost: a.test:8o\r\n\r\n"[..],
    ] {
        let resp = raw(proxy.addr, bad, "GET").await.unwrap();
        assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(bad));
    }
    let http10 = raw(proxy.addr, b"GET /h HTTP/1.0\r\n\r\n", "GET")
        .await
        .unwrap();
    assert_eq!(http10.status(), 200, "HTTP/1.0 may leave Host out");
    assert_eq!(o.state.count("/h"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_and_bodies_over_the_limits_never_reach_the_origin() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr]).section(
        "limits",
        json!({"max_request_header_bytes": "8KiB", "max_request_body_bytes": "1MiB"}),
    );
    let proxy = Proxy::start(&config).await;
    // 80 KB of headers.
    let big = format!("X-Big: {}", "a".repeat(80_000));
    let resp = raw(
        proxy.addr,
        request("GET", "/head", &[&big]).as_bytes(),
        "GET",
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 431);
    // 2 MiB declared.
    let head = request("POST", "/echo-cl", &["Content-Length: 2097152"]);
    let resp = raw(proxy.addr, head.as_bytes(), "POST").await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(o.state.count("/head") + o.state.count("/echo-cl"), 0);
    // 2 MiB chunked: the upstream request is cut off, the origin never sees it whole.
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    conn.send(request("POST", "/echo-chunked", &["Transfer-Encoding: chunked"]).as_bytes())
        .await
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 2 << 20 {
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        if conn.send(&frame).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = conn.send(b"0\r\n\r\n").await;
    if let Ok(resp) = conn.response("POST").await {
        assert_eq!(resp.status(), 413);
    }
    // The origin may have seen the request begin, never a complete body.
    let echoed = o.state.count("/echo-chunked");
    assert!(echoed <= 1);
    let small = request("POST", "/echo-small", &["Content-Length: 5"]) + "hello";
    let resp = raw(proxy.addr, small.as_bytes(), "POST").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().contains("body-bytes: 5"), "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_at_the_edge() {
    use crate::support::client::get_with;
    let o = origin("o").await;
    let cors = json!({
        "allow_origins": ["https://app.example.com"],
        "allow_methods": ["GET", "PUT"],
        "allow_headers": ["Content-Type"],
        "expose_headers": ["X-Request-Id"],
        "allow_credentials": true,
        "max_age": "10m"
    });
    let open = json!({"allow_origins": ["*"]});
    let config = Config::single(&[o.addr]).routes(json!([
        {"path_prefix": "/open/", "upstream": "app", "cors": open},
        {"upstream": "app", "cors": cors}
    ]));
    let proxy = Proxy::start(&config).await;
    let preflight = |origin: &str, method: &str| {
        format!(
            "OPTIONS /api/x HTTP/1.1\r\nHost: test\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: {method}\r\nAccess-Control-Request-Headers: content-type\r\n\r\n"
        )
    };
    let ok = raw(
        proxy.addr,
        preflight("https://app.example.com", "PUT").as_bytes(),
        "OPTIONS",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(ok.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(ok.header("access-control-max-age"), Some("600"));
    assert!(ok
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PUT")));
    for (origin, method) in [
        ("https://evil.example", "PUT"),
        ("https://app.example.com", "DELETE"),
    ] {
        let no = raw(proxy.addr, preflight(origin, method).as_bytes(), "OPTIONS")
            .await
            .unwrap();
        assert_eq!(no.status(), 403, "{origin} {method}");
        assert_eq!(no.header("access-control-allow-origin"), None);
    }
    assert_eq!(o.state.total(), 0, "no preflight reached the origin");

    // Actual requests: the allowed origin echoed, never `*` with credentials, the
    // origin's own CORS fields replaced, Vary: Origin kept beside the origin's Vary.
    let path = "/gen/r?set-Access-Control-Allow-Origin=*&set-Vary=Accept-Encoding";
    let allowed = get_with(proxy.addr, path, &["Origin: https://app.example.com"]).await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers"),
        Some("X-Request-Id")
    );
    let vary = allowed.header("vary").unwrap().to_ascii_lowercase();
    assert!(
        vary.contains("accept-encoding") && vary.contains("origin"),
        "{vary}"
    );
    let foreign = get_with(proxy.addr, path, &["Origin: https://evil.example"]).await;
    assert_eq!(foreign.status(), 200, "CORS is not access control");
    assert_eq!(
        foreign.header("access-control-allow-origin"),
        None,
        "the origin's * is gone"
    );
    let anyone = get_with(proxy.addr, "/open/x", &["Origin: https://a.test"]).await;
    assert_eq!(anyone.header("access-control-allow-origin"), Some("*"));
}

/// Parapet with a limited route (`/limited/`, 5 r/s, burst 5, by client IP) and an
/// unlimited one, trusting loopback to name clients in X-Forwarded-For.
async fn limited(o: &Origin) -> Proxy {
    let config = Config::single(&[o.addr])
        .routes(json!([
            {"path_prefix": "/limited/", "upstream": "app",
             "rate_limit": {"requests_per_second": 5, "burst": 5}},
            {"upstream": "app"}
        ]))
        .section("client_ip", json!({"trusted_proxies": ["127.0.0.1"]}));
    Proxy::start(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_gets_429s_and_others_are_untouched() {
    use crate::support::client::get_with;
    let o = origin("o").await;
    let proxy = limited(&o).await;
    let client = |ip: &'static str| format!("X-Forwarded-For: {ip}");
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let mut refused = Vec::new();
    for _ in 0..30 {
        let resp = conn
            .get("/limited/x", &[&client("198.51.100.1")])
            .await
            .unwrap();
        assert!(
            resp.header("ratelimit-policy").is_some(),
            "policy on every response"
        );
        assert!(resp.header("ratelimit").is_some());
        if resp.status() == 429 {
            assert!(resp
                .header("retry-after")
                .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
            refused.push(());
        } else {
            assert_eq!(resp.status(), 200);
        }
    }
    // 30 at once at 5 r/s with a burst of 5: the first 5 pass (and perhaps one more
    // token comes back while the 30 are sent).
    assert!(
        (24..=25).contains(&refused.len()),
        "{} refused",
        refused.len()
    );
    assert_eq!(
        o.state.count("/limited/x"),
        30 - refused.len(),
        "the origin never saw a refused request"
    );
    // Another client, and another route, are untouched.
    let other = get_with(proxy.addr, "/limited/x", &[&client("198.51.100.2")]).await;
    assert_eq!(other.status(), 200);
    let unlimited = get_with(proxy.addr, "/free", &[&client("198.51.100.1")]).await;
    assert_eq!(unlimited.status(), 200);
    assert_eq!(unlimited.header("ratelimit-policy"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_under_the_rate_is_never_refused() {
    let o = origin("o").await;
    let proxy = limited(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    // 4 r/s for 3 seconds.
    for _ in 0..12 {
        let started = std::time::Instant::now();
        let resp = conn
            .get("/limited/steady", &["X-Forwarded-For: 203.0.113.4"])
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(250).saturating_sub(started.elapsed()))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_clients_keeps_memory_flat() {
    let o = origin("o").await;
    let proxy = limited(&o).await;
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
            .unwrap()
    };
    // Clients named in X-Forwarded-For, 4 connections at a time.
    let send = async |from: u32, to: u32| {
        let tasks: Vec<_> = (0..4u32)
            .map(|lane| {
                let addr = proxy.addr;
                tokio::spawn(async move {
                    let mut conn = Conn::open(addr).await.unwrap();
                    for (n, i) in (from + lane..to).step_by(4).enumerate() {
                        // Within `limits.keepalive_requests` (1000) per connection.
                        if n > 0 && n % 500 == 0 {
                            conn = Conn::open(addr).await.unwrap();
                        }
                        let ip = format!(
                            "X-Forwarded-For: 10.{}.{}.{}",
                            i >> 16,
                            (i >> 8) & 255,
                            i & 255
                        );
                        assert_eq!(
                            conn.get("/limited/flood", &[&ip]).await.unwrap().status(),
                            200
                        );
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    };
    send(0, 2_000).await;
    let before = rss();
    send(2_000, 12_000).await;
    let grown = rss().saturating_sub(before);
    // 10,000 more keys: a bounded limiter holds a few hundred KiB for them.
    assert!(grown < 8 * 1024, "RSS grew by {grown} kB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_with_the_policy_that_refused() {
    let o = origin("o").await;
    let log = scratch_dir("refused-log").join("access.log");
    let config = Config::single(&[o.addr])
        .routes(json!([
            {"path_prefix": "/closed/", "upstream": "app", "access": {"deny": ["127.0.0.0/8"]}},
            {"upstream": "app", "rate_limit": {"requests_per_second": 1, "burst": 1}}
        ]))
        .section("access_log", json!({"path": log}));
    let proxy = Proxy::start(&config).await;
    assert_eq!(proxy.get("/closed/x").await.status(), 403);
    assert_eq!(proxy.get("/open").await.status(), 200);
    assert_eq!(proxy.get("/open").await.status(), 429);
    let logged = eventually(std::time::Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 3)
    })
    .await;
    assert!(logged);
    let mut by: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["refused_by"].to_string())
        .collect();
    by.sort();
    assert_eq!(by, ["\"access\"", "\"rate_limit\"", "null"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_off_and_real_clients_are_served() {
    let o = origin("o").await;
    let config =
        Config::single(&[o.addr]).section("limits", json!({"client_body_timeout": "500ms"}));
    let proxy = Proxy::start(&config).await;
    let mut stalled = Vec::new();
    for _ in 0..20 {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        let head = request("POST", "/echo-slow", &["Content-Length: 10"]);
        conn.send(format!("{head}12345").as_bytes()).await.unwrap();
        stalled.push(conn);
    }
    // Meanwhile a real client is answered at once.
    assert_eq!(proxy.get("/echo-now").await.status(), 200);
    for mut conn in stalled {
        // 408, or the connection closed: never a 200, never a hang.
        let answered =
            tokio::time::timeout(std::time::Duration::from_secs(10), conn.response("POST")).await;
        if let Ok(resp) = answered.expect("the stalled upload was never cut off") {
            assert_eq!(resp.status(), 408, "{}", resp.text());
        }
    }
}
