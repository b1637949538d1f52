//! What Parapet tells operators about requests: request IDs (and, with the
//! observability issue, the access log and metrics).

pub mod request_id;
