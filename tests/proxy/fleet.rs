//! A fleet on loopback: edges that send each object's misses to one shield
//! (`hash_key: cache_key`), `CDN-Loop`, global rate limits and purges through a
//! real `redis-server`. Counted at the origin and at the clients.

use crate::cache::gen;
use crate::support::redis::Redis;
use crate::support::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A shield: caches in front of the origin.
async fn shield(o: &Origin) -> Proxy {
    Proxy::start(&Config::caching(o.addr)).await
}

/// An edge: caches, and sends its misses to the shield the object hashes to.
async fn edge(shields: &[SocketAddr]) -> Proxy {
    let check =
        json!({"type": "tcp", "interval": "100ms", "timeout": "100ms", "unhealthy_threshold": 1});
    let upstream = json!({
        "backends": backends(shields), "selection": "consistent_hash",
        "hash_key": "cache_key", "retries": 1, "health_check": check,
    });
    let config = Config::new()
        .upstream("shields", upstream)
        .route(json!({"upstream": "shields", "cache": true}));
    Proxy::start(&config).await
}

fn object(k: usize) -> String {
    gen(
        &format!("/obj/{k}"),
        &[("Cache-Control", "max-age=600")],
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_object_reaches_the_origin_once_for_the_fleet_and_a_lost_shield_moves_only_its_keys() {
    let o = origin("o").await;
    let shields = [shield(&o).await, shield(&o).await];
    let addrs: Vec<_> = shields.iter().map(|s| s.addr).collect();
    let edges = [edge(&addrs).await, edge(&addrs).await, edge(&addrs).await];
    for i in 0..1000 {
        let resp = edges[i % 3].get(&object(i % 100)).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.head);
    }
    assert_eq!(
        o.state.count("/gen/obj/"),
        100,
        "one origin fetch per object for the fleet"
    );
    // One Cache-Status entry per cache, the shield's (nearer the origin) first.
    let chain_path = gen("/chain", &[("Cache-Control", "max-age=600")], "");
    let statuses = |resp: &Response| -> Vec<String> {
        let named = resp.head.headers.iter();
        named
            .filter(|(n, _)| n.eq_ignore_ascii_case("cache-status"))
            .map(|(_, v)| v.clone())
            .collect()
    };
    let fetched = statuses(&edges[0].get(&chain_path).await);
    assert_eq!(fetched.len(), 2, "{fetched:?}");
    assert!(
        fetched.iter().all(|e| e.contains("fwd=uri-miss")),
        "{fetched:?}"
    );
    let hit = statuses(&edges[0].get(&chain_path).await);
    assert!(
        hit.last().is_some_and(|v| v.starts_with("parapet; hit")),
        "{hit:?}"
    );
    // Which keys the second shield holds: its own cache answers them.
    let second_holds: Vec<usize> = {
        let mut held = Vec::new();
        for k in 0..100 {
            let resp = shields[1].get(&object(k)).await;
            if resp
                .header("cache-status")
                .is_some_and(|s| s.contains("hit"))
            {
                held.push(k);
            }
        }
        held
    };
    assert!(
        !second_holds.is_empty() && second_holds.len() < 100,
        "both shields hold keys: {}",
        second_holds.len()
    );
    let [first, second] = shields;
    drop(second);
    // Fresh edges (empty caches): every request goes to a shield again.
    drop(edges);
    let edges = [edge(&addrs).await, edge(&addrs).await, edge(&addrs).await];
    let before = o.state.count("/gen/obj/");
    for i in 0..300 {
        let resp = edges[i % 3].get(&object(i % 100)).await;
        assert_eq!(resp.status(), 200, "{:?}", resp.head);
    }
    let refetched = o.state.count("/gen/obj/") - before;
    assert_eq!(
        refetched,
        second_holds.len(),
        "only the lost shield's keys reach the origin again"
    );
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_loops_between_two_instances_is_refused_508() {
    // Two instances, each the other's upstream.
    let (a_port, b_port) = (free_port(), free_port());
    let a_addr = SocketAddr::from(([127, 0, 0, 1], a_port));
    let b_addr = SocketAddr::from(([127, 0, 0, 1], b_port));
    let to = |peer: SocketAddr| {
        Config::new()
            .upstream("peer", json!({"backends": backends(&[peer]), "retries": 0}))
            .route(json!({"upstream": "peer"}))
    };
    let a = Proxy::start_on(a_port, &to(b_addr).section("name", json!("a.fleet"))).await;
    let _b = Proxy::start_on(b_port, &to(a_addr).section("name", json!("b.fleet"))).await;
    let started = Instant::now();
    let resp = a.get("/x").await;
    assert_eq!(resp.status(), 508, "{:?}", resp.head);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not after a timeout"
    );
    // A client that sends our name is refused too; another name goes on.
    let forged = crate::support::client::get_with(a.addr, "/x", &["CDN-Loop: a.fleet"]).await;
    assert_eq!(forged.status(), 508);
}

/// An edge whose route allows `rate` requests per second for the whole fleet.
async fn limited_edge(o: &Origin, redis: &str, rate: u32, burst: u32) -> (Proxy, SocketAddr) {
    let limit =
        json!({"requests_per_second": rate, "burst": burst, "key": "route", "scope": "global"});
    let config = Config::new()
        .upstream(
            "app",
            json!({"backends": backends(&[o.addr]), "retries": 0}),
        )
        .route(json!({"upstream": "app", "rate_limit": limit}))
        .section("redis", json!({"url": redis, "timeout": "50ms"}));
    proxy_with_admin(config).await
}

/// Requests to `proxy` as fast as one connection goes, for `span`: (200s, 429s).
async fn hammer(addr: SocketAddr, span: Duration) -> (usize, usize) {
    let mut conn = Conn::open(addr).await.unwrap();
    let (mut ok, mut limited) = (0, 0);
    let end = Instant::now() + span;
    while Instant::now() < end {
        let resp = match conn.get("/status/200", &[]).await {
            Ok(resp) => resp,
            // A refusal may end the connection: open another.
            Err(_) => {
                conn = Conn::open(addr).await.unwrap();
                continue;
            }
        };
        match resp.status() {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_holds_across_three_edges() {
    let redis = Redis::start().await;
    let o = origin("o").await;
    let (rate, burst) = (60, 6);
    let mut edges = Vec::new();
    for _ in 0..3 {
        edges.push(limited_edge(&o, &redis.url(), rate, burst).await);
    }
    // Let each edge connect to Redis before the clock starts.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let span = Duration::from_secs(3);
    let started = Instant::now();
    let runs: Vec<_> = edges
        .iter()
        .map(|(p, _)| tokio::spawn(hammer(p.addr, span)))
        .collect();
    let mut admitted = 0;
    for run in runs {
        admitted += run.await.unwrap().0;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = f64::from(rate) * elapsed + f64::from(burst);
    let share = admitted as f64 / expected;
    assert!(
        (0.9..=1.1).contains(&share),
        "admitted {admitted} in {elapsed:.2}s across 3 edges, {expected:.0} allowed ({share:.2})"
    );
}

async fn store_errors(admin: SocketAddr) -> u64 {
    let metrics = crate::support::client::get(admin, "/metrics").await.text();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("parapet_ratelimit_store_errors_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_local_limit_decides_and_the_global_one_resumes() {
    let mut redis = Redis::start().await;
    let port = redis.addr.port();
    let o = origin("o").await;
    let (edge, admin) = limited_edge(&o, &redis.url(), 1000, 1000).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hammer(edge.addr, Duration::from_millis(300)).await.1, 0);
    redis.stop();
    // Nothing waits past the timeout: every request is answered (by the local
    // limiter) and each within the client's patience.
    // Past the leases already held (at most 2 x 200ms).
    let mut conn = Conn::open(edge.addr).await.unwrap();
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        let answer = tokio::time::timeout(Duration::from_secs(2), conn.get("/status/200", &[]));
        match answer.await.expect("answered without Redis") {
            Ok(resp) => assert_eq!(resp.status(), 200),
            // The connection's request limit: another one.
            Err(_) => conn = Conn::open(edge.addr).await.unwrap(),
        }
    }
    let errors = store_errors(admin).await;
    assert!(
        errors > 0,
        "counted in parapet_ratelimit_store_errors_total"
    );
    let status = crate::support::client::get(admin, "/status").await.text();
    assert!(status.contains("\"redis_up\":false"), "{status}");
    assert!(status.contains("\"shields\":[]"), "no tier here: {status}");
    let _redis = Redis::start_on(port).await;
    let resumed = eventually(Duration::from_secs(10), async || {
        let _ = crate::support::client::get(edge.addr, "/status/200").await;
        let status = crate::support::client::get(admin, "/status").await.text();
        status.contains("\"redis_up\":true")
    })
    .await;
    assert!(resumed, "the global limiter uses Redis again");
}

/// A caching instance in front of `o` that shares `redis` (with a disk tier at
/// `disk` when given).
fn caching_member(o: &Origin, redis: &str, disk: Option<&std::path::Path>) -> Config {
    let cache = match disk {
        Some(path) => json!({"disk": {"path": path, "max_size": "64MiB"}}),
        None => json!({}),
    };
    Config::caching(o.addr)
        .section("redis", json!({"url": redis}))
        .section("cache", cache)
}

/// Purge everything tagged `tag` through `admin`; the answer's status.
async fn purge_tag(admin: SocketAddr, tag: &str) -> u16 {
    purge_post(admin, &format!(r#"{{"tags":["{tag}"]}}"#))
        .await
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_edge_reaches_every_edge() {
    let redis = Redis::start().await;
    let o = origin("o").await;
    let config = || caching_member(&o, &redis.url(), None);
    let (a, a_admin) = proxy_with_admin(config()).await;
    let (b, _b_admin) = proxy_with_admin(config()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let path = gen(
        "/p",
        &[("Cache-Control", "max-age=600"), ("Cache-Tag", "t1")],
        "",
    );
    for edge in [&a, &b] {
        edge.get(&path).await;
        let hit = edge.get(&path).await;
        assert!(hit.header("cache-status").unwrap_or("").contains("hit"));
    }
    assert_eq!(o.state.count("/gen/p"), 2);
    assert_eq!(purge_tag(a_admin, "t1").await, 200);
    let started = Instant::now();
    let reached = eventually(Duration::from_secs(1), async || {
        b.get(&path)
            .await
            .header("cache-status")
            .is_some_and(|s| !s.contains("hit"))
    })
    .await;
    assert!(reached, "the other edge purged within a second");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(!a
        .get(&path)
        .await
        .header("cache-status")
        .unwrap_or("")
        .contains("; hit"));
}

#[test]
fn fleet_settings_are_checked() {
    let base = "listeners: [{address: '127.0.0.1:8080'}]\nupstreams: {app: {backends: [{address: '127.0.0.1:1'}]}}\n";
    refused_naming(
        &format!("{base}routes: [{{upstream: app, rate_limit: {{requests_per_second: 1, scope: global}}}}]\n"),
        &["routes[0].rate_limit.scope"],
    );
    refused_naming(
        &format!("{base}routes: [{{upstream: app}}]\nredis: {{url: 'http://x'}}\nname: 'a b'\n"),
        &["redis.url", "name"],
    );
    refused_naming(
        "listeners: [{address: '127.0.0.1:8080'}]\nupstreams: {s: {backends: [{address: '127.0.0.1:1'}], selection: consistent_hash, hash_key: cache_key}}\nroutes: [{upstream: s}]\n",
        &["routes[0].upstream"],
    );
    let (ok, out) = check_config(
        "listeners: [{address: '127.0.0.1:8080'}]\nupstreams: {s: {backends: [{address: '127.0.0.1:1'}], selection: consistent_hash, hash_key: cache_key}}\nroutes: [{upstream: s, cache: true}]\nredis: {url: 'redis://127.0.0.1:6379', timeout: 5ms}\nname: edge-1\n",
    );
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_was_away_does_not_serve_what_was_purged_meanwhile() {
    use crate::cache_disk::{written, DiskDir};
    use crate::support::process::{signal, wait_exit};
    let redis = Redis::start().await;
    let o = origin("o").await;
    let disk = DiskDir::new("fleet-away");
    let edge = |disk| caching_member(&o, &redis.url(), disk);
    let (_other, other_admin) = proxy_with_admin(edge(None)).await;
    let away = Proxy::start(&edge(Some(&disk))).await;
    let kept = disk.join("fleet-purges.last");
    let pinned = eventually(Duration::from_secs(5), async || kept.exists()).await;
    assert!(pinned, "the edge keeps where it is in the stream");
    let path = gen(
        "/away",
        &[("Cache-Control", "max-age=600"), ("Cache-Tag", "gone")],
        "",
    );
    away.get(&path).await;
    assert!(written(&disk, 1).await);
    signal(away.pid(), "TERM");
    assert!(wait_exit(away.pid(), Duration::from_secs(10))
        .await
        .is_some());
    // Purged on the other edge while this one is down.
    purge_tag(other_admin, "gone").await;
    let back = Proxy::start(&edge(Some(&disk))).await;
    let resp = back.get(&path).await;
    assert_eq!(resp.status(), 200);
    assert!(
        !resp.header("cache-status").unwrap_or("").contains("hit"),
        "the purged object is not served: {:?}",
        resp.head
    );
    assert_eq!(o.state.count("/gen/away"), 2, "fetched again");
}
