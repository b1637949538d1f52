//! Parapet: an edge reverse proxy and origin shield on Pingora.

/// The admin listener: health, readiness, status, metrics.
pub mod admin;
/// The counting allocator of the bench-only build.
pub mod alloc_count;
/// Numbers and addresses as ASCII, without `core::fmt`.
pub mod ascii;
/// The YAML file: serde structs, validation, the runtime model.
pub mod config;
/// A small origin server for the demo, the tests and the benchmarks; not part of the proxy.
pub mod demo;
/// Status codes and bodies of the responses Parapet itself produces.
pub mod error_page;
/// Request IDs (and later the access log and metrics).
pub mod observe;
/// Request policies: client identity, framing, headers, retries.
pub mod policy;
/// The `ProxyHttp` implementation: the request's story.
pub mod proxy;
/// Host and path prefix to route.
pub mod routing;
/// What the request path reads, built once.
pub mod runtime;
/// Assembling the Pingora server.
pub mod server;
/// Upstream pools: selection, health checks, peers.
pub mod upstream;
