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
