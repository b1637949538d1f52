//! The request as the origin will act on it: the path normalised once before
//! routing (RFC 3986 §6.2.2, §5.2.4, repeated slashes merged), an absolute-form
//! target's authority as the host (RFC 9112 §3.2.2), and `Host` lowercased without
//! its trailing dot, so that routes, policies, the cache key and the origin agree.

use crate::support::client::{raw, request};
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// `/api/` denied to loopback clients, everything else let through to `o`.
fn denied_api(o: &Origin) -> Config {
    Config::new()
        .upstream(
            "app",
            json!({"backends": backends(&[o.addr]), "retries": 0}),
        )
        .route(json!({"path_prefix": "/api/", "upstream": "app",
                      "access": {"deny": ["127.0.0.0/8"]}}))
        .route(json!({"upstream": "app"}))
}

/// One request of raw bytes on a fresh connection.
async fn send(addr: SocketAddr, bytes: &str) -> Response {
    raw(addr, bytes.as_bytes(), "GET").await.expect("response")
}

/// The request line the origin's `/echo` received.
fn request_line(resp: &Response) -> String {
    resp.text().lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_a_denied_prefix_is_refused() {
    let o = origin("o").await;
    let proxy = Proxy::start(&denied_api(&o)).await;
    for path in [
        "/api/x",
        "//api/x",
        "/%61pi/x",
        "/%61%70%69/x",
        "/x/../api/x",
        "/x/%2e%2E/api/x",
        "/./api/x",
        "/a/b/../../api/x",
        "/api//x",
        "///api/x/",
    ] {
        let resp = send(proxy.addr, &request("GET", path, &[])).await;
        assert_eq!(resp.status(), 403, "{path}");
    }
    assert_eq!(o.state.total(), 0, "the origin saw none of them");
    // The catch-all still serves what is not under /api/.
    let resp = send(proxy.addr, &request("GET", "/apix/../other", &[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!((o.state.count("/other"), o.state.total()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_gets_the_normalised_path_and_the_query_untouched() {
    let o = origin("o").await;
    let proxy = Proxy::start(&denied_api(&o)).await;
    for (sent, received) in [
        ("/a//b/../echo?q=%61", "/a/echo?q=%61"),
        ("/echo?x=/../&y=//z%7e", "/echo?x=/../&y=//z%7e"),
        ("/%7Euser/%e2%82%ac/./echo", "/~user/%E2%82%AC/echo"),
        ("/../../echo", "/echo"),
        ("/c/%2e/echo/..", "/c/"),
        ("/%2e%2e/echo", "/echo"),
    ] {
        let resp = send(proxy.addr, &request("GET", sent, &[])).await;
        assert_eq!(resp.status(), 200, "{sent}");
        if received.contains("echo") {
            assert_eq!(request_line(&resp), format!("GET {received} HTTP/1.1"));
        }
    }
    assert_eq!(o.state.count("/c/"), 1, "/c/%2e/echo/.. arrived as /c/");
    // `OPTIONS *` is left alone: no path, so no route (every prefix starts with `/`).
    let resp = send(proxy.addr, &request("OPTIONS", "*", &[])).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_slashes_are_kept_by_default_and_refused_when_asked() {
    let o = origin("o").await;
    let strict = free_addr();
    let config = denied_api(&o)
        .listener(json!({"address": strict.to_string(), "path_normalization": "reject"}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(strict).await;
    // Kept: never decoded, only their hex uppercased; no route sees /api/ in them.
    let resp = send(proxy.addr, &request("GET", "/api%2fx/echo", &[])).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(request_line(&resp), "GET /api%2Fx/echo HTTP/1.1");
    let resp = send(proxy.addr, &request("GET", "/a%5cb/%2F/echo", &[])).await;
    assert_eq!(request_line(&resp), "GET /a%5Cb/%2F/echo HTTP/1.1");
    assert_eq!(o.state.total(), 2);
    // Refused on the listener that says so; other paths still pass there.
    for path in ["/api%2Fx/echo", "/a%5cb/echo", "/a%2f..%2fapi/x"] {
        let resp = send(strict, &request("GET", path, &[])).await;
        assert_eq!(resp.status(), 400, "{path}");
    }
    assert_eq!(o.state.total(), 2);
    let resp = send(strict, &request("GET", "/a//echo", &[])).await;
    assert_eq!(request_line(&resp), "GET /a/echo HTTP/1.1");
    assert_eq!(o.state.total(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_percent_escape_is_a_bad_request() {
    let o = origin("o").await;
    let log = scratch_dir("path-log").join("access.log");
    let proxy = Proxy::start(&denied_api(&o).section("access_log", json!({"path": log}))).await;
    let paths = ["/a%zz/echo", "/echo%4", "/echo%", "/%g1pi/x"];
    for path in paths {
        let resp = send(proxy.addr, &request("GET", path, &[])).await;
        assert_eq!(resp.status(), 400, "{path}");
    }
    assert_eq!(o.state.total(), 0);
    let logged = eventually(Duration::from_secs(5), async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= paths.len())
    })
    .await;
    assert!(logged);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches(r#""refused_by":"path""#).count(),
        paths.len(),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_redirect_names_the_normal_host_and_path() {
    let o = origin("o").await;
    let redirect = free_addr();
    let listener = json!({"address": redirect.to_string(), "redirect_https": true});
    let proxy = Proxy::start(&Config::single(&[o.addr]).listener(listener)).await;
    proxy.wait_accepting(redirect).await;
    let req = "GET /a//b/../%63?q=/../ HTTP/1.1\r\nHost: WWW.Example.COM.:8080\r\n\r\n";
    let resp = send(redirect, req).await;
    assert_eq!(resp.status(), 301);
    let location = resp.header("location");
    assert_eq!(location, Some("https://www.example.com/a/c?q=/../"));
    assert_eq!(o.state.total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_names_the_host() {
    let o = origin("o").await;
    let config = Config::new()
        .upstream(
            "app",
            json!({"backends": backends(&[o.addr]), "retries": 0}),
        )
        .route(json!({"host": "admin.example.com", "upstream": "app",
                      "access": {"deny": ["127.0.0.0/8"]}}))
        .route(json!({"upstream": "app"}));
    let proxy = Proxy::start(&config).await;
    for target in [
        "http://admin.example.com/secret",
        "http://Admin.Example.COM./secret",
        "http://admin.example.com:8080/x/../secret",
    ] {
        let resp = send(proxy.addr, &format!("GET {target} HTTP/1.0\r\n\r\n")).await;
        assert_eq!(resp.status(), 403, "{target}");
    }
    assert_eq!(o.state.total(), 0);
    // Let through: the origin gets the origin-form target and the authority as Host.
    let target = "http://WWW.Example.com:8080/a//../echo?q=%61";
    let resp = send(proxy.addr, &format!("GET {target} HTTP/1.0\r\n\r\n")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(request_line(&resp), "GET /echo?q=%61 HTTP/1.1");
    assert_eq!(resp.echoed("host").as_deref(), Some("www.example.com:8080"));
    let target = "http://www.example.com?q=1";
    let resp = send(proxy.addr, &format!("GET {target} HTTP/1.0\r\n\r\n")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(o.state.count("/?q=1"), 1, "an empty path is /");
    assert_eq!(o.state.total(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_gets_the_host_the_cache_keyed() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr])
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section("cache", json!({"default_ttl": "1m"}));
    let proxy = Proxy::start(&config).await;
    let first = send(
        proxy.addr,
        "GET /echo HTTP/1.1\r\nHost: WWW.Example.COM.\r\n\r\n",
    )
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.echoed("host").as_deref(), Some("www.example.com"));
    let second = send(
        proxy.addr,
        "GET /echo HTTP/1.1\r\nHost: www.example.com\r\n\r\n",
    )
    .await;
    let status = second.header("cache-status").unwrap_or_default();
    assert!(status.contains("hit"), "{status}");
    assert_eq!(second.body, first.body);
    assert_eq!(o.state.count("/echo"), 1);
    // The port stays.
    let resp = send(
        proxy.addr,
        "GET /echo?p HTTP/1.1\r\nHost: Example.ORG.:8080\r\n\r\n",
    )
    .await;
    assert_eq!(resp.echoed("host").as_deref(), Some("example.org:8080"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_requests_are_normalised_the_same_way() {
    let o = origin("o").await;
    let h2c = free_addr();
    let config = denied_api(&o).listener(json!({"address": h2c.to_string(), "h2c": true}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(h2c).await;
    let tcp = tokio::net::TcpStream::connect(h2c).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let get = async |uri: &str| {
        let mut client = client.clone().ready().await.unwrap();
        let req = http::Request::get(uri).body(()).unwrap();
        let (response, _) = client.send_request(req, true).unwrap();
        let (status, bytes) = crate::support::client::h2_answer(response.await.unwrap()).await;
        (status, String::from_utf8_lossy(&bytes).to_ascii_lowercase())
    };
    for uri in [
        "http://c.test//api/x",
        "http://c.test/%61pi/x",
        "http://c.test/x/../api/x",
    ] {
        assert_eq!(get(uri).await.0, 403, "{uri}");
    }
    assert_eq!(o.state.total(), 0);
    let (status, body) = get("http://WWW.Example.COM./a//b/../echo?q=%61").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("get /a/echo?q=%61 http/1.1\n"), "{body}");
    assert!(body.contains("\nhost: www.example.com\n"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_names_the_url_in_any_spelling() {
    let o = origin("o").await;
    let admin = free_addr();
    let config = Config::single(&[o.addr])
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section("cache", json!({"default_ttl": "1m"}))
        .section("admin", json!({"address": admin.to_string()}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    // Stored under its normal form, whichever spelling fetched it.
    assert_eq!(proxy.get("/x//%65cho?a=%61").await.status(), 200);
    let hit = proxy.get("/x/echo?a=%61").await;
    assert!(hit
        .header("cache-status")
        .unwrap_or_default()
        .contains("hit"));
    assert_eq!(o.state.count("/x/echo"), 1);
    let purge = "PURGE /x/./y/../%65cho?a=%61 HTTP/1.1\r\nHost: TEST.\r\n\r\n";
    let resp = raw(admin, purge.as_bytes(), "PURGE").await.unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text());
    assert_eq!(resp.text(), "{\"purged\":1}\n");
    let body = r#"{"host":"test","path":"//x/echo?a=%61"}"#;
    proxy.get("/x/echo?a=%61").await;
    let req = format!(
        "POST /cache/purge HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let resp = raw(admin, req.as_bytes(), "POST").await.unwrap();
    assert_eq!(resp.text(), "{\"purged\":1}\n");
}
