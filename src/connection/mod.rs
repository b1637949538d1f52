//! What Parapet does with a client connection before and between its requests:
//! the connection gate wraps the proxy's `ServerApp`, so every accepted connection
//! passes through it first.
//!
//! caps            listeners' connection caps, and the count of open connections
//! handoff         from a graceful upgrade's SIGQUIT on, answers close their connection
//! header_timeout  `limits.client_header_timeout`: a request head must arrive whole
//!                 in time, from the accept or the request's first byte (slowloris)

pub mod caps;
pub mod handoff;
pub mod header_timeout;

use async_trait::async_trait;
use caps::ConnectionGates;
use handoff::Handoff;
use header_timeout::HeadDeadline;
use pingora::apps::ServerApp;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;

/// Whether the connection stays open after this request's answer, and how long
/// it may then sit idle: `limits.client_keepalive_timeout` (unless keep-alive is
/// already off: the client's choice, or a shutdown), and not at all once an
/// upgrade hands the listeners over.
pub fn keep_alive(session: &mut Session, idle_timeout: u64, handoff: &Handoff) {
    if handoff.started() {
        session.set_keepalive(None);
    } else if session.get_keepalive().is_some() {
        session.set_keepalive(Some(idle_timeout));
    }
}

/// The proxy (`app`) behind the caps and the head deadline.
pub struct ConnectionGate<A> {
    app: Arc<A>,
    header_timeout: Duration,
    gates: Arc<ConnectionGates>,
}

impl<A> ConnectionGate<A> {
    pub fn new(app: A, header_timeout: Duration, gates: Arc<ConnectionGates>) -> Self {
        ConnectionGate {
            app: Arc::new(app),
            header_timeout,
            gates,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for ConnectionGate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Over a cap: closed at once, before a byte is read.
        let _admitted = self.gates.admit(&stream)?;
        let stream = match stream.selected_alpn_proto() {
            Some(ALPN::H2) => stream,
            _ => Box::new(HeadDeadline::new(stream, self.header_timeout)),
        };
        self.app.process_new(stream, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}
