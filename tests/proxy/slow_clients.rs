//! Slow and broken clients: small bodies are read whole before the origin is asked
//! (`limits.request_buffer`), so a malformed one never reaches it and a slow
//! uploader never holds an origin connection.

use crate::support::client::request;
use crate::support::*;
use parapet::demo::wire::Checksum;
use std::time::Duration;

/// A chunked body of `chunks` chunks of `size` bytes each, its terminator, and its
/// checksum.
fn chunked(chunks: usize, size: usize) -> (Vec<u8>, Checksum) {
    let mut out = Vec::new();
    let mut sum = Checksum::default();
    for i in 0..chunks {
        let data = vec![b'a' + (i % 26) as u8; size];
        sum.update(&data);
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    (out, sum)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_body_is_refused_before_the_origin() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let head = request("POST", "/echo", &["Transfer-Encoding: chunked"]);
    conn.send(head.as_bytes()).await.unwrap();
    conn.send(b"5\r\nhello\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(b"zz\r\nnot a chunk\r\n0\r\n\r\n").await.unwrap();
    let resp = conn.response("POST").await.unwrap();
    assert_eq!(resp.status(), 400, "{}", resp.text());
    assert_eq!(o.state.count("/echo"), 0);
    assert_eq!(o.state.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_uploader_holds_no_origin_connection() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let head = request("POST", "/echo", &["Content-Length: 10"]);
    conn.send(head.as_bytes()).await.unwrap();
    for byte in b"012345678" {
        conn.send(&[*byte]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Everything but the last byte is in: the origin has not been asked yet.
    assert_eq!(o.state.connections(), 0);
    conn.send(b"9").await.unwrap();
    let resp = conn.response("POST").await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut sum = Checksum::default();
    sum.update(b"0123456789");
    let text = resp.text();
    assert!(text.contains("body-bytes: 10\n"), "{text}");
    assert!(text.contains(&format!("body-sum: {:x}\n", sum.0)), "{text}");
    assert_eq!(o.state.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_bodies_around_the_buffer_arrive_intact() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    // Within the buffer, just over it, and well over Pingora's retry buffer: the
    // part read ahead goes first, the rest streams behind it.
    for (chunks, size) in [(3, 1000), (5, 16 << 10), (40, 16 << 10), (3, 60 << 10)] {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        let head = request("POST", "/echo", &["Transfer-Encoding: chunked"]);
        let (body, sum) = chunked(chunks, size);
        conn.send(head.as_bytes()).await.unwrap();
        for piece in body.chunks(size + 8) {
            conn.send(piece).await.unwrap();
        }
        let resp = conn.response("POST").await.unwrap();
        assert_eq!(resp.status(), 200);
        let text = resp.text();
        let bytes = chunks * size;
        assert!(text.contains(&format!("body-bytes: {bytes}\n")), "{text}");
        assert!(text.contains(&format!("body-sum: {:x}\n", sum.0)), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_is_answered_by_the_edge() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let head = request(
        "PUT",
        "/echo",
        &["Content-Length: 5", "Expect: 100-continue"],
    );
    conn.send(head.as_bytes()).await.unwrap();
    let interim = tokio::time::timeout(Duration::from_secs(5), conn.response("PUT"))
        .await
        .expect("no 100 Continue")
        .unwrap();
    assert_eq!(interim.status(), 100);
    conn.send(b"hello").await.unwrap();
    let resp = conn.response("PUT").await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().to_ascii_lowercase();
    assert!(text.contains("body-bytes: 5\n"), "{text}");
    assert!(
        !text.contains("expect:"),
        "the origin is not asked to continue: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_limit_within_the_buffer_gets_413() {
    let o = origin("o").await;
    let config =
        Config::single(&[o.addr]).section("limits", json!({"max_request_body_bytes": 2000}));
    let proxy = Proxy::start(&config).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let head = request("POST", "/echo", &["Transfer-Encoding: chunked"]);
    let (body, _) = chunked(3, 1000);
    conn.send(head.as_bytes()).await.unwrap();
    conn.send(&body).await.unwrap();
    assert_eq!(conn.response("POST").await.unwrap().status(), 413);
    assert_eq!(o.state.connections(), 0);
}

/// A proxy whose request heads must arrive within 1 s.
async fn header_deadline(o: &Origin) -> Proxy {
    let limits = json!({"client_header_timeout": "1s"});
    Proxy::start(&Config::single(&[o.addr]).section("limits", limits)).await
}

/// Send `bytes` one at a time, `gap` apart; false once the proxy has closed.
async fn trickle(conn: &mut Conn, bytes: &[u8], gap: Duration) -> bool {
    for byte in bytes {
        if conn.send(&[*byte]).await.is_err() {
            return false;
        }
        tokio::time::sleep(gap).await;
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_real_clients_served() {
    let o = origin("o").await;
    let proxy = header_deadline(&o).await;
    let started = std::time::Instant::now();
    let mut slow = Vec::new();
    for _ in 0..200 {
        let addr = proxy.addr;
        slow.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await.unwrap();
            // A header line every 100 ms for up to 10 s: never a gap the per-read
            // timeout would notice, never the end of the head.
            let line = b"X-Slow: 1\r\n";
            let head = request("GET", "/loris", &[]);
            let head = head.trim_end().as_bytes().to_vec();
            conn.send(&head[..head.len() - 1]).await.unwrap();
            for _ in 0..100 {
                if !trickle(&mut conn, line, Duration::from_millis(9)).await {
                    return true;
                }
            }
            conn.closed_by_peer().await
        }));
    }
    // Meanwhile a real client is answered at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let resp = proxy.get("/echo").await;
    assert_eq!(resp.status(), 200);
    for task in slow {
        assert!(task.await.unwrap(), "a slowloris connection was kept open");
    }
    assert!(started.elapsed() < Duration::from_secs(9), "closed late");
    assert_eq!(o.state.count("/loris"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_is_for_heads_only() {
    let o = origin("o").await;
    let proxy = header_deadline(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    // A slow head within the deadline is served.
    let head = request("GET", "/echo", &[]);
    assert!(trickle(&mut conn, head.as_bytes(), Duration::from_millis(10)).await);
    assert_eq!(conn.response("GET").await.unwrap().status(), 200);
    // Idle time between requests is not head time (the keep-alive timeout's).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(conn.get("/echo", &[]).await.unwrap().status(), 200);
    // Nor is a body's: this one takes twice the deadline.
    let head = request("POST", "/echo", &["Content-Length: 20"]);
    conn.send(head.as_bytes()).await.unwrap();
    assert!(trickle(&mut conn, &[b'x'; 20], Duration::from_millis(100)).await);
    let resp = conn.response("POST").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().contains("body-bytes: 20\n"));
    // After 100 Continue the body is still a body.
    let head = request(
        "PUT",
        "/echo",
        &["Content-Length: 12", "Expect: 100-continue"],
    );
    conn.send(head.as_bytes()).await.unwrap();
    assert_eq!(conn.response("PUT").await.unwrap().status(), 100);
    assert!(trickle(&mut conn, &[b'y'; 12], Duration::from_millis(150)).await);
    assert_eq!(conn.response("PUT").await.unwrap().status(), 200);
}
