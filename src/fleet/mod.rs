//! A fleet of Parapets (README "A fleet"): several instances behind DNS or
//! anycast that share what one instance alone cannot. This folder owns the
//! instance's name in `CDN-Loop` (RFC 8586: a request that already went through
//! this instance is refused with 508) and the shared store on Redis that global
//! rate limits (`policy::rate_limit`, `scope: global`) and purges use.
//!
//! config    the top-level `name` and `redis` keys
//! cdn_loop  the loop check and this instance's `CDN-Loop` member
//! store     the Redis connection, its timeout and trip, its metrics

mod cdn_loop;
pub(crate) mod config;
mod store;

pub(crate) use cdn_loop::{is_loop, CDN_LOOP};
pub(crate) use store::RedisStore;
