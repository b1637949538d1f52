//! Bodies stream through both ways, intact, without buffering whole.

use crate::support::client::request;
use crate::support::*;
use parapet::demo::wire::{fill_pattern, Checksum};

/// Hand the generated body of `size` bytes to `each`, a chunk at a time.
fn for_pattern_chunks(size: u64, mut each: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 256 * 1024];
    let mut offset = 0;
    while offset < size {
        let n = (size - offset).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], offset);
        each(&buf[..n]);
        offset += n as u64;
    }
}

const SIZE: u64 = 20 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_upload_streams_through() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let head = request("POST", "/echo", &[&format!("Content-Length: {SIZE}")]);
    conn.send(head.as_bytes()).await.unwrap();
    let mut sum = Checksum::default();
    let mut chunks = Vec::new();
    for_pattern_chunks(SIZE, |chunk| {
        sum.update(chunk);
        chunks.push(chunk.to_vec());
    });
    for chunk in chunks {
        conn.send(&chunk).await.unwrap();
    }
    let resp = conn.response("POST").await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text();
    assert!(text.contains(&format!("body-bytes: {SIZE}\n")), "{text}");
    assert!(text.contains(&format!("body-sum: {:x}\n", sum.0)), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_download_streams_through() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    conn.send(request("GET", &format!("/bytes/{SIZE}"), &[]).as_bytes())
        .await
        .unwrap();
    let (status, len, sum) = conn.response_summary("GET").await.unwrap();
    let mut expected = Checksum::default();
    for_pattern_chunks(SIZE, |chunk| expected.update(chunk));
    assert_eq!((status, len, sum), (200, SIZE, expected));
    // The connection is still good for another request.
    assert_eq!(conn.get("/echo", &[]).await.unwrap().status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    // Sequential requests, even from different client connections, reuse one
    // kept-alive connection to the origin.
    for _ in 0..4 {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        for _ in 0..5 {
            assert_eq!(conn.get("/echo", &[]).await.unwrap().status(), 200);
        }
        // Otherwise the next client's first request can race this connection's
        // last upstream connection on its way back to the pool.
        assert!(
            conn.finish().await,
            "the proxy kept a finished connection open"
        );
    }
    assert_eq!(o.state.count("/echo"), 20);
    assert_eq!(
        o.state.connections(),
        1,
        "the origin saw a new connection per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_close_do_not_close_the_upstream_connection() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    for _ in 0..10 {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        let resp = conn.get("/echo", &["Connection: close"]).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.header("connection"), Some("close"));
        // Closed as announced; by then the upstream connection is back in the pool,
        // so the next client's request cannot race it there.
        assert!(
            conn.closed_by_peer().await,
            "the client connection stayed open"
        );
    }
    assert_eq!(o.state.count("/echo"), 10);
    assert_eq!(
        o.state.connections(),
        1,
        "a client's Connection: close reached the pool"
    );
}
