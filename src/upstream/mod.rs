//! Upstream pools: the backends of one `upstreams.NAME`, how one is chosen, how it
//! is checked, and how we connect to it.
//!
//! A backend is chosen only when it is healthy (active health checks) and its
//! circuit admits it (passive ejection): either can take it out, and it comes back
//! when both let it.
//!
//! config            what the operator wrote, validated into `UpstreamSettings`
//! balancer          the selection algorithms on `pingora-load-balancing`
//! least_connections our own selection: fewest requests in flight per weight
//! health            active health checks and their configuration
//! circuit           the circuit breaker of a backend
//! retry             the retry policy, its budget and its metrics (`retry_on`)
//! websocket         the idle timeout of an upgraded connection (`websocket_idle`)
//! backend           each backend's live state and metric series
//! peer              how a backend is connected to

pub(crate) mod backend;
mod balancer;
pub(crate) mod circuit;
pub(crate) mod config;
pub(crate) mod health;
mod least_connections;
pub(crate) mod peer;
pub(crate) mod retry;
pub(crate) mod websocket;

pub(crate) use backend::{BackendFamilies, BackendState, Outcome};
pub(crate) use balancer::Algorithm;
pub(crate) use config::UpstreamSettings;

use crate::upstream::retry::{RetryFamilies, RetryPolicy};
use crate::upstream::websocket::WebSocketIdle;
use balancer::{Balancer, HealthService};
use http::{HeaderName, HeaderValue};
use least_connections::LeastConnections;
use pingora::http::RequestHeader;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends};
use pingora::upstreams::peer::HttpPeer;
use std::cell::Cell;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// One upstream pool, built once at start.
pub(crate) struct Upstream {
    pub(crate) name: String,
    pub(crate) retry: RetryPolicy,
    pub(crate) host_header: Option<HeaderValue>,
    pub(crate) websocket: WebSocketIdle,
    hash_key: HashKey,
    balancer: Balancer,
    /// `selection: least_connections`; the balancer chooses otherwise.
    least_connections: Option<LeastConnections>,
    /// Backend addresses in configuration order; a backend's index is its bit in
    /// the per-request set of backends already tried.
    addresses: Vec<SocketAddr>,
    /// Per backend, as the balancer knows it (for its readiness).
    backends: Vec<Backend>,
    /// Per backend, the peer with this upstream's timeouts, cloned per attempt.
    peers: Vec<HttpPeer>,
    /// Per backend, its live state and metric series.
    states: Vec<Arc<BackendState>>,
}

/// What `consistent_hash` hashes to pick a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HashKey {
    Uri,
    ClientIp,
    Header(HeaderName),
    /// The route's cache key (its primary hash, so every variant of a URL goes to
    /// one shield): each object's misses from every edge reach the same shield.
    CacheKey,
}

/// The bytes a request is hashed by, borrowed from it where they can be.
pub(crate) enum SelectionKey<'a> {
    Borrowed(&'a [u8]),
    /// An IP address's octets (4 or 16 of them).
    Ip([u8; 16], usize),
    /// A cache key's primary hash.
    Hash([u8; 16]),
}

impl SelectionKey<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            SelectionKey::Borrowed(bytes) => bytes,
            SelectionKey::Ip(octets, len) => &octets[..*len],
            SelectionKey::Hash(hash) => hash,
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
pub(crate) struct Chosen {
    pub(crate) index: usize,
    pub(crate) peer: Box<HttpPeer>,
}

impl Upstream {
    /// Build the pool; the returned service (when health checks are on) must be
    /// added to the server so the checks run.
    pub(crate) fn build(
        settings: &UpstreamSettings,
        families: &BackendFamilies,
        retry_families: &RetryFamilies,
    ) -> pingora::Result<(Upstream, HealthService)> {
        let backends: Vec<Backend> = settings
            .backends
            .iter()
            .map(|b| Backend::new_with_weight(&b.address.to_string(), b.weight as usize))
            .collect::<pingora::Result<_>>()?;
        let set: BTreeSet<Backend> = backends.iter().cloned().collect();
        let addresses = settings.addresses();
        let breaker = settings.circuit_breaker;
        let states: Vec<_> = addresses
            .iter()
            .map(|a| Arc::new(families.state(&settings.name, &a.to_string(), breaker)))
            .collect();
        let health = match &settings.health_check {
            Some(hc) => Some(health::build(
                &settings.name,
                addresses.clone(),
                states.clone(),
                hc,
                settings.tls.as_ref(),
            )?),
            None => None,
        };
        let (balancer, service) = Balancer::build(
            &settings.name,
            settings.algorithm,
            Backends::new(Static::new(set)),
            health,
        );
        let least_connections = (settings.algorithm == Algorithm::LeastConnections).then(|| {
            let weights: Vec<u32> = settings.backends.iter().map(|b| b.weight).collect();
            LeastConnections::new(&weights)
        });
        let peers = addresses
            .iter()
            .map(|a| peer::build(*a, settings.tls.as_ref(), settings.http2, settings.timeouts))
            .collect();
        let upstream = Upstream {
            name: settings.name.clone(),
            retry: RetryPolicy::new(
                &settings.retry,
                retry_families.counters(&settings.name, &settings.retry.on),
            ),
            hash_key: settings.hash_key.clone(),
            host_header: settings.host_header.clone(),
            websocket: WebSocketIdle::new(&settings.timeouts),
            balancer,
            least_connections,
            addresses,
            backends,
            peers,
            states,
        };
        Ok((upstream, service))
    }

