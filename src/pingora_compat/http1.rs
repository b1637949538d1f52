//! The HTTP/1 keep-alive loop: Pingora's (`ServerApp for HttpServerApp`, pingora-core
//! `apps/mod.rs`), with one change: a connection waits for its next request holding
//! only its stream.
//!
//! Pingora 0.9.1 starts each request's work before its first byte arrives: the
//! proxy's per-request future (with the request context inside) and a 4 KiB head
//! buffer sit allocated for the whole idle time of a keep-alive connection, which is
//! most of its life at the edge (the idle-memory figures are in bench/RESULTS.md).
//! Here the loop first reads one byte, and only then builds the session, handing the
//! byte to Pingora as the start of the head (`set_pipelined_prefix`, the way Pingora
//! itself carries pipelined bytes into the next request). Reading through the
//! stream, not peeking at the socket, sees bytes already buffered above the socket
//! (a TLS record, the listener's read buffer).
//!
//! The wait for a request is the loop's, so it, not Pingora, decides what a shutdown
//! does to it: a connection that has not sent its first request is given its
//! `client_header_timeout` to send it (Pingora drops it when the accept loop stops,
//! and a client that connected just before loses its request); an idle keep-alive
//! connection is served if it sends one before its keep-alive timeout or the end of
//! the grace period. Either way the answer closes the connection (Pingora turns
//! keep-alive off once shutdown has begun).
//!
//! A connection answered before its request body was read comes back to the loop
//! once Pingora is done with it, for a lingering close (`linger`).

use super::header_timeout::{HeadDeadline, Slot};
use super::linger;
use bytes::{BufMut, BytesMut};
use pingora::apps::{HttpPersistentSettings, HttpServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Pingora's first allocation for a head (`INIT_HEADER_BUF_SIZE`).
const HEAD_BUFFER: usize = 4096;

/// What comes before the next request.
enum Next {
    /// A new connection: nothing yet; `client_header_timeout` (the stream's
    /// `HeadDeadline`) bounds the wait.
    First,
    /// A request was answered and the connection kept: what Pingora carries over.
    Reuse(Option<HttpPersistentSettings>),
}

/// Serve HTTP/1 requests on `stream` until it closes. `keepalive` bounds the wait
/// for a request after the first.
pub(crate) async fn serve<A>(
    app: &Arc<A>,
    mut stream: Stream,
    keepalive: Duration,
    shutdown: &ShutdownWatch,
) where
    A: HttpServerApp + Send + Sync + 'static,
{
    // Where a connection answered before its request body was read is left to
    // linger (`linger`): still this loop's, so it counts toward the caps.
    let lingering = HeadDeadline::of(&stream).map(HeadDeadline::linger_slot);
    let mut next = Next::First;
    loop {
        let first = match next {
            Next::First => first_byte(&mut stream).await,
            Next::Reuse(_) => tokio::time::timeout(keepalive, first_byte(&mut stream))
                .await
                .ok()
                .flatten(),
        };
        let Some(first) = first else {
            return;
        };
        let mut session = ServerSession::new_http1(stream);
        match next {
            Next::First => {
                // As Pingora sets up a new connection's session.
                let keepalive = (!*shutdown.borrow()).then_some(keepalive.as_secs());
                session.set_keepalive(keepalive);
                let limit = app.server_options().and_then(|o| o.keepalive_request_limit);
                session.set_keepalive_reuses_remaining(limit);
            }
            Next::Reuse(Some(settings)) => settings.apply_to_session(&mut session),
            Next::Reuse(None) => {}
        }
        let mut head = BytesMut::with_capacity(HEAD_BUFFER);
        head.put_u8(first);
        session.set_pipelined_prefix(head);
        let Some(reused) = app.process_new_http(session, shutdown).await else {
            if let Some(stream) = lingering.as_ref().and_then(Slot::take) {
                // Boxed: rare, and its timers would otherwise size every
                // connection's future for its whole life.
                Box::pin(linger::close(stream)).await;
            }
            return;
        };
        let (kept, settings) = reused.consume();
        stream = kept;
        next = Next::Reuse(settings);
    }
}

/// The first byte of the next request; None when the connection closes, fails or
/// times out first.
async fn first_byte(stream: &mut Stream) -> Option<u8> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte).await {
        Ok(1) => Some(byte[0]),
        Ok(_) => None,
        Err(e) => {
            log::debug!("connection closed before a request: {e}");
            None
        }
    }
}
