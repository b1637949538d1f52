//! TLS on a listener, terminated here rather than in Pingora's listener: Pingora
//! 0.9.1 gives every handshake a fixed 60 s (pingora-core services/listening.rs,
//! `timeout(Duration::from_secs(60), io.handshake())`) and runs it before the
//! application sees the connection, so a client that never sends its ClientHello
//! held a connection for a minute outside every cap. TLS listeners are therefore
//! plain TCP to Pingora; the connection gate counts each connection first, then
//! runs the handshake here (through `listener::tls::TlsListeners`) within
//! `client_header_timeout` (as nginx bounds its SSL handshake by
//! `client_header_timeout`). The stream it makes is Pingora's own
//! `TlsStream`, so what reads the TLS digest (the scheme, ALPN) is unchanged.
//!
//! The rustls configuration is built here as Pingora's `TlsSettings::build` builds
//! it (pingora-core listeners/tls/rustls/mod.rs): TLS 1.2 and 1.3 only, rustls's
//! cipher suites (AEAD only: the TLS 1.3 suites and ECDHE with AES-GCM or
//! ChaCha20-Poly1305, a subset of Mozilla's "intermediate"), sessions resumed from
//! rustls's in-memory cache. One difference: the server's cipher order wins
//! (`ignore_client_order`, as nginx's `ssl_prefer_server_ciphers`), which Pingora's
//! settings cannot ask for.

use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Stream;
use pingora::tls::{version, ResolvesServerCert, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// The acceptor of a TLS listener whose certificate `certificates` picks per
/// handshake; HTTP/2 offered by ALPN when `http2`.
pub(crate) fn acceptor(certificates: Arc<dyn ResolvesServerCert>, http2: bool) -> Acceptor {
    Acceptor::from_server_config(server_config(certificates, http2))
}

/// `stream` over TLS; None when the handshake fails or does not end within
/// `timeout`.
pub(crate) async fn handshake(
    acceptor: &Acceptor,
    stream: Stream,
    timeout: Duration,
) -> Option<Stream> {
    // Pingora's listener hands over its TCP stream boxed (pingora-core
    // listeners/mod.rs, `UninitializedStream::handshake`).
    let Ok(tcp) = stream.into_any().downcast::<L4Stream>() else {
        log::error!("a connection to a TLS listener is not a TCP stream");
        return None;
    };
    // Boxed with its timer: their state would otherwise size the future of every
    // connection, TLS or not, for its whole life (idle memory, bench/RESULTS.md).
    let handshake = Box::pin(tokio::time::timeout(timeout, acceptor.tls_handshake(*tcp)));
    match handshake.await {
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

/// The rustls configuration of a TLS listener: its certificates chosen by SNI,
/// HTTP/2 offered by ALPN beside HTTP/1.1 when `http2`, the server's cipher order.
fn server_config(certificates: Arc<dyn ResolvesServerCert>, http2: bool) -> Arc<ServerConfig> {
    pingora::tls::install_default_crypto_provider();
    let mut config =
        ServerConfig::builder_with_protocol_versions(&[&version::TLS12, &version::TLS13])
            .with_no_client_auth()
            .with_cert_resolver(certificates);
    if http2 {
        // As Pingora's `ALPN::H2H1`: HTTP/2 preferred (RFC 7301 §3.2 names).
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    // rustls's order (pingora-rustls installs ring's): AES-256-GCM, AES-128-GCM,
    // ChaCha20-Poly1305, ECDSA before RSA for TLS 1.2.
    config.ignore_client_order = true;
    Arc::new(config)
}
