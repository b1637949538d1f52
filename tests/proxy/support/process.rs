//! Parapet as operators run it: daemonized with a pid file, upgraded with the
//! shipped reload script, stopped with signals.

use super::{json, scratch_dir, Config, BIN};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub const RELOAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/parapet-reload");

/// A daemonized parapet and every process it became through upgrades.
pub struct Daemon {
    pub dir: PathBuf,
    pub addr: SocketAddr,
    seen_pids: Vec<u32>,
}

impl Daemon {
    /// Write the configuration (server section and listener generated) and start
    /// `parapet -d`. Returns once the pid file names a live process and the port accepts.
    pub async fn start(port: u16, grace: u64, config: &Config) -> Daemon {
        let dir = scratch_dir("daemon");
        let mut d = Daemon {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
            seen_pids: Vec::new(),
        };
        d.write_config(grace, config);
        let status = Command::new(BIN)
            .args(["-d", "-c"])
            .arg(d.conf())
            .env("RUST_LOG", "info")
            .status()
            .unwrap();
        assert!(status.success(), "parapet -d failed");
        let pid = d.wait_for_pid(None).await;
        d.seen_pids.push(pid);
        let up = super::eventually(Duration::from_secs(20), async || {
            tokio::net::TcpStream::connect(d.addr).await.is_ok()
        })
        .await;
        assert!(up, "daemon never listened; log:\n{}", d.log());
        d
    }

    pub fn conf(&self) -> PathBuf {
        self.dir.join("parapet.yaml")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("parapet.pid")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// (Re)write the configuration file the next reload will use.
    pub fn write_config(&self, grace: u64, config: &Config) {
        let error_log = self.dir.join("error.log");
        let config = config
            .clone()
            .for_process(&self.dir, self.addr, grace)
            .section("daemon", json!(false))
            .section("error_log", json!(error_log));
        std::fs::write(self.conf(), config.yaml()).unwrap();
    }

    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    async fn wait_for_pid(&self, not: Option<u32>) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(pid) = self.pid().filter(|p| Some(*p) != not && alive(*p)) {
                return pid;
            }
            assert!(
                Instant::now() < deadline,
                "no pid file; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Run the shipped reload script; returns (success, output).
    pub async fn reload(&mut self) -> (bool, String) {
        let (conf, pid_file) = (self.conf(), self.pid_file());
        let out = tokio::process::Command::new("sh")
            .arg(RELOAD)
            .arg(conf)
            .arg(pid_file)
            .arg(BIN)
            .env("RUST_LOG", "info")
            .output()
            .await
            .unwrap();
        if let Some(pid) = self.pid() {
            if !self.seen_pids.contains(&pid) {
                self.seen_pids.push(pid);
            }
        }
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        for pid in &self.seen_pids {
            signal(*pid, "KILL");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a process runs (a zombie does not count).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Wait for `pid` to exit; returns how long it took, or None after `limit`. It
/// looks at least once, so a zero limit asks whether `pid` has already exited.
pub async fn wait_exit(pid: u32, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    loop {
        if !alive(pid) {
            return Some(start.elapsed());
        }
        if start.elapsed() >= limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
