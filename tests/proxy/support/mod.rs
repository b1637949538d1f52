//! Test support: start the real `parapet` binary with a YAML config, start
//! in-process origins, and talk raw HTTP/1.1 to both.
#![allow(dead_code)]

pub mod client;
pub mod config;
pub mod process;
pub mod redis;
pub mod tls;
pub mod webdriver;

pub use client::{get, Conn, Response};
pub use config::{backends, json, Config};
pub use parapet::demo::origin::Origin;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_parapet");

/// A free port on 127.0.0.1 (bound and released; good enough on loopback).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An address where nothing listens: connections are refused.
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// A scratch directory unique to this test process and call.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "parapet-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Poll `cond` until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    cond().await
}

/// A running `parapet` process, killed on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

impl Proxy {
    /// Start parapet with `config` and a generated server section and listener.
    /// Waits until the listener accepts.
    pub async fn start(config: &Config) -> Proxy {
        Proxy::start_on(free_port(), config).await
    }

    /// `start`, listening on `port` (for instances that must know each other's).
    pub async fn start_on(port: u16, config: &Config) -> Proxy {
        let dir = scratch_dir("proxy");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = config.clone().for_process(&dir, addr, 0);
        let conf = dir.join("parapet.yaml");
        std::fs::write(&conf, config.yaml()).unwrap();
        let child = Command::new(BIN)
            .arg("-c")
            .arg(&conf)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("stderr.log")).unwrap(),
            ))
            .spawn()
            .expect("start parapet");
        let proxy = Proxy { addr, dir, child };
        proxy.wait_accepting(addr).await;
        proxy
    }

    /// Wait until `addr`, one of this proxy's listeners, accepts. Each listener
    /// (the proxy's, the admin one) is its own Pingora service and comes up on its own.
    pub async fn wait_accepting(&self, addr: SocketAddr) {
        let up = eventually(Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(
            up,
            "parapet did not listen on {addr}; stderr:\n{}",
            self.stderr()
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> Response {
        get(self.addr, path).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `base` (a JSON object) with the keys of `extra` added or replaced.
pub fn merged(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

/// Start `config` with an admin listener too; the proxy and the admin address,
/// once both accept.
pub async fn proxy_with_admin(config: Config) -> (Proxy, SocketAddr) {
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = config.section("admin", config::json!({"address": admin.to_string()}));
    let proxy = Proxy::start(&config).await;
    proxy.wait_accepting(admin).await;
    (proxy, admin)
}

/// `POST /cache/purge` with `body` to the admin listener at `admin`.
pub async fn purge_post(admin: SocketAddr, body: &str) -> Response {
    let req = format!(
        "POST /cache/purge HTTP/1.1\r\nHost: admin\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    client::raw(admin, req.as_bytes(), "POST").await.unwrap()
}

/// Parapet with one upstream (`app`, the origin) and one catch-all route.
pub async fn proxy_in_front_of(origin: &Origin) -> Proxy {
    Proxy::start(&Config::single(&[origin.addr])).await
}

/// Start an in-process origin on a free port.
pub async fn origin(name: &str) -> Origin {
    Origin::start(name, "127.0.0.1:0").await.unwrap()
}

/// Run `parapet -t` on `yaml`, which must be refused with every one of `expected`
/// in its output; returns the output, for further checks.
pub fn refused_naming<S: AsRef<str>>(yaml: &str, expected: &[S]) -> String {
    let (ok, out) = check_config(yaml);
    assert!(!ok, "{out}");
    for expected in expected.iter().map(AsRef::as_ref) {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    out
}

/// Run `parapet -t -c FILE` on `yaml`; returns (success, stdout + stderr).
pub fn check_config(yaml: &str) -> (bool, String) {
    let dir = scratch_dir("check");
    let conf = dir.join("parapet.yaml");
    std::fs::write(&conf, yaml).unwrap();
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
