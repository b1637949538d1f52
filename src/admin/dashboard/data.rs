//! `/dashboard/data`: the document the page polls once a second, built on request
//! from the registry's families (the counters `/metrics` exposes), the backends'
//! live state and the history ring. Nothing here runs unless someone is looking.

use super::families::Families;
use super::history::{Sample, Totals};
use super::About;
use crate::runtime::Runtime;
use prometheus::proto::Metric;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

#[derive(Serialize)]
pub(crate) struct Data<'a> {
    about: &'a About,
    uptime_seconds: u64,
    /// Requests in progress, and answered since start by status class.
    requests: Requests,
    /// One sample a second, oldest first, for the last five minutes at most.
    history: Vec<Sample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shield: Option<Shield<'a>>,
    upstreams: Vec<Upstream<'a>>,
    routes: Vec<Route<'a>>,
    connections: Connections<'a>,
}

#[derive(Serialize)]
struct Requests {
    active: u64,
    total: u64,
    classes: [u64; 5],
}

#[derive(Serialize)]
struct Shield<'a> {
    /// By result (`hit`, `stale`, `miss`, ...), since start.
    lookups: BTreeMap<&'a str, u64>,
    /// Lookups answered from the cache (fresh or stale) over all lookups.
    hit_ratio: f64,
    /// Requests on caching routes answered without asking the origin.
    origin_fetches_saved: u64,
    /// Body bytes answered on caching routes from the cache, and from the origin.
    bytes_from_cache: u64,
    bytes_from_origin: u64,
    collapsed: u64,
    evictions: u64,
    tiers: Vec<Tier>,
}

#[derive(Serialize)]
struct Tier {
    name: &'static str,
    objects: u64,
    bytes: u64,
    max_bytes: u64,
}

#[derive(Serialize)]
struct Upstream<'a> {
    name: &'a str,
    /// Retries made, and retries the budget refused, since start.
    retries: u64,
    retry_budget_exhausted: u64,
    /// Retries the budget allows now.
    retry_budget_available: u64,
    backends: Vec<Backend>,
}

#[derive(Serialize)]
struct Backend {
    address: SocketAddr,
    healthy: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<&'static str>,
    in_flight: i64,
    /// Attempts since start, and those that failed (connect error, timeout, error).
    attempts: u64,
    failures: u64,
    /// Response heads since start, and the microseconds they took in all: the
    /// page's latency is the difference between two polls.
    answers: u64,
    answer_micros: u64,
    last_error: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Route<'a> {
    route: &'a str,
    upstream: &'a str,
    requests: u64,
    classes: [u64; 5],
    /// Refused by the route's policies: access lists (403), rate limit (429).
    forbidden: u64,
    rate_limited: u64,
}

#[derive(Serialize)]
struct Connections<'a> {
    open: u64,
    refused: Vec<Refused<'a>>,
}

#[derive(Serialize)]
struct Refused<'a> {
    listener: &'a str,
    reason: &'a str,
    count: u64,
}

impl<'a> Data<'a> {
    pub(crate) fn of(
        rt: &'a Runtime,
        families: &'a Families,
        about: &'a About,
        uptime_seconds: u64,
        history: Vec<Sample>,
    ) -> Data<'a> {
        let totals = Totals::read(families);
        Data {
            about,
            uptime_seconds,
            requests: Requests {
                active: families.total("parapet_requests_active"),
                total: totals.classes.iter().sum(),
                classes: totals.classes,
            },
            history,
            shield: shield(rt, families, &totals),
            upstreams: upstreams(rt, families),
            routes: routes(rt, families),
            connections: Connections {
                open: families.total("parapet_connections_active"),
                refused: families
                    .metrics("parapet_connections_refused_total")
                    .iter()
                    .map(|m| Refused {
                        listener: Families::label(m, "listener"),
                        reason: Families::label(m, "reason"),
                        count: Families::count(m),
                    })
                    .collect(),
            },
        }
    }
}

