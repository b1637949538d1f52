//! Routes and backend selection, observed at the origins.

use crate::support::*;

/// Upstream `app` choosing among weighted `backends` by `selection`, and a
/// catch-all route to it.
fn pool(backends: &[(&Origin, u32)], selection: &str) -> Config {
    let list: Vec<_> = backends
        .iter()
        .map(|(o, w)| json!({"address": o.addr.to_string(), "weight": w}))
        .collect();
    Config::new()
        .upstream("app", json!({"selection": selection, "backends": list}))
        .route(json!({"upstream": "app"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_evenly() {
    let (a, b) = (origin("a").await, origin("b").await);
    let proxy = Proxy::start(&pool(&[(&a, 1), (&b, 1)], "round_robin")).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..20 {
        assert_eq!(conn.get("/rr", &[]).await.unwrap().status(), 200);
    }
    assert_eq!((a.state.count("/rr"), b.state.count("/rr")), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_are_honoured() {
    let (a, b) = (origin("a").await, origin("b").await);
    let proxy = Proxy::start(&pool(&[(&a, 3), (&b, 1)], "weighted")).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..40 {
        assert_eq!(conn.get("/w", &[]).await.unwrap().status(), 200);
    }
    assert_eq!((a.state.count("/w"), b.state.count("/w")), (30, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_pins_a_key_to_one_backend() {
    let (a, b) = (origin("a").await, origin("b").await);
    let config = pool(&[(&a, 1), (&b, 1)], "consistent_hash").upstream_key(
        "app",
        "hash_key",
        json!("header:X-User"),
    );
    let proxy = Proxy::start(&config).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for user in ["alice", "bob", "carol", "dave"] {
        let header = format!("X-User: {user}");
        let first = conn.get("/h", &[&header]).await.unwrap();
        let origin = first.header("x-origin").unwrap().to_string();
        for _ in 0..5 {
            let again = conn.get("/h", &[&header]).await.unwrap();
            assert_eq!(
                again.header("x-origin").unwrap(),
                origin,
                "user {user} moved"
            );
        }
    }
    assert_eq!(a.state.count("/h") + b.state.count("/h"), 24);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_match_host_and_prefix_first_match_wins() {
    let (api, www, rest) = (
        origin("api").await,
        origin("www").await,
        origin("rest").await,
    );
    let config = Config::new()
        .upstream("api", json!({"backends": backends(&[api.addr])}))
        .upstream("www", json!({"backends": backends(&[www.addr])}))
        .upstream("rest", json!({"backends": backends(&[rest.addr])}))
        .route(json!({"host": "*.example.com", "path_prefix": "/api/", "upstream": "api"}))
        .route(json!({"host": "www.example.com", "upstream": "www"}))
        .route(json!({"host": "*.example.org", "upstream": "rest"}));
    let proxy = Proxy::start(&config).await;
    let origin_of = async |host: &str, path: &str| {
        let mut conn = Conn::open(proxy.addr).await.unwrap();
        let raw = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        conn.send(raw.as_bytes()).await.unwrap();
        let resp = conn.response("GET").await.unwrap();
        (resp.status(), resp.header("x-origin").map(str::to_string))
    };
    assert_eq!(
        origin_of("www.example.com", "/api/v1").await.1.as_deref(),
        Some("api")
    );
    assert_eq!(
        origin_of("www.example.com:8080", "/index")
            .await
            .1
            .as_deref(),
        Some("www")
    );
    assert_eq!(
        origin_of("a.b.example.org", "/").await.1.as_deref(),
        Some("rest")
    );
    let (status, origin) = origin_of("example.org", "/").await;
    assert_eq!((status, origin), (404, None));
    assert_eq!(
        api.state.total() + www.state.total() + rest.state.total(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_uses_every_backend() {
    let (a, b) = (origin("a").await, origin("b").await);
    let proxy = Proxy::start(&pool(&[(&a, 1), (&b, 1)], "random")).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..60 {
        assert_eq!(conn.get("/r", &[]).await.unwrap().status(), 200);
    }
    let (na, nb) = (a.state.count("/r"), b.state.count("/r"));
    assert_eq!(na + nb, 60);
    assert!(na > 5 && nb > 5, "not random: {na}/{nb}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_on_uri_pins_each_path() {
    let (a, b) = (origin("a").await, origin("b").await);
    let proxy = Proxy::start(&pool(&[(&a, 1), (&b, 1)], "consistent_hash")).await;
    let mut conn = Conn::open(proxy.addr).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for n in 0..12 {
        let path = format!("/item/{n}");
        let first = conn.get(&path, &[]).await.unwrap();
        let origin = first.header("x-origin").unwrap().to_string();
        for _ in 0..3 {
            let again = conn.get(&path, &[]).await.unwrap();
            assert_eq!(again.header("x-origin").unwrap(), origin, "{path} moved");
        }
        seen.insert(origin);
    }
    assert_eq!(seen.len(), 2, "12 paths all hashed to one backend");
}
