//! Parapet: an edge reverse proxy and origin shield on Pingora.

/// The admin listener and its section: health, readiness, status, metrics, purge,
/// the dashboard.
pub mod admin;
/// The counting allocator of the bench-only build.
#[cfg(feature = "count-alloc")]
pub mod alloc_count;
/// The origin shield: storage, cache policy, keys, purge.
pub mod cache;
/// The bottom toolkit each feature reads its section with: field-path errors, units, PEM.
pub mod config;
/// Client connections before and between requests: the caps, the upgrade's hand-off.
pub mod connection;
/// A small origin server for the demo and the tests; not part of the proxy.
#[cfg(feature = "demo")]
pub mod demo;
/// Status codes and bodies of the responses Parapet itself produces.
pub mod error_page;
/// ASCII numbers and addresses, hand-written JSON, token lists, the request
/// target and host in normal form.
pub mod http_util;
/// The proxy's listening sockets.
pub mod listener;
/// The top: reads the file, hands each section to its owner, the validated `Settings`.
pub mod load;
/// Giving memory back to the system after a flood of connections.
pub mod memory;
/// Request IDs, trace context, the access log and metrics.
pub mod observe;
/// Every workaround for Pingora 0.9.1, each with the Pingora source and issue.
pub(crate) mod pingora_compat;
/// Request policies: client IP, headers, limits, access, CORS, rate limits, ...
pub mod policy;
/// The `ProxyHttp` implementation: the request's story.
pub mod proxy;
/// Host and path prefix to route, and each route's policies.
pub mod routing;
/// What the request path reads, built once.
pub mod runtime;
/// Assembling the Pingora server.
pub mod server;
/// Upstream pools: selection, health checks, backends, peers.
pub mod upstream;
