//! What Parapet does with a client connection before and between its requests.
//!
//! header_timeout  `limits.client_header_timeout`: a request head must arrive whole
//!                 in time, or the connection is closed (slowloris)

pub mod header_timeout;
