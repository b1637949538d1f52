//! A small HTTP/1.1 origin (`parapet-origin`) for `make run`, the integration tests
//! and the benchmarks, and the wire helpers it shares with the tests' client (HTTP/1.1
//! framing in `wire`, WebSocket frames in `websocket`).
//! Not part of the proxy's request path.

pub mod origin;
pub mod websocket;
pub mod wire;
