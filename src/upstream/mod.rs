//! Upstream pools: the backends of one `upstreams.NAME`, how one is chosen, how it
//! is checked, and how we connect to it. Later policies that belong to a backend
//! (circuit breaker, least connections) live beside these.
//!
//! config   what the operator wrote, validated into `UpstreamSettings`
//! balancer the selection algorithm on `pingora-load-balancing`
//! health   active health checks and their configuration
//! backend  each backend's live state and metric series
//! peer     how a backend is connected to

pub mod backend;
mod balancer;
pub mod config;
pub mod health;
pub mod peer;

pub use backend::{BackendFamilies, BackendState, Outcome};
pub use balancer::Algorithm;
pub use config::UpstreamSettings;

use crate::policy::retry::RetryPolicy;
use balancer::{Balancer, HealthService};
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends};
use pingora::upstreams::peer::HttpPeer;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One upstream pool, built once at start.
pub struct Upstream {
    pub name: String,
    pub retry: RetryPolicy,
    pub host_header: Option<HeaderValue>,
    hash_key: HashKey,
    balancer: Balancer,
    /// Backend addresses in configuration order; a backend's index is its bit in
    /// the per-request set of backends already tried.
    addresses: Vec<SocketAddr>,
    /// Per backend, the peer with this upstream's timeouts, cloned per attempt.
    peers: Vec<HttpPeer>,
    /// Per backend, its live state and metric series.
    states: Vec<Arc<BackendState>>,
}

/// What `consistent_hash` hashes to pick a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Uri,
    ClientIp,
    Header(HeaderName),
}

/// The bytes a request is hashed by, borrowed from it where they can be.
pub enum SelectionKey<'a> {
    Borrowed(&'a [u8]),
    /// An IP address's octets (4 or 16 of them).
    Ip([u8; 16], usize),
}

impl SelectionKey<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SelectionKey::Borrowed(bytes) => bytes,
            SelectionKey::Ip(octets, len) => &octets[..*len],
        }
    }

    fn ip(ip: IpAddr) -> Self {
        let mut out = [0u8; 16];
        match ip {
            IpAddr::V4(v4) => {
                out[..4].copy_from_slice(&v4.octets());
                SelectionKey::Ip(out, 4)
            }
            IpAddr::V6(v6) => SelectionKey::Ip(v6.octets(), 16),
        }
    }
}

/// A backend chosen for one attempt.
pub struct Chosen {
    pub index: usize,
    pub peer: Box<HttpPeer>,
}

impl Upstream {
    /// Build the pool; the returned service (when health checks are on) must be
    /// added to the server so the checks run.
    pub fn build(
        settings: &UpstreamSettings,
        families: &BackendFamilies,
    ) -> pingora::Result<(Upstream, HealthService)> {
        let set: BTreeSet<Backend> = settings
            .backends
            .iter()
            .map(|b| Backend::new_with_weight(&b.address.to_string(), b.weight as usize))
            .collect::<pingora::Result<_>>()?;
        let backends = Backends::new(Static::new(set));
        let addresses = settings.addresses();
        let states: Vec<_> = addresses
            .iter()
            .map(|a| Arc::new(families.state(&settings.name, &a.to_string())))
            .collect();
        let health = match &settings.health_check {
            Some(hc) => Some(health::build(
                &settings.name,
                addresses.clone(),
                states.clone(),
                hc,
            )?),
            None => None,
        };
        let (balancer, service) =
            Balancer::build(&settings.name, settings.algorithm, backends, health);
        let peers = addresses
            .iter()
            .map(|a| peer::build(*a, settings.tls.as_ref(), settings.timeouts))
            .collect();
        let upstream = Upstream {
            name: settings.name.clone(),
            retry: settings.retry,
            hash_key: settings.hash_key.clone(),
            host_header: settings.host_header.clone(),
            balancer,
            addresses,
            peers,
            states,
        };
        Ok((upstream, service))
    }

