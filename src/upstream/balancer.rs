//! The selection algorithms of SPEC §2 mapped onto `pingora-load-balancing`.
//! `round_robin` and `weighted` are the same weighted round robin (as in nginx and
//! HAProxy, weights are always honoured; `weighted` is kept as the explicit name),
//! `random` is weighted random, `consistent_hash` is ketama.

use crate::config::file::Selection;
use pingora::lb::selection::{BackendIter, BackendSelection, Consistent, Random, RoundRobin};
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::services::background::background_service;
use pingora::services::ServiceWithDependents;
use std::sync::Arc;
use std::time::Duration;

pub enum Balancer {
    RoundRobin(Arc<LoadBalancer<RoundRobin>>),
    Random(Arc<LoadBalancer<Random>>),
    Ketama(Arc<LoadBalancer<Consistent>>),
}

/// An active health check and how often it runs.
pub struct HealthCheck {
    pub check: Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync>,
    pub interval: Duration,
}

/// A built balancer and, when it runs health checks, the background service that
/// runs them (to be added to the server).
pub struct Built {
    pub balancer: Balancer,
    pub service: Option<Box<dyn ServiceWithDependents>>,
}

impl Balancer {
    pub fn build(
        name: &str,
        selection: Selection,
        backends: Backends,
        health: Option<HealthCheck>,
    ) -> Built {
        match selection {
            Selection::RoundRobin | Selection::Weighted => {
                let (lb, service) = start::<RoundRobin>(name, backends, health);
                Built {
                    balancer: Balancer::RoundRobin(lb),
                    service,
                }
            }
            Selection::Random => {
                let (lb, service) = start::<Random>(name, backends, health);
                Built {
                    balancer: Balancer::Random(lb),
                    service,
                }
            }
            Selection::ConsistentHash => {
                let (lb, service) = start::<Consistent>(name, backends, health);
                Built {
                    balancer: Balancer::Ketama(lb),
                    service,
                }
            }
        }
    }

    /// The first backend the algorithm offers for `key` that `accept` takes.
    pub fn select_with(
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

    pub fn backends(&self) -> &Backends {
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
) -> (Arc<LoadBalancer<S>>, Option<Box<dyn ServiceWithDependents>>)
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
