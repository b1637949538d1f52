//! Clients that break the protocols get refused before anything reaches an
//! origin: TLS 1.0/1.1 or weak-cipher handshakes, and HTTP/2 protocol errors.

use crate::support::*;
use crate::tls::{edge, free_addr};
use std::net::SocketAddr;
use tokio::io::AsyncWriteExt;

/// A minimal ClientHello record offering `version` and only `suites`, for `a.test`,
/// with the extensions an ECDHE handshake needs.
fn client_hello(version: [u8; 2], suites: &[[u8; 2]]) -> Vec<u8> {
    let name = b"a.test";
    let mut sni = vec![0x00, 0x00]; // server_name extension
    let list_len = 3 + name.len();
    sni.extend_from_slice(&((list_len + 2) as u16).to_be_bytes());
    sni.extend_from_slice(&(list_len as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    // supported_groups (x25519, P-256), signature_algorithms (ECDSA-P256-SHA256,
    // RSA-PSS-SHA256, RSA-PKCS1-SHA256), ec_point_formats (uncompressed).
    sni.extend_from_slice(&[0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]);
    sni.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    sni.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    let mut body = version.to_vec();
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    suites.iter().for_each(|s| body.extend_from_slice(s));
    body.extend_from_slice(&[1, 0]); // null compression only
    body.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    body.extend_from_slice(&sni);
    let mut handshake = vec![1u8]; // ClientHello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// What the server sends back first: `Some(0x15)` is an alert, `Some(0x16)` a
/// handshake (the hello was taken), `None` a closed connection.
async fn first_reply(addr: SocketAddr, hello: &[u8]) -> Option<u8> {
    use tokio::io::AsyncReadExt;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut byte));
    match read.await.expect("no reply in 5 s") {
        Ok(1) => Some(byte[0]),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_protocols_and_weak_ciphers_are_refused() {
    let o = origin("o").await;
    let e = edge(&o, json!({})).await;
    let modern = [[0x13, 0x01], [0xc0, 0x2b], [0xc0, 0x2f]]; // AES-128-GCM, ECDHE-*-AES128-GCM
                                                             // The control: a TLS 1.2 hello with modern suites is taken.
    assert_eq!(
        first_reply(e.tls, &client_hello([3, 3], &modern)).await,
        Some(0x16)
    );
    // TLS 1.0 and 1.1 only: refused, whatever the suites.
    for version in [[3, 1], [3, 2]] {
        let reply = first_reply(e.tls, &client_hello(version, &modern)).await;
        assert!(reply != Some(0x16), "TLS {version:?} was taken");
    }
    // TLS 1.2 with only RSA key exchange, CBC, 3DES or RC4: refused.
    let weak = [
        [0x00, 0x2f],
        [0x00, 0x35],
        [0x00, 0x0a],
        [0x00, 0x05],
        [0xc0, 0x13],
    ];
    let reply = first_reply(e.tls, &client_hello([3, 3], &weak)).await;
    assert!(reply != Some(0x16), "weak suites were taken");
    assert_eq!(o.state.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_breaking_http2_gets_goaway_and_the_origin_nothing() {
    use tokio::io::AsyncReadExt;
    let o = origin("o").await;
    let h2c = free_addr();
    let config =
        Config::single(&[o.addr]).listener(json!({"address": h2c.to_string(), "h2c": true}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(h2c).await;
    let mut tcp = tokio::net::TcpStream::connect(h2c).await.unwrap();
    let mut bad = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bad.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    bad.extend_from_slice(&[0, 0, 1, 1, 5, 0, 0, 0, 0, 0x82]); // HEADERS on stream 0
    tcp.write_all(&bad).await.unwrap();
    // Read frames until a GOAWAY (type 7) or the end of the connection.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Duration::from_secs(5);
    while let Ok(Ok(n)) = tokio::time::timeout(deadline, tcp.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
    }
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 9 <= seen.len() {
        let len = u32::from_be_bytes([0, seen[at], seen[at + 1], seen[at + 2]]) as usize;
        frames.push(seen[at + 3]);
        at += 9 + len;
    }
    assert!(frames.contains(&7), "no GOAWAY; frame types {frames:?}");
    assert_eq!(o.state.total(), 0);
}
