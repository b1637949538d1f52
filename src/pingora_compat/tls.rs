//! TLS on a listener, terminated here rather than in Pingora's listener: Pingora
//! 0.9.1 gives every handshake a fixed 60 s (pingora-core services/listening.rs,
//! `timeout(Duration::from_secs(60), io.handshake())`) and runs it before the
//! application sees the connection, so a client that never sends its ClientHello
//! held a connection for a minute outside every cap. TLS listeners are therefore
//! plain TCP to Pingora; the connection gate counts each connection first, then
//! runs the handshake here within `client_header_timeout` (as nginx bounds its
//! SSL handshake by `client_header_timeout`). The stream it makes is Pingora's own
//! `TlsStream`, so what reads the TLS digest (the scheme, ALPN) is unchanged.

use crate::listener::{accepts_on, Listener};
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Stream;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// The TLS acceptor of each TLS listener.
#[derive(Default)]
pub(crate) struct TlsListeners {
    acceptors: Vec<(SocketAddr, Arc<Acceptor>)>,
}

impl TlsListeners {
    pub(crate) fn new(listeners: &[Listener]) -> TlsListeners {
        let acceptors = listeners
            .iter()
            .filter_map(|l| {
                let tls = l.tls.as_ref()?;
                let config =
                    crate::listener::tls::server_config(tls.certificates.clone(), tls.http2);
                Some((l.address, Arc::new(Acceptor::from_server_config(config))))
            })
            .collect();
        TlsListeners { acceptors }
    }

    /// The acceptor of the listener `stream` came in on, if that one is TLS.
    fn of(&self, stream: &Stream) -> Option<&Acceptor> {
        if self.acceptors.is_empty() {
            return None;
        }
        let digest = stream.get_socket_digest()?;
        let local = *digest.local_addr()?.as_inet()?;
        let (_, acceptor) = self.acceptors.iter().find(|(a, _)| accepts_on(*a, local))?;
        Some(acceptor)
    }

    /// `stream` as it must be served: over TLS when its listener is a TLS one (None
    /// when the handshake fails or does not end within `timeout`), else as it is.
    pub(crate) async fn terminate(&self, stream: Stream, timeout: Duration) -> Option<Stream> {
        let Some(acceptor) = self.of(&stream) else {
            return Some(stream);
        };
        // Pingora's listener hands over its TCP stream boxed (pingora-core
        // listeners/mod.rs, `UninitializedStream::handshake`).
        let Ok(tcp) = stream.into_any().downcast::<L4Stream>() else {
            log::error!("a connection to a TLS listener is not a TCP stream");
            return None;
        };
        // Boxed: the handshake's state would otherwise size the future of every
        // connection, for its whole life (the idle-memory figures in bench/RESULTS.md).
        let handshake = Box::pin(acceptor.tls_handshake(*tcp));
        match tokio::time::timeout(timeout, handshake).await {
            Ok(Ok(tls)) => Some(Box::new(tls)),
            // Client-made failures: not errors of the proxy.
            Ok(Err(e)) => {
                log::debug!("TLS handshake failed: {e}");
                None
            }
            Err(_) => {
                log::debug!("TLS handshake not done within client_header_timeout");
                None
            }
        }
    }
}
