//! Connections the edge ends on purpose: a refusal reaches a client still sending
//! its body (lingering close), and a client that stops reading is let go
//! (`limits.client_send_timeout`).

use crate::support::client::request;
use crate::support::*;
use parapet::demo::wire::{self, fill_pattern, Checksum, Head};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

const BODY: usize = 2 << 20;

/// POST `path` with a declared 2 MiB body written whole before reading, as
/// Python's http.client does; the answer read by its framing. The body goes out
/// 32 KiB every 2 ms, as over a network: on loopback, socket buffers would
/// otherwise take all of it before the proxy answers.
async fn post_written_first(addr: SocketAddr, path: &str) -> std::io::Result<(Head, Vec<u8>)> {
    post_written_first_over(tokio::net::TcpStream::connect(addr).await?, path).await
}

async fn post_written_first_over<S>(mut tcp: S, path: &str) -> std::io::Result<(Head, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let head = request("POST", path, &[&format!("Content-Length: {BODY}")]);
    tcp.write_all(head.as_bytes()).await?;
    let piece = [b'x'; 32 << 10];
    for _ in 0..BODY / piece.len() {
        tcp.write_all(&piece).await?;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut read = BufReader::new(tcp);
    let head = wire::read_head(&mut read)
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no answer"))?;
    let mut body = Vec::new();
    let framing = wire::response_framing(&head, "POST");
    wire::read_body(&mut read, framing, |b| body.extend_from_slice(b)).await?;
    Ok((head, body))
}

/// How many of `tries` oversized POSTs to `path` got a complete `status` answer.
async fn answered(addr: SocketAddr, path: &str, status: u16, tries: usize) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut ok = 0;
    for _ in 0..tries {
        let attempt = tokio::time::timeout(Duration::from_secs(10), post_written_first(addr, path));
        match attempt.await {
            Ok(Ok((head, body))) if head.status() == status => {
                let text = String::from_utf8_lossy(&body);
                assert!(text.starts_with(&format!("{status} ")), "{text}");
                ok += 1;
            }
            Ok(Ok((head, _))) => failures.push(format!("status {}", head.status())),
            Ok(Err(e)) => failures.push(e.to_string()),
            Err(_) => failures.push("no answer within 10 s".to_string()),
        }
    }
    (ok, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_post_written_first_gets_its_413() {
    let o = origin("o").await;
    let config =
        Config::single(&[o.addr]).section("limits", json!({"max_request_body_bytes": "1MiB"}));
    let proxy = Proxy::start(&config).await;
    let (ok, failures) = answered(proxy.addr, "/echo", 413, 30).await;
    assert_eq!(ok, 30, "answers lost: {failures:?}");
    assert_eq!(o.state.count("/echo"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_post_written_first_gets_its_403() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr]).routes(json!([
        {"path_prefix": "/denied/", "upstream": "app", "access": {"deny": ["127.0.0.0/8"]}},
        {"upstream": "app"}
    ]));
    let proxy = Proxy::start(&config).await;
    let (ok, failures) = answered(proxy.addr, "/denied/echo", 403, 30).await;
    assert_eq!(ok, 30, "answers lost: {failures:?}");
    assert_eq!(o.state.total(), 0, "the origin saw a denied request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_written_first_gets_the_edges_502() {
    // The error path (fail_to_proxy), after part of the body was read ahead.
    let config = Config::single(&[dead_addr()]);
    let proxy = Proxy::start(&config).await;
    let (ok, failures) = answered(proxy.addr, "/echo", 502, 10).await;
    assert_eq!(ok, 10, "answers lost: {failures:?}");
}

/// Whether a GET on a new connection to `addr` is answered (false: closed unanswered).
async fn answers(addr: SocketAddr) -> bool {
    let Ok(mut conn) = Conn::open(addr).await else {
        return false;
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), conn.get("/echo", &[]));
    matches!(answer.await, Ok(Ok(resp)) if resp.status() == 200)
}

/// A POST declaring 2 MiB that sends 64 KiB of it and reads its 413.
async fn refused_after_part_of_its_body(
    addr: SocketAddr,
) -> std::io::Result<BufReader<tokio::net::TcpStream>> {
    let mut tcp = BufReader::new(tokio::net::TcpStream::connect(addr).await?);
    let head = request("POST", "/echo", &[&format!("Content-Length: {BODY}")]);
    tcp.get_mut().write_all(head.as_bytes()).await?;
    tcp.get_mut().write_all(&[b'x'; 64 << 10]).await?;
    let answer = wire::read_head(&mut tcp).await?;
    let status = answer.as_ref().map(Head::status);
    let Some(answer) = answer.filter(|_| status == Some(413)) else {
        return Err(std::io::Error::other(format!("answered {status:?}")));
    };
    let framing = wire::response_framing(&answer, "POST");
    wire::read_body(&mut tcp, framing, |_| {}).await?;
    Ok(tcp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_connection_counts_and_ends_when_the_client_stops() {
    let o = origin("o").await;
    let capped = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = Config::single(&[o.addr])
        .listener(json!({"address": capped.to_string(), "max_connections_per_ip": 1}))
        .section("limits", json!({"max_request_body_bytes": "1MiB"}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(capped).await;
    // The probe of `wait_accepting` may hold the address's one connection a moment.
    let mut refused = None;
    for _ in 0..40 {
        match refused_after_part_of_its_body(capped).await {
            Ok(tcp) => {
                refused = Some(tcp);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut tcp = refused.expect("no 413");
    // Lingering, it is still the address's one connection (1 s on: not a race
    // with the end of the request).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !answers(capped).await,
        "a second connection while lingering"
    );
    // Its FIN came after the answer.
    let mut byte = [0u8; 1];
    assert_eq!(tcp.read(&mut byte).await.unwrap(), 0);
    // The client sends no more: the linger ends after 5 s without a byte.
    assert!(
        eventually(Duration::from_secs(7), async || answers(capped).await).await,
        "the address stayed capped after the linger"
    );
    assert_eq!(o.state.count("/echo"), 1, "only the last GET");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_post_over_tls_gets_its_413() {
    use crate::support::tls::{self, TestCa};
    let o = origin("o").await;
    let dir = scratch_dir("certs");
    let ca = TestCa::new();
    let leaf = ca.leaf(&dir, "a", &["a.test"], false);
    let tls_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listener = json!({
        "address": tls_addr.to_string(),
        "tls": {"certificates": [{"cert": leaf.cert, "key": leaf.key}]},
    });
    let config = Config::single(&[o.addr])
        .listener(listener)
        .section("limits", json!({"max_request_body_bytes": "1MiB"}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(tls_addr).await;
    for _ in 0..10 {
        let stream = tls::connect(tls_addr, &ca.der(), "a.test", true, &[b"http/1.1"])
            .await
            .unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            post_written_first_over(stream, "/echo"),
        );
        let (head, _) = answer.await.expect("no answer").expect("answer lost");
        assert_eq!(head.status(), 413);
    }
    assert_eq!(o.state.count("/echo"), 0);
}

const LARGE: u64 = 32 << 20;
const SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// A client with a 4 KiB receive buffer asks for 32 MiB, reads a little, stops
/// reading for `SEND_TIMEOUT` and 3 s, then reads on: how many bytes it got in
/// all, and whether the connection had ended (EOF or reset) within 5 s of reading on.
async fn stalled_download(addr: SocketAddr) -> (u64, bool) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(addr).await.unwrap();
    let head = request("GET", &format!("/bytes/{LARGE}"), &[]);
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0u64;
    while total < 16 << 10 {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return (total, true),
            Ok(n) => total += n as u64,
        }
    }
    tokio::time::sleep(SEND_TIMEOUT + Duration::from_secs(3)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Err(_) => return (total, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (total, true),
            Ok(Ok(n)) => total += n as u64,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_let_go() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr]).section("limits", json!({"client_send_timeout": "2s"}));
    let proxy = Proxy::start(&config).await;
    let (received, ended) = stalled_download(proxy.addr).await;
    assert!(ended, "still open 5 s after the stall, {received} bytes in");
    assert!(
        received < LARGE / 2,
        "served {received} bytes of a stalled download"
    );
    // The proxy serves on.
    assert_eq!(proxy.get("/echo").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_does_not_stop_the_cache_fill() {
    let o = origin("o").await;
    let config = Config::caching(o.addr)
        .section(
            "cache",
            json!({"max_size": "128MiB", "max_object_size": "48MiB", "default_ttl": "60s"}),
        )
        .section("limits", json!({"client_send_timeout": "2s"}));
    let proxy = Proxy::start(&config).await;
    let (received, ended) = stalled_download(proxy.addr).await;
    assert!(ended, "still open 5 s after the stall, {received} bytes in");
    assert!(
        received < LARGE / 2,
        "served {received} bytes of a stalled download"
    );
    // The object was stored whole all the same: the next request is a hit.
    let (code, status, len, sum) = summary(proxy.addr, &format!("/bytes/{LARGE}")).await;
    assert!(status.contains("hit"), "not a hit: {status}");
    let mut expected = Checksum::default();
    let mut chunk = vec![0u8; 1 << 20];
    for offset in (0..LARGE).step_by(chunk.len()) {
        fill_pattern(&mut chunk, offset);
        expected.update(&chunk);
    }
    assert_eq!((code, len, sum), (200, LARGE, expected));
    // A client that stalls on the hit is let go as well.
    let (received, ended) = stalled_download(proxy.addr).await;
    assert!(ended, "a stalled hit still open 5 s after the stall");
    assert!(
        received < LARGE / 2,
        "served {received} bytes of a stalled hit"
    );
    assert_eq!(o.state.count("/bytes/"), 1);
}

/// GET `path` on a fresh connection: status, `Cache-Status`, body length and sum.
async fn summary(addr: SocketAddr, path: &str) -> (u16, String, u64, Checksum) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut read = BufReader::new(tcp);
    read.get_mut()
        .write_all(request("GET", path, &[]).as_bytes())
        .await
        .unwrap();
    let head = wire::read_head(&mut read).await.unwrap().unwrap();
    let mut sum = Checksum::default();
    let framing = wire::response_framing(&head, "GET");
    let len = wire::read_body(&mut read, framing, |b| sum.update(b))
        .await
        .unwrap();
    let status = head.get("cache-status").unwrap_or("").to_string();
    (head.status(), status, len, sum)
}
