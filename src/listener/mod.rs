//! The proxy's listening sockets (README: Configuration walk-through, `listeners`):
//! what each entry may say, and the typed listener the server binds: cleartext or TLS
//! (`tls`), HTTP/2 by ALPN or by prior knowledge (`h2c`), what a listener adds to its
//! answers (`hsts`, `redirect_https`), and what its paths may carry
//! (`path_normalization`).

pub(crate) mod tls;

use crate::config::units::{Size, Span};
use crate::config::{field, section, ConfigErrors};
use crate::http_util::path::EncodedSlash;
use http::HeaderValue;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tls::{Certificates, TlsEntry};

/// One entry of `listeners` as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenerEntry {
    pub(crate) address: String,
    pub(crate) tls: Option<TlsEntry>,
    #[serde(default)]
    pub(crate) h2c: bool,
    pub(crate) hsts: Option<Span>,
    #[serde(default)]
    pub(crate) redirect_https: bool,
    pub(crate) read_buffer: Option<Size>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_ip: Option<u32>,
    #[serde(default)]
    pub(crate) path_normalization: PathNormalization,
}

/// `path_normalization`: what an encoded `/` or `\` (`%2F`, `%5C`) in a path gets.
/// Either way it is never decoded (it would split a segment the client sent whole);
/// every other part of the path is normalised regardless (`http_util::path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PathNormalization {
    /// Kept encoded, its hex digits uppercased.
    #[default]
    Keep,
    /// Answered 400.
    Reject,
}

/// A listening socket as the server binds it.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub(crate) address: SocketAddr,
    /// Terminate TLS with these certificates.
    pub(crate) tls: Option<ListenerTls>,
    /// Accept cleartext HTTP/2 with prior knowledge (beside HTTP/1.1).
    pub(crate) h2c: bool,
    /// `Strict-Transport-Security` for the answers of a TLS listener.
    pub(crate) hsts: Option<HeaderValue>,
    /// Answer every request of a cleartext listener with a 301 to https.
    pub(crate) redirect_https: bool,
    /// Bytes each connection reads from its socket at once (Pingora's L4 buffer).
    pub(crate) read_buffer: usize,
    /// Connections beyond these are closed at accept.
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_ip: Option<u32>,
    /// What an encoded slash in a path gets.
    pub(crate) encoded_slash: EncodedSlash,
}

/// The read buffer of a connection unless a listener says otherwise: 8 KiB
/// instead of Pingora's 64 KiB holds less per idle connection at no measurable
/// CPU cost (figures in bench/RESULTS.md, from bench/read_buffer.sh).
pub(crate) const DEFAULT_READ_BUFFER: usize = 8 << 10;

/// A TLS listener's certificates, chosen by SNI, and whether it offers HTTP/2.
#[derive(Debug, Clone)]
pub(crate) struct ListenerTls {
    pub(crate) certificates: Arc<Certificates>,
    pub(crate) http2: bool,
}

/// Whether a connection to `local` came in on the listener bound to `bound`
/// (an unspecified IP listens on every address).
pub(crate) fn accepts_on(bound: SocketAddr, local: SocketAddr) -> bool {
    bound.port() == local.port() && (bound.ip().is_unspecified() || bound.ip() == local.ip())
}

/// What a listener adds to the answers of its requests, found per request by the
/// local address the connection came in on (only when some listener has any).
#[derive(Debug, Default)]
pub(crate) struct ListenerPolicies {
    /// (address, policy) of each listener that has any (one not listed has none).
    with_policy: Vec<(SocketAddr, Policy)>,
}

#[derive(Debug)]
struct Policy {
    hsts: Option<HeaderValue>,
    redirect_https: bool,
    encoded_slash: EncodedSlash,
}

/// The policy of the listener a request came in on.
pub(crate) struct ListenerPolicy<'a> {
    pub(crate) hsts: Option<&'a HeaderValue>,
    pub(crate) redirect_https: bool,
    pub(crate) encoded_slash: EncodedSlash,
}

impl ListenerPolicies {
    pub(crate) fn new(listeners: &[Listener]) -> ListenerPolicies {
        let with_policy = listeners
            .iter()
            .filter(|l| {
                l.hsts.is_some() || l.redirect_https || l.encoded_slash != EncodedSlash::Keep
            })
            .map(|l| {
                let policy = Policy {
                    hsts: l.hsts.clone(),
                    redirect_https: l.redirect_https,
                    encoded_slash: l.encoded_slash,
                };
                (l.address, policy)
            })
            .collect();
        ListenerPolicies { with_policy }
    }

    pub(crate) fn of(&self, session: &Session) -> Option<ListenerPolicy<'_>> {
        if self.with_policy.is_empty() {
            return None;
        }
        let local = session.server_addr()?.as_inet()?;
        self.with_policy
            .iter()
            .find(|(a, _)| accepts_on(*a, *local))
            .map(|(_, policy)| ListenerPolicy {
                hsts: policy.hsts.as_ref(),
                redirect_https: policy.redirect_https,
                encoded_slash: policy.encoded_slash,
            })
    }
}

