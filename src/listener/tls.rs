//! TLS on a listener (`listeners[].tls`, README "TLS and HTTP/2 at the edge"): its
//! certificates, read and checked once at load (so `parapet -t` reports a missing,
//! unreadable, non-PEM, mismatched or expired file by its field), and chosen per
//! handshake by SNI.
//!
//! The handshake and its rustls configuration are Parapet's, not Pingora's
//! (`pingora_compat::tls`); [`Certificates`] resolves each handshake's certificate,
//! and [`TlsListeners`] finds the acceptor of the listener a connection came in on.

use super::{accepts_on, Listener};
use crate::config::{field, pem, ConfigErrors};
use crate::pingora_compat as compat;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::Stream;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `listeners[].tls` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsEntry {
    pub(crate) certificates: Vec<CertificateEntry>,
    /// Offer HTTP/2 by ALPN (default true), beside HTTP/1.1.
    #[serde(default = "yes")]
    pub(crate) http2: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CertificateEntry {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A listener's loaded certificates: the first is the default, also for clients
/// that send no SNI; otherwise the name sent picks the certificate that lists it
/// (exactly, or under a `*.` wildcard), falling back to the default.
#[derive(Debug)]
pub(crate) struct Certificates {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_name(hello.server_name()).clone())
    }
}

impl Certificates {
    fn for_name(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return &self.default;
        };
        let parent = name.split_once('.').map(|(_, rest)| rest);
        self.exact
            .get(&name)
            .or_else(|| parent.and_then(|p| self.wildcard.get(p)))
            .unwrap_or(&self.default)
    }

    /// Load every entry; `path` is the `tls` section's. None when any failed.
    pub(crate) fn load(
        entries: &[CertificateEntry],
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Certificates> {
        if entries.is_empty() {
            errors.push(
                field(path, "certificates"),
                "at least one certificate is required",
            );
            return None;
        }
        let mut loaded = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{path}.certificates[{i}]");
            match load_one(entry) {
                Ok(one) => loaded.push(one),
                Err((key, message)) => errors.push(field(&at, key), message),
            }
        }
        if loaded.len() < entries.len() {
            return None;
        }
        let mut out = Certificates {
            default: loaded[0].0.clone(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
        };
        // The first certificate listing a name keeps it.
        for (key, names) in loaded {
            for name in names {
                let slot = match name.strip_prefix("*.") {
                    Some(parent) => out.wildcard.entry(parent.to_string()),
                    None => out.exact.entry(name),
                };
                slot.or_insert_with(|| key.clone());
            }
        }
        Some(out)
    }
}

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
                let acceptor = compat::tls::acceptor(tls.certificates.clone(), tls.http2);
                Some((l.address, Arc::new(acceptor)))
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
        match self.of(&stream) {
            Some(acceptor) => compat::tls::handshake(acceptor, stream, timeout).await,
            None => Some(stream),
        }
    }
}

/// A certificate with its key, and the names it serves.
type Loaded = (Arc<CertifiedKey>, Vec<String>);

/// The field at fault (`cert` or `key`) and what is wrong with it.
type Fault = (&'static str, String);

fn load_one(entry: &CertificateEntry) -> Result<Loaded, Fault> {
    let (cert, key) = (&entry.cert, &entry.key);
    let chain = pem::certificates(cert).map_err(|m| ("cert", m))?;
    pem::readable(key).map_err(|m| ("key", m))?;
    let leaf = &chain[0]; // `certificates` returns at least one
    let names = names_and_validity(leaf, cert).map_err(|m| ("cert", m))?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        (
            "key",
            format!("{}: not a PEM private key ({e})", key.display()),
        )
    })?;
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .ok_or(("key", "no TLS crypto provider installed".to_string()))?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        let why = format!(
            "{}: does not go with {} ({e})",
            key.display(),
            cert.display()
        );
        ("key", why)
    })?;
    Ok((Arc::new(certified), names))
}

/// The DNS names a certificate serves (its SANs, else its CN), lowercased;
/// an error when it is expired or not yet valid.
fn names_and_validity(leaf: &CertificateDer<'_>, file: &Path) -> Result<Vec<String>, String> {
    let (_, parsed) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| format!("{}: not an X.509 certificate ({e})", file.display()))?;
    let validity = parsed.validity();
    if !validity.is_valid() {
        let now = x509_parser::time::ASN1Time::now();
        let (when, what) = match validity.not_after < now {
            true => (validity.not_after, "expired on"),
            false => (validity.not_before, "is not valid before"),
        };
        return Err(format!("{}: {what} {when}", file.display()));
    }
    Ok(pem::dns_names(&parsed))
}
