//! Connection caps per listener (README: Configuration walk-through, `listeners[].max_connections`,
//! `max_connections_per_ip`): beyond them a new connection is closed at once,
//! before a byte is read, and counted in
//! `parapet_connections_refused_total{listener,reason}`; connections already open
//! are never touched. `parapet_connections_active` counts the open ones.
//!
//! The client address is the socket's, as seen at accept: a trusted proxy's
//! clients are not told apart here (that needs their request's header). IPv6 peers
//! are counted by their `client_ip.ipv6_prefix` block (`ClientGrouping`), so that
//! rotating through one allocation does not escape the per-IP cap.

use crate::listener::{accepts_on, Listener};
use crate::policy::client_ip::ClientGrouping;
use pingora::protocols::Stream;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The gates of every listener, and the gauge of open connections.
pub(crate) struct ConnectionGates {
    /// Only the listeners with a cap.
    gates: Vec<Gate>,
    open: IntGauge,
    /// What one client is for `max_connections_per_ip`.
    grouping: ClientGrouping,
}

/// One listener's caps and counts.
struct Gate {
    address: SocketAddr,
    max: Option<usize>,
    per_ip: Option<u32>,
    count: AtomicUsize,
    by_ip: Mutex<HashMap<IpAddr, u32>>,
    refused_max: Option<IntCounter>,
    refused_ip: Option<IntCounter>,
}

/// An admitted connection: counted until dropped.
pub(crate) struct Admitted<'a> {
    gate: Option<&'a Gate>,
    ip: Option<IpAddr>,
    open: &'a IntGauge,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.open.dec();
        let Some(gate) = self.gate else {
            return;
        };
        gate.count.fetch_sub(1, Ordering::Relaxed);
        if let (Some(ip), Ok(mut by_ip)) = (self.ip, gate.by_ip.lock()) {
            if let Some(n) = by_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by_ip.remove(&ip);
                }
            }
        }
    }
}

impl ConnectionGates {
    pub(crate) fn register(
        registry: &Registry,
        listeners: &[Listener],
        grouping: ClientGrouping,
    ) -> prometheus::Result<Self> {
        let open = IntGauge::new("parapet_connections_active", "Open client connections")?;
        registry.register(Box::new(open.clone()))?;
        let capped =
            |l: &&Listener| l.max_connections.is_some() || l.max_connections_per_ip.is_some();
        let refused = match listeners.iter().any(|l| capped(&l)) {
            true => {
                let family = IntCounterVec::new(
                    Opts::new(
                        "parapet_connections_refused_total",
                        "Client connections closed at accept by a listener's caps",
                    ),
                    &["listener", "reason"],
                )?;
                registry.register(Box::new(family.clone()))?;
                Some(family)
            }
            false => None,
        };
        let gates = listeners
            .iter()
            .filter(capped)
            .map(|l| {
                let name = l.address.to_string();
                let series = |on: bool, reason: &str| {
                    refused
                        .as_ref()
                        .filter(|_| on)
                        .map(|f| f.with_label_values(&[&name, reason]))
                };
                Gate {
                    address: l.address,
                    max: l.max_connections,
                    per_ip: l.max_connections_per_ip,
                    count: AtomicUsize::new(0),
                    by_ip: Mutex::new(HashMap::new()),
                    refused_max: series(l.max_connections.is_some(), "max_connections"),
                    refused_ip: series(
                        l.max_connections_per_ip.is_some(),
                        "max_connections_per_ip",
                    ),
                }
            })
            .collect();
        Ok(ConnectionGates {
            gates,
            open,
            grouping,
        })
    }

    /// The key of the per-IP count a connection from `peer` is counted under.
    fn client_key(&self, peer: SocketAddr) -> IpAddr {
        self.grouping.group(peer.ip())
    }

    /// Count the connection in, or `None` when a cap of its listener is reached.
    pub(crate) fn admit(&self, stream: &Stream) -> Option<Admitted<'_>> {
        let digest = stream.get_socket_digest();
        let local = digest
            .as_ref()
            .and_then(|d| d.local_addr()?.as_inet().copied());
        let gate = local.and_then(|local| self.gate_of(local));
        let mut admitted = Admitted {
            gate: None,
            ip: None,
            open: &self.open,
        };
        self.open.inc();
        // Only listeners with a cap have a gate.
        let Some(gate) = gate else {
            return Some(admitted);
        };
        if gate.count.fetch_add(1, Ordering::Relaxed) >= gate.max.unwrap_or(usize::MAX) {
            gate.count.fetch_sub(1, Ordering::Relaxed);
            gate.refused_max.as_ref().inspect(|c| c.inc());
            return None; // `admitted` ends the open count
        }
        admitted.gate = Some(gate);
        if let Some(limit) = gate.per_ip {
            let peer = digest
                .as_ref()
                .and_then(|d| d.peer_addr()?.as_inet().copied());
            if let (Some(peer), Ok(mut by_ip)) = (peer, gate.by_ip.lock()) {
                let key = self.client_key(peer);
                let n = by_ip.entry(key).or_insert(0);
                if *n >= limit {
                    gate.refused_ip.as_ref().inspect(|c| c.inc());
                    return None;
                }
                *n += 1;
                admitted.ip = Some(key);
            }
        }
        Some(admitted)
    }

    fn gate_of(&self, local: SocketAddr) -> Option<&Gate> {
        self.gates.iter().find(|g| accepts_on(g.address, local))
    }
}
