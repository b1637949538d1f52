//! `parapet -t`: every mistake reported with its field path; a good file passes.

use crate::support::{check_config, refused_naming};

#[test]
fn shipped_config_is_valid() {
    let text = std::fs::read_to_string("conf/parapet.yaml").unwrap();
    let (ok, out) = check_config(&text);
    assert!(ok, "{out}");
    assert!(out.contains("configuration OK"), "{out}");
}

#[test]
fn every_mistake_is_reported_with_its_path() {
    let yaml = r#"
thread: 2
listeners:
  - address: nope
  - address: 127.0.0.1:8080
  - address: 127.0.0.1:8080
upstreams:
  app:
    backends:
      - address: 127.0.0.1:8081
        weight: 0
      - address: not-an-address
    health_check: { type: http, interval: 0s }
  web:
    backends:
      - address: 127.0.0.1:9
        wieght: 3
routes:
  - upstream: nowhere
  - upstream: app
    path_prefix: api
"#;
    let out = refused_naming(
        yaml,
        &[
            "thread: unknown key",
            "listeners[0].address: 'nope' is not an IP:port address",
            "listeners[2].address: '127.0.0.1:8080' is already used",
            "upstreams.app.backends[0].weight: must be at least 1",
            "upstreams.app.backends[1].address: 'not-an-address' is not host:port",
            "upstreams.app.health_check.interval: must be greater than 0",
            "upstreams.web.backends[0].wieght: unknown field `wieght`",
            "routes[0].upstream: 'nowhere' is not defined under `upstreams`",
            "routes[1].path_prefix: must start with '/'",
        ],
    );
    assert!(out.contains("configuration invalid (9 errors)"), "{out}");
}

#[test]
fn bad_units_and_missing_sections_are_named() {
    let (ok, out) = check_config(
        "listeners: [{address: \"127.0.0.1:1\"}]\nupstreams:\n  a:\n    backends: [{address: \"127.0.0.1:2\"}]\n    timeouts: { connect: 2 weeks }\n",
    );
    assert!(!ok);
    assert!(out.contains("upstreams.a.timeouts.connect:"), "{out}");
    assert!(
        out.contains("routes: at least one route is required"),
        "{out}"
    );
}

#[test]
fn a_file_that_is_not_yaml_is_an_error() {
    let (ok, out) = check_config("listeners: [\n");
    assert!(!ok);
    assert!(out.contains("not valid YAML"), "{out}");
}

#[test]
fn a_busy_listener_address_is_an_error_not_a_hang() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = crate::support::scratch_dir("busy");
    let conf = dir.join("parapet.yaml");
    let yaml = format!(
        "pid_file: {d}/p.pid\nupgrade_sock: {d}/u.sock\nlisteners: [{{address: \"{addr}\"}}]\n\
         upstreams: {{app: {{backends: [{{address: \"127.0.0.1:9\"}}]}}}}\nroutes: [{{upstream: app}}]\n",
        d = dir.display()
    );
    std::fs::write(&conf, yaml).unwrap();
    let mut child = std::process::Command::new(crate::support::BIN)
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("parapet kept running on a busy address");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!status.success());
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    drop(busy);
}

#[test]
fn cache_settings_are_checked_with_their_paths() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
upstreams: {app: {backends: [{address: "127.0.0.1:2"}]}}
routes:
  - {upstream: app, cache: true, cache_key: {query: some}}
  - {upstream: app, cache_key: {query: none}}
cache:
  max_size: 512KiB
  lock_timeout: 0s
  stale_if_eror: 1m
"#;
    refused_naming(
        yaml,
        &[
            "routes[0].cache_key.query: 'some' is not all, none or a list of parameters",
            "routes[1].cache_key: only used with `cache: true`",
            "cache.stale_if_eror: unknown field",
        ],
    );
    let yaml = yaml.replace("  stale_if_eror: 1m\n", "");
    let (ok, out) = check_config(&yaml);
    assert!(!ok, "{out}");
    assert!(
        out.contains("cache.max_size: must be at least 1MiB"),
        "{out}"
    );
    assert!(
        out.contains("cache.lock_timeout: must be greater than 0"),
        "{out}"
    );
}

#[test]
fn edge_policy_settings_are_checked_with_their_paths() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
upstreams:
  app:
    backends: [{address: "127.0.0.1:2"}]
    circuit_breaker: {consecutive_failures: 0, open_for: 0s}
    retry_on: [reset, 404]
    retry_budget: {ratio: 120%, window: 0s}
routes:
  - upstream: app
    rate_limit: {requests_per_second: 0}
    access: {allow: [10.0.0.0/33]}
    cors: {allow_origins: ["*"], allow_credentials: true}
limits: {max_request_body_bytes: 0, request_buffer: 1MiB, client_header_timeout: 0s, http2_max_concurrent_streams: 0}
"#;
    refused_naming(
        yaml,
        &[
            "upstreams.app.circuit_breaker.consecutive_failures:",
            "upstreams.app.circuit_breaker.open_for: must be greater than 0",
            "upstreams.app.retry_on[1]: must be connect_error, timeout, reset or a 5xx status",
            "upstreams.app.retry_budget.ratio: must be between 0% and 100%",
            "upstreams.app.retry_budget.window: must be greater than 0",
            "routes[0].rate_limit.requests_per_second:",
            "routes[0].access.allow[0]:",
            "routes[0].cors.allow_credentials:",
            "limits.max_request_body_bytes: must be greater than 0",
            "limits.request_buffer: must be at most 64KiB",
            "limits.client_header_timeout: must be greater than 0",
            "limits.http2_max_concurrent_streams: must be at least 1",
        ],
    );
}
