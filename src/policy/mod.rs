//! Request policies, each a small type the proxy calls at one point of the request.

pub mod client_ip;
pub mod framing;
pub mod headers;
pub mod retry;
