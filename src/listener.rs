//! The proxy's listening sockets (SPEC §2 `listeners`): what each entry may say,
//! and the typed listener the server binds. TLS, HTTP/2 and h2c have their slots
//! here; until they are built their keys are rejected as unknown, so a
//! configuration that asks for them fails at load rather than serving cleartext.

use crate::config::{field, section, ConfigErrors};
use pingora::proxy::Session;
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;

/// One entry of `listeners` as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerEntry {
    pub address: String,
}

/// A listening socket as the server binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    /// Terminate TLS with these certificates (none yet: cleartext only).
    pub tls: Option<ListenerTls>,
    /// Offer HTTP/2 through ALPN on a TLS listener.
    pub http2: bool,
    /// Accept cleartext HTTP/2 with prior knowledge.
    pub h2c: bool,
}

/// The certificates of a TLS listener, chosen by SNI; the first is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerTls {
    pub certificates: Vec<CertificateFiles>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The scheme a request arrived with, for `X-Forwarded-Proto` and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// From the connection the request came on: TLS or not.
    pub fn of(session: &Session) -> Scheme {
        match session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            true => Scheme::Https,
            false => Scheme::Http,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl Listener {
    /// Every entry of `listeners` (each deserialized on its own, so one mistake
    /// does not hide the next); at least one is required, no address twice.
    pub fn list_from_config(values: &[Value], errors: &mut ConfigErrors) -> Vec<Listener> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let path = format!("listeners[{i}]");
            let Some(entry) = section::<ListenerEntry>(value, &path, errors) else {
                continue;
            };
            let path = field(&path, "address");
            match entry.address.parse::<SocketAddr>() {
                Err(_) => errors.push(
                    path,
                    format!("'{}' is not an IP:port address", entry.address),
                ),
                Ok(addr) if !seen.insert(addr) => errors.push(
                    path,
                    format!("'{addr}' is already used by another listener"),
                ),
                Ok(address) => out.push(Listener::cleartext(address)),
            }
        }
        if values.is_empty() {
            errors.push("listeners", "at least one listener is required");
        }
        out
    }

    /// A plain HTTP/1.1 listener.
    pub fn cleartext(address: SocketAddr) -> Listener {
        Listener {
            address,
            tls: None,
            http2: false,
            h2c: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listeners(yaml: &str) -> (Vec<Listener>, Vec<String>) {
        let values: Vec<Value> = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let out = Listener::list_from_config(&values, &mut errors);
        let problems = errors.paths();
        (out, problems)
    }

    #[test]
    fn addresses_become_cleartext_listeners() {
        let (out, problems) = listeners("[{address: '127.0.0.1:80'}, {address: '[::1]:81'}]");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(out[0], Listener::cleartext("127.0.0.1:80".parse().unwrap()));
        assert_eq!(out[1].address, "[::1]:81".parse().unwrap());
    }

    #[test]
    fn bad_and_repeated_addresses_are_named() {
        let (out, problems) = listeners(
            "[{address: 'localhost:80'}, {address: '127.0.0.1:80'}, {address: '127.0.0.1:80'}]",
        );
        assert_eq!(out.len(), 1);
        assert_eq!(problems, ["listeners[0].address", "listeners[2].address"]);
    }

    #[test]
    fn unbuilt_keys_and_empty_lists_are_refused() {
        let (_, problems) = listeners("[{address: '127.0.0.1:80', h2c: true}]");
        assert_eq!(problems, ["listeners[0].h2c"]);
        let (_, problems) = listeners("[]");
        assert_eq!(problems, ["listeners"]);
    }
}
