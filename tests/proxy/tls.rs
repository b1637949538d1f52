//! TLS and HTTP/2 at the edge: certificates chosen by SNI, HTTP/2 by ALPN or by
//! prior knowledge (h2c), HSTS and the redirect to https, and certificates that
//! `parapet -t` refuses with their field.

use crate::support::tls::{self, TestCa};
use crate::support::*;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A proxy in front of `o` with a TLS listener serving `a.test` (the default)
/// and `b.test`/`*.b.test`, with `extra` keys on that listener.
pub struct Edge {
    proxy: Proxy,
    pub tls: SocketAddr,
    ca: TestCa,
    a: tls::Leaf,
    b: tls::Leaf,
    _dir: std::path::PathBuf,
}

pub async fn edge(o: &Origin, extra: serde_json::Value) -> Edge {
    let dir = scratch_dir("certs");
    let ca = TestCa::new();
    let a = ca.leaf(&dir, "a", &["a.test"], false);
    let b = ca.leaf(&dir, "b", &["b.test", "*.b.test"], false);
    let tls_addr = free_addr();
    let listener = json!({
        "address": tls_addr.to_string(),
        "tls": {"certificates": [
            {"cert": a.cert, "key": a.key},
            {"cert": b.cert, "key": b.key},
        ]},
    });
    let listener = merged(listener, extra);
    let proxy = Proxy::start(&Config::single(&[o.addr]).listener(listener)).await;
    proxy.wait_accepting(tls_addr).await;
    Edge {
        proxy,
        tls: tls_addr,
        ca,
        a,
        b,
        _dir: dir,
    }
}

