//! Connections bounded by the configured limits from their first byte: a TLS
//! handshake and an HTTP/2 preface must complete within `client_header_timeout`,
//! an HTTP/2 connection with no stream is closed after `client_keepalive_timeout`,
//! connections still in their handshake count toward the caps; the server's cipher
//! order wins; and an upstream `tls.ca` that rustls cannot use as a pinned
//! certificate is refused by `parapet -t` with a way to make one that works.

use crate::support::tls::{self, TestCa};
use crate::support::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The timeouts of these tests (`client_header_timeout`, `client_keepalive_timeout`).
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long past the timeout a connection may stay open.
const SLACK: Duration = Duration::from_secs(1);

/// A proxy in front of `o` with `limits` and a TLS listener serving `a.test`
/// (with `extra` keys on it); the proxy, the TLS address, the CA's DER, the
/// admin address.
async fn tls_edge(
    o: &Origin,
    limits: serde_json::Value,
    extra: serde_json::Value,
) -> (Proxy, SocketAddr, Vec<u8>, SocketAddr) {
    let dir = scratch_dir("hardening-certs");
    let ca = TestCa::new();
    let a = ca.leaf(&dir, "a", &["a.test"], false);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listener = json!({
        "address": addr.to_string(),
        "tls": {"certificates": [{"cert": a.cert, "key": a.key}]},
    });
    let config = Config::single(&[o.addr])
        .section("limits", limits)
        .listener(merged(listener, extra));
    let (proxy, admin) = proxy_with_admin(config).await;
    proxy.wait_accepting(addr).await;
    (proxy, addr, ca.der(), admin)
}

fn short_limits() -> serde_json::Value {
    json!({"client_header_timeout": "2s", "client_keepalive_timeout": "2s"})
}

/// Whether the peer closes `io` (EOF or reset) within `limit`, whatever it
/// sends before.
async fn closed_within<S: AsyncRead + Unpin>(io: &mut S, limit: Duration) -> bool {
    let drained = async {
        let mut buf = [0u8; 4096];
        // Bounded: a peer that keeps sending fails the outer timeout.
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, drained).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_no_client_hello_is_closed() {
    let o = origin("o").await;
    let (_proxy, addr, _, _) = tls_edge(&o, short_limits(), json!({})).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut tcp, TIMEOUT + SLACK).await,
        "a TLS connection without a ClientHello stayed open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_connection_that_sends_no_preface_is_closed() {
    let o = origin("o").await;
    let (_proxy, addr, ca, _) = tls_edge(&o, short_limits(), json!({})).await;
    let mut conn = tls::connect(addr, &ca, "a.test", true, &[b"h2"])
        .await
        .unwrap();
    assert_eq!(tls::alpn(&conn).as_deref(), Some(&b"h2"[..]));
    assert!(
        closed_within(&mut conn, TIMEOUT + SLACK).await,
        "an h2 connection without a preface stayed open"
    );
}

