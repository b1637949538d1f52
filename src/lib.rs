//! Parapet: an edge reverse proxy and origin shield on Pingora.
#![warn(unreachable_pub)]

/// The admin listener and its section: health, readiness, status, metrics, purge,
/// the dashboard.
pub(crate) mod admin;
/// The counting allocator of the bench-only build.
#[cfg(feature = "count-alloc")]
pub mod alloc_count;
/// The origin shield: storage, cache policy, keys, purge.
pub(crate) mod cache;
/// The bottom toolkit each feature reads its section with: field-path errors, units, PEM.
pub(crate) mod config;
/// Client connections before and between requests: the caps, the upgrade's hand-off.
pub(crate) mod connection;
/// A small origin server for the demo and the tests; not part of the proxy.
#[cfg(feature = "demo")]
pub mod demo;
/// Status codes and bodies of the responses Parapet itself produces.
pub(crate) mod error_page;
/// Several instances as one: the name in `CDN-Loop`, the shared store on Redis.
pub(crate) mod fleet;
/// ASCII numbers and addresses, hand-written JSON, token lists, the request
/// target and host in normal form.
pub(crate) mod http_util;
/// The proxy's listening sockets.
pub(crate) mod listener;
/// The top: reads the file, hands each section to its owner, the validated `Settings`.
pub mod load;
/// Giving memory back to the system after a flood of connections.
pub mod memory;
/// Request IDs, trace context, the access log and metrics.
pub(crate) mod observe;
/// Every workaround for Pingora 0.9.1, each with the Pingora source and issue.
pub(crate) mod pingora_compat;
/// Request policies: client IP, headers, limits, access, CORS, rate limits, ...
pub(crate) mod policy;
/// The `ProxyHttp` implementation: the request's story.
pub(crate) mod proxy;
/// Host and path prefix to route, and each route's policies.
pub(crate) mod routing;
/// What the request path reads, built once.
pub(crate) mod runtime;
/// Assembling the Pingora server.
pub mod server;
/// Upstream pools: selection, health checks, backends, peers.
pub(crate) mod upstream;
