//! What Parapet does with a client connection before and between its requests:
//! the connection gate wraps the proxy's `ServerApp`, so every accepted connection
//! passes through it first.
//!
//! caps            listeners' connection caps, and the count of open connections
//! handoff         from a graceful upgrade's SIGQUIT on, answers close their connection
//!
//! What the gate then does in Pingora's place lives in `pingora_compat`: the TLS
//! handshake (`tls`), the request-head deadline (`header_timeout`), the HTTP/1
//! keep-alive loop (`http1`) and the lingering close (`linger`).

pub(crate) mod caps;
pub(crate) mod handoff;

use crate::listener::tls::TlsListeners;
use crate::pingora_compat::header_timeout::HeadDeadline;
use crate::pingora_compat::http1;
use async_trait::async_trait;
use caps::ConnectionGates;
use handoff::Handoff;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::Session;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;

/// Whether the connection stays open after this request's answer, and how long
/// it may then sit idle: `limits.client_keepalive_timeout` (unless keep-alive is
/// already off: the client's choice, or a shutdown), and not at all once an
/// upgrade hands the listeners over.
pub(crate) fn keep_alive(session: &mut Session, idle_timeout: u64, handoff: &Handoff) {
    if handoff.started() {
        session.set_keepalive(None);
    } else if session.get_keepalive().is_some() {
        session.set_keepalive(Some(idle_timeout));
    }
}

/// The proxy (`app`) behind the caps, the head deadline and the keep-alive loop.
pub(crate) struct ConnectionGate<A> {
    app: Arc<A>,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    gates: Arc<ConnectionGates>,
    tls: Arc<TlsListeners>,
}

impl<A: HttpServerApp> ConnectionGate<A> {
    /// `header_timeout` bounds the arrival of each request head (and of a new
    /// connection's first one); `keepalive_timeout` the wait for a request after
    /// the first. `tls` terminates the TLS listeners' connections.
    pub(crate) fn new(
        app: A,
        header_timeout: Duration,
        keepalive_timeout: Duration,
        gates: Arc<ConnectionGates>,
        tls: Arc<TlsListeners>,
    ) -> Self {
        ConnectionGate {
            app: Arc::new(app),
            header_timeout,
            keepalive_timeout,
            gates,
            tls,
        }
    }

    /// Whether the connection is HTTP/1 for sure: not HTTP/2 by ALPN, not another
    /// protocol by ALPN, and not on an h2c service (which peeks for the preface).
    fn is_http1(&self, stream: &Stream) -> bool {
        let h2c = self.app.server_options().is_some_and(|o| o.h2c);
        match stream.selected_alpn_proto() {
            None | Some(ALPN::H1) => !h2c || stream.get_ssl_digest().is_some(),
            Some(_) => false,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for ConnectionGate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Over a cap: closed at once, before a byte is read. Counted from here,
        // so connections in their TLS handshake count too.
        let _admitted = self.gates.admit(&stream)?;
        let stream = self.tls.terminate(stream, self.header_timeout).await?;
        if self.is_http1(&stream) {
            let stream = Box::new(HeadDeadline::new(stream, self.header_timeout));
            http1::serve(&self.app, stream, self.keepalive_timeout, shutdown).await;
            return None;
        }
        // HTTP/2 by ALPN: its preface within the header timeout (h2's handshake has
        // no timer); after it, Pingora's `h2_idle_timeout` (server.rs) bounds a
        // connection with no stream. h2c: the preface peek within it too.
        let stream: Stream = match stream.selected_alpn_proto() {
            Some(ALPN::H2) => Box::new(HeadDeadline::h2_preface(stream, self.header_timeout)),
            _ => Box::new(HeadDeadline::new(stream, self.header_timeout)),
        };
        ServerApp::process_new(&self.app, stream, shutdown).await
    }

    /// Not the proxy's: at shutdown it aborts every wait for a request head, and
    /// the HTTP/1 waits are the keep-alive loop's, which gives them their time
    /// (`pingora_compat::http1`). HTTP/2 connections end through the shutdown watch.
    async fn cleanup(&self) {}
}
