//! SPEC §4: what Parapet answers itself, with bodies, and what never reaches an origin.

use crate::support::client::{get_with, raw, request};
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

/// Upstream `app` (one backend, no retries), reached by host `app.test` or under `/app/`.
fn single(addr: SocketAddr) -> Config {
    Config::new()
        .upstream("app", json!({"backends": backends(&[addr]), "retries": 0}))
        .route(json!({"host": "app.test", "upstream": "app"}))
        .route(json!({"path_prefix": "/app/", "upstream": "app"}))
}

fn assert_error_body(resp: &Response, status: u16, reason: &str) {
    assert_eq!(resp.status(), status);
    let id = resp.header("x-request-id").expect("request id on error");
    assert_eq!(
        resp.text(),
        format!("{status} {reason}\nrequest_id: {id}\n")
    );
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_404() {
    let o = origin("o").await;
    let proxy = Proxy::start(&single(o.addr)).await;
    let resp = proxy.get("/elsewhere").await;
    assert_error_body(&resp, 404, "not found");
    assert_eq!(o.state.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_502_json_when_asked() {
    let proxy = Proxy::start(&single(dead_addr())).await;
    let resp = proxy.get("/app/x").await;
    assert_error_body(&resp, 502, "bad gateway");

    let resp = get_with(proxy.addr, "/app/x", &["Accept: application/json"]).await;
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let id = resp.header("x-request-id").unwrap();
    assert_eq!(
        resp.text(),
        format!("{{\"status\":502,\"error\":\"bad gateway\",\"request_id\":\"{id}\"}}\n")
    );
    assert!(!resp.text().contains("127.0.0.1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_closing_before_a_response_is_502() {
    let o = origin("o").await;
    let proxy = Proxy::start(&single(o.addr)).await;
    let resp = proxy.get("/app/close").await;
    assert_error_body(&resp, 502, "bad gateway");
}

/// The connection of a failed proxy attempt is not reused (Pingora's
/// `can_reuse_downstream: false`), so the error page must say so: a client that
/// believed `keep-alive` would send its next request into a closing socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_on_a_connection_that_closes_says_connection_close() {
    let o = origin("o").await;
    let proxy = Proxy::start(&single(o.addr)).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let resp = conn.get("/app/close", &[]).await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.header("connection"), Some("close"), "{:?}", resp.head);
    assert!(conn.closed_by_peer().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_header_timeout_is_504() {
    let o = origin("o").await;
    let timeouts = json!({"connect": "1s", "response_header": "300ms"});
    let proxy = Proxy::start(&single(o.addr).upstream_key("app", "timeouts", timeouts)).await;
    let resp = proxy.get("/app/slow/3000").await;
    assert_error_body(&resp, 504, "gateway timeout");
    let fast = proxy.get("/app/slow/10").await;
    assert_eq!(fast.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_backend_is_503_with_retry_after() {
    let check = json!({
        "type": "tcp",
        "interval": "100ms",
        "timeout": "100ms",
        "unhealthy_threshold": 1
    });
    let proxy = Proxy::start(&single(dead_addr()).upstream_key("app", "health_check", check)).await;
    let got_503 = eventually(Duration::from_secs(10), async || {
        proxy.get("/app/x").await.status() == 503
    })
    .await;
    assert!(got_503, "never answered 503");
    let resp = proxy.get("/app/x").await;
    assert_error_body(&resp, 503, "service unavailable");
    assert_eq!(resp.header("retry-after"), Some("5"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused() {
    let o = origin("o").await;
    let proxy = Proxy::start(&single(o.addr)).await;
    let mut req = request(
        "POST",
        "/app/echo",
        &["Content-Length: 5", "Transfer-Encoding: chunked"],
    )
    .into_bytes();
    req.extend_from_slice(b"5\r\nhello\r\n0\r\n\r\n");
    let resp = raw(proxy.addr, &req, "POST").await.unwrap();
    assert_error_body(&resp, 400, "bad request");
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(o.state.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_header_bytes_are_refused() {
    let o = origin("o").await;
    let proxy = Proxy::start(&single(o.addr)).await;
    for bad in [
        &b"GET /app/x HTTP/1.1\r\nHost: test\r\nBad Header: x\r\n\r\n"[..],
        &b"GET /app/x HTTP/1.1\r\nHost: test\r\nX-Ctl: a\x01b\r\n\r\n"[..],
        &b"POST /app/x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
        &b"POST /app/x HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
    ] {
        let resp = raw(proxy.addr, bad, "GET").await.unwrap();
        assert_eq!(resp.status(), 400, "{}", String::from_utf8_lossy(bad));
    }
    assert_eq!(o.state.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_is_not_an_error() {
    let o = origin("o").await;
    let proxy = Proxy::start(&single(o.addr)).await;
    for n in 1..=3 {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        conn.send(request("GET", "/app/slow/300", &[]).as_bytes())
            .await
            .unwrap();
        // Hang up only once the request is in flight at the origin.
        let forwarded = eventually(Duration::from_secs(5), async || {
            o.state.count("/app/slow/300") >= n
        })
        .await;
        assert!(forwarded, "request {n} never reached the origin");
        drop(conn);
    }
    // Each slow answer comes 300 ms after its request reached the origin; the proxy
    // then finds its client gone. Nothing outside the proxy shows that it has
    // finished with a dropped request, so give the last one its 300 ms and a margin
    // before looking at what it logged.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(proxy.get("/app/x").await.status(), 200);
    assert!(!proxy.stderr().contains("ERROR"), "{}", proxy.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_is_504() {
    // A listener that never accepts: once its accept queue is full the kernel drops
    // further SYNs, so connecting to it hangs as to a black-holed host.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    for _ in 0..1024 {
        let attempt = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        );
        match attempt.await {
            Ok(Ok(stream)) => queued.push(stream),
            _ => break,
        }
    }
    assert!(queued.len() < 1024, "the accept queue never filled");
    let timeouts = json!({"connect": "300ms", "response_header": "5s"});
    let proxy = Proxy::start(&single(addr).upstream_key("app", "timeouts", timeouts)).await;
    let started = std::time::Instant::now();
    let resp = proxy.get("/app/x").await;
    assert_error_body(&resp, 504, "gateway timeout");
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
}
