//! PEM files named in the configuration, read once at load with messages that
//! name the file: the listeners' certificates and keys, the upstreams' CA bundles.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;

/// An error unless `path` can be opened for reading.
pub fn readable(path: &Path) -> Result<(), String> {
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every certificate in `path`, in order; at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
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
