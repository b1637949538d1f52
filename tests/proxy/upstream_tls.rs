//! TLS and HTTP/2 to the origin: certificates verified against `sni` with the
//! configured CA (a wrong one is a 502, never a silent downgrade), and HTTP/2
//! with gRPC-style trailers passed through end to end.

use crate::support::tls::{self, TestCa};
use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

/// Parapet in front of one HTTPS backend with upstream `tls`.
async fn via_tls(backend: SocketAddr, tls: serde_json::Value) -> Proxy {
    let upstream = json!({"backends": backends(&[backend]), "retries": 0, "tls": tls});
    let config = Config::new()
        .upstream("app", upstream)
        .route(json!({"upstream": "app"}));
    Proxy::start(&config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_origin_is_verified_against_its_ca() {
    let dir = scratch_dir("origin-tls");
    let ca = TestCa::new();
    let leaf = ca.leaf(&dir, "origin", &["origin.test"], false);
    let (origin, count) = tls::tls_origin(&leaf).await;
    let ca_file = ca.write_pem(&dir);

    let proxy = via_tls(origin, json!({"sni": "origin.test", "ca": ca_file})).await;
    let resp = proxy.get("/x").await;
    assert_eq!((resp.status(), resp.header("x-origin")), (200, Some("tls")));
    assert_eq!(count.load(Ordering::Relaxed), 1);

    // Another CA: the handshake fails, the client gets 502 and the log says why.
    let other_dir = scratch_dir("other-ca");
    let other = TestCa::new().write_pem(&other_dir);
    let proxy = via_tls(origin, json!({"sni": "origin.test", "ca": other})).await;
    assert_eq!(proxy.get("/x").await.status(), 502);
    // The wrong name, with the right CA: 502 too.
    let wrong_name = via_tls(origin, json!({"sni": "elsewhere.test", "ca": ca_file})).await;
    assert_eq!(wrong_name.get("/x").await.status(), 502);
    assert_eq!(
        count.load(Ordering::Relaxed),
        1,
        "no request without a verified origin"
    );
    let logged = eventually(std::time::Duration::from_secs(5), async || {
        proxy.stderr().to_ascii_lowercase().contains("certificate")
    })
    .await;
    assert!(logged, "{}", proxy.stderr());

    // verify: false is the operator's explicit choice.
    let unverified = via_tls(
        origin,
        json!({"sni": "x.test", "verify": false, "ca": other}),
    )
    .await;
    assert_eq!(unverified.get("/x").await.status(), 200);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(other_dir);
}

#[test]
fn upstream_tls_settings_are_checked() {
    let yaml = "listeners: [{address: '127.0.0.1:1'}]\n\
                upstreams:\n  \
                  a: {backends: [{address: '127.0.0.1:2'}], tls: {}}\n  \
                  b: {backends: [{address: '127.0.0.1:3'}], tls: {sni: x.test, ca: /nonexistent.pem}}\n\
                routes: [{upstream: a}, {upstream: b}]\n";
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains("upstreams.a.tls.sni: required: the name sent"),
        "{out}"
    );
    assert!(
        out.contains("upstreams.b.tls.ca: cannot read /nonexistent.pem"),
        "{out}"
    );
}

/// An HTTP/2 (prior knowledge) origin answering each request with a body and
/// gRPC-style trailers; returns its address and how many requests it answered.
async fn h2_origin() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = count.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answered = answered.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    answered.fetch_add(1, Ordering::Relaxed);
                    let path = req.uri().path().to_string();
                    let resp = http::Response::builder()
                        .status(200)
                        .header("content-type", "application/grpc")
                        .body(())
                        .unwrap();
                    let mut send = respond.send_response(resp, false).unwrap();
                    send.send_data(bytes::Bytes::from(format!("h2 {path}")), false)
                        .unwrap();
                    let mut trailers = http::HeaderMap::new();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                    trailers.insert("grpc-message", "fine".parse().unwrap());
                    send.send_trailers(trailers).unwrap();
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_to_the_origin_passes_trailers_through() {
    let (origin, count) = h2_origin().await;
    let h2c = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let upstream = json!({"backends": backends(&[origin]), "http2": true});
    let config = Config::new()
        .upstream("app", upstream)
        .route(json!({"upstream": "app"}))
        .listener(json!({"address": h2c.to_string(), "h2c": true}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(h2c).await;

    let tcp = tokio::net::TcpStream::connect(h2c).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    for i in 0..3 {
        let mut client = client.clone().ready().await.unwrap();
        let req = http::Request::post(format!("http://svc.test/pkg.Svc/Call{i}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, _) = client.send_request(req, true).unwrap();
        let resp = response.await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        assert_eq!(bytes, format!("h2 /pkg.Svc/Call{i}").as_bytes());
        let trailers = body.trailers().await.unwrap().expect("trailers");
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
        assert_eq!(trailers.get("grpc-message").unwrap(), "fine");
    }
    assert_eq!(count.load(Ordering::Relaxed), 3);
    // HTTP/1.1 clients are served by the HTTP/2 origin too.
    let resp = proxy.get("/plain").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "h2 /plain");
}
