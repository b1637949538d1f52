//! The response fields of a limited route.
//!
//! draft-ietf-httpapi-ratelimit-headers: //! Every response of a limited route carries
//! `RateLimit-Policy: "default";q=<burst>;w=<ceil(burst / rate)>` — the bucket holds
//! `q` requests and refills completely in `w` seconds, so `q / w` is the sustained
//! rate (exactly when `burst / rate` is whole; `w` is rounded up, so the policy never
//! promises more than we allow) — and `RateLimit: "default";r=<remaining>;t=<t>`,
//! where `r` is how many more requests this key may send right now and `t` the
//! whole seconds (rounded up, at least 1) until `r` grows by one. A refused request
//! has `r=0` and `Retry-After: <t>`. Note that GCRA, unlike a fixed window, allows
//! up to `q + rate * w` requests within any one `w`-second window (a full bucket,

use super::{Decision, RateLimit};
use http::{HeaderMap, HeaderName, HeaderValue};

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

impl RateLimit {
    /// The response phase: this request's fields on a response from the origin or
    /// the cache (`Retry-After` only ever on a refusal, which is not forwarded).
    pub(crate) fn on_response(&self, decision: Decision, resp: &mut HeaderMap) {
        for (name, value) in decision.headers(self) {
            resp.insert(name, value);
        }
    }
}

impl Decision {
    /// The `RateLimit-Policy` and `RateLimit` fields, and `Retry-After` when the
    /// request was refused, to be set on the response.
    pub(crate) fn headers(
        &self,
        limit: &RateLimit,
    ) -> impl Iterator<Item = (HeaderName, HeaderValue)> {
        let retry_after =
            (!self.allowed).then(|| (http::header::RETRY_AFTER, HeaderValue::from(self.reset)));
        [
            Some((RATELIMIT_POLICY.clone(), limit.policy.clone())),
            self.rate_limit_value().map(|v| (RATELIMIT.clone(), v)),
            retry_after,
        ]
        .into_iter()
        .flatten()
    }

    /// `"default";r=<remaining>;t=<reset>`.
    fn rate_limit_value(&self) -> Option<HeaderValue> {
        let (mut r, mut t) = (itoa::Buffer::new(), itoa::Buffer::new());
        header_value([
            b"\"default\";r=",
            r.format(self.remaining).as_bytes(),
            b";t=",
            t.format(self.reset).as_bytes(),
        ])
    }
}

/// A header value of four parts, put together on the stack.
pub(super) fn header_value(parts: [&[u8]; 4]) -> Option<HeaderValue> {
    let mut buf = [0u8; 64];
    let mut len = 0;
    for part in parts {
        buf.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    HeaderValue::from_bytes(&buf[..len]).ok()
}