    /// What `select` hashes for this request (only `consistent_hash` looks at it).
    /// Whether this upstream is a tier of shields: hashed by the cache key.
    pub(crate) fn hashes_by_cache_key(&self) -> bool {
        self.hash_key == HashKey::CacheKey
    }

    /// `cache_key`: the route's cache key hash, when the upstream is hashed by it.
    pub(crate) fn key_of<'a>(
        &self,
        req: &'a RequestHeader,
        client_ip: IpAddr,
        cache_key: impl FnOnce() -> Option<[u8; 16]>,
    ) -> SelectionKey<'a> {
        match &self.hash_key {
            HashKey::CacheKey => match cache_key() {
                Some(hash) => SelectionKey::Hash(hash),
                None => SelectionKey::Borrowed(req.raw_path()),
            },
            HashKey::Uri => SelectionKey::Borrowed(req.raw_path()),
            HashKey::ClientIp => SelectionKey::ip(client_ip),
            HashKey::Header(name) => {
                SelectionKey::Borrowed(req.headers.get(name).map_or(&[], |v| v.as_bytes()))
            }
        }
    }

    /// A backend for `key` that is healthy and that its circuit admits, preferring
    /// one not in `tried` (a bit per index). `None` when there is none. The chosen
    /// backend's half-open circuit, if it has one, is claimed for this attempt:
    /// begin the attempt at once (`BackendState::begin`).
    pub(crate) fn select(&self, key: &[u8], tried: u64) -> Option<Chosen> {
        let index = match &self.least_connections {
            Some(lc) => self.least_connected(lc, tried),
            None => self.balanced(key, tried),
        }?;
        Some(Chosen {
            index,
            peer: Box::new(self.peers[index].clone()),
        })
    }

    /// Whether a backend outside `tried` is healthy and admitted by its circuit,
    /// i.e. whether a retry can go somewhere new.
    pub(crate) fn has_untried_healthy(&self, tried: u64) -> bool {
        (0..self.len()).any(|i| untried(i, tried) && self.is_healthy(i) && self.states[i].admits())
    }

    pub(crate) fn address(&self, index: usize) -> SocketAddr {
        self.addresses[index]
    }

    pub(crate) fn len(&self) -> usize {
        self.addresses.len()
    }

    /// Whether backend `index` passes its health checks (always, without checks)
    /// and is enabled. Its circuit is another matter (`state(index).circuit()`).
    pub(crate) fn is_healthy(&self, index: usize) -> bool {
        self.balancer.backends().ready(&self.backends[index])
    }

    pub(crate) fn state(&self, index: usize) -> &Arc<BackendState> {
        &self.states[index]
    }

    /// The balancer's choice: an untried backend if one is admitted, else any.
    fn balanced(&self, key: &[u8], tried: u64) -> Option<usize> {
        let max = 16 + 4 * self.addresses.len();
        let chosen = Cell::new(None);
        let select = |untried_only: bool| {
            self.balancer.select_with(key, max, |backend, healthy| {
                // Claiming is last: an accepted backend is the one used.
                let index = self.index_of(backend).filter(|&i| {
                    healthy && (!untried_only || untried(i, tried)) && self.states[i].claim()
                });
                chosen.set(index);
                index.is_some()
            })
        };
        if select(true).is_none() && (tried == 0 || select(false).is_none()) {
            return None;
        }
        chosen.get()
    }

    /// The least loaded backend that is healthy and admitted, untried if one is.
    fn least_connected(&self, lc: &LeastConnections, tried: u64) -> Option<usize> {
        let health = self.balancer.backends();
        // Backends whose half-open trial another request claimed since we looked.
        let mut lost = 0u64;
        for untried_only in [true, false] {
            if !untried_only && tried == 0 {
                break;
            }
            while let Some(i) = lc.pick(|i| {
                let candidate = (!untried_only || untried(i, tried))
                    && lost & tried_bit(i) == 0
                    && health.ready(&self.backends[i])
                    && self.states[i].admits();
                candidate.then(|| self.states[i].in_flight())
            }) {
                if self.states[i].claim() {
                    return Some(i);
                }
                lost |= tried_bit(i);
            }
        }
        None
    }

    fn index_of(&self, backend: &Backend) -> Option<usize> {
        let addr = backend.addr.as_inet()?;
        self.addresses.iter().position(|a| a == addr)
    }
}

fn untried(index: usize, tried: u64) -> bool {
    tried & tried_bit(index) == 0
}

/// The bit of backend `index` in a tried set. Pools over 64 backends share bits,
/// which can only make a retry skip a backend it could have used.
pub(crate) fn tried_bit(index: usize) -> u64 {
    1 << (index % 64)
}

#[cfg(test)]
mod tests;
