//! Metrics, the admin listener, the JSON access log and trace context.

use crate::support::client::get_with;
use crate::support::process::signal;
use crate::support::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

struct Observed {
    proxy: Proxy,
    admin: SocketAddr,
    log: std::path::PathBuf,
}

/// Upstream `app` (the origin, no retries) behind a catch-all route, the admin
/// listener (with `token` if given) and the access log.
async fn observed(o: &Origin, token: Option<&str>) -> Observed {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = scratch_dir("logs");
    let log = dir.join("access.log");
    let mut admin_section = json!({"address": admin.to_string()});
    if let Some(token) = token {
        admin_section["token"] = json!(token);
    }
    let config = Config::new()
        .upstream(
            "app",
            json!({"backends": backends(&[o.addr]), "retries": 0}),
        )
        .route(json!({"upstream": "app"}))
        .section("admin", admin_section)
        .section("access_log", json!({"path": log}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    Observed { proxy, admin, log }
}

impl Drop for Observed {
    fn drop(&mut self) {
        if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

async fn wait_lines(path: &Path, n: usize) -> Vec<serde_json::Value> {
    eventually(Duration::from_secs(5), async || lines(path).len() >= n).await;
    lines(path)
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_what_happened() {
    let o = origin("o").await;
    let obs = observed(&o, None).await;
    for _ in 0..7 {
        assert_eq!(obs.proxy.get("/ok").await.status(), 200);
    }
    for _ in 0..3 {
        assert_eq!(obs.proxy.get("/close").await.status(), 502);
    }
    wait_lines(&obs.log, 10).await;
    let text = get(obs.admin, "/metrics").await.text();
    let backend = o.addr.to_string();
    let requests = |status: &str| {
        metric(
            &text,
            &format!("parapet_requests_total{{route=\"*/\",status=\"{status}\",upstream=\"app\"}}"),
        )
    };
    assert_eq!(requests("200"), Some(7.0), "{text}");
    assert_eq!(requests("502"), Some(3.0), "{text}");
    let attempts = |outcome: &str| {
        metric(
            &text,
            &format!("parapet_upstream_attempts_total{{backend=\"{backend}\",outcome=\"{outcome}\",upstream=\"app\"}}"),
        )
    };
    assert_eq!(attempts("success"), Some(7.0), "{text}");
    assert_eq!(attempts("error"), Some(3.0), "{text}");
    assert_eq!(
        metric(&text, "parapet_request_duration_seconds_count"),
        Some(10.0)
    );
    assert!(text.contains("parapet_request_duration_seconds_bucket{le=\"0.005\"}"));
    assert_eq!(
        metric(
            &text,
            "parapet_request_duration_seconds_bucket{le=\"+Inf\"}"
        ),
        Some(10.0)
    );
    let healthy = format!("parapet_backend_healthy{{backend=\"{backend}\",upstream=\"app\"}}");
    assert_eq!(metric(&text, &healthy), Some(1.0));
    assert_eq!(metric(&text, "parapet_requests_active"), Some(0.0));
    assert!(
        metric(&text, "parapet_connections_active").is_some(),
        "{text}"
    );
    // Families of features not built or not configured are not exported as
    // placeholders (this configuration has no caching route).
    for name in [
        "parapet_circuit_open",
        "parapet_ratelimited_total",
        "parapet_cache_size_bytes",
        "parapet_connections_refused_total",
    ] {
        assert!(!text.contains(name), "{name} exported before its feature");
    }
    assert!(
        !text.contains("/ok") && !text.contains("127.0.0.1\""),
        "unbounded label"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_needs_the_token_when_set() {
    let o = origin("o").await;
    let obs = observed(&o, Some("s3cret")).await;
    for path in ["/metrics", "/status", "/healthz", "/readyz"] {
        let resp = get(obs.admin, path).await;
        assert_eq!(resp.status(), 401, "{path}");
        assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
        let wrong = get_with(obs.admin, path, &["Authorization: Bearer s3cres"]).await;
        assert_eq!(wrong.status(), 401, "{path}");
        let ok = get_with(obs.admin, path, &["Authorization: Bearer s3cret"]).await;
        assert_eq!(ok.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_status() {
    let o = origin("o").await;
    let dead = dead_addr();
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let check = json!({"type": "tcp", "interval": "100ms", "unhealthy_threshold": 1});
    let config = Config::new()
        .upstream("app", json!({"backends": backends(&[o.addr])}))
        .upstream(
            "gone",
            json!({"backends": backends(&[dead]), "health_check": check}),
        )
        .route(json!({"path_prefix": "/gone/", "upstream": "gone"}))
        .route(json!({"upstream": "app"}))
        .section("admin", json!({"address": admin.to_string()}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    assert_eq!(get(admin, "/healthz").await.status(), 200);
    let not_ready = eventually(Duration::from_secs(5), async || {
        get(admin, "/readyz").await.status() == 503
    })
    .await;
    assert!(not_ready);
    let body: serde_json::Value =
        serde_json::from_slice(&get(admin, "/readyz").await.body).unwrap();
    assert_eq!(
        body["upstreams_without_healthy_backends"],
        serde_json::json!(["gone"])
    );

    assert_eq!(proxy.get("/ok").await.status(), 200);
    let status: serde_json::Value =
        serde_json::from_slice(&get(admin, "/status").await.body).unwrap();
    let app = &status["upstreams"][0];
    assert_eq!(app["name"], "app");
    assert_eq!(app["backends"][0]["address"], o.addr.to_string());
    assert_eq!(app["backends"][0]["healthy"], true);
    assert_eq!(app["backends"][0]["in_flight"], 0);
    assert!(
        app["backends"][0].get("circuit").is_none(),
        "no circuit breaker yet"
    );
    let gone = &status["upstreams"][1];
    assert_eq!(gone["backends"][0]["healthy"], false);
    assert_eq!(get(admin, "/nope").await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_is_one_json_object_per_request() {
    let o = origin("o").await;
    let obs = observed(&o, None).await;
    let resp = get_with(
        obs.proxy.addr,
        "/echo?x=1",
        &["User-Agent: tester/1", "X-Request-Id: rid-1"],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(obs.proxy.get("/nowhere-else/close").await.status(), 502);
    let lines = wait_lines(&obs.log, 2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = &lines[0];
    for field in [
        "time",
        "request_id",
        "trace_id",
        "client_ip",
        "method",
        "host",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "upstream",
        "backend",
        "attempts",
        "cache",
        "duration_ms",
        "upstream_duration_ms",
        "user_agent",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(
        first["cache"],
        serde_json::Value::Null,
        "a route without a cache"
    );
    assert_eq!(first["request_id"], "rid-1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["host"], "test");
    assert_eq!(first["path"], "/echo?x=1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["client_ip"], "127.0.0.1");
    assert_eq!(first["upstream"], "app");
    assert_eq!(first["backend"], o.addr.to_string());
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["user_agent"], "tester/1");
    assert_eq!(first["bytes_out"].as_u64(), Some(resp.body.len() as u64));
    assert!(
        first["duration_ms"].as_f64().unwrap() >= first["upstream_duration_ms"].as_f64().unwrap()
    );
    assert_eq!(lines[1]["status"], 502);
    assert_eq!(lines[1]["upstream_duration_ms"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_log_after_rotation() {
    let o = origin("o").await;
    let obs = observed(&o, None).await;
    assert_eq!(obs.proxy.get("/before").await.status(), 200);
    wait_lines(&obs.log, 1).await;
    let rotated = obs.log.with_extension("log.1");
    std::fs::rename(&obs.log, &rotated).unwrap();
    signal(obs.proxy.pid(), "USR1");
    // The reopen is asynchronous: keep asking until a line lands in the new file.
    let reopened = eventually(Duration::from_secs(5), async || {
        obs.proxy.get("/after").await;
        !lines(&obs.log).is_empty()
    })
    .await;
    assert!(reopened, "no new file; stderr:\n{}", obs.proxy.stderr());
    let old = lines(&rotated);
    assert!(old.iter().any(|l| l["path"] == "/before"));
    assert!(lines(&obs.log).iter().all(|l| l["path"] == "/after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_forwarded_or_started() {
    let o = origin("o").await;
    let obs = observed(&o, None).await;
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = get_with(obs.proxy.addr, "/echo", &[&format!("traceparent: {given}")]).await;
    assert_eq!(resp.echoed("traceparent").as_deref(), Some(given));

    let resp = obs.proxy.get("/echo").await;
    let started = resp
        .echoed("traceparent")
        .expect("a traceparent was started");
    let parts: Vec<&str> = started.split('-').collect();
    assert_eq!(parts.len(), 4, "{started}");
    assert_eq!(
        (parts[0], parts[1].len(), parts[2].len(), parts[3]),
        ("00", 32, 16, "01")
    );

    // Each request's line is written after its response went out, so the second
    // line can come first.
    let lines = wait_lines(&obs.log, 2).await;
    let mut logged: Vec<_> = lines.iter().map(|l| l["trace_id"].clone()).collect();
    logged.sort_by_key(|id| id != "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(logged, ["4bf92f3577b34da6a3ce929d0e0e4736", parts[1]]);
}