    /// What `select` hashes for this request (only `consistent_hash` looks at it).
    pub fn key_of<'a>(&self, req: &'a RequestHeader, client_ip: IpAddr) -> SelectionKey<'a> {
        match &self.hash_key {
            HashKey::Uri => SelectionKey::Borrowed(req.raw_path()),
            HashKey::ClientIp => SelectionKey::ip(client_ip),
            HashKey::Header(name) => {
                SelectionKey::Borrowed(req.headers.get(name).map_or(&[], |v| v.as_bytes()))
            }
        }
    }

    /// A healthy backend for `key`, preferring one not in `tried` (a bit per index).
    /// `None` when no backend is healthy.
    pub fn select(&self, key: &[u8], tried: u64) -> Option<Chosen> {
        let max = 16 + 4 * self.addresses.len();
        let untried = self
            .balancer
            .select_with(key, max, |b, healthy| healthy && !self.was_tried(b, tried));
        let backend = match untried {
            Some(b) => b,
            None if tried != 0 => self.balancer.select_with(key, max, |_, healthy| healthy)?,
            None => return None,
        };
        let index = self.index_of(&backend)?;
        Some(Chosen {
            index,
            peer: Box::new(self.peers[index].clone()),
        })
    }

    /// Whether a healthy backend outside `tried` exists, i.e. whether a retry can go
    /// somewhere new.
    pub fn has_untried_healthy(&self, tried: u64) -> bool {
        self.any_ready(|index| tried & tried_bit(index) == 0)
    }

    pub fn address(&self, index: usize) -> SocketAddr {
        self.addresses[index]
    }

    pub fn len(&self) -> usize {
        self.addresses.len()
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }

    /// Whether backend `index` passes its health checks (always, without checks).
    pub fn is_healthy(&self, index: usize) -> bool {
        self.any_ready(|i| i == index)
    }

    pub fn state(&self, index: usize) -> &Arc<BackendState> {
        &self.states[index]
    }

    /// Whether some backend whose index `accept` takes is ready (enabled and healthy).
    fn any_ready(&self, accept: impl Fn(usize) -> bool) -> bool {
        let backends = self.balancer.backends();
        backends
            .get_backend()
            .iter()
            .any(|b| self.index_of(b).is_some_and(&accept) && backends.ready(b))
    }

    fn index_of(&self, backend: &Backend) -> Option<usize> {
        let addr = backend.addr.as_inet()?;
        self.addresses.iter().position(|a| a == addr)
    }

    fn was_tried(&self, backend: &Backend, tried: u64) -> bool {
        self.index_of(backend)
            .is_some_and(|i| tried & tried_bit(i) != 0)
    }
}

/// The bit of backend `index` in a tried set. Pools over 64 backends share bits,
/// which can only make a retry skip a backend it could have used.
pub fn tried_bit(index: usize) -> u64 {
    1 << (index % 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_request() {
        let families = BackendFamilies::register(&prometheus::Registry::new()).unwrap();
        let yaml = "{backends: [{address: '127.0.0.1:1'}], selection: consistent_hash, hash_key: client_ip}";
        let mut errors = crate::config::ConfigErrors::default();
        let mut settings = UpstreamSettings::from_config(
            "app",
            serde_yaml::from_str(yaml).unwrap(),
            "upstreams.app",
            &mut errors,
        );
        let mut req = RequestHeader::build("GET", b"/a?b", None).unwrap();
        req.insert_header("X-User", "u1").unwrap();
        let key_of = |settings: &UpstreamSettings| {
            let (upstream, _) = Upstream::build(settings, &families).unwrap();
            let ip = "10.1.2.3".parse().unwrap();
            upstream.key_of(&req, ip).as_bytes().to_vec()
        };
        assert_eq!(key_of(&settings), [10, 1, 2, 3]);
        settings.hash_key = HashKey::Uri;
        assert_eq!(key_of(&settings), b"/a?b");
        settings.hash_key = HashKey::Header(HeaderName::from_static("x-user"));
        assert_eq!(key_of(&settings), b"u1");
        settings.hash_key = HashKey::Header(HeaderName::from_static("x-none"));
        assert_eq!(key_of(&settings), b"");
    }
}
