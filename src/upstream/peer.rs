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
pub(crate) struct UpstreamTlsConfig {
    pub(crate) sni: Option<String>,
    #[serde(default = "yes")]
    pub(crate) verify: bool,
    pub(crate) ca: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// TLS to an upstream's backends.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamTls {
    /// The name sent in SNI and verified in the certificate.
    pub(crate) sni: String,
    pub(crate) verify: bool,
    /// Trust these CAs instead of the system's.
    pub(crate) ca: Option<Arc<CaType>>,
}

impl UpstreamTls {
    /// `path` is the `tls` section's.
    pub(crate) fn from_config(
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
        let sni = config.sni.as_deref().unwrap_or_default();
        let ca = match &config.ca {
            Some(file) => match load_ca(file, sni, config.verify) {
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
/// of them panics on bad input) and, while `verify` is on, to be usable by rustls.
fn load_ca(file: &Path, sni: &str, verify: bool) -> Result<Arc<CaType>, String> {
    let shown = file.display();
    let ders = pem::certificates(file)?;
    let mut out = Vec::with_capacity(ders.len());
    for der in ders {
        let (_, parsed) = X509Certificate::from_der(der.as_ref())
            .map_err(|e| format!("{shown}: not an X.509 certificate ({e})"))?;
        if verify && is_own_ca_certificate(&parsed, sni) {
            return Err(own_ca_certificate_message(file, sni));
        }
        out.push(WrappedX509::new(der.to_vec(), parse_x509));
    }
    Ok(Arc::from(out))
}

/// Whether `cert` is a self-signed CA certificate for `sni` itself: the origin's
/// own certificate made by `openssl req -x509`, which marks it CA:TRUE. rustls
/// (webpki) refuses a CA certificate as the end entity (`CaUsedAsEndEntity`), and
/// Pingora 0.9.1's connector takes no certificate verifier of Parapet's
/// (pingora-core connectors/tls/rustls/mod.rs, `connect`), so it cannot be pinned:
/// every request would be a 502.
fn is_own_ca_certificate(cert: &X509Certificate<'_>, sni: &str) -> bool {
    let ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|b| b.value.ca);
    let self_signed = cert.subject().as_raw() == cert.issuer().as_raw();
    let sni = sni.to_ascii_lowercase();
    let for_sni = pem::dns_names(cert)
        .iter()
        .any(|name| match name.strip_prefix("*.") {
            Some(parent) => sni.split_once('.').is_some_and(|(_, rest)| rest == parent),
            None => *name == sni,
        });
    ca && self_signed && for_sni
}

fn own_ca_certificate_message(file: &Path, sni: &str) -> String {
    format!(
        "{}: a self-signed certificate for {sni} with basicConstraints CA:TRUE (as \
         `openssl req -x509` makes it) cannot be the origin's own certificate: TLS \
         verification refuses a CA as the end entity (CaUsedAsEndEntity). Either give \
         the origin a self-signed certificate with CA:FALSE and name it here: \
         `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout origin.key -out origin.pem -days 825 -subj /CN={sni} \
         -addext subjectAltName=DNS:{sni} -addext basicConstraints=critical,CA:FALSE`; \
         or make a separate CA (`openssl req -x509 -newkey ec -pkeyopt \
         ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 3650 \
         -subj /CN=origin-ca`), sign the origin's certificate with it (`openssl req \
         -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout origin.key \
         -subj /CN={sni} | openssl x509 -req -CA ca.pem -CAkey ca.key -days 825 \
         -extfile <(printf 'subjectAltName=DNS:{sni}\\nbasicConstraints=CA:FALSE') \
         -out origin.pem`) and name ca.pem here",
        file.display()
    )
}

/// The peer of one backend. `http2`: HTTP/2 to it, offered by ALPN beside
/// HTTP/1.1 over TLS, by prior knowledge over cleartext.
pub(crate) fn build(
    address: SocketAddr,
    tls: Option<&UpstreamTls>,
    http2: bool,
    t: Timeouts,
) -> HttpPeer {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    /// A self-signed certificate for `names`, CA:TRUE or not; its DER.
    fn self_signed(names: &[&str], ca: bool) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn own_ca(der: &[u8], sni: &str) -> bool {
        let (_, parsed) = X509Certificate::from_der(der).unwrap();
        is_own_ca_certificate(&parsed, sni)
    }

    #[test]
    fn only_a_self_signed_ca_for_the_sni_itself_is_the_origins_own() {
        let own = self_signed(&["origin.test"], true);
        assert!(own_ca(&own, "origin.test") && own_ca(&own, "Origin.Test"));
        assert!(own_ca(&self_signed(&["*.test"], true), "origin.test"));
        // A CA for other names is a CA; a CA:FALSE certificate can be pinned.
        assert!(!own_ca(&own, "other.test"));
        assert!(!own_ca(
            &self_signed(&["origin.test"], false),
            "origin.test"
        ));
        assert!(!own_ca(&self_signed(&["*.test"], true), "a.origin.test"));
    }
}
