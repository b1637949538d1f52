//! What a client does wrong is not the proxy's error: a stalled head, a closed
//! connection, a malformed chunk and a failed HTTP/2 handshake each get their
//! answer (or a closed connection) and write no ERROR line, so no client can
//! fill the error log.

use crate::support::client::request;
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn error_lines(proxy: &Proxy) -> Vec<String> {
    proxy
        .stderr()
        .lines()
        .filter(|line| line.contains("ERROR"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_mistakes_write_no_error_line() {
    let o = origin("o").await;
    let dir = scratch_dir("certs");
    let ca = tls::TestCa::new();
    let leaf = ca.leaf(&dir, "a", &["a.test"], false);
    let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listener = json!({
        "address": https.to_string(),
        "tls": {"certificates": [{"cert": leaf.cert, "key": leaf.key}]},
    });
    let config = Config::single(&[o.addr])
        .listener(listener)
        .section("limits", json!({"client_header_timeout": "1s"}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(https).await;

    // A head that stalls halfway: closed by the header timeout.
    let mut stalled = Conn::open(proxy.addr).await.unwrap();
    stalled.send(b"GET / HTTP/1.1\r\nHost: te").await.unwrap();
    assert!(stalled.closed_by_peer().await, "a stalled head stayed open");

    // A head cut off by the client.
    let mut cut = Conn::open(proxy.addr).await.unwrap();
    cut.send(b"GET / HTTP/1.1\r\nHost: te").await.unwrap();
    drop(cut);

    // A client gone before its answer.
    let mut gone = Conn::open(proxy.addr).await.unwrap();
    gone.send(request("GET", "/slow/300", &[]).as_bytes())
        .await
        .unwrap();
    drop(gone);

    // A chunk size that is not hex.
    let mut chunked = Conn::open(proxy.addr).await.unwrap();
    let head = request("POST", "/echo", &["Transfer-Encoding: chunked"]);
    chunked.send(head.as_bytes()).await.unwrap();
    chunked.send(b"5\r\nhello\r\nzz\r\n").await.unwrap();
    let answered = chunked.response("POST").await;
    assert!(
        answered.as_ref().map_or(true, |r| r.status() == 400),
        "{:?}",
        answered.map(|r| r.head)
    );

    // HTTP/2 by ALPN, then no preface but words; then no preface at all (a
    // browser that leaves).
    let h2: &[&[u8]] = &[b"h2"];
    let mut words = tls::connect(https, &ca.der(), "a.test", true, h2)
        .await
        .unwrap();
    words
        .write_all(b"not the HTTP/2 preface, just words\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), words.read_to_end(&mut rest));
    assert!(read.await.is_ok(), "a failed h2 handshake stayed open");
    let mut left = tls::connect(https, &ca.der(), "a.test", true, h2)
        .await
        .unwrap();
    left.shutdown().await.unwrap();
    drop(left);

    // The proxy is fine, and said nothing at ERROR level about any of them.
    let after = eventually(Duration::from_secs(2), async || {
        o.state.count("/slow/300") == 1
    })
    .await;
    assert!(after, "the request of the client that left never arrived");
    assert_eq!(proxy.get("/echo").await.status(), 200);
    assert_eq!(error_lines(&proxy), Vec::<String>::new());
}
