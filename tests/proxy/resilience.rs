//! Passive resilience: a circuit breaker per backend takes a failing backend out and
//! lets one trial request decide when it comes back; `least_connections` keeps new
//! requests off a backend busy with slow ones.

use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Upstream `app` over `a` and `b` with `extra` keys, a catch-all route, and the
/// admin listener.
async fn two_backends(a: &Origin, b: &Origin, extra: serde_json::Value) -> (Proxy, SocketAddr) {
    let upstream = json!({"backends": backends(&[a.addr, b.addr]), "retries": 0});
    let config = Config::new()
        .upstream("app", merged(upstream, extra))
        .route(json!({"upstream": "app"}));
    proxy_with_admin(config).await
}

/// The `circuit` of backend `addr` in `/status`.
async fn circuit(admin: SocketAddr, addr: SocketAddr) -> String {
    let status: serde_json::Value =
        serde_json::from_slice(&get(admin, "/status").await.body).unwrap();
    let backend = status["upstreams"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} not in {status}"));
    backend["circuit"].as_str().unwrap_or("(none)").to_string()
}

/// `parapet_circuit_open` of backend `addr`.
async fn circuit_open_metric(admin: SocketAddr, addr: SocketAddr) -> Option<String> {
    let text = get(admin, "/metrics").await.text();
    let series = format!("parapet_circuit_open{{backend=\"{addr}\",upstream=\"app\"}} ");
    let line = text.lines().find(|l| l.starts_with(&series))?;
    Some(line[series.len()..].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_is_cut_off_then_tried_once_then_readmitted() {
    let (a, b) = (origin("a").await, origin("b").await);
    let breaker = json!({"circuit_breaker": {"consecutive_failures": 3, "open_for": "1s"}});
    let (proxy, admin) = two_backends(&a, &b, breaker).await;
    assert_eq!(circuit(admin, b.addr).await, "closed");
    assert_eq!(
        circuit_open_metric(admin, b.addr).await.as_deref(),
        Some("0")
    );

    // b answers 500: its third failure in a row opens its circuit.
    b.state.set_failing(Some(500));
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..20 {
        conn.get("/page", &[]).await.unwrap();
        if b.state.count("/page") == 3 {
            break;
        }
    }
    let opened = Instant::now();
    assert_eq!(b.state.count("/page"), 3);
    assert_eq!(circuit(admin, b.addr).await, "open");
    assert_eq!(
        circuit_open_metric(admin, b.addr).await.as_deref(),
        Some("1")
    );
    assert_eq!(circuit(admin, a.addr).await, "closed");
    // While open, b gets nothing and a everything.
    let mut sent = 0;
    while sent < 10 && opened.elapsed() < Duration::from_millis(700) {
        let resp = conn.get("/page", &[]).await.unwrap();
        assert_eq!((resp.status(), resp.header("x-origin")), (200, Some("a")));
        sent += 1;
    }
    assert!(
        sent >= 3,
        "too slow to see the open circuit: {sent} requests"
    );
    assert_eq!(b.state.count("/page"), 3, "an open backend got traffic");

    // After open_for, one trial goes to b; it fails and the circuit opens again.
    let tried = eventually(Duration::from_secs(5), async || {
        conn.get("/page", &[]).await.unwrap();
        b.state.count("/page") > 3
    })
    .await;
    assert!(tried, "no trial request after open_for");
    assert_eq!(b.state.count("/page"), 4, "exactly one trial");
    assert_eq!(circuit(admin, b.addr).await, "open");
    for _ in 0..3 {
        assert_eq!(conn.get("/page", &[]).await.unwrap().status(), 200);
    }
    assert_eq!(
        b.state.count("/page"),
        4,
        "the failed trial opened it again"
    );

    // b recovers. Once half-open, of many requests at once exactly one (slow on b)
    // is the trial; its success closes the circuit.
    b.state.set_failing(None);
    let half_open = eventually(Duration::from_secs(5), async || {
        circuit(admin, b.addr).await == "half_open"
    })
    .await;
    assert!(half_open, "never half-open");
    assert_eq!(
        circuit_open_metric(admin, b.addr).await.as_deref(),
        Some("1")
    );
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let addr = proxy.addr;
            tokio::spawn(async move { get(addr, "/slow/500").await.status() })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(
        b.state.count("/slow"),
        1,
        "exactly one trial while half-open"
    );
    assert_eq!(a.state.count("/slow"), 7);
    assert_eq!(circuit(admin, b.addr).await, "closed");
    assert_eq!(
        circuit_open_metric(admin, b.addr).await.as_deref(),
        Some("0")
    );
    for _ in 0..6 {
        assert_eq!(conn.get("/back", &[]).await.unwrap().status(), 200);
    }
    assert_eq!(b.state.count("/back"), 3, "b takes its share again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_circuit_open_means_503() {
    let (a, b) = (origin("a").await, origin("b").await);
    let breaker = json!({"circuit_breaker": {"consecutive_failures": 1, "open_for": "10s"}});
    let (proxy, admin) = two_backends(&a, &b, breaker).await;
    a.state.set_failing(Some(502));
    b.state.set_failing(Some(503));
    let mut answered = [proxy.get("/x").await, proxy.get("/x").await];
    answered.sort_by_key(|r| r.status());
    assert_eq!(
        answered.map(|r| r.header("x-origin").map(str::to_string)),
        [Some("a".into()), Some("b".into())]
    );
    let resp = proxy.get("/x").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.header("x-origin"), None, "Parapet's own 503");
    assert!(resp.header("retry-after").is_some(), "{:?}", resp.head);
    assert_eq!((a.state.count("/x"), b.state.count("/x")), (1, 1));
    assert_eq!(circuit(admin, a.addr).await, "open");
    assert_eq!(circuit(admin, b.addr).await, "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_breaker_no_circuit() {
    let (a, b) = (origin("a").await, origin("b").await);
    let (proxy, admin) = two_backends(&a, &b, json!({})).await;
    b.state.set_failing(Some(500));
    for _ in 0..10 {
        proxy.get("/x").await;
    }
    assert_eq!(
        b.state.count("/x"),
        5,
        "without a breaker, failures change nothing"
    );
    assert_eq!(circuit(admin, b.addr).await, "(none)");
    assert_eq!(circuit_open_metric(admin, b.addr).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_keeps_off_the_busy_backend() {
    let (a, b) = (origin("a").await, origin("b").await);
    let selection = json!({"selection": "least_connections"});
    let (proxy, _admin) = two_backends(&a, &b, selection).await;
    let addr = proxy.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow/2000").await });
    let busy = eventually(Duration::from_secs(5), async || {
        a.state.count("/slow") + b.state.count("/slow") == 1
    })
    .await;
    assert!(busy, "the slow request never arrived");
    let started = Instant::now();
    let (busy, idle) = match a.state.count("/slow") {
        1 => (&a, &b),
        _ => (&b, &a),
    };
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..8 {
        let resp = conn.get("/page", &[]).await.unwrap();
        assert_eq!(resp.header("x-origin"), Some(idle.state.name.as_str()));
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the slow request may have ended: the test proves nothing"
    );
    assert_eq!(busy.state.count("/page"), 0);
    assert_eq!(slow.await.unwrap().status(), 200);

    // Idle again, both share the load.
    for _ in 0..4 {
        conn.get("/after", &[]).await.unwrap();
    }
    assert_eq!((a.state.count("/after"), b.state.count("/after")), (2, 2));
}
