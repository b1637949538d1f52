//! Request policies, each a small type the proxy calls at one point of the request.

pub mod access;
pub mod client_ip;
pub mod compression;
pub mod cors;
pub mod framing;
pub mod headers;
pub mod limits;
pub mod rate_limit;
pub mod request_buffer;
