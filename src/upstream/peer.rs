//! How Parapet connects to a backend: the Pingora peer of each backend, built once
//! with the upstream's timeouts, TLS and protocol, and cloned for every attempt.
//!
//! TLS to the origin (`upstreams.NAME.tls`) verifies the backend's certificate
//! against `sni` by default, with the system's roots or the `ca` bundle given; a
//! certificate that does not verify fails the attempt (502), never a cleartext or
//! unverified fallback. Pingora skips verification for a peer without SNI and
//! cannot connect to one over TLS without a name, so `sni` is required.

use super::config::Timeouts;
use crate::config::{field, pem, ConfigErrors};
use pingora::protocols::tls::CaType;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, WrappedX509};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `upstreams.NAME.tls` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsConfig {
    pub sni: Option<String>,
    #[serde(default = "yes")]
    pub verify: bool,
    pub ca: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// TLS to an upstream's backends.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// The name sent in SNI and verified in the certificate.
    pub sni: String,
    pub verify: bool,
    /// Trust these CAs instead of the system's.
    pub ca: Option<Arc<CaType>>,
}

impl UpstreamTls {
    /// `path` is the `tls` section's.
    pub fn from_config(
        config: UpstreamTlsConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<UpstreamTls> {
        if config.sni.as_deref().is_none_or(str::is_empty) {
            let why = "required: the name sent to the backends, and checked in their \
                       certificates while verify is on";
            errors.push(field(path, "sni"), why);
            return None;
        }
        let ca = match &config.ca {
            Some(file) => match load_ca(file) {
                Ok(ca) => Some(ca),
                Err(message) => {
                    errors.push(field(path, "ca"), message);
                    return None;
                }
            },
            None => None,
        };
        Some(UpstreamTls {
            sni: config.sni.unwrap_or_default(),
            verify: config.verify,
            ca,
        })
    }
}

/// A PEM bundle of CA certificates, each checked to parse (Pingora's own parse
/// of them panics on bad input).
fn load_ca(file: &Path) -> Result<Arc<CaType>, String> {
    let shown = file.display();
    let ders = pem::certificates(file)?;
    let mut out = Vec::with_capacity(ders.len());
    for der in ders {
        X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("{shown}: not an X.509 certificate ({e})"))?;
        out.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    Ok(Arc::from(out))
}

/// The peer of one backend. `http2`: HTTP/2 to it, offered by ALPN beside
/// HTTP/1.1 over TLS, by prior knowledge over cleartext.
pub fn build(address: SocketAddr, tls: Option<&UpstreamTls>, http2: bool, t: Timeouts) -> HttpPeer {
    let sni = tls.map(|tls| tls.sni.clone()).unwrap_or_default();
    let mut peer = HttpPeer::new(address, tls.is_some(), sni);
    peer.options.connection_timeout = Some(t.connect);
    // Waiting for the response head, and between two reads after it. No write
    // timeout: Pingora registers a timer on every read and every write, and the read
    // timeout already bounds a backend that stops reading, since the response is
    // awaited while the body is sent.
    peer.options.read_timeout = Some(t.response_header);
    peer.options.idle_timeout = Some(t.idle);
    if let Some(tls) = tls {
        peer.options.verify_cert = tls.verify;
        peer.options.verify_hostname = tls.verify;
        peer.options.ca = tls.ca.clone();
    }
    if http2 {
        peer.options.alpn = match tls {
            Some(_) => ALPN::H2H1,
            None => ALPN::H2,
        };
    }
    peer
}
