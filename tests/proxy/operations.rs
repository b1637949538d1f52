//! Zero-downtime operations with real processes: daemon mode, upgrades through the
//! shipped reload script under load, a refused broken reload, SIGTERM drain, SIGINT.

use crate::support::client::request;
use crate::support::process::{alive, signal, wait_exit, Daemon};
use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upstreams `app` (health-checked) and `new`, both the origin, and one
/// catch-all route to `app`.
fn config(o: &Origin) -> Config {
    Config::new()
        .upstream(
            "app",
            json!({
                "backends": backends(&[o.addr]),
                "health_check": {"type": "tcp", "interval": "1s"}
            }),
        )
        .upstream("new", json!({"backends": backends(&[o.addr])}))
        .route(json!({"upstream": "app"}))
}

/// `config` with a route to `new` under `/new/` before the catch-all one.
fn config_with_new(o: &Origin) -> Config {
    config(o).routes(json!([
        {"path_prefix": "/new/", "upstream": "new", "host": "*"},
        {"upstream": "app"}
    ]))
}

/// Load from 5 clients: odd ones open a connection per request, even ones keep
/// theirs. No client ever sends a request twice: a connection closed before its
/// answer (an idle keep-alive connection closed by the old instance, a connection
/// it accepted as it stopped) is a failed request, as is a refused connection or
/// an error status.
pub(crate) struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

#[derive(Default, Debug)]
pub(crate) struct Tally {
    pub(crate) ok: usize,
    pub(crate) failed: usize,
    notes: Vec<String>,
}

impl Tally {
    fn count(&mut self, client: usize, reuse: bool, result: std::io::Result<u16>) {
        match result {
            Ok(200) => self.ok += 1,
            other => {
                self.failed += 1;
                let note = format!("client {client} (keep-alive: {reuse}) failed: {other:?}");
                self.notes.push(note);
            }
        }
    }
}

async fn one_request(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    reuse: bool,
) -> std::io::Result<u16> {
    if !(reuse && conn.is_some()) {
        *conn = Some(Conn::open(addr).await?);
    }
    let Some(c) = conn.as_mut() else {
        return Err(std::io::ErrorKind::NotConnected.into());
    };
    let resp = c.get("/echo", &[]).await?;
    // As real clients do: a connection the answer closes is not used again.
    if resp
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        *conn = None;
    }
    Ok(resp.status())
}