impl Listener {
    /// Every entry of `listeners` (each deserialized on its own, so one mistake
    /// does not hide the next); at least one is required, no address twice.
    pub(crate) fn list_from_config(values: &[Value], errors: &mut ConfigErrors) -> Vec<Listener> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let path = format!("listeners[{i}]");
            let Some(entry) = section::<ListenerEntry>(value, &path, errors) else {
                continue;
            };
            let at = field(&path, "address");
            match entry.address.parse::<SocketAddr>() {
                Err(_) => errors.push(at, format!("'{}' is not an IP:port address", entry.address)),
                Ok(addr) if !seen.insert(addr) => {
                    errors.push(at, format!("'{addr}' is already used by another listener"))
                }
                Ok(address) => out.extend(Listener::from_entry(address, entry, &path, errors)),
            }
        }
        if values.is_empty() {
            errors.push("listeners", "at least one listener is required");
        }
        out
    }

    /// The listener of one entry whose address is good; `path` is the entry's.
    fn from_entry(
        address: SocketAddr,
        entry: ListenerEntry,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Listener> {
        let tls = entry.tls.map(|t| {
            let at = field(path, "tls");
            let certificates = Certificates::load(&t.certificates, &at, errors);
            (certificates, t.http2)
        });
        let is_tls = tls.is_some();
        let mut misplaced = |key: &str, set: bool, message: &str| {
            if set {
                errors.push(field(path, key), message);
            }
        };
        misplaced(
            "h2c",
            entry.h2c && is_tls,
            "for cleartext listeners (TLS ones offer HTTP/2 with tls.http2)",
        );
        misplaced(
            "hsts",
            entry.hsts.is_some() && !is_tls,
            "only on a TLS listener",
        );
        misplaced(
            "redirect_https",
            entry.redirect_https && is_tls,
            "only on a cleartext listener",
        );
        let at_least_one = "must be at least 1";
        misplaced(
            "max_connections",
            entry.max_connections == Some(0),
            at_least_one,
        );
        let per_ip = entry.max_connections_per_ip;
        misplaced("max_connections_per_ip", per_ip == Some(0), at_least_one);
        let read_buffer = entry
            .read_buffer
            .map_or(DEFAULT_READ_BUFFER as u64, |s| s.0);
        let bad_buffer = !(1024..=(1 << 20)).contains(&read_buffer);
        misplaced("read_buffer", bad_buffer, "must be between 1KiB and 1MiB");
        let hsts = entry.hsts.map(|span| {
            let header = format!("max-age={}", span.0.as_secs());
            HeaderValue::from_str(&header).unwrap_or(HeaderValue::from_static("max-age=0"))
        });
        let tls = match tls {
            Some((Some(certificates), http2)) => Some(ListenerTls {
                certificates: Arc::new(certificates),
                http2,
            }),
            Some((None, _)) => return None,
            None => None,
        };
        Some(Listener {
            address,
            tls,
            h2c: entry.h2c,
            hsts,
            redirect_https: entry.redirect_https,
            read_buffer: read_buffer as usize,
            max_connections: entry.max_connections,
            max_connections_per_ip: entry.max_connections_per_ip,
            encoded_slash: match entry.path_normalization {
                PathNormalization::Keep => EncodedSlash::Keep,
                PathNormalization::Reject => EncodedSlash::Reject,
            },
        })
    }

    /// A plain HTTP/1.1 listener.
    #[cfg(test)]
    pub(crate) fn cleartext(address: SocketAddr) -> Listener {
        Listener {
            address,
            tls: None,
            h2c: false,
            hsts: None,
            redirect_https: false,
            read_buffer: DEFAULT_READ_BUFFER,
            max_connections: None,
            max_connections_per_ip: None,
            encoded_slash: EncodedSlash::Keep,
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
        assert_eq!(out[0].address, "127.0.0.1:80".parse().unwrap());
        assert!(out[0].tls.is_none() && !out[0].h2c && !out[0].redirect_https);
        assert_eq!(out[0].encoded_slash, EncodedSlash::Keep);
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
    fn misplaced_keys_and_empty_lists_are_refused() {
        let (out, problems) = listeners(
            "[{address: '127.0.0.1:80', h2c: true, redirect_https: true}, \
              {address: '127.0.0.1:81', hsts: 180d}, {address: '127.0.0.1:82', bogus: 1}]",
        );
        assert!(out[0].h2c && out[0].redirect_https);
        assert_eq!(problems, ["listeners[1].hsts", "listeners[2].bogus"]);
        let (_, problems) = listeners("[]");
        assert_eq!(problems, ["listeners"]);
    }

    #[test]
    fn encoded_slashes_are_kept_unless_a_listener_refuses_them() {
        let (out, problems) = listeners(
            "[{address: '127.0.0.1:80', path_normalization: reject}, \
              {address: '127.0.0.1:81', path_normalization: keep}, \
              {address: '127.0.0.1:82', path_normalization: decode}]",
        );
        assert_eq!(out[0].encoded_slash, EncodedSlash::Reject);
        assert_eq!(out[1].encoded_slash, EncodedSlash::Keep);
        assert_eq!(problems, ["listeners[2].path_normalization"]);
    }
}
