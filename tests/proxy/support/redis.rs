//! A real `redis-server` (Debian's package; `make test` installs it) on a free
//! loopback port, with no persistence, stopped on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Redis {
    pub addr: SocketAddr,
    child: Child,
}

impl Redis {
    pub async fn start() -> Redis {
        Redis::start_on(super::free_port()).await
    }

    /// On `port` (to come back where a stopped one was).
    pub async fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package; `make test` installs it)");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let up = super::eventually(Duration::from_secs(10), async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "redis-server did not listen on {addr}");
        Redis { addr, child }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
