//! The bench's baseline: the smallest Pingora 0.9 proxy (one fixed peer, no
//! policies, no logging, mimalloc like Parapet), so `make bench` can show what
//! Parapet itself adds on top of Pingora. Listens on 127.0.0.1:18092 and proxies to
//! 127.0.0.1:18081.

use async_trait::async_trait;
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[cfg(not(feature = "count-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "count-alloc")]
#[global_allocator]
static GLOBAL: parapet::alloc_count::Counting<mimalloc::MiMalloc> =
    parapet::alloc_count::Counting(mimalloc::MiMalloc);

struct Bare;

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            "127.0.0.1:18081",
            false,
            String::new(),
        )))
    }
}

fn main() {
    #[cfg(feature = "count-alloc")]
    parapet::alloc_count::report_from_env();
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: "/tmp/parapet-bench/bare.pid".into(),
        upgrade_sock: "/tmp/parapet-bench/bare.sock".into(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare);
    proxy.add_tcp("127.0.0.1:18092");
    server.add_service(proxy);
    server.run_forever();
}
