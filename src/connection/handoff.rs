//! The hand-off of a graceful upgrade, seen by the old instance. On SIGQUIT Pingora
//! gives its listening sockets to the new instance and keeps serving for a few
//! seconds before its shutdown begins. From the SIGQUIT on, every answer of the old
//! instance says `Connection: close`: keep-alive clients leave at a response
//! boundary and reconnect, to the new instance, rather than stay on an instance
//! that is about to exit. (Connections still waiting for a request when the
//! shutdown begins are the keep-alive loop's to serve: `pingora_compat::http1`.)

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Whether this instance is handing its listeners over.
#[derive(Default)]
pub(crate) struct Handoff(AtomicBool);

impl Handoff {
    pub(crate) fn started(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Watches for SIGQUIT beside Pingora's own handler.
pub(crate) struct HandoffWatch(pub Arc<Handoff>);

#[async_trait]
impl BackgroundService for HandoffWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut quit = match signal(SignalKind::quit()) {
            Ok(quit) => quit,
            Err(e) => {
                log::error!("cannot watch SIGQUIT; upgrades keep clients alive: {e}");
                return;
            }
        };
        tokio::select! {
            _ = quit.recv() => {
                log::info!("hand-off started: answers now close their connections");
                self.0 .0.store(true, Ordering::Relaxed);
            }
            _ = shutdown.changed() => {}
        }
    }
}
