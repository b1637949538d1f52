//! Bodies stream through both ways, intact, without buffering whole.

use crate::support::client::request;
use crate::support::*;
use parapet::demo::wire::{fill_pattern, Checksum};

const SIZE: u64 = 20 << 20;

async fn proxy_for(o: &Origin) -> Proxy {
    Proxy::start(&format!(
        "upstreams:\n  app:\n    backends: [{{address: \"{}\"}}]\nroutes:\n  - upstream: app\n",
        o.addr
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_mib_upload_streams_through() {
    let o = origin("o").await;
    let proxy = proxy_for(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let head = request("POST", "/echo", &[&format!("Content-Length: {SIZE}")]);
    conn.send(head.as_bytes()).await.unwrap();
    let mut sum = Checksum::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0;
    while sent < SIZE {
        let len = (SIZE - sent).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..len], sent);
        sum.update(&buf[..len]);
        conn.send(&buf[..len]).await.unwrap();
        sent += len as u64;
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
    let proxy = proxy_for(&o).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    conn.send(request("GET", &format!("/bytes/{SIZE}"), &[]).as_bytes())
        .await
        .unwrap();
    let (status, len, sum) = conn.response_summary("GET").await.unwrap();
    let mut expected = Checksum::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0;
    while off < SIZE {
        let n = (SIZE - off).min(buf.len() as u64) as usize;
        fill_pattern(&mut buf[..n], off);
        expected.update(&buf[..n]);
        off += n as u64;
    }
    assert_eq!((status, len, sum), (200, SIZE, expected));
    // The connection is still good for another request.
    assert_eq!(conn.get("/echo", &[]).await.unwrap().status(), 200);
}