impl Load {
    pub(crate) fn start(addr: SocketAddr) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + Duration::from_secs(180);
        let tasks = (0..5)
            .map(|i| {
                let (tally, stop) = (tally.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let reuse = i % 2 == 0;
                        let result = one_request(&mut conn, addr, reuse).await;
                        if result.as_ref().ok() != Some(&200) {
                            conn = None;
                        }
                        tally.lock().unwrap().count(i, reuse, result);
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Load { tally, stop, tasks }
    }

    /// Requests answered 200 so far.
    pub(crate) fn ok(&self) -> usize {
        self.tally.lock().unwrap().ok
    }

    /// Wait until at least `more` requests beyond `since` were answered 200.
    pub(crate) async fn progressed(&self, since: usize, more: usize) -> bool {
        eventually(Duration::from_secs(10), async || self.ok() >= since + more).await
    }

    pub(crate) async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let tally = std::mem::take(&mut *self.tally.lock().unwrap());
        for note in &tally.notes {
            eprintln!("{note}");
        }
        tally
    }
}

/// Upgrades in a row under load: no client retries, and none may lose a request.
const UPGRADES: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_upgrades_under_load_fail_no_request() {
    let o = origin("o").await;
    let grace = 1;
    let mut daemon = Daemon::start(free_port(), grace, &config(&o)).await;
    let load = Load::start(daemon.addr);
    assert!(load.progressed(0, 1).await, "the load never got going");

    let mut old_pids = Vec::new();
    for round in 0..UPGRADES {
        let old = daemon.pid().unwrap();
        if round == 1 {
            // The second upgrade also changes the configuration: a new route appears.
            assert_eq!(
                get(daemon.addr, "/new/echo").await.header("x-origin"),
                Some("o")
            );
            daemon.write_config(grace, &config_with_new(&o));
        }
        let (ok, out) = daemon.reload().await;
        assert!(ok, "reload {round} failed: {out}\n{}", daemon.log());
        let new = daemon.pid().unwrap();
        assert_ne!(new, old, "pid file did not change");
        assert!(alive(new));
        old_pids.push((old, Instant::now()));
        let since = load.ok();
        assert!(
            load.progressed(since, 50).await,
            "no load served after reload {round}; log:\n{}",
            daemon.log()
        );
    }
    let served_echo = get(daemon.addr, "/new/echo").await;
    assert_eq!(served_echo.status(), 200);
    assert!(
        served_echo.text().starts_with("GET /new/echo"),
        "{}",
        served_echo.text()
    );

    // Each old process hands over, keeps accepting for Pingora's 5 s close
    // timeout, drains for grace_period_seconds, then stops within
    // graceful_shutdown_timeout_seconds.
    let limit = Duration::from_secs(5 + grace + 1 + 3);
    for (pid, since) in old_pids {
        let left = limit.saturating_sub(since.elapsed());
        let exited = wait_exit(pid, left).await;
        assert!(
            exited.is_some(),
            "old pid {pid} still alive; log:\n{}",
            daemon.log()
        );
        eprintln!("old pid {pid} gone {:?} after its reload", since.elapsed());
    }
    let t = load.finish().await;
    eprintln!(
        "{UPGRADES} upgrades under load: {} requests ok, {} failed",
        t.ok, t.failed
    );
    assert_eq!(t.failed, 0, "{t:?}; log:\n{}", daemon.log());
    assert!(t.ok > 100, "too little load: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_leaves_the_old_instance_serving() {
    let o = origin("o").await;
    let mut daemon = Daemon::start(free_port(), 1, &config(&o)).await;
    let load = Load::start(daemon.addr);
    let pid = daemon.pid().unwrap();
    let broken = Config::new()
        .upstream("app", json!({"backends": [{"address": "nope"}]}))
        .route(json!({"upstream": "app"}));
    daemon.write_config(1, &broken);
    let (ok, out) = daemon.reload().await;
    assert!(!ok, "a broken reload succeeded: {out}");
    assert!(out.contains("upstreams.app.backends[0].address"), "{out}");
    let since = load.ok();
    assert!(
        load.progressed(since, 50).await,
        "no load served after the broken reload"
    );
    assert_eq!(daemon.pid(), Some(pid));
    assert!(alive(pid));
    let t = load.finish().await;
    assert_eq!(t.failed, 0, "{t:?}");
    assert!(t.ok > 20, "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    let o = origin("o").await;
    let grace = 2;
    let logs = scratch_dir("sigterm-log");
    let log = logs.join("access.log");
    // With the access log on, its lines are written before the process ends.
    let daemon = Daemon::start(
        free_port(),
        grace,
        &config(&o).section("access_log", json!({"path": log})),
    )
    .await;
    let pid = daemon.pid().unwrap();
    let mut conn = Conn::open(daemon.addr).await.unwrap();
    conn.send(request("GET", "/slow/1200", &[]).as_bytes())
        .await
        .unwrap();
    let arrived = eventually(Duration::from_secs(5), async || o.state.count("/slow") >= 1).await;
    assert!(arrived, "the request never reached the origin");
    let sent = Instant::now();
    signal(pid, "TERM");
    let resp = conn.response("GET").await.unwrap();
    assert_eq!(resp.status(), 200);
    // Pingora waits out the grace period, then stops the runtimes; no background
    // service of ours (health checks, access log) may hold it longer.
    let exited = wait_exit(pid, Duration::from_millis(grace * 1000 + 900)).await;
    assert!(
        exited.is_some(),
        "still running after SIGTERM; log:\n{}",
        daemon.log()
    );
    eprintln!("SIGTERM to exit: {:?}", sent.elapsed());
    // New connections are refused once it is gone.
    assert!(tokio::net::TcpStream::connect(daemon.addr).await.is_err());
    // The drained request was logged before the writer stopped.
    let written = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(written.contains("\"path\":\"/slow/1200\""), "{written}");
    let _ = std::fs::remove_dir_all(&logs);
}

/// Pingora drops every connection waiting for a request when its shutdown begins;
/// Parapet serves a request that arrives on one during the grace period, and
/// closes the connection with its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_waiting_for_a_request_at_shutdown_are_still_served() {
    let o = origin("o").await;
    let daemon = Daemon::start(free_port(), 3, &config(&o)).await;
    let pid = daemon.pid().unwrap();
    let mut fresh = Conn::open(daemon.addr).await.unwrap();
    let mut idle = Conn::open(daemon.addr).await.unwrap();
    assert_eq!(idle.get("/echo", &[]).await.unwrap().status(), 200);
    signal(pid, "TERM");
    // The shutdown has begun once the listener is gone.
    let stopped = eventually(Duration::from_secs(5), async || {
        tokio::net::TcpStream::connect(daemon.addr).await.is_err()
    })
    .await;
    assert!(stopped, "still accepting after SIGTERM");
    for (name, conn) in [("new", &mut fresh), ("keep-alive", &mut idle)] {
        let resp = conn.get("/echo", &[]).await;
        let resp = resp.unwrap_or_else(|e| panic!("{name} connection dropped: {e}"));
        assert_eq!(resp.status(), 200, "{name}");
        assert_eq!(resp.header("connection"), Some("close"), "{name}");
    }
    assert_eq!(o.state.count("/echo"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_exits_at_once() {
    let o = origin("o").await;
    let daemon = Daemon::start(free_port(), 30, &config(&o)).await;
    let pid = daemon.pid().unwrap();
    signal(pid, "INT");
    let exited = wait_exit(pid, Duration::from_secs(3)).await;
    assert!(
        exited.is_some(),
        "SIGINT did not stop it; log:\n{}",
        daemon.log()
    );
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/parapet.service"
    ))
    .unwrap();
    for line in [
        "Type=forking",
        "PIDFile=/run/parapet/parapet.pid",
        "ExecStart=/usr/local/bin/parapet -d -c /etc/parapet/parapet.yaml",
        "ExecReload=/usr/local/lib/parapet/parapet-reload /etc/parapet/parapet.yaml /run/parapet/parapet.pid",
        "User=parapet",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "RuntimeDirectory=parapet",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(line), "unit lacks {line}");
    }
    let Ok(which) = std::process::Command::new("sh")
        .args(["-c", "command -v systemd-analyze"])
        .output()
    else {
        return;
    };
    if !which.status.success() {
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was not verified");
        return;
    }
    // Point the unit at binaries that exist here so that verify checks them too.
    let dir = scratch_dir("unit");
    let local = unit.replace("/usr/local/bin/parapet", BIN).replace(
        "/usr/local/lib/parapet/parapet-reload",
        crate::support::process::RELOAD,
    );
    std::fs::write(dir.join("parapet.service"), local).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join("parapet.service"))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}
