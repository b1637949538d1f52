//! The scheme a request arrived with (RFC 9110 §4.2): TLS on the client's
//! connection or not.

use pingora::proxy::Session;

/// The scheme a request arrived with, for `X-Forwarded-Proto` and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// From the connection the request came on: TLS or not.
    pub(crate) fn of(session: &Session) -> Scheme {
        match session.digest().is_some_and(|d| d.ssl_digest.is_some()) {
            true => Scheme::Https,
            false => Scheme::Http,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}
