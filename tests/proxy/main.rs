//! Integration tests: the real `parapet` binary against real origins on 127.0.0.1.
//! One test binary (faster to link); one module per concern.

mod support;

mod cache;
mod cache_conformance;
mod cache_disk;
mod cache_disk_handoff;
mod cache_hardening;
mod client_mistakes;
mod compression;
mod config_check;
mod connections;
mod dashboard;
mod edge;
mod failures;
mod fleet;
mod hardening_conn;
mod hardening_ident;
mod hardening_tls;
mod headers;
mod health;
mod normalization;
mod observability;
mod operations;
mod protocol_abuse;
mod resilience;
mod retries;
mod routing;
mod slow_clients;
mod streaming;
mod tls;
mod upstream_tls;
mod websocket;
