//! Who the client is, from outside: several `X-Forwarded-For` lines are one list
//! (RFC 9110 §5.3), IPv6 clients are counted by prefix, and an admin listener off
//! loopback needs a token.

use crate::support::client::get_with;
use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The values of every `name` line the origin received, in order (from `/echo`).
fn echoed_lines(resp: &Response, name: &str) -> Vec<String> {
    let text = resp.text();
    let head = text.split("\n\n").next().unwrap_or("").to_string();
    head.lines()
        .skip(1)
        .filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
        .collect()
}

fn behind_loopback_proxy(config: Config) -> Config {
    config.section("client_ip", json!({"trusted_proxies": ["127.0.0.1"]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_forwarded_for_lines_are_one_list() {
    let o = origin("o").await;
    let proxy = Proxy::start(&behind_loopback_proxy(Config::single(&[o.addr]))).await;
    let lines = ["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2"];
    let resp = get_with(proxy.addr, "/echo", &lines).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        echoed_lines(&resp, "x-forwarded-for"),
        ["1.1.1.1, 2.2.2.2, 127.0.0.1"]
    );
    assert_eq!(echoed_lines(&resp, "x-real-ip"), ["2.2.2.2"]);
    // Trusted hops are skipped across lines too: 127.0.0.1 in the last line is a proxy.
    let lines = ["X-Forwarded-For: 3.3.3.3", "X-Forwarded-For: 127.0.0.1"];
    let resp = get_with(proxy.addr, "/echo", &lines).await;
    assert_eq!(echoed_lines(&resp, "x-real-ip"), ["3.3.3.3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_decide_on_the_client_of_the_last_forwarded_for_line() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr]).routes(json!([
        {"path_prefix": "/denied/", "upstream": "app", "access": {"deny": ["2.2.2.2"]}},
        // One request per 100 s: a second one in the test's lifetime is refused.
        {"path_prefix": "/limited/", "upstream": "app",
         "rate_limit": {"requests_per_second": 0.01, "burst": 1, "key": "client_ip"}},
        {"upstream": "app"}
    ]));
    let proxy = Proxy::start(&behind_loopback_proxy(config)).await;
    let two_lines = ["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2"];
    let denied = get_with(proxy.addr, "/denied/x", &two_lines).await;
    assert_eq!(denied.status(), 403);
    assert_eq!(o.state.count("/denied"), 0);

    let two_lines = ["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 3.3.3.3"];
    assert_eq!(
        get_with(proxy.addr, "/limited/x", &two_lines)
            .await
            .status(),
        200
    );
    // The same client (3.3.3.3) again, now on one line: its bucket is spent.
    let again = get_with(proxy.addr, "/limited/x", &["X-Forwarded-For: 3.3.3.3"]).await;
    assert_eq!(again.status(), 429);
    // 1.1.1.1 was only a hop before it: a client of its own.
    let other = get_with(proxy.addr, "/limited/x", &["X-Forwarded-For: 1.1.1.1"]).await;
    assert_eq!(other.status(), 200);
    assert_eq!(o.state.count("/limited"), 2);
}

/// Statuses of one request per client address, in order, through a trusted proxy.
async fn statuses(proxy: &Proxy, clients: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for client in clients {
        let xff = format!("X-Forwarded-For: {client}");
        out.push(get_with(proxy.addr, "/x", &[&xff]).await.status());
    }
    out
}

fn limited_ipv6(o: &Origin, client_ip: serde_json::Value) -> Config {
    // One request per 10 s with a burst of 2: the third at once is refused.
    Config::single(&[o.addr])
        .routes(json!([{"upstream": "app",
            "rate_limit": {"requests_per_second": 0.1, "burst": 2, "key": "client_ip"}}]))
        .section("client_ip", client_ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_of_one_64_share_a_rate_limit() {
    let o = origin("o").await;
    let config = limited_ipv6(&o, json!({"trusted_proxies": ["127.0.0.1"]}));
    let proxy = Proxy::start(&config).await;
    let rotating = [
        "2001:db8::1",
        "2001:db8::2",
        "2001:db8::3",
        "2001:db8::ffff:4",
    ];
    assert_eq!(statuses(&proxy, &rotating).await, [200, 200, 429, 429]);
    // Another /64 is another client.
    let other = ["2001:db8:0:1::1", "2001:db8:0:1::2"];
    assert_eq!(statuses(&proxy, &other).await, [200, 200]);
    // IPv4 addresses stay whole, and an IPv4-mapped address is its IPv4 address.
    let v4 = ["10.0.0.1", "10.0.0.2", "::ffff:10.0.0.1", "10.0.0.1"];
    assert_eq!(statuses(&proxy, &v4).await, [200, 200, 200, 429]);
    assert_eq!(o.state.count("/x"), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_prefix_of_128_keeps_each_address_apart() {
    let o = origin("o").await;
    let client_ip = json!({"trusted_proxies": ["127.0.0.1"], "ipv6_prefix": 128});
    let proxy = Proxy::start(&limited_ipv6(&o, client_ip)).await;
    let rotating = ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::1"];
    assert_eq!(statuses(&proxy, &rotating).await, [200, 200, 200, 200]);
    assert_eq!(statuses(&proxy, &["2001:db8::1"]).await, [429]);
}

const MINIMAL: &str = "listeners: [{address: \"127.0.0.1:1\"}]\n\
    upstreams: {app: {backends: [{address: \"127.0.0.1:2\"}]}}\n\
    routes: [{upstream: app}]\n";

#[test]
fn the_ipv6_prefix_is_validated_with_its_path() {
    for bad in ["0", "129", "-1"] {
        let yaml = format!("{MINIMAL}client_ip: {{ipv6_prefix: {bad}}}\n");
        refused_naming(&yaml, &["client_ip.ipv6_prefix: "]);
    }
    let yaml = format!("{MINIMAL}client_ip: {{ipv6_prefix: 0}}\n");
    refused_naming(&yaml, &["client_ip.ipv6_prefix: must be from 1 to 128"]);
    for good in ["1", "48", "128"] {
        let (ok, out) = check_config(&format!("{MINIMAL}client_ip: {{ipv6_prefix: {good}}}\n"));
        assert!(ok, "{out}");
    }
}

const TOKEN_NEEDED: &str = "admin.token: required when admin.address";

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    for address in [
        "0.0.0.0:9901",
        "[::]:9901",
        "192.0.2.1:9901",
        "[2001:db8::1]:9901",
    ] {
        let yaml = format!("{MINIMAL}admin: {{address: \"{address}\"}}\n");
        let out = refused_naming(&yaml, &[TOKEN_NEEDED, "127.0.0.1"]);
        assert!(out.contains("is not a loopback address"), "{out}");
        let with_token = format!("{MINIMAL}admin: {{address: \"{address}\", token: s3cret}}\n");
        let (ok, out) = check_config(&with_token);
        assert!(ok, "{out}");
    }
    for address in ["127.0.0.1:9901", "127.3.2.1:9901", "[::1]:9901"] {
        let (ok, out) = check_config(&format!("{MINIMAL}admin: {{address: \"{address}\"}}\n"));
        assert!(ok, "{address}: {out}");
    }
}

#[test]
fn parapet_does_not_start_with_an_open_admin_listener() {
    let dir = scratch_dir("open-admin");
    let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    // A documentation address (RFC 5737), never bound: nothing is opened off loopback.
    let config = Config::single(&[dead_addr()])
        .section("admin", json!({"address": "192.0.2.1:9901"}))
        .for_process(&dir, listen, 0);
    let conf = dir.join("parapet.yaml");
    std::fs::write(&conf, config.yaml()).unwrap();
    let log = dir.join("stderr.log");
    let mut child = Command::new(BIN)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .expect("start parapet");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.unwrap_or_else(|| panic!("still running after 10 s:\n{stderr}"));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(TOKEN_NEEDED), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_line_of_a_response_names_hop_by_hop_fields() {
    let o = origin("o").await;
    let proxy = proxy_in_front_of(&o).await;
    let path = "/gen/conn?set-Connection=x-first&set-Connection=x-second\
        &set-X-First=1&set-X-Second=2&set-X-Kept=3";
    let resp = proxy.get(path).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("x-first"), None);
    assert_eq!(resp.header("x-second"), None, "named on the second line");
    assert_eq!(resp.header("x-kept"), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accept_encoding_line_is_negotiated() {
    let o = origin("o").await;
    let route = json!({"upstream": "app", "compression": {"min_size": 100}});
    let proxy = Proxy::start(&Config::single(&[o.addr]).routes(json!([route]))).await;
    let page = "/gen/page?set-content-type=text/html&pad=4000";
    let lines = ["Accept-Encoding: identity", "Accept-Encoding: gzip"];
    let resp = get_with(proxy.addr, page, &lines).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("content-encoding"), Some("gzip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_page_reads_every_accept_line() {
    let o = origin("o").await;
    let config = Config::single(&[o.addr]).routes(json!([
        {"upstream": "app", "access": {"deny": ["127.0.0.0/8"]}}
    ]));
    let proxy = Proxy::start(&config).await;
    let lines = ["Accept: text/html", "Accept: application/json"];
    let resp = get_with(proxy.addr, "/x", &lines).await;
    assert_eq!(resp.status(), 403);
    assert!(
        resp.text().starts_with("{\"status\":403"),
        "{}",
        resp.text()
    );
}