/// The HTTP/2 connection preface (RFC 9113 §3.4) and an empty SETTINGS frame.
const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_connection_with_no_stream_is_closed_after_the_keepalive_timeout() {
    let o = origin("o").await;
    let (_proxy, addr, ca, _) = tls_edge(&o, short_limits(), json!({})).await;
    let mut conn = tls::connect(addr, &ca, "a.test", true, &[b"h2"])
        .await
        .unwrap();
    conn.write_all(PREFACE_AND_SETTINGS).await.unwrap();
    assert!(
        closed_within(&mut conn, TIMEOUT + SLACK).await,
        "an idle h2 connection stayed open"
    );

    // One that is used gets its answer, then the same idle limit.
    let conn = tls::connect(addr, &ca, "a.test", true, &[b"h2"])
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(conn).await.unwrap();
    let driven = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("https://a.test/echo").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    let ended = tokio::time::timeout(TIMEOUT + SLACK, driven).await;
    assert!(ended.is_ok(), "a used h2 connection stayed open when idle");
    assert_eq!(o.state.count("/echo"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_to_an_h2c_listener_is_closed() {
    let o = origin("o").await;
    let h2c = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = Config::single(&[o.addr])
        .section("limits", short_limits())
        .listener(json!({"address": h2c.to_string(), "h2c": true}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(h2c).await;
    let mut tcp = TcpStream::connect(h2c).await.unwrap();
    assert!(
        closed_within(&mut tcp, TIMEOUT + SLACK).await,
        "a silent h2c connection stayed open"
    );
    // A request shorter than the preface is answered, not held for the preface.
    let mut short = TcpStream::connect(h2c).await.unwrap();
    short
        .write_all(b"GET /echo HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, short.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a short HTTP/1.0 request was held");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    // And h2c by prior knowledge still works.
    let tcp = TcpStream::connect(h2c).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get("http://c.test/echo").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(o.state.count("/echo"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_their_handshake_count_toward_the_cap() {
    let o = origin("o").await;
    let limits = json!({"client_header_timeout": "10s"});
    let caps = json!({"max_connections_per_ip": 2});
    let (_proxy, addr, ca, admin) = tls_edge(&o, limits, caps).await;
    let active = async |n: usize| {
        let line = format!("parapet_connections_active {n}");
        eventually(Duration::from_secs(5), async || {
            get(admin, "/metrics")
                .await
                .text()
                .lines()
                .any(|l| l == line)
        })
        .await
    };
    // The probes of the start are gone (the admin listener is not counted).
    assert!(active(0).await, "{}", get(admin, "/metrics").await.text());
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // Both are accepted and counted before a third comes.
    assert!(active(2).await, "{}", get(admin, "/metrics").await.text());
    let third = tls::connect(addr, &ca, "a.test", true, &[b"http/1.1"]).await;
    assert!(third.is_err(), "a third connection was served");
    let metrics = get(admin, "/metrics").await.text();
    let series = format!(
        "parapet_connections_refused_total{{listener=\"{addr}\",reason=\"max_connections_per_ip\"}} 1"
    );
    assert!(metrics.contains(&series), "{metrics}");

    // Once they go, a new one is served.
    drop(silent);
    let served = eventually(Duration::from_secs(5), async || {
        tls::connect(addr, &ca, "a.test", true, &[b"http/1.1"])
            .await
            .is_ok()
    })
    .await;
    assert!(
        served,
        "a connection after the silent ones went was refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_cipher_order_wins() {
    use tokio_rustls::rustls::crypto::ring::{cipher_suite, default_provider};
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let o = origin("o").await;
    let (_proxy, addr, ca, _) = tls_edge(&o, json!({}), json!({})).await;
    // rustls's server order is AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305: a
    // client that prefers ChaCha20 gets AES-128 when the server's order wins.
    let mut provider = default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ];
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca)).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("a.test").unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let suite = conn.get_ref().1.negotiated_cipher_suite().unwrap();
    assert_eq!(
        suite.suite(),
        cipher_suite::TLS13_AES_128_GCM_SHA256.suite()
    );
}

/// One HTTP/1.1 GET of `/echo` over TLS to `addr` as `a.test`: the status, the
/// certificate served and the echoed `X-Forwarded-Proto`.
async fn tls_get(addr: SocketAddr, ca: &[u8]) -> (u16, Vec<u8>, Option<String>) {
    use parapet::demo::wire;
    let conn = tls::connect(addr, ca, "a.test", true, &[b"http/1.1"])
        .await
        .unwrap();
    let served = tls::served(&conn);
    let mut io = tokio::io::BufReader::new(conn);
    let req = "GET /echo HTTP/1.1\r\nHost: a.test\r\n\r\n";
    io.get_mut().write_all(req.as_bytes()).await.unwrap();
    let head = wire::read_head(&mut io).await.unwrap().unwrap();
    let mut body = Vec::new();
    let framing = wire::response_framing(&head, "GET");
    wire::read_body(&mut io, framing, |b| body.extend_from_slice(b))
        .await
        .unwrap();
    let resp = Response { head, body };
    (resp.status(), served, resp.echoed("x-forwarded-proto"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_serves_across_an_upgrade_with_its_new_certificate() {
    use crate::support::process::{wait_exit, Daemon};
    let o = origin("o").await;
    let dir = scratch_dir("upgrade-certs");
    let ca = TestCa::new();
    let first = ca.leaf(&dir, "a", &["a.test"], false);
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listener = json!({
        "address": addr.to_string(),
        "tls": {"certificates": [{"cert": first.cert, "key": first.key}]},
    });
    let config = Config::single(&[o.addr]).listener(listener);
    let mut daemon = Daemon::start(free_port(), 1, &config).await;
    let up = eventually(Duration::from_secs(20), async || {
        TcpStream::connect(addr).await.is_ok()
    })
    .await;
    assert!(up, "{}", daemon.log());
    let https = Some("https".to_string());
    assert_eq!(
        tls_get(addr, &ca.der()).await,
        (200, first.der.clone(), https.clone())
    );

    // A new certificate in the same files, then an upgrade: the new process
    // serves the listener it was handed, with the new certificate.
    let pid = daemon.pid().unwrap();
    let second = ca.leaf(&dir, "a", &["a.test"], false);
    let (ok, out) = daemon.reload().await;
    assert!(ok, "{out}");
    assert_ne!(daemon.pid(), Some(pid));
    // The old process accepts until it has handed its listeners over and left.
    let gone = wait_exit(pid, Duration::from_secs(20)).await;
    assert!(gone.is_some(), "the old process did not exit");
    assert_eq!(tls_get(addr, &ca.der()).await, (200, second.der, https));
    let _ = std::fs::remove_dir_all(dir);
}

/// A self-signed certificate for `name` and its key, written into `dir` as
/// `<tag>.pem`/`<tag>.key`, with basicConstraints CA:TRUE (as `openssl req -x509`
/// makes it) or CA:FALSE.
fn self_signed(dir: &std::path::Path, tag: &str, name: &str, ca: bool) -> tls::Leaf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
    params.is_ca = match ca {
        true => IsCa::Ca(BasicConstraints::Unconstrained),
        false => IsCa::ExplicitNoCa,
    };
    let cert = params.self_signed(&key).unwrap();
    let leaf = tls::Leaf {
        cert: dir.join(format!("{tag}.pem")),
        key: dir.join(format!("{tag}.key")),
        der: cert.der().to_vec(),
        key_der: key.serialize_der(),
    };
    std::fs::write(&leaf.cert, cert.pem()).unwrap();
    std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
    leaf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origins_own_ca_true_certificate_as_tls_ca_is_refused_with_a_way_out() {
    let dir = scratch_dir("self-signed");
    let ca_true = self_signed(&dir, "ca-true", "origin.test", true);
    let yaml = format!(
        "listeners: [{{address: '127.0.0.1:1'}}]\n\
         upstreams:\n  \
           app: {{backends: [{{address: '127.0.0.1:2'}}], tls: {{sni: origin.test, ca: '{}'}}}}\n\
         routes: [{{upstream: app}}]\n",
        ca_true.cert.display()
    );
    refused_naming(
        &yaml,
        &[
            "upstreams.app.tls.ca: ",
            "CA:TRUE",
            "basicConstraints=CA:FALSE",
        ],
    );

    // What the message advises, a self-signed CA:FALSE certificate, is served.
    let leaf = self_signed(&dir, "ca-false", "origin.test", false);
    let (origin, count) = tls::tls_origin(&leaf).await;
    let upstream = json!({"backends": backends(&[origin]), "retries": 0,
                          "tls": {"sni": "origin.test", "ca": leaf.cert}});
    let proxy = Proxy::start(
        &Config::new()
            .upstream("app", upstream)
            .route(json!({"upstream": "app"})),
    )
    .await;
    let resp = proxy.get("/x").await;
    assert_eq!((resp.status(), resp.header("x-origin")), (200, Some("tls")));
    assert_eq!(count.load(std::sync::atomic::Ordering::Relaxed), 1);
    let _ = std::fs::remove_dir_all(dir);
}
