//! What Parapet tells operators about requests: request IDs, trace context, the
//! JSON access log and Prometheus metrics.

pub(crate) mod access_log;
pub(crate) mod log_line;
pub(crate) mod metrics;
pub(crate) mod request_id;
pub(crate) mod trace;
