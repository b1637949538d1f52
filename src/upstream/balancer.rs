//! The selection algorithms (README: Selection) mapped onto `pingora-load-balancing`:
//! weighted round robin, weighted random, and ketama for `consistent_hash`.
//! `least_connections` is our own (see `least_connections`): for it the balancer
//! only keeps the health checks and readiness, and `Upstream::select` chooses.

use super::config::SelectionConfig;
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::services::background::background_service;
use pingora::services::ServiceWithDependents;
use std::sync::Arc;
use std::time::Duration;

/// How a backend is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    RoundRobin,
    Random,
    Ketama,
    LeastConnections,
}

impl Algorithm {
    pub(crate) fn of(selection: SelectionConfig) -> Algorithm {
        match selection {
            SelectionConfig::RoundRobin | SelectionConfig::Weighted => Algorithm::RoundRobin,
            SelectionConfig::Random => Algorithm::Random,
            SelectionConfig::ConsistentHash => Algorithm::Ketama,
            SelectionConfig::LeastConnections => Algorithm::LeastConnections,
        }
    }
}

pub(super) enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Ketama(Arc<LoadBalancer<Consistent>>),
}

/// An active health check and how often it runs.
pub(crate) struct HealthCheck {
    pub(crate) check: Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync>,
    pub(crate) interval: Duration,
}

/// The background service that runs a balancer's health checks, to be added to
/// the server.
pub(super) type HealthService = Option<Box<dyn ServiceWithDependents>>;

impl Balancer {
    pub(super) fn build(
        name: &str,
        algorithm: Algorithm,
        backends: Backends,
        health: Option<HealthCheck>,
    ) -> (Balancer, HealthService) {
        match algorithm {
            // For least_connections the round robin only carries the health checks
            // and readiness: `Upstream::select` never asks it to choose.
            Algorithm::RoundRobin | Algorithm::LeastConnections => {
                let (lb, service) = start::<RoundRobin>(name, backends, health);
                (Balancer::RoundRobin(lb), service)
            }
            Algorithm::Random => {
                let (lb, service) = start::<Random>(name, backends, health);
                (Balancer::Random(lb), service)
            }
            Algorithm::Ketama => {
                let (lb, service) = start::<Consistent>(name, backends, health);
                (Balancer::Ketama(lb), service)
            }
        }
    }

    /// The first backend the algorithm offers for `key` that `accept` takes.
    pub(super) fn select_with(
        &self,
        key: &[u8],
        max_iterations: usize,
        accept: impl Fn(&Backend, bool) -> bool,
    ) -> Option<Backend> {
        match self {
            Balancer::RoundRobin(lb) => lb.select_with(key, max_iterations, accept),
            Balancer::Random(lb) => lb.select_with(key, max_iterations, accept),
            Balancer::Ketama(lb) => lb.select_with(key, max_iterations, accept),
        }
    }

    pub(super) fn backends(&self) -> &Backends {
        match self {
            Balancer::RoundRobin(lb) => lb.backends(),
            Balancer::Random(lb) => lb.backends(),
            Balancer::Ketama(lb) => lb.backends(),
        }
    }
}

/// Build the balancer, load its static backend set, and wrap it in a background
/// service when it runs health checks.
fn start<S>(
    name: &str,
    backends: Backends,
    health: Option<HealthCheck>,
) -> (Arc<LoadBalancer<S>>, HealthService)
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    let mut lb = LoadBalancer::<S>::from_backends(backends);
    populate(&lb);
    let Some(health) = health else {
        return (Arc::new(lb), None);
    };
    lb.set_health_check(health.check);
    lb.health_check_frequency = Some(health.interval);
    lb.parallel_health_check = true;
    let service = background_service(&format!("health check {name}"), lb);
    let lb = service.task();
    (lb, Some(Box::new(service)))
}

/// Static discovery never waits, so one poll completes the first update and the
/// balancer can serve before any background task has run.
fn populate<S>(lb: &LoadBalancer<S>)
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
{
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let mut update = std::pin::pin!(lb.update());
    let mut cx = Context::from_waker(Waker::noop());
    match update.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(e)) => log::error!("loading backends failed: {e}"),
        Poll::Pending => log::error!("static backend discovery did not complete at once"),
    }
}
