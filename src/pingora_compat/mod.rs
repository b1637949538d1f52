//! Where Parapet differs from Pingora 0.9.1, and why: every workaround for the
//! Pingora release we build on, so that an upgrade has one place to look. Each
//! item says what Pingora does, what we do instead, the Pingora source it mirrors
//! or works around, the upstream issue where there is one, and what would let us
//! delete it. The connection gate (`connection::ConnectionGate`), the listeners
//! and the proxy call in here; what is Parapet's own policy stays with its feature.
//! It imports nothing of Parapet's, only Pingora: the bottom of the house.
//! What is fixed at its root, in Pingora's own sources, is Parapet's patch series
//! instead (third_party/PATCHES.md): the stored `Date` of a hit, brotli's
//! unfinished stream, the interim responses of a batch served from the cache, and
//! ERROR lines for a client's mistakes.
//!
//! http1           Pingora builds each request's session (the proxy's per-request
//!                 future and a 4 KiB head buffer) before the request's first byte,
//!                 for the whole idle time of a keep-alive connection, and drops a
//!                 connection waiting for its first request at shutdown; we run the
//!                 keep-alive loop ourselves, reading one byte before building the
//!                 session. Mirrors pingora-core `apps/mod.rs` (`ServerApp for
//!                 HttpServerApp`, `process_new`). Upstream: none found (#447 is
//!                 the keep-alive timeout of reused connections). Delete when a
//!                 release waits for a byte before building the session.
//! header_timeout  Pingora bounds each read of a request head (60 s), not the
//!                 whole head, and h2's handshake and the h2c preface peek have no
//!                 timer; our `HeadDeadline` stream under Pingora times the head
//!                 (and the HTTP/2 preface, and the peek: `header_timeout::h2`),
//!                 sniffing the bytes read and written. Works around pingora-core
//!                 `protocols/http/v1/server.rs` (`read_request`) and `apps/mod.rs`
//!                 (the h2c `try_peek`). Upstream: #447 (open). Delete when a
//!                 release has a whole-head timeout and a preface timeout.
//! linger          Pingora shuts down and drops a connection answered before its
//!                 request body was read, so the kernel's RST can destroy the
//!                 answer; we keep the connection (the `HeadDeadline`'s slot) and
//!                 close it lingering, as nginx does. Works around pingora-proxy
//!                 `lib.rs` (`process_request`, `handle_error`). Upstream: none
//!                 found. Delete when a release drains or lingers itself.
//! tls             Pingora's listener runs each TLS handshake before the
//!                 application sees the connection, with a fixed 60 s timeout, so
//!                 a silent client holds a connection outside every cap; TLS
//!                 listeners are plain TCP to Pingora and we run the handshake,
//!                 counted and within `client_header_timeout`, with a rustls
//!                 configuration built as Pingora's. Works around pingora-core
//!                 `services/listening.rs` (`timeout(60 s, io.handshake())`);
//!                 mirrors `listeners/tls/rustls/mod.rs` (`TlsSettings::build`).
//!                 Upstream: #543 (the fixed timeout, "make it configurable in the
//!                 future"). Delete when the handshake timeout is configurable and
//!                 runs after the application's admission.
//! head_edit       Pingora's `insert_header` writes through a second map of each
//!                 name's case, which cannot be reserved; we edit heads as plain
//!                 `http` parts and drop the case map (names go out in lower
//!                 case). Works around pingora-http `lib.rs` (`header_name_map`,
//!                 `insert_header`). Upstream: none found. Delete when a release
//!                 can reserve or skip the case map.
//! compression     Pingora's compression module picks its coding from the
//!                 request's `Accept-Encoding` and cannot be told one; we hand it a
//!                 made-up head with the coding we negotiated. Works around
//!                 pingora-core `protocols/http/compression/mod.rs`
//!                 (`ResponseCompressionCtx::request_filter`). Upstream: none
//!                 found. Delete when a release can set the algorithm directly.
//!
//! Woven into a feature's hook, and so left there (each comment names the
//! Pingora source):
//! - `cache::Shield::upstream_answered`: a 304's fields merged into the stored
//!   response; pingora-cache merges only a few of them (RFC 9111 §4.3.4).
//! - `cache::storage` (`lookup_streaming_write`): an error, not `Ok(None)`, for a
//!   fill that is gone; pingora-cache panics on `None`.
//! - `upstream::peer` (`is_own_ca_certificate`): an origin's self-signed CA
//!   certificate cannot be pinned; Pingora's connector takes no verifier of ours.
//! - `server`: `daemon_wait_for_ready` not used (the parent's SIGUSR1 handler is
//!   installed after the fork).

pub(crate) mod compression;
pub(crate) mod head_edit;
pub(crate) mod header_timeout;
pub(crate) mod http1;
pub(crate) mod linger;
pub(crate) mod tls;
