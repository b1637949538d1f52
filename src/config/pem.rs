//! PEM files named in the configuration, read once at load with messages that
//! name the file: the listeners' certificates and keys, the upstreams' CA bundles.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use x509_parser::prelude::{GeneralName, X509Certificate};

/// An error unless `path` can be opened for reading.
pub(crate) fn readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every certificate in `path`, in order; at least one.
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    readable(path)?;
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{shown}: not a PEM certificate ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{shown}: no certificate in the file"));
    }
    Ok(certs)
}

/// The DNS names a certificate is for (its SANs, else its CN), lowercased.
pub(crate) fn dns_names(parsed: &X509Certificate<'_>) -> Vec<String> {
    let mut names: Vec<String> = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        let cn = parsed.subject().iter_common_name().next();
        names.extend(
            cn.and_then(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    names
}
