//! Compression at the edge: negotiated from `Accept-Encoding` among the route's
//! codings, only for the listed types and sizes, never twice, with
//! `Vary: Accept-Encoding`, no stale `Content-Length` and a weakened `ETag`; on a
//! caching route one stored copy serves both compressed and plain answers.

use crate::support::client::request;
use crate::support::*;
use std::io::Read;

/// A proxy whose catch-all route compresses (min_size 100) and, when `cache`,
/// caches.
async fn compressing(o: &Origin, cache: bool) -> Proxy {
    let route = json!({
        "upstream": "app",
        "cache": cache,
        "compression": {"min_size": 100},
    });
    let dead = json!({"path_prefix": "/dead/", "upstream": "dead", "compression": {"min_size": 1}});
    let mut config = Config::single(&[o.addr])
        .upstream(
            "dead",
            json!({"backends": backends(&[dead_addr()]), "retries": 0}),
        )
        .routes(json!([dead, route]));
    if cache {
        config = config.section("cache", json!({"max_size": "16MiB"}));
    }
    Proxy::start(&config).await
}

async fn fetch(proxy: &Proxy, path: &str, accept: Option<&str>) -> Response {
    let header = accept.map(|a| format!("Accept-Encoding: {a}"));
    let headers: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    conn.send(request("GET", path, &headers).as_bytes())
        .await
        .unwrap();
    conn.response("GET").await.unwrap()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

const PAGE: &str = "/gen/page?set-content-type=text/html&set-etag=%22v1%22&pad=4000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_client_gets_gzip_and_others_the_original() {
    let o = origin("o").await;
    let proxy = compressing(&o, false).await;
    let resp = fetch(&proxy, PAGE, Some("gzip, deflate")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
    assert!(resp
        .header("vary")
        .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")));
    assert_eq!(resp.header("etag"), Some("W/\"v1\""));
    assert!(resp.body.len() < 1000, "{} bytes", resp.body.len());
    let text = gunzip(&resp.body);
    assert!(text.starts_with("gen 1 ae=gzip, deflate\n"), "{text:.40}");
    assert_eq!(text.len(), "gen 1 ae=gzip, deflate\n".len() + 4000);
    if let Some(length) = resp.header("content-length") {
        assert_eq!(length.parse::<usize>().unwrap(), resp.body.len());
    }

    let plain = fetch(&proxy, PAGE, None).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("etag"), Some("\"v1\""));
    assert_eq!(plain.body.len(), "gen 2 ae=-\n".len() + 4000);

    // The client's q-values decide among the route's codings; q=0 refuses one.
    let zstd = fetch(&proxy, PAGE, Some("gzip;q=0.5, br, zstd")).await;
    assert_eq!(zstd.header("content-encoding"), Some("zstd"));
    let decoded = zstd::stream::decode_all(&zstd.body[..]).unwrap();
    assert!(decoded.starts_with(b"gen 3 ae=gzip;q=0.5, br, zstd\n"));
    assert_eq!(
        decoded.len(),
        "gen 3 ae=gzip;q=0.5, br, zstd\n".len() + 4000
    );
    let refused = fetch(&proxy, PAGE, Some("gzip;q=0")).await;
    assert_eq!(refused.header("content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_listed_types_and_sizes_and_never_twice() {
    let o = origin("o").await;
    let proxy = compressing(&o, false).await;
    let small = fetch(
        &proxy,
        "/gen/s?set-content-type=text/html&pad=10",
        Some("gzip"),
    )
    .await;
    assert_eq!(small.header("content-encoding"), None);
    let image = fetch(
        &proxy,
        "/gen/i?set-content-type=image/png&pad=4000",
        Some("gzip"),
    )
    .await;
    assert_eq!(image.header("content-encoding"), None);
    // Already encoded by the origin: passed on as it came.
    let path = "/gen/z?set-content-type=text/html&set-content-encoding=gzip&pad=4000";
    let encoded = fetch(&proxy, path, Some("gzip")).await;
    assert_eq!(encoded.header("content-encoding"), Some("gzip"));
    assert!(encoded.body.starts_with(b"gen 1 ae=gzip\n"));
    // Parapet's own error pages are not compressed.
    let failed = fetch(&proxy, "/dead/x", Some("gzip")).await;
    assert_eq!(failed.status(), 502);
    assert_eq!(failed.header("content-encoding"), None);
    assert!(failed.text().contains("bad gateway"), "{}", failed.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_copy_is_compressed_on_the_way_out() {
    let o = origin("o").await;
    let proxy = compressing(&o, true).await;
    let path = "/gen/cached?set-content-type=text/html&set-cache-control=max-age%3D60&pad=3000";
    let zipped = fetch(&proxy, path, Some("gzip")).await;
    assert_eq!(zipped.header("content-encoding"), Some("gzip"));
    let plain = fetch(&proxy, path, None).await;
    assert_eq!(plain.header("content-encoding"), None);
    let zipped_again = fetch(&proxy, path, Some("gzip")).await;
    assert_eq!(zipped_again.header("content-encoding"), Some("gzip"));
    // One origin fetch: the stored copy is the origin's, compressed per answer.
    assert_eq!(o.state.count("/gen/cached"), 1);
    let text = gunzip(&zipped_again.body);
    assert_eq!(text.as_bytes(), &plain.body[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brotli_answer_is_a_complete_stream() {
    let o = origin("o").await;
    let route =
        json!({"upstream": "app", "compression": {"algorithms": ["br", "gzip"], "min_size": 100}});
    let proxy = Proxy::start(&Config::single(&[o.addr]).routes(json!([route]))).await;
    let resp = fetch(&proxy, PAGE, Some("br")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("content-encoding"), Some("br"));
    // A stream that was flushed but never finished lacks its last meta-block:
    // the decoder calls it invalid.
    let mut text = Vec::new();
    let decoded = brotli::Decompressor::new(&resp.body[..], 4096).read_to_end(&mut text);
    assert!(decoded.is_ok(), "{decoded:?} after {} bytes", text.len());
    assert!(text.starts_with(b"gen 1 ae=br\n"));
    assert_eq!(text.len(), "gen 1 ae=br\n".len() + 4000);
    // The route's order breaks the tie.
    let either = fetch(&proxy, PAGE, Some("gzip, br")).await;
    assert_eq!(either.header("content-encoding"), Some("br"));
}

#[test]
fn compression_settings_are_checked() {
    let yaml = "listeners: [{address: '127.0.0.1:1'}]\n\
                upstreams: {app: {backends: [{address: '127.0.0.1:2'}]}}\n\
                routes: [{upstream: app, compression: {algorithms: [gzip, lz4, br], types: [html]}}]\n";
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains("routes[0].compression.algorithms[1]: 'lz4' is not one of gzip, zstd, br"),
        "{out}"
    );
    assert!(!out.contains("algorithms[2]"), "br is offered: {out}");
    assert!(out.contains("routes[0].compression.types[0]"), "{out}");
}
