//! What Parapet tells operators about requests: request IDs, trace context, the
//! JSON access log and Prometheus metrics.

pub mod access_log;
pub mod log_line;
pub mod metrics;
pub mod request_id;
pub mod trace;
