//! The fields CORS writes: a preflight's 204, and every forwarded answer of the
//! route (ours replace the origin's, and `Vary` names `Origin`).

use super::{Cors, Preflight, ALLOW_ORIGIN, ORIGIN, TRUE};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

impl Cors {
    /// The fields of the 204 answer to an allowed preflight, in order (at most
    /// `PREFLIGHT_FIELDS`).
    pub(crate) fn preflight_headers(
        &self,
        preflight: Preflight,
    ) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        let origin = (&ALLOW_ORIGIN, self.allow_origin(preflight.origin));
        std::iter::once(origin).chain(self.preflight.iter().map(|(n, v)| (n, v)))
    }

    /// The response side, for every forwarded request of this route (call it where
    /// cache hits pass too, so the answer follows each request's `Origin`): the
    /// origin's `Access-Control-*` fields are removed, `Vary` gets `Origin`, and when
    /// `request_origin` (the request's `Origin`) is allowed, our fields are added.
    pub(crate) fn apply(&self, request_origin: Option<&HeaderValue>, resp: &mut HeaderMap) {
        strip_access_control(resp);
        vary_on_origin(resp);
        let Some(origin) = request_origin.and_then(|o| self.allowed(o)) else {
            return;
        };
        resp.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            self.allow_origin(origin).clone(),
        );
        if self.credentials {
            resp.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE.clone());
        }
        if let Some(expose) = &self.expose {
            resp.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// Remove every `Access-Control-*` field (the origin's, on a route where we own them).
fn strip_access_control(resp: &mut HeaderMap) {
    const PREFIX: &str = "access-control-";
    // Usually there are none: one pass over the names finds that.
    while let Some(name) = resp
        .keys()
        .find(|n| n.as_str().starts_with(PREFIX))
        .cloned()
    {
        resp.remove(&name);
    }
}

/// Make `Vary` include `Origin`: the answer depends on it. Kept as it is when it
/// already names `Origin` or is `*`; otherwise `Origin` is appended to its list, in
/// one field line.
fn vary_on_origin(resp: &mut HeaderMap) {
    let mut lines = resp.get_all(header::VARY).iter().peekable();
    if lines.peek().is_none() {
        resp.insert(header::VARY, ORIGIN.clone());
        return;
    }
    let mut joined = Vec::new();
    for line in lines {
        for token in line.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token == b"*" || token.eq_ignore_ascii_case(b"origin") {
                return;
            }
            if !token.is_empty() {
                joined.extend_from_slice(token);
                joined.extend_from_slice(b", ");
            }
        }
    }
    joined.extend_from_slice(b"Origin");
    // Parts of valid values joined by ", ": a valid value.
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        resp.insert(header::VARY, value);
    }
}
