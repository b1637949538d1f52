//! The route's policy bundle: each per-route policy is an `Option` field, `None`
//! when the route does not use it, so a route without the feature pays one branch.
//! The proxy calls the bundle once per phase: `on_request` before the request goes
//! anywhere (access, then the rate limit, then CORS: the first that answers wins;
//! compression is told its coding when the request goes on), `on_response` on what
//! goes back (each policy writes its own fields), and `on_refusal` for Parapet's
//! own answers. Adding a route policy means its folder under `policy/`, a field
//! here and its calls in these phases.
//!
//! The cache is not called through the bundle: Pingora's cache state machine
//! drives it through hooks of its own (`request_cache_filter`, `cache_key_callback`,
//! `response_cache_filter`, ...), each one call into `cache::Shield`.

use super::Route;
use crate::cache::config::RouteCache;
use crate::fleet::RedisStore;
use crate::policy::access::AccessList;
use crate::policy::client_ip::{Client, ClientGrouping};
use crate::policy::compression::{self, Compression};
use crate::policy::cors::{Cors, Preflight, Verdict};
use crate::policy::rate_limit::{self, Check, Decision, RateLimit};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pingora::http::RequestHeader;
use pingora::modules::http::HttpModuleCtx;

/// The per-route policies.
#[derive(Debug, Default)]
pub(crate) struct RoutePolicies {
    /// `cache: true`: the origin shield answers what it may.
    pub(crate) cache: Option<RouteCache>,
    /// `access`: which client addresses may use the route.
    pub(crate) access: Option<AccessList>,
    /// `cors`: preflights answered at the edge, CORS fields on responses.
    pub(crate) cors: Option<Cors>,
    /// `rate_limit`: requests per second and burst, per client (or route, or header).
    pub(crate) rate_limit: Option<RateLimit>,
    /// `compression`: answers compressed at the edge.
    pub(crate) compression: Option<Compression>,
}

/// What the route's policies remember of one request between its phases (kept on
/// the request context, so a plain copyable value).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PolicyState {
    /// The rate limit's verdict, for the `RateLimit` fields of the answer.
    rate_limit: Option<Decision>,
    /// Compression was told a coding: the answer may go out compressed.
    compressing: bool,
}

/// What the request phase decided.
pub(crate) enum Admission<'a> {
    /// The request goes on to the cache or the origin.
    Pass,
    /// Refuse with this status; the policy that refused, for the access log.
    Refuse(u16, &'static str),
    /// A CORS preflight from an allowed origin: answered at the edge with 204.
    Preflight(&'a Cors, Preflight),
}

impl RoutePolicies {
    /// The request phase: the access list, the rate limit (one client is its
    /// `grouping` group) and CORS, in that order; then, for a request that goes
    /// on, compression's coding (Pingora's response `modules`).
    pub(crate) async fn on_request(
        &self,
        client: &Client,
        grouping: ClientGrouping,
        req: &RequestHeader,
        modules: &mut HttpModuleCtx,
        state: &mut PolicyState,
    ) -> Admission<'_> {
        let admission = self.admit(client, grouping, req, state).await;
        if let (Admission::Pass, Some(policy)) = (&admission, &self.compression) {
            state.compressing = compression::start(policy, &req.headers, modules);
        }
        admission
    }

    async fn admit(
        &self,
        client: &Client,
        grouping: ClientGrouping,
        req: &RequestHeader,
        state: &mut PolicyState,
    ) -> Admission<'_> {
        if self.access.as_ref().is_some_and(|a| !a.permits(client.ip)) {
            return Admission::Refuse(403, "access");
        }
        if let Some(limit) = &self.rate_limit {
            let decision = match limit.check(grouping.group(client.ip), &req.headers) {
                Check::Decided(decision) => decision,
                // Boxed: only a global key without a lease waits on the store, and
                // its state would otherwise size every request's future.
                Check::AskStore(ask) => Box::pin(limit.ask_store(ask)).await,
            };
            state.rate_limit = Some(decision);
            if !decision.allowed {
                return Admission::Refuse(429, "rate_limit");
            }
        }
        let Some(cors) = &self.cors else {
            return Admission::Pass;
        };
        match cors.classify(&req.headers, &req.method) {
            Some(Verdict::Preflight(p)) => Admission::Preflight(cors, p),
            Some(Verdict::Refuse) => Admission::Refuse(403, "cors"),
            Some(Verdict::Actual) | None => Admission::Pass,
        }
    }

    /// The response phase, on an answer from the origin or the cache: whether
    /// it goes out compressed, CORS fields for the request's `origin`, and the
    /// rate limit's fields when it decided on this request.
    pub(crate) fn on_response(
        &self,
        status: StatusCode,
        headers: &mut HeaderMap,
        origin: Option<&HeaderValue>,
        modules: &mut HttpModuleCtx,
        state: &PolicyState,
    ) {
        if let (true, Some(policy)) = (state.compressing, &self.compression) {
            compression::settle(policy, status, headers, modules);
        }
        if let Some(cors) = &self.cors {
            cors.apply(origin, headers);
        }
        if let (Some(decision), Some(limit)) = (state.rate_limit, &self.rate_limit) {
            limit.on_response(decision, headers);
        }
    }

    /// Parapet's own answer (an error page, a refusal) to this request: never
    /// compressed, and the rate limit's fields, `Retry-After` on its 429.
    pub(crate) fn on_refusal(
        &self,
        modules: &mut HttpModuleCtx,
        state: &PolicyState,
        fields: &mut Vec<(HeaderName, HeaderValue)>,
    ) {
        if state.compressing {
            compression::stop(modules);
        }
        if let (Some(decision), Some(limit)) = (state.rate_limit, &self.rate_limit) {
            fields.extend(decision.headers(limit));
        }
    }

    /// The fleet's store for the routes' global rate limits.
    pub(crate) fn attach_store(routes: &mut [Route], store: &std::sync::Arc<RedisStore>) {
        for route in routes {
            if let Some(limit) = route.policies.rate_limit.as_mut() {
                limit.attach_store(&route.label, store);
            }
        }
    }

    /// Each policy registers its metric families in `registry` and takes the
    /// series of its routes (labelled by `Route::label`).
    pub(crate) fn register_metrics(
        registry: &prometheus::Registry,
        routes: &mut [Route],
    ) -> prometheus::Result<()> {
        let limited = routes.iter_mut().filter_map(|r| {
            let limit = r.policies.rate_limit.as_mut()?;
            Some((r.label.as_str(), limit))
        });
        rate_limit::metrics::register(registry, limited)
    }
}
