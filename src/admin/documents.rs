//! The JSON documents the admin listener answers with (README, "Observe it"), built
//! from the runtime and serialised by serde: the field names here are the contract.

use crate::runtime::Runtime;
use serde::Serialize;
use std::net::SocketAddr;

/// `/readyz` when some upstream has no healthy backend.
#[derive(Serialize)]
pub(super) struct NotReady<'a> {
    ready: bool,
    upstreams_without_healthy_backends: Vec<&'a str>,
}

impl<'a> NotReady<'a> {
    /// `None` when every upstream has a healthy backend.
    pub(super) fn of(rt: &'a Runtime) -> Option<Self> {
        let down: Vec<&str> = rt
            .upstreams
            .iter()
            .filter(|u| !(0..u.len()).any(|i| u.is_healthy(i)))
            .map(|u| u.name.as_str())
            .collect();
        (!down.is_empty()).then_some(NotReady {
            ready: false,
            upstreams_without_healthy_backends: down,
        })
    }
}

/// `/status`: every upstream's backends, and the cache when one is configured.
#[derive(Serialize)]
pub(super) struct Status<'a> {
    upstreams: Vec<UpstreamStatus<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<CacheStatus>,
    fleet: FleetStatus<'a>,
}

/// This instance as the fleet sees it: its `CDN-Loop` name, its tiers of
/// shields (the upstreams hashed by `cache_key`; their backends' health is in
/// `upstreams`) and, with `redis`, whether the shared store answers.
#[derive(Serialize)]
struct FleetStatus<'a> {
    name: &'a str,
    shields: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_up: Option<bool>,
}

#[derive(Serialize)]
struct UpstreamStatus<'a> {
    name: &'a str,
    backends: Vec<BackendStatus>,
}

#[derive(Serialize)]
struct BackendStatus {
    address: SocketAddr,
    healthy: bool,
    /// Only backends of an upstream with a `circuit_breaker` have a circuit.
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<&'static str>,
    in_flight: i64,
    last_error: Option<&'static str>,
}

#[derive(Serialize)]
struct CacheStatus {
    size_bytes: u64,
    objects: u64,
    /// The disk tier, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    disk: Option<crate::cache::disk::DiskStatus>,
}

impl<'a> Status<'a> {
    pub(super) fn of(rt: &'a Runtime) -> Self {
        let upstreams = rt
            .upstreams
            .iter()
            .map(|u| UpstreamStatus {
                name: &u.name,
                backends: (0..u.len())
                    .map(|i| {
                        let state = u.state(i);
                        BackendStatus {
                            address: u.address(i),
                            healthy: u.is_healthy(i),
                            circuit: state.circuit().map(|c| c.as_str()),
                            in_flight: state.in_flight(),
                            last_error: state.last_error(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let cache = rt.shield.as_ref().map(|shield| {
            let store = shield.storage();
            CacheStatus {
                size_bytes: store.size_bytes(),
                objects: store.objects(),
                disk: shield.disk_status(),
            }
        });
        let fleet = FleetStatus {
            name: rt.name.to_str().unwrap_or_default(),
            shields: rt
                .upstreams
                .iter()
                .filter(|u| u.hashes_by_cache_key())
                .map(|u| u.name.as_str())
                .collect(),
            redis_up: rt.store.as_ref().map(|s| s.is_up()),
        };
        Status {
            upstreams,
            cache,
            fleet,
        }
    }
}

/// A purge's answer: how many stored objects it reached.
#[derive(Serialize)]
pub(super) struct Purged {
    pub(super) purged: usize,
}
