//! Upstream pools: the backends of one `upstreams.NAME`, how one is chosen, how it
//! is checked, and how we connect to it. Later policies that belong to a backend
//! (circuit breaker, least connections) live beside these.

mod balancer;
mod health;

use crate::config::model::{HashKey, UpstreamSettings};
use crate::observe::metrics::Metrics;
use crate::policy::retry::RetryPolicy;
use balancer::Balancer;
use http::HeaderValue;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends};
use pingora::services::ServiceWithDependents;
use pingora::upstreams::peer::HttpPeer;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// One upstream pool, built once at start.
pub struct Upstream {
    pub name: String,
    pub retry: RetryPolicy,
    pub hash_key: HashKey,
    pub host_header: Option<HeaderValue>,
    balancer: Balancer,
    /// Backend addresses in configuration order; a backend's index is its bit in
    /// the per-request set of backends already tried.
    addresses: Vec<SocketAddr>,
    /// Per backend, the peer with this upstream's timeouts, cloned per attempt.
    peers: Vec<HttpPeer>,
    /// Per backend, what /status reports.
    states: Vec<BackendState>,
}

/// Live state of one backend for the admin listener.
#[derive(Default)]
pub struct BackendState {
    in_flight: AtomicI64,
    /// The kind of the latest failed attempt (e.g. `ConnectRefused`).
    last_error: Mutex<Option<&'static str>>,
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
        index: usize,
        settings: &UpstreamSettings,
        metrics: &Arc<Metrics>,
    ) -> pingora::Result<(Upstream, Option<Box<dyn ServiceWithDependents>>)> {
        let set: BTreeSet<Backend> = settings
            .backends
            .iter()
            .map(|b| Backend::new_with_weight(&b.address.to_string(), b.weight as usize))
            .collect::<pingora::Result<_>>()?;
        let backends = Backends::new(Static::new(set));
        let health = match &settings.health_check {
            Some(hc) => Some(health::build(index, settings, hc, metrics.clone())?),
            None => None,
        };
        let built = Balancer::build(&settings.name, settings.selection, backends, health);
        let t = settings.timeouts;
        let peers = settings
            .backends
            .iter()
            .map(|b| {
                let mut peer = HttpPeer::new(b.address, false, String::new());
                peer.options.connection_timeout = Some(t.connect);
                // Waiting for the response head, and between two reads after it.
                // No write timeout: Pingora registers a timer on every read and every
                // write, and the read timeout already bounds a backend that stops
                // reading, since the response is awaited while the body is sent.
                peer.options.read_timeout = Some(t.response_header);
                peer.options.idle_timeout = Some(t.idle);
                peer
            })
            .collect();
        let upstream = Upstream {
            name: settings.name.clone(),
            retry: RetryPolicy {
                retries: settings.retries,
            },
            hash_key: settings.hash_key.clone(),
            host_header: settings.host_header.clone(),
            balancer: built.balancer,
            addresses: settings.backends.iter().map(|b| b.address).collect(),
            peers,
            states: settings
                .backends
                .iter()
                .map(|_| BackendState::default())
                .collect(),
        };
        Ok((upstream, built.service))
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

    pub fn state(&self, index: usize) -> &BackendState {
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

impl BackendState {
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn failed(&self, kind: &'static str) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(kind);
        }
    }

    pub fn last_error(&self) -> Option<&'static str> {
        self.last_error.lock().ok().and_then(|l| *l)
    }
}
