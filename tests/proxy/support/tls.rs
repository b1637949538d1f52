//! Throwaway certificates (a test CA and leaves it signs) and a TLS client that
//! says which certificate it was given and which protocol ALPN chose.

use rcgen::{CertificateParams, DnType, IsCa, KeyPair};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and key written as PEM files, and the certificate's DER.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
    pub key_der: Vec<u8>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Parapet test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa { cert, key }
    }

    pub fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }

    /// The CA certificate as a PEM file in `dir`.
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A leaf for `names`, valid now (or expired yesterday), written into `dir`
    /// as `<tag>.pem` and `<tag>.key`.
    pub fn leaf(&self, dir: &Path, tag: &str, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        if expired {
            let now = time_now();
            params.not_before = now - time::Duration::days(30);
            params.not_after = now - time::Duration::days(1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{tag}.pem")),
            key: dir.join(format!("{tag}.key")),
            der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A TLS client connection to `addr`, trusting `ca`, checking the certificate
/// against `name`, sending it as SNI when `sni`, offering the `alpn` protocols.
pub async fn connect(
    addr: SocketAddr,
    ca: &[u8],
    name: &str,
    sni: bool,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.to_vec())).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = sni;
    let name = ServerName::try_from(name.to_string()).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The certificate the server presented.
pub fn served(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    let (_, conn) = stream.get_ref();
    conn.peer_certificates().unwrap()[0].to_vec()
}

/// The protocol ALPN chose.
pub fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(|p| p.to_vec())
}

/// An HTTPS origin with `leaf`'s certificate that answers every request 200 with
/// `X-Origin: tls`; returns its address and the count of requests it answered.
pub async fn tls_origin(leaf: &Leaf) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncWriteExt, BufReader};
    use tokio_rustls::rustls::pki_types::PrivateKeyDer;
    use tokio_rustls::rustls::ServerConfig;
    let chain = vec![CertificateDer::from(leaf.der.clone())];
    let key = leaf.key_der.clone();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, PrivateKeyDer::try_from(key).unwrap())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let answered = count.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, answered) = (acceptor.clone(), answered.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut io = BufReader::new(tls);
                while let Ok(Some(_head)) = parapet::demo::wire::read_head(&mut io).await {
                    answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nX-Origin: tls\r\n\r\nok\n";
                    if io.get_mut().write_all(resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}