fn shield<'a>(rt: &Runtime, families: &'a Families, totals: &Totals) -> Option<Shield<'a>> {
    let store = rt.shield.as_ref()?.storage();
    let lookups = families
        .metrics("parapet_cache_lookups_total")
        .iter()
        .map(|m| (Families::label(m, "result"), Families::count(m)))
        .collect();
    let served = |source: &str| -> u64 {
        let series = families.metrics("parapet_cache_served_bytes_total").iter();
        let of_source = series.filter(|m| Families::label(m, "source") == source);
        of_source.map(Families::count).sum()
    };
    Some(Shield {
        lookups,
        bytes_from_cache: served("cache"),
        bytes_from_origin: served("origin"),
        hit_ratio: ratio(totals.hits, totals.lookups),
        origin_fetches_saved: families.total("parapet_cache_origin_fetches_saved_total"),
        collapsed: families.total("parapet_cache_collapsed_total"),
        evictions: store.evictions(),
        tiers: vec![Tier {
            name: "memory",
            objects: store.objects(),
            bytes: store.size_bytes(),
            max_bytes: store.max_size() as u64,
        }],
    })
}

fn upstreams<'a>(rt: &'a Runtime, families: &'a Families) -> Vec<Upstream<'a>> {
    // (upstream, backend) -> (attempts, failures)
    let mut attempts: HashMap<(&str, &str), (u64, u64)> = HashMap::new();
    for m in families.metrics("parapet_upstream_attempts_total") {
        let key = (
            Families::label(m, "upstream"),
            Families::label(m, "backend"),
        );
        let n = Families::count(m);
        let entry = attempts.entry(key).or_default();
        entry.0 += n;
        if Families::label(m, "outcome") != "success" {
            entry.1 += n;
        }
    }
    rt.upstreams
        .iter()
        .map(|u| {
            let name = u.name.as_str();
            let sum = |family: &str| -> u64 {
                let series = families.metrics(family).iter();
                let of_this = series.filter(|m| Families::label(m, "upstream") == name);
                of_this.map(Families::count).sum()
            };
            Upstream {
                name,
                retries: sum("parapet_retries_total"),
                retry_budget_exhausted: sum("parapet_retry_budget_exhausted_total"),
                retry_budget_available: u.retry.budget_available(),
                backends: (0..u.len())
                    .map(|i| {
                        let state = u.state(i);
                        let address = u.address(i);
                        let label = address.to_string();
                        let (attempts, failures) = attempts
                            .get(&(name, label.as_str()))
                            .copied()
                            .unwrap_or_default();
                        let (answers, answer_micros) = state.answer_times();
                        Backend {
                            address,
                            answers,
                            answer_micros,
                            healthy: u.is_healthy(i),
                            circuit: state.circuit().map(|c| c.as_str()),
                            in_flight: state.in_flight(),
                            attempts,
                            failures,
                            last_error: state.last_error(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Per route in configuration order, then requests that matched none (`none`).
fn routes<'a>(rt: &'a Runtime, families: &'a Families) -> Vec<Route<'a>> {
    let mut routes: Vec<Route> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for r in rt.routes.iter() {
        index.insert(r.label.as_str(), routes.len());
        routes.push(Route {
            route: &r.label,
            upstream: rt.upstreams.get(r.upstream).map_or("", |u| u.name.as_str()),
            ..Route::default()
        });
    }
    for m in families.metrics("parapet_requests_total") {
        let r = route_of(&mut routes, &mut index, m);
        let n = Families::count(m);
        r.upstream = Families::label(m, "upstream");
        r.requests += n;
        let status = Families::label(m, "status");
        if let Some(c @ b'1'..=b'5') = status.as_bytes().first().copied() {
            r.classes[usize::from(c - b'1')] += n;
        }
        if status == "403" {
            r.forbidden += n;
        }
    }
    for m in families.metrics("parapet_ratelimited_total") {
        route_of(&mut routes, &mut index, m).rate_limited += Families::count(m);
    }
    routes
}

/// The entry of the route `m` is labelled with, added when it is the first seen.
fn route_of<'r, 'a>(
    routes: &'r mut Vec<Route<'a>>,
    index: &mut HashMap<&'a str, usize>,
    m: &'a Metric,
) -> &'r mut Route<'a> {
    let route = Families::label(m, "route");
    let i = *index.entry(route).or_insert_with(|| {
        routes.push(Route {
            route,
            ..Route::default()
        });
        routes.len() - 1
    });
    &mut routes[i]
}

fn ratio(part: u64, whole: u64) -> f64 {
    match whole {
        0 => 0.0,
        _ => part as f64 / whole as f64,
    }
}
