//! The shield under attack (issue 23): no cookie of one client replayed to
//! another, refreshes that clients ask for collapsed into one origin request, only
//! unsafe methods invalidating, and memory held to `max_size`.

use crate::support::client::{get_with, raw, request};
use crate::support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A `/gen` target whose response carries these headers (and `extra` parameters).
fn gen(path: &str, headers: &[(&str, &str)], extra: &str) -> String {
    let mut out = format!("/gen{path}?");
    for (name, value) in headers {
        let value: String = value
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        out.push_str(&format!("set-{name}={value}&"));
    }
    out.push_str(extra);
    out
}

/// Parapet in front of `o`: `routes` (each sent to the origin), then a catch-all
/// route that caches with the defaults.
async fn shield_with(o: &Origin, routes: &[serde_json::Value]) -> Proxy {
    let mut config = Config::new().upstream(
        "app",
        json!({"backends": backends(&[o.addr]), "retries": 0}),
    );
    for route in routes {
        config = config.route(merged(route.clone(), json!({"upstream": "app"})));
    }
    let config = config.route(json!({"upstream": "app", "cache": true}));
    Proxy::start(&config).await
}

async fn shield(o: &Origin) -> Proxy {
    shield_with(o, &[]).await
}

fn cache_status(resp: &Response) -> &str {
    resp.header("cache-status").unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_with_set_cookie_is_not_stored_by_default() {
    let o = origin("o").await;
    let proxy = shield(&o).await;
    let path = gen(
        "/cookie",
        &[
            ("Cache-Control", "public, max-age=600"),
            ("Set-Cookie", "session=first-client"),
        ],
        "",
    );
    let first = proxy.get(&path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.header("set-cookie"), Some("session=first-client"));
    let second = proxy.get(&path).await;
    assert_eq!(second.status(), 200);
    assert!(
        !cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(o.state.count("/gen/cookie"), 2, "the origin saw both");
    // Its own cookie, from the origin, not one replayed from the store.
    assert_ne!(second.body, first.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_strip_stores_the_response_without_its_cookie() {
    let o = origin("o").await;
    let strip = json!({"path_prefix": "/strip/", "cache": {"set_cookie": "strip"}});
    let proxy = shield_with(&o, &[strip]).await;
    let path = format!(
        "/strip{}",
        gen(
            "/cookie",
            &[
                ("Cache-Control", "public, max-age=600"),
                ("Set-Cookie", "session=first-client"),
            ],
            "",
        )
    );
    let first = proxy.get(&path).await;
    assert_eq!(first.header("set-cookie"), Some("session=first-client"));
    let second = proxy.get(&path).await;
    assert_eq!(second.status(), 200);
    assert!(
        cache_status(&second).contains("hit"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(second.header("set-cookie"), None);
    assert_eq!(second.body, first.body);
    assert_eq!(o.state.count("/strip/gen/cookie"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_no_cache_and_private_store_without_the_named_fields() {
    let o = origin("o").await;
    let proxy = shield(&o).await;
    for (name, cc) in [
        (
            "/no-cache-q",
            "max-age=600, no-cache=\"Set-Cookie, X-User\"",
        ),
        ("/private-q", "max-age=600, private=\"Set-Cookie, X-User\""),
    ] {
        let path = gen(
            name,
            &[
                ("Cache-Control", cc),
                ("Set-Cookie", "session=first-client"),
                ("X-User", "alice"),
                ("X-Kept", "yes"),
            ],
            "",
        );
        let first = proxy.get(&path).await;
        assert_eq!(
            first.header("set-cookie"),
            Some("session=first-client"),
            "{name}"
        );
        assert_eq!(first.header("x-user"), Some("alice"), "{name}");
        let second = proxy.get(&path).await;
        assert!(
            cache_status(&second).contains("hit"),
            "{name}: {}",
            cache_status(&second)
        );
        assert_eq!(second.header("set-cookie"), None, "{name}");
        assert_eq!(second.header("x-user"), None, "{name}");
        assert_eq!(second.header("x-kept"), Some("yes"), "{name}");
        assert_eq!(o.state.count(&format!("/gen{name}")), 1, "{name}");
    }
}

#[test]
fn the_route_cache_map_is_checked_field_by_field() {
    let yaml = r#"
version: 1
listeners: [{address: "127.0.0.1:1"}]
upstreams: {app: {backends: [{address: "127.0.0.1:2"}]}}
routes:
  - {path_prefix: /a/, upstream: app, cache: {set_cookie: strip, client_directives: ignore}}
  - {path_prefix: /b/, upstream: app, cache: {set_cookie: keep}}
  - {path_prefix: /c/, upstream: app, cache: {client_directive: ignore}}
  - {upstream: app, cache: {client_directives: obey}}
"#;
    let out = refused_naming(
        yaml,
        &[
            "routes[1].cache.set_cookie",
            "routes[2].cache.client_directive",
            "routes[3].cache.client_directives",
        ],
    );
    assert!(!out.contains("routes[0]"), "{out}");
}

/// `n` concurrent GETs of `path` with request directives (no-cache, Pragma and
/// max-age=0 in turn), each bounded by a timeout; their statuses (0: no answer).
async fn flood(proxy: &Proxy, path: &str, n: usize) -> Vec<u16> {
    let directives = [
        "Cache-Control: no-cache",
        "Pragma: no-cache",
        "Cache-Control: max-age=0",
    ];
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (addr, path) = (proxy.addr, path.to_string());
            let directive = directives[i % directives.len()];
            tokio::spawn(async move {
                let fields = [directive];
                let answer = get_with(addr, &path, &fields);
                match tokio::time::timeout(Duration::from_secs(30), answer).await {
                    Ok(resp) => resp.status(),
                    Err(_) => 0,
                }
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap_or(0));
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_refreshes_of_one_key_collapse_into_one_origin_request() {
    let o = origin("o").await;
    let proxy = shield(&o).await;
    let path = gen("/refresh", &[("Cache-Control", "max-age=600")], "delay=300");
    assert_eq!(proxy.get(&path).await.status(), 200);
    assert_eq!(o.state.count("/gen/refresh"), 1);
    let statuses = flood(&proxy, &path, 200).await;
    let answered = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(answered, 200, "statuses: {statuses:?}");
    let refreshes = o.state.count("/gen/refresh") - 1;
    eprintln!("{refreshes} origin requests for 200 refreshes");
    assert!(refreshes <= 5, "{refreshes} origin requests for one key");
    assert!(refreshes >= 1, "no-cache did not reach the origin at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_may_ignore_the_clients_directives() {
    let o = origin("o").await;
    let ignore = json!({"path_prefix": "/ignore/", "cache": {"client_directives": "ignore"}});
    let proxy = shield_with(&o, &[ignore]).await;
    let path = format!(
        "/ignore{}",
        gen("/refresh", &[("Cache-Control", "max-age=600")], "delay=300")
    );
    assert_eq!(proxy.get(&path).await.status(), 200);
    let statuses = flood(&proxy, &path, 200).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(o.state.count("/ignore/gen/refresh"), 1, "no extra request");
    // Authorization is not a client directive: it still is not answered from
    // a store that did not allow it.
    get_with(proxy.addr, &path, &["Authorization: Bearer x"]).await;
    assert_eq!(o.state.count("/ignore/gen/refresh"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_unsafe_methods_with_a_success_invalidate() {
    let o = origin("o").await;
    let proxy = shield(&o).await;
    let send = async |method: &str, path: &str| {
        let req = request(method, path, &["Content-Length: 0"]);
        raw(proxy.addr, req.as_bytes(), method)
            .await
            .unwrap()
            .status()
    };
    let item = gen("/item", &[("Cache-Control", "max-age=600")], "");
    proxy.get(&item).await;
    for method in ["OPTIONS", "TRACE"] {
        assert_eq!(send(method, &item).await, 200, "{method}");
        let again = proxy.get(&item).await;
        assert!(
            cache_status(&again).contains("hit"),
            "after {method}: {}",
            cache_status(&again)
        );
    }
    assert_eq!(o.state.count("/gen/item"), 3, "GET, OPTIONS, TRACE");
    assert_eq!(send("POST", &item).await, 200);
    let after_post = proxy.get(&item).await;
    assert!(!cache_status(&after_post).contains("hit"));
    assert_eq!(
        o.state.count("/gen/item"),
        5,
        "POST invalidated, GET refetched"
    );
}

/// An origin answering every request at once with a 4 KiB body that may be stored
/// for 10 minutes and carries two tags; it counts the requests.
async fn tagged_origin() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\
        Cache-Control: max-age=600\r\nCache-Tag: t1 t2\r\n\r\n"
        .to_vec();
    answer.extend(std::iter::repeat_n(b'x', 4096));
    let answer: Arc<[u8]> = answer.into();
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (answer, count) = (answer.clone(), count.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut held = 0;
                loop {
                    let Ok(n) = stream.read(&mut buf[held..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    held += n;
                    // Requests without bodies: each ends with an empty line.
                    while let Some(end) = buf[..held].windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.copy_within(end + 4..held, 0);
                        held -= end + 4;
                        count.fetch_add(1, Ordering::Relaxed);
                        if stream.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                    if held == buf.len() {
                        return;
                    }
                }
            });
        }
    });
    (addr, served)
}

/// The resident set of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS");
    kib * 1024
}

/// What the proxy may hold beyond `max_size` + 10% whatever it caches: TinyUFO's
/// admission sketch and queues, the connections' buffers, the allocator's
/// per-thread caches (README, "The origin shield").
const FIXED_OVERHEAD: u64 = 16 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_tagged_objects_keeps_memory_within_max_size() {
    const OBJECTS: usize = 100_000;
    const CONNECTIONS: usize = 8;
    const MAX_SIZE: u64 = 32 << 20;
    let (origin, served) = tagged_origin().await;
    let config = Config::single(&[origin])
        .routes(json!([{"upstream": "app", "cache": true}]))
        .section("cache", json!({"max_size": "32MiB"}))
        .section("limits", json!({"keepalive_requests": 0}));
    let proxy = Proxy::start(&config).await;
    let mut conns = Vec::new();
    for c in 0..CONNECTIONS {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        let resp = conn.get(&format!("/warm/{c}"), &[]).await.unwrap();
        assert_eq!(resp.status(), 200);
        conns.push(conn);
    }
    let before = rss(proxy.pid());
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(c, mut conn)| {
            tokio::spawn(async move {
                for i in 0..OBJECTS / CONNECTIONS {
                    let req = request("GET", &format!("/object/{c}/{i}"), &[]);
                    conn.send(req.as_bytes()).await?;
                    let (status, len, _) = conn.response_summary("GET").await?;
                    if (status, len) != (200, 4096) {
                        return Err(std::io::Error::other(format!("{status} {len}")));
                    }
                }
                Ok::<_, std::io::Error>(())
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(300), all).await;
    let served_now = served.load(Ordering::Relaxed);
    assert!(finished.is_ok(), "{served_now} served in 300 s");
    let after = rss(proxy.pid());
    let elapsed = started.elapsed();
    assert_eq!(served.load(Ordering::Relaxed), OBJECTS + CONNECTIONS);
    // The objects were stored: the last one is a hit.
    let last = proxy
        .get(&format!("/object/0/{}", OBJECTS / CONNECTIONS - 1))
        .await;
    assert!(
        cache_status(&last).contains("hit"),
        "{}",
        cache_status(&last)
    );
    let bound = MAX_SIZE + MAX_SIZE / 10 + FIXED_OVERHEAD;
    let grown = after.saturating_sub(before);
    eprintln!(
        "RSS {} MiB -> {} MiB (+{} MiB, bound {} MiB) in {elapsed:?}",
        before >> 20,
        after >> 20,
        grown >> 20,
        bound >> 20
    );
    assert!(grown <= bound, "RSS grew by {} MiB", grown >> 20);
}
