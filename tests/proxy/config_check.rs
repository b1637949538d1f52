//! `parapet -t`: every mistake reported with its field path; a good file passes.

use crate::support::check_config;

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
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    for expected in [
        "thread: unknown key",
        "listeners[0].address: 'nope' is not an IP:port address",
        "listeners[2].address: '127.0.0.1:8080' is already used",
        "upstreams.app.backends[0].weight: must be at least 1",
        "upstreams.app.backends[1].address: 'not-an-address' is not host:port",
        "upstreams.app.health_check.interval: must be greater than 0",
        "upstreams.web.backends[0].wieght: unknown field `wieght`",
        "routes[0].upstream: 'nowhere' is not defined under `upstreams`",
        "routes[1].path_prefix: must start with '/'",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
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
