//! `parapet_ratelimited_total{route}`: requests refused with 429, per route with a
//! rate limit (registered only when some route has one; README "Observe it").

use super::RateLimit;

/// Register the family and give each limited route its series, which its
/// `check` then counts (`routes` are each limited route's label and limiter).
pub(crate) fn register<'a>(
    registry: &prometheus::Registry,
    routes: impl IntoIterator<Item = (&'a str, &'a mut RateLimit)>,
) -> prometheus::Result<()> {
    let mut routes = routes.into_iter().peekable();
    if routes.peek().is_none() {
        return Ok(());
    }
    let refused = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "parapet_ratelimited_total",
            "Requests refused with 429 by the route's rate limit",
        ),
        &["route"],
    )?;
    registry.register(Box::new(refused.clone()))?;
    for (label, limit) in routes {
        limit.refused = Some(refused.with_label_values(&[label]));
    }
    Ok(())
}
