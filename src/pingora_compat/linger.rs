//! Lingering close, as nginx's: an HTTP/1 connection answered before its request
//! body was read (a 413, 403, 429, an error page, an origin that answered early)
//! is not closed at once. Closing a socket with unread bytes makes the kernel send
//! an RST (RFC 1122 §4.2.2.13), and an RST can destroy the answer before a client
//! that writes its whole body first (as Python's http.client does) reads it. So,
//! as RFC 9112 §9.6 asks, the connection sends its FIN (TLS: close_notify, then
//! FIN) once the answer is flushed, and then reads and discards what the client
//! still sends, until it closes, or for at most [`LINGER_TOTAL`] in all,
//! [`LINGER_READ`] between reads and [`LINGER_BYTES`].
//!
//! Pingora 0.9.1 closes such a connection itself: after `request_filter` answers
//! it shuts the stream down and drops it, after an error it drops it
//! (pingora-proxy `lib.rs`, `process_request` and `handle_error`). So the proxy
//! marks the connection's stream ([`mark_if_body_unread`], in `logging`, which
//! runs on every path before the session ends); dropping a marked `HeadDeadline`
//! leaves the connection underneath in its `Slot` (`header_timeout`), and the
//! keep-alive loop (`http1`), which holds the other end of the slot, lingers on it
//! once Pingora is done. The lingering connection is still the connection gate's: it counts
//! toward the listener's caps until it closes. Keep-alive answers (whose body
//! Pingora reads before reuse) and connections whose body was read never linger;
//! HTTP/2 needs none (a refused stream is reset on its own).

use super::header_timeout::HeadDeadline;
use pingora::protocols::Stream;
use pingora::proxy::Session;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a connection lingers in all (nginx's `lingering_time`).
pub(crate) const LINGER_TOTAL: Duration = Duration::from_secs(30);
/// The longest wait for more bytes while lingering (nginx's `lingering_timeout`).
pub(crate) const LINGER_READ: Duration = Duration::from_secs(5);
/// The most bytes read and discarded: enough for a client that writes a body of
/// tens of MiB before reading to get its answer, and no more.
pub(crate) const LINGER_BYTES: usize = 32 << 20;
/// The discard buffer, allocated only by a lingering connection.
const DISCARD_BUFFER: usize = 16 << 10;

/// After the answer: an HTTP/1 connection that closes with its request body
/// unread lingers. Keep-alive on means Pingora drains the body before reuse
/// (writing an answer before the body is read turns keep-alive off:
/// pingora-core `protocols/http/v1/server.rs`, `close_on_response_before_downstream_finish`).
pub(crate) fn mark_if_body_unread(session: &mut Session) {
    if session.get_keepalive().is_some() || session.was_upgraded() {
        return;
    }
    let downstream = session.as_downstream_mut();
    if downstream.as_http1().is_none() || downstream.is_body_done() {
        return;
    }
    if let Some(stream) = downstream.stream().and_then(HeadDeadline::of) {
        stream.linger_on_close();
    }
}

/// Send the FIN after what is buffered, then read and discard within the bounds
/// (the shutdown too: over TLS it writes a close_notify a stalled client may not take).
pub(crate) async fn close(mut stream: Stream) {
    let lingered = tokio::time::timeout(LINGER_TOTAL, async {
        stream.shutdown().await?;
        Ok::<_, std::io::Error>(discard(&mut stream).await)
    });
    // Awaited outside the macro, which skips its arguments when debug is off.
    let lingered = lingered.await;
    log::debug!("lingering close done: {lingered:?}");
}

/// Read until the client closes, stalls for `LINGER_READ` or `LINGER_BYTES` are in.
async fn discard(stream: &mut Stream) -> usize {
    let mut buf = vec![0u8; DISCARD_BUFFER];
    let mut total = 0;
    while total < LINGER_BYTES {
        match tokio::time::timeout(LINGER_READ, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => total += n,
            _ => break,
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn lingering_ends_when_the_client_closes_or_stalls() {
        let (ours, mut client) = tokio::io::duplex(1 << 16);
        let lingering = tokio::spawn(close(Box::new(ours)));
        client.write_all(&[b'x'; 50_000]).await.unwrap();
        let mut answer = Vec::new();
        // Our side was shut down first: the client sees its end of stream.
        client.read_to_end(&mut answer).await.unwrap();
        assert!(answer.is_empty());
        drop(client);
        lingering.await.unwrap();

        let (ours, client) = tokio::io::duplex(1 << 16);
        let started = tokio::time::Instant::now();
        close(Box::new(ours)).await;
        assert_eq!(started.elapsed(), LINGER_READ, "a silent client");
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_is_bounded_in_time_and_bytes() {
        let (ours, mut client) = tokio::io::duplex(1 << 16);
        let trickle = tokio::spawn(async move {
            // A byte every 4 s: never a stall, so only the total bounds it.
            while client.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
        });
        let started = tokio::time::Instant::now();
        close(Box::new(ours)).await;
        assert_eq!(started.elapsed(), LINGER_TOTAL);
        trickle.abort();

        let (ours, mut client) = tokio::io::duplex(1 << 16);
        let flood = tokio::spawn(async move {
            let chunk = vec![b'x'; 1 << 16];
            while client.write_all(&chunk).await.is_ok() {}
        });
        let mut ours: Stream = Box::new(ours);
        let read = discard(&mut ours).await;
        assert!((LINGER_BYTES..LINGER_BYTES + DISCARD_BUFFER).contains(&read));
        flood.abort();
    }
}
