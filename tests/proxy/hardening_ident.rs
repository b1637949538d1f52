//! Who the client is, from outside: several `X-Forwarded-For` lines are one list
//! (RFC 9110 §5.3), IPv6 clients are counted by prefix, and an admin listener off
//! loopback needs a token.

use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MINIMAL: &str = "listeners: [{address: \"127.0.0.1:1\"}]\n\
    upstreams: {app: {backends: [{address: \"127.0.0.1:2\"}]}}\n\
    routes: [{upstream: app}]\n";

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
