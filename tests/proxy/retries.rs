//! Retries: only idempotent requests, each onto another backend; a backend that
//! dies under load costs no GET.

use crate::support::client::request;
use crate::support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Upstream `app` with backends `a` then `b`, one retry, and a catch-all route.
fn two(a: &Origin, b: std::net::SocketAddr) -> Config {
    Config::new()
        .upstream(
            "app",
            json!({"backends": backends(&[a.addr, b]), "retries": 1}),
        )
        .route(json!({"upstream": "app"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_retried_onto_the_other_backend() {
    let (a, b) = (origin("a").await, origin("b").await);
    let proxy = Proxy::start(&two(&a, b.addr)).await;
    let resp = proxy.get("/close").await;
    // Both backends close without answering: one attempt each, then 502.
    assert_eq!(resp.status(), 502);
    assert_eq!((a.state.count("/close"), b.state.count("/close")), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_onto_a_live_backend() {
    let a = origin("a").await;
    let proxy = Proxy::start(&two(&a, dead_addr())).await;
    for _ in 0..6 {
        assert_eq!(proxy.get("/ok").await.status(), 200);
    }
    assert_eq!(a.state.count("/ok"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_is_never_replayed() {
    let (a, b) = (origin("a").await, origin("b").await);
    let proxy = Proxy::start(&two(&a, b.addr)).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let mut req = request("POST", "/close", &["Content-Length: 4"]).into_bytes();
    req.extend_from_slice(b"data");
    conn.send(&req).await.unwrap();
    let resp = conn.response("POST").await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(a.state.count("/close") + b.state.count("/close"), 1);

    // Not even a connection failure replays a POST.
    let c = origin("c").await;
    let proxy =
        Proxy::start(&two(&c, dead_addr()).upstream_key("app", "selection", json!("round_robin")))
            .await;
    let mut refused = 0;
    for _ in 0..4 {
        let mut req = request("POST", "/echo", &["Content-Length: 1"]).into_bytes();
        req.push(b'x');
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        conn.send(&req).await.unwrap();
        if conn.response("POST").await.unwrap().status() == 502 {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "POSTs to the dead backend must fail, not move");
    assert_eq!(c.state.count("/echo"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_load_loses_no_get() {
    let (a, b) = (origin("a").await, origin("b").await);
    let check = json!({
        "type": "tcp",
        "interval": "200ms",
        "timeout": "200ms",
        "unhealthy_threshold": 1
    });
    let proxy = Proxy::start(&two(&a, b.addr).upstream_key("app", "health_check", check)).await;
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut clients = Vec::new();
    for i in 0..5 {
        let (ok, failed, addr) = (ok.clone(), failed.clone(), proxy.addr);
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await.unwrap();
            let mut n = 0;
            while Instant::now() < deadline && n < 2000 {
                n += 1;
                // Half the clients keep their connection, half reconnect each time.
                if i % 2 == 1 {
                    conn = Conn::open(addr).await.unwrap();
                }
                match conn.get("/slow/5", &[]).await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Kill `a` once the load runs through both backends (the clients stop at `deadline`).
    let loaded = eventually(Duration::from_secs(10), async || {
        ok.load(Ordering::Relaxed) >= 100 || Instant::now() >= deadline
    })
    .await;
    let before_kill = ok.load(Ordering::Relaxed);
    assert!(
        loaded && before_kill >= 100,
        "too little load before the kill: {before_kill}"
    );
    a.stop();
    for c in clients {
        c.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{ok} ok, {failed} failed");
    assert!(ok > 50, "too little load: {ok}");
    assert!(a.state.count("/slow") > 0 && b.state.count("/slow") > 0);
}

/// Upstream `app` over `a` and `b` with `retry_on` and `extra` keys, round robin,
/// a catch-all route and the admin listener.
async fn retrying(
    a: &Origin,
    b: &Origin,
    retry_on: serde_json::Value,
    extra: serde_json::Value,
) -> (Proxy, std::net::SocketAddr) {
    let upstream =
        json!({"backends": backends(&[a.addr, b.addr]), "retries": 1, "retry_on": retry_on});
    let config = Config::new()
        .upstream("app", merged(upstream, extra))
        .route(json!({"upstream": "app"}));
    proxy_with_admin(config).await
}

/// The value of one series in `/metrics`, 0 when it is absent.
async fn metric(admin: std::net::SocketAddr, series: &str) -> u64 {
    let text = get(admin, "/metrics").await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_status_moves_a_get_to_the_other_backend() {
    let (a, b) = (origin("a").await, origin("b").await);
    a.state.set_failing(Some(503));
    let (proxy, admin) = retrying(&a, &b, json!(["connect_error", 503]), json!({})).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..6 {
        let resp = conn.get("/echo", &[]).await.unwrap();
        assert_eq!((resp.status(), resp.header("x-origin")), (200, Some("b")));
    }
    // Every request that went to `a` first was retried on `b`.
    let retried = a.state.count("/echo");
    assert!(retried > 0 && b.state.count("/echo") == 6, "{retried}");
    let series = "parapet_retries_total{reason=\"503\",upstream=\"app\"}";
    assert_eq!(metric(admin, series).await as usize, retried);

    // A POST is answered by the backend it reached, 503 included.
    let mut refused = 0;
    for _ in 0..4 {
        let mut req = request("POST", "/echo", &["Content-Length: 1"]).into_bytes();
        req.push(b'x');
        conn.send(&req).await.unwrap();
        if conn.response("POST").await.unwrap().status() == 503 {
            refused += 1;
        }
    }
    assert_eq!(a.state.count("/echo") - retried, refused);
    assert_eq!(b.state.count("/echo") - 6, 4 - refused);
    assert!(refused > 0, "round robin sends some POSTs to `a`");
    assert_eq!(metric(admin, series).await as usize, retried);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_statuses_and_the_last_answer_go_to_the_client() {
    let (a, b) = (origin("a").await, origin("b").await);
    a.state.set_failing(Some(502));
    b.state.set_failing(Some(503));
    let (proxy, _admin) = retrying(&a, &b, json!([503]), json!({})).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let resp = conn.get("/echo", &[]).await.unwrap();
        seen.push((resp.status(), resp.header("x-origin").map(str::to_string)));
    }
    // `a`'s 502 is not listed: passed on. `b`'s 503 is retried on `a`, whose 502 is
    // the last answer there is.
    let a_502 = (502, Some("a".to_string()));
    assert_eq!(seen, vec![a_502.clone(); 4]);
    assert_eq!(a.state.count("/echo"), 4);
    assert!(
        b.state.count("/echo") > 0,
        "round robin tries `b` first sometimes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_bounds_retries_when_every_backend_fails() {
    let (a, b) = (origin("a").await, origin("b").await);
    a.state.set_failing(Some(503));
    b.state.set_failing(Some(503));
    let budget = json!({"retry_budget": {"ratio": "20%", "min_per_second": 0}});
    let (proxy, admin) = retrying(&a, &b, json!([503]), budget).await;
    let sent = 200;
    let mut clients = Vec::new();
    for _ in 0..4 {
        let addr = proxy.addr;
        clients.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await.unwrap();
            for _ in 0..sent / 4 {
                assert_eq!(conn.get("/echo", &[]).await.unwrap().status(), 503);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let extra = a.state.count("/echo") + b.state.count("/echo") - sent;
    // 20% of 200 requests is 40 retries; deciding at the same instant can take a
    // token or two more.
    assert!(
        (30..=44).contains(&extra),
        "{extra} retries for {sent} requests"
    );
    let retried = metric(
        admin,
        "parapet_retries_total{reason=\"503\",upstream=\"app\"}",
    )
    .await;
    assert_eq!(retried as usize, extra);
    let exhausted = "parapet_retry_budget_exhausted_total{upstream=\"app\"}";
    assert_eq!(metric(admin, exhausted).await as usize, sent - extra);
}
