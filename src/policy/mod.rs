//! Request policies, each a small type the proxy calls at one point of the request.

pub(crate) mod access;
pub(crate) mod client_ip;
pub(crate) mod compression;
pub(crate) mod cors;
pub(crate) mod framing;
pub(crate) mod headers;
pub(crate) mod limits;
pub(crate) mod rate_limit;
pub(crate) mod request_buffer;
