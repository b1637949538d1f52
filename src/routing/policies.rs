//! The route's policy bundle: each per-route policy is an `Option` field, `None`
//! when the route does not use it, so a route without the feature pays one branch.
//! The proxy calls the bundle once per phase: `on_request` before the request goes
//! anywhere (access, then the rate limit, then CORS: the first that answers wins),
//! `on_response` on what goes back (each policy writes its own fields), and
//! `on_refusal` for the fields Parapet's own answers carry. Adding a route policy
//! means its folder under `policy/`, a field here and its calls in these phases.

use super::Route;
use crate::cache::config::RouteCache;
use crate::policy::access::AccessList;
use crate::policy::client_ip::{Client, ClientGrouping};
use crate::policy::compression::Compression;
use crate::policy::cors::{Cors, Preflight, Verdict};
use crate::policy::rate_limit::{self, Decision, RateLimit};
use http::{HeaderMap, HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// The per-route policies.
#[derive(Debug, Default)]
pub struct RoutePolicies {
    /// `cache: true`: the origin shield answers what it may.
    pub cache: Option<RouteCache>,
    /// `access`: which client addresses may use the route.
    pub(crate) access: Option<AccessList>,
    /// `cors`: preflights answered at the edge, CORS fields on responses.
    pub(crate) cors: Option<Cors>,
    /// `rate_limit`: requests per second and burst, per client (or route, or header).
    pub(crate) rate_limit: Option<RateLimit>,
    /// `compression`: answers compressed at the edge.
    pub compression: Option<Compression>,
}

/// What the route's policies remember of one request between its phases (kept on
/// the request context, so a plain copyable value).
#[derive(Debug, Default, Clone, Copy)]
pub struct PolicyState {
    /// The rate limit's verdict, for the `RateLimit` fields of the answer.
    rate_limit: Option<Decision>,
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
    /// `grouping` group) and CORS, in that order.
    pub(crate) fn on_request(
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
            let decision = limit.check(grouping.group(client.ip), &req.headers);
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

    /// The response phase, on an answer from the origin or the cache: CORS fields
    /// for the request's `origin`, and the rate limit's fields when it decided on
    /// this request.
    pub(crate) fn on_response(
        &self,
        headers: &mut HeaderMap,
        origin: Option<&HeaderValue>,
        state: &PolicyState,
    ) {
        if let Some(cors) = &self.cors {
            cors.apply(origin, headers);
        }
        if let (Some(decision), Some(limit)) = (state.rate_limit, &self.rate_limit) {
            limit.on_response(decision, headers);
        }
    }

    /// The fields of Parapet's own answer (an error page, a refusal) to this
    /// request: the rate limit's, `Retry-After` on its 429.
    pub(crate) fn on_refusal(
        &self,
        state: &PolicyState,
        fields: &mut Vec<(HeaderName, HeaderValue)>,
    ) {
        if let (Some(decision), Some(limit)) = (state.rate_limit, &self.rate_limit) {
            fields.extend(decision.headers(limit));
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
