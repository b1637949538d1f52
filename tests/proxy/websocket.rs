//! WebSocket through the proxy, against the demo origin's echo (`/ws`): the
//! handshake is forwarded and its 101 comes back, frames flow both ways until a
//! side closes, the exchange is one request, and an idle socket is closed after
//! the upstream's `timeouts.websocket_idle`, not before.

use crate::support::client::request;
use crate::support::*;
use parapet::demo::websocket::{self, Frame, BINARY, CLOSE, PING, PONG, TEXT};
use std::net::SocketAddr;
use std::time::Duration;

/// RFC 6455 §1.3's example key, and the accept value it must get back.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// The echo, answering the handshake at once: an origin's 101 read before the
/// proxy relayed the handshake's own (empty) body keeps the tunnel open (Parapet's
/// Pingora patch 0005, cloudflare/pingora#946).
const ECHO: &str = "/ws";

/// Send a WebSocket handshake for `path` to `addr`; the connection and the answer.
async fn handshake(addr: SocketAddr, path: &str) -> (Conn, Response) {
    let mut conn = Conn::open(addr).await.unwrap();
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let handshake = [
        "Connection: Upgrade",
        "Upgrade: websocket",
        &key,
        "Sec-WebSocket-Version: 13",
    ];
    let head = request("GET", path, &handshake);
    conn.send(head.as_bytes()).await.unwrap();
    let resp = conn.response("GET").await.unwrap();
    (conn, resp)
}

/// Open a WebSocket to `path` through the proxy at `addr`; the 101 is checked.
async fn open(addr: SocketAddr, path: &str) -> Conn {
    let (conn, resp) = handshake(addr, path).await;
    assert_eq!(resp.status(), 101, "{:?}", resp.head);
    assert_eq!(resp.header("sec-websocket-accept"), Some(ACCEPT));
    let upgrade = resp.header("upgrade").unwrap_or_default();
    assert!(upgrade.eq_ignore_ascii_case("websocket"), "{:?}", resp.head);
    let connection = resp.header("connection").unwrap_or_default();
    assert!(
        connection.to_ascii_lowercase().contains("upgrade"),
        "{:?}",
        resp.head
    );
    conn
}

/// The next frame from the proxy, within 5 s; `None` once it has closed.
async fn next_frame(conn: &mut Conn) -> Option<Frame> {
    let read = tokio::time::timeout(Duration::from_secs(5), conn.frame());
    read.await.expect("no frame within 5 s").ok().flatten()
}

/// Send one masked frame, as a client must, and read what comes back.
async fn exchange(conn: &mut Conn, opcode: u8, payload: &[u8]) -> Frame {
    let frame = websocket::encode(true, opcode, payload, Some(MASK));
    conn.send(&frame).await.unwrap();
    next_frame(conn).await.expect("the connection closed")
}

