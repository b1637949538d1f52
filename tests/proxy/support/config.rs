//! Parapet configurations for tests, built as data and written as YAML, so that a
//! test says what it configures rather than how YAML is indented.
//!
//! ```ignore
//! let config = Config::new()
//!     .upstream("app", json!({"backends": backends(&[o.addr]), "retries": 0}))
//!     .route(json!({"path_prefix": "/app/", "upstream": "app"}))
//!     .section("access_log", json!({"path": log}));
//! let proxy = Proxy::start(&config).await;
//! ```

use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::Path;

pub use serde_json::json;

/// Parapet's sections of a configuration; the process helpers add Pingora's server
/// keys and the listener.
#[derive(Debug, Clone, Default)]
pub struct Config {
    sections: Map<String, Value>,
    /// Listeners beside the one each process gets.
    listeners: Vec<Value>,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    /// One upstream `app` with these backends and one catch-all route to it.
    pub fn single(backends_of_app: &[SocketAddr]) -> Config {
        Config::new()
            .upstream("app", json!({ "backends": backends(backends_of_app) }))
            .route(json!({ "upstream": "app" }))
    }

    /// One upstream `app` (this origin, no retries) and one catch-all route that
    /// caches: the shield in its plainest form.
    pub fn caching(origin: SocketAddr) -> Config {
        Config::new()
            .upstream(
                "app",
                json!({"backends": backends(&[origin]), "retries": 0}),
            )
            .route(json!({"upstream": "app", "cache": true}))
    }

    /// Upstream `name`, as given (`backends`, `retries`, `health_check`, ...).
    pub fn upstream(self, name: &str, upstream: Value) -> Config {
        self.entry("upstreams", name, upstream)
    }

    /// Set `key` of upstream `name`, which must exist.
    pub fn upstream_key(mut self, name: &str, key: &str, value: Value) -> Config {
        self.sections["upstreams"][name][key] = value;
        self
    }

    /// Append a route (routes match in the order they are added).
    pub fn route(mut self, route: Value) -> Config {
        let routes = self.sections.entry("routes").or_insert_with(|| json!([]));
        if let Value::Array(list) = routes {
            list.push(route);
        }
        self
    }

    /// Replace the routes.
    pub fn routes(self, routes: Value) -> Config {
        self.section("routes", routes)
    }

    /// Add a listener (`{address, tls, h2c, ...}`) beside the process's own.
    pub fn listener(mut self, listener: Value) -> Config {
        self.listeners.push(listener);
        self
    }

    /// Set a whole top-level key (a Parapet section or a Pingora server key).
    pub fn section(mut self, key: &str, value: Value) -> Config {
        self.sections.insert(key.to_string(), value);
        self
    }

    /// With Pingora's server keys for a process whose files are under `dir`, and
    /// one listener on `listen`.
    pub fn for_process(self, dir: &Path, listen: SocketAddr, grace_seconds: u64) -> Config {
        let d = dir.display();
        self.section("version", json!(1))
            .section("threads", json!(2))
            .section("pid_file", json!(format!("{d}/parapet.pid")))
            .section("upgrade_sock", json!(format!("{d}/upgrade.sock")))
            .section("grace_period_seconds", json!(grace_seconds))
            .section("graceful_shutdown_timeout_seconds", json!(1))
            .with_listener(listen)
    }

    fn with_listener(mut self, listen: SocketAddr) -> Config {
        let mut all = vec![json!({ "address": listen.to_string() })];
        all.append(&mut self.listeners);
        self.section("listeners", Value::Array(all))
    }

    fn entry(mut self, section: &str, name: &str, value: Value) -> Config {
        let map = self.sections.entry(section).or_insert_with(|| json!({}));
        map[name] = value;
        self
    }

    /// The configuration as YAML text.
    pub fn yaml(&self) -> String {
        serde_yaml::to_string(&self.sections).expect("a JSON value is valid YAML")
    }
}

/// A `backends` list of these addresses, weight 1 each.
pub fn backends(addresses: &[SocketAddr]) -> Value {
    addresses
        .iter()
        .map(|a| json!({ "address": a.to_string() }))
        .collect()
}