/// One HTTP/1.1 GET over `io`; the response.
async fn get_over<S: AsyncRead + AsyncWrite + Unpin>(io: S, host: &str, path: &str) -> Response {
    let mut io = BufReader::new(io);
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    io.get_mut().write_all(req.as_bytes()).await.unwrap();
    let head = parapet::demo::wire::read_head(&mut io)
        .await
        .unwrap()
        .unwrap();
    let mut body = Vec::new();
    let framing = parapet::demo::wire::response_framing(&head, "GET");
    parapet::demo::wire::read_body(&mut io, framing, |b| body.extend_from_slice(b))
        .await
        .unwrap();
    Response { head, body }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_alpn_the_protocol() {
    let o = origin("o").await;
    let e = edge(&o, json!({})).await;
    let ca = e.ca.der();
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];
    for (name, want) in [
        ("a.test", &e.a.der),
        ("b.test", &e.b.der),
        ("x.b.test", &e.b.der),
    ] {
        let conn = tls::connect(e.tls, &ca, name, true, both).await.unwrap();
        assert_eq!(&tls::served(&conn), want, "{name}");
        assert_eq!(tls::alpn(&conn).as_deref(), Some(&b"h2"[..]), "{name}");
    }
    // No SNI: the first certificate.
    let conn = tls::connect(e.tls, &ca, "a.test", false, both)
        .await
        .unwrap();
    assert_eq!(tls::served(&conn), e.a.der);

    // HTTP/1.1 when the client asks for it, and the origin hears it was https.
    let conn = tls::connect(e.tls, &ca, "b.test", true, &[b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(tls::alpn(&conn).as_deref(), Some(&b"http/1.1"[..]));
    let resp = get_over(conn, "b.test", "/echo").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.echoed("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(resp.header("strict-transport-security"), None);
}

/// `n` concurrent GETs on one HTTP/2 connection over `io`; each body.
async fn h2_gets<S>(io: S, authority: &str, n: usize) -> Vec<(u16, String)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, connection) = h2::client::handshake(io).await.unwrap();
    tokio::spawn(connection);
    let mut streams = Vec::new();
    for i in 0..n {
        let mut client = client.clone().ready().await.unwrap();
        let uri = format!("https://{authority}/echo/{i}");
        let req = http::Request::get(uri).body(()).unwrap();
        let (response, _) = client.send_request(req, true).unwrap();
        streams.push(tokio::spawn(async move {
            let (status, bytes) = crate::support::client::h2_answer(response.await.unwrap()).await;
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }));
    }
    let mut out = Vec::new();
    for s in streams {
        out.push(s.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_http2_streams_on_one_connection() {
    let o = origin("o").await;
    let e = edge(&o, json!({"hsts": "180d"})).await;
    let conn = tls::connect(e.tls, &e.ca.der(), "a.test", true, &[b"h2"])
        .await
        .unwrap();
    let answers = h2_gets(conn, "a.test", 100).await;
    for (i, (status, body)) in answers.iter().enumerate() {
        assert_eq!(*status, 200);
        // The origin speaks HTTP/1.1 and got a Host from :authority.
        assert!(
            body.starts_with(&format!("GET /echo/{i} HTTP/1.1\n")),
            "{body}"
        );
        assert!(
            body.to_ascii_lowercase().contains("\nhost: a.test\n"),
            "{body}"
        );
        assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
    }
    assert_eq!(o.state.count("/echo/"), 100);

    // HSTS on the TLS listener's answers.
    let conn = tls::connect(e.tls, &e.ca.der(), "a.test", true, &[b"http/1.1"])
        .await
        .unwrap();
    let resp = get_over(conn, "a.test", "/echo").await;
    assert_eq!(
        resp.header("strict-transport-security"),
        Some("max-age=15552000")
    );
    drop(e.proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_by_prior_knowledge_beside_http1() {
    let o = origin("o").await;
    let h2c = free_addr();
    let log = scratch_dir("h2c-log").join("access.log");
    let config = Config::single(&[o.addr])
        .listener(json!({"address": h2c.to_string(), "h2c": true}))
        .section("access_log", json!({"path": log}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(h2c).await;
    let tcp = tokio::net::TcpStream::connect(h2c).await.unwrap();
    let answers = h2_gets(tcp, "c.test", 10).await;
    assert!(answers
        .iter()
        .all(|(status, body)| *status == 200 && body.contains("x-forwarded-proto: http\n")));
    // HTTP/1.1 on the same listener still works.
    assert_eq!(get(h2c, "/echo").await.status(), 200);
    assert_eq!(o.state.count("/echo"), 11);
    let logged = eventually(std::time::Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 11)
    })
    .await;
    assert!(logged);
    let text = std::fs::read_to_string(&log).unwrap();
    let h2 = r#""scheme":"http","protocol":"HTTP/2.0","host":"c.test""#;
    assert_eq!(text.matches(h2).count(), 10, "{text}");
    let h1 = r#""scheme":"http","protocol":"HTTP/1.1","host":"test""#;
    assert_eq!(text.matches(h1).count(), 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleartext_redirects_to_https() {
    let o = origin("o").await;
    let redirect = free_addr();
    let listener = json!({"address": redirect.to_string(), "redirect_https": true});
    let proxy = Proxy::start(&Config::single(&[o.addr]).listener(listener)).await;
    proxy.wait_accepting(redirect).await;
    let req = b"GET /a/b?c=1&d HTTP/1.1\r\nHost: www.example.com:8080\r\n\r\n";
    let resp = client::raw(redirect, req, "GET").await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(
        resp.header("location"),
        Some("https://www.example.com/a/b?c=1&d")
    );
    assert_eq!(o.state.total(), 0);
    // The process's own listener has no redirect.
    assert_eq!(proxy.get("/echo").await.status(), 200);
}

#[test]
fn bad_certificates_are_named_by_parapet_t() {
    let dir = scratch_dir("badcerts");
    let ca = TestCa::new();
    let good = ca.leaf(&dir, "good", &["a.test"], false);
    let other = ca.leaf(&dir, "other", &["b.test"], false);
    let expired = ca.leaf(&dir, "expired", &["c.test"], true);
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let missing = dir.join("missing.pem");
    let certs = [
        (&good.cert, &other.key),
        (&expired.cert, &expired.key),
        (&missing, &good.key),
        (&not_pem, &good.key),
    ];
    let list: Vec<String> = certs
        .iter()
        .map(|(c, k)| format!("{{cert: '{}', key: '{}'}}", c.display(), k.display()))
        .collect();
    let yaml = format!(
        "listeners: [{{address: '127.0.0.1:1', tls: {{certificates: [{}]}}}}]\n\
         upstreams: {{app: {{backends: [{{address: '127.0.0.1:2'}}]}}}}\n\
         routes: [{{upstream: app}}]\n",
        list.join(", ")
    );
    let at = "listeners[0].tls.certificates";
    refused_naming(
        &yaml,
        &[
            format!("{at}[0].key: {}: does not go with", other.key.display()),
            format!("{at}[1].cert: {}: expired on", expired.cert.display()),
            format!("{at}[2].cert: cannot read {}", missing.display()),
            format!(
                "{at}[3].cert: {}: no certificate in the file",
                not_pem.display()
            ),
        ],
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_limits_are_announced_and_kept() {
    let o = origin("o").await;
    let h2c = free_addr();
    let limits = json!({"http2_max_concurrent_streams": 7, "max_request_header_bytes": "4KiB"});
    let config = Config::single(&[o.addr])
        .listener(json!({"address": h2c.to_string(), "h2c": true}))
        .section("limits", limits);
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(h2c).await;
    let tcp = tokio::net::TcpStream::connect(h2c).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    // Once an answer came, the server's SETTINGS have too.
    let req = http::Request::get("http://c.test/ok").body(()).unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(client.current_max_send_streams(), 7);
    // A header list over the limit never reaches the origin.
    let big = "x".repeat(8 << 10);
    let req = http::Request::get("http://c.test/echo")
        .header("x-big", big)
        .body(())
        .unwrap();
    let (response, _) = client.send_request(req, true).unwrap();
    match response.await {
        Ok(resp) => assert!(resp.status().as_u16() >= 400, "{}", resp.status()),
        Err(e) => assert!(e.is_reset() || e.is_go_away() || e.is_io(), "{e}"),
    }
    assert_eq!(o.state.count("/echo"), 0);
}

/// HTTPS GETs, a new connection each, until `stop`; (answered 200, failed).
async fn https_load(
    addr: SocketAddr,
    ca: Vec<u8>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (usize, usize) {
    let (mut ok, mut failed) = (0, 0);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) && ok + failed < 5000 {
        let answered = async {
            let conn = tls::connect(addr, &ca, "a.test", true, &[b"http/1.1"])
                .await
                .ok()?;
            Some(get_over(conn, "a.test", "/echo").await.status())
        };
        match answered.await {
            Some(200) => ok += 1,
            _ => failed += 1,
        }
    }
    (ok, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_and_drops_nothing() {
    let o = origin("o").await;
    let dir = scratch_dir("rotate");
    let ca = TestCa::new();
    let old = ca.leaf(&dir, "site", &["a.test"], false);
    let tls_addr = free_addr();
    let listener = json!({
        "address": tls_addr.to_string(),
        "tls": {"certificates": [{"cert": old.cert, "key": old.key}]},
    });
    let config = Config::single(&[o.addr]).listener(listener);
    let mut daemon = process::Daemon::start(free_port(), 1, &config).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(https_load(tls_addr, ca.der(), stop.clone()));
    let served = async || {
        let conn = tls::connect(tls_addr, &ca.der(), "a.test", true, &[]).await;
        conn.map(|c| tls::served(&c)).unwrap_or_default()
    };
    assert_eq!(served().await, old.der);

    // Rotate: new files in place, then the reload operators run.
    let new = ca.leaf(&dir, "site", &["a.test"], false);
    let (ok, out) = daemon.reload().await;
    assert!(ok, "{out}\n{}", daemon.log());
    let rotated = eventually(std::time::Duration::from_secs(10), async || {
        served().await == new.der
    })
    .await;
    assert!(rotated, "the new certificate is not served");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, failed) = load.await.unwrap();
    assert_eq!(failed, 0, "{answered} answered");
    assert!(answered > 20, "too little load: {answered}");
    let _ = std::fs::remove_dir_all(dir);
}