/// `payload` came back as an unmasked frame of `opcode`.
fn echoed(frame: &Frame, opcode: u8, payload: &[u8]) {
    assert_eq!(
        (frame.opcode, frame.fin, frame.masked),
        (opcode, true, false)
    );
    assert_eq!(frame.payload, payload);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_flow_both_ways_until_a_close_and_count_as_one_request() {
    let o = origin("o").await;
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = scratch_dir("ws-log");
    let log = dir.join("access.log");
    let config = Config::single(&[o.addr])
        .section("admin", json!({"address": admin.to_string()}))
        .section("access_log", json!({"path": log}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;

    let mut conn = open(proxy.addr, ECHO).await;
    echoed(&exchange(&mut conn, TEXT, b"hello").await, TEXT, b"hello");
    // Past 64 KiB: the frame's longest length form, in many reads.
    let binary: Vec<u8> = (0..70_000).map(|i| (i % 251) as u8).collect();
    echoed(&exchange(&mut conn, BINARY, &binary).await, BINARY, &binary);
    echoed(&exchange(&mut conn, PING, b"p").await, PONG, b"p");
    let normal_closure = 1000u16.to_be_bytes();
    let close = exchange(&mut conn, CLOSE, &normal_closure).await;
    echoed(&close, CLOSE, &normal_closure);
    assert!(conn.closed_by_peer().await, "the proxy kept the connection");

    assert_eq!(o.state.count("/ws"), 1);
    let one_line = eventually(Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 1)
    });
    assert!(one_line.await, "not one access log line");
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&log).unwrap().trim()).unwrap();
    assert_eq!(
        (line["status"].as_u64(), line["path"].as_str()),
        (Some(101), Some(ECHO))
    );
    assert!(line["bytes_in"].as_u64() > Some(70_000), "{line}");
    let metrics = get(admin, "/metrics").await.text();
    let requests = "parapet_requests_total{route=\"*/\",status=\"101\",upstream=\"app\"} 1";
    assert!(metrics.lines().any(|l| l == requests), "{metrics}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_does_not_bound_a_websocket() {
    let o = origin("o").await;
    let limits = json!({"max_request_body_bytes": 1000});
    let proxy = Proxy::start(&Config::single(&[o.addr]).section("limits", limits)).await;
    let mut conn = open(proxy.addr, ECHO).await;
    let payload = [b'x'; 800];
    for _ in 0..4 {
        echoed(
            &exchange(&mut conn, BINARY, &payload).await,
            BINARY,
            &payload,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_idles_up_to_websocket_idle_then_is_closed() {
    let o = origin("o").await;
    // Both of the timers that bound an ordinary request's reads are shorter than
    // the pauses below: only `websocket_idle` may govern the socket.
    let timeouts = json!({"response_header": "300ms", "websocket_idle": "1s"});
    let config = Config::single(&[o.addr])
        .upstream_key("app", "timeouts", timeouts)
        .section("limits", json!({"client_body_timeout": "300ms"}));
    let proxy = Proxy::start(&config).await;
    let mut conn = open(proxy.addr, ECHO).await;
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let text = format!("round {round}");
        echoed(
            &exchange(&mut conn, TEXT, text.as_bytes()).await,
            TEXT,
            text.as_bytes(),
        );
    }
    // Now silent: closed without a frame.
    assert!(
        conn.closed_by_peer().await,
        "an idle WebSocket was kept open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_on_a_caching_route_bypass_the_cache() {
    let o = origin("o").await;
    let config = Config::new()
        .upstream("app", json!({"backends": backends(&[o.addr])}))
        .route(json!({"upstream": "app", "cache": true}));
    let proxy = Proxy::start(&config).await;
    // A stored page does not answer a handshake for its URL: the origin does.
    let page = "/gen/chat?set-Cache-Control=max-age%3D60";
    assert_eq!(proxy.get(page).await.status(), 200);
    let hit = proxy.get(page).await;
    assert!(hit
        .header("cache-status")
        .is_some_and(|s| s.contains("hit")));
    let (_, resp) = handshake(proxy.addr, page).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(o.state.count("/gen/chat"), 2, "answered from the cache");
    // Two sockets to one URL at once: neither waits for the other's "fetch".
    let mut first = open(proxy.addr, ECHO).await;
    let mut second = open(proxy.addr, ECHO).await;
    echoed(&exchange(&mut second, TEXT, b"2").await, TEXT, b"2");
    echoed(&exchange(&mut first, TEXT, b"1").await, TEXT, b"1");
    assert_eq!(o.state.count("/ws"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_stays_open_however_fast_the_101_comes() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    // The echo answers at once: its 101 often arrives before the proxy has relayed
    // the end of the handshake's own (empty) body, which must not end the tunnel.
    for i in 0..40u8 {
        let mut conn = open(proxy.addr, ECHO).await;
        echoed(
            &exchange(&mut conn, TEXT, &[b'a' + i % 26]).await,
            TEXT,
            &[b'a' + i % 26],
        );
    }
    assert_eq!(o.state.count("/ws"), 40);
}
