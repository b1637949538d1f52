//! `limits.client_header_timeout` (default 10s, as nginx's): from the first byte of
//! a request, its whole head must arrive within the timeout, or the connection is
//! closed. Pingora 0.9.1 bounds only each read of a head (60 s, the keep-alive
//! timeout), so a client sending a byte a minute (slowloris) would hold its
//! connection for ever; and it offers no hook before the head is parsed.
//!
//! So the deadline sits under Pingora, in the connection's stream: the connection
//! gate (`connection::ConnectionGate`) hands the proxy each HTTP/1 connection inside
//! a `HeadDeadline`, which watches the bytes go by. A new connection's deadline
//! runs from its accept, so one that never sends a byte is closed too; on a
//! keep-alive connection reading the first byte of a request arms it; the empty
//! line that ends the head disarms it; writing a final response (not a 1xx) makes
//! the next bytes read a new request's. A read still waiting at the deadline fails
//! with `TimedOut`, and Pingora closes the connection: the head is not complete, so
//! no answer can be framed (nginx, too, closes without one). Between requests the
//! keep-alive loop's timeout applies (`http1`, `limits.client_keepalive_timeout`).
//!
//! HTTP/2 (ALPN or the h2c preface) and connections after a `101 Switching
//! Protocols` are not HTTP/1 heads: the deadline is off for them, once the HTTP/2
//! connection preface (RFC 9113 §3.4) is in, which must arrive within the timeout
//! too (h2's handshake has no timer of its own). On an h2c listener Pingora peeks
//! for the preface (pingora-core apps/mod.rs) with no timer either: the peek here
//! reads under the deadline, stops at the first byte that is not the preface's (a
//! short HTTP/1 request is not held waiting for 24 bytes), and replays what it read
//! (`h2`). Pingora issue #447 asks for a whole-head timeout of its own.
//!
//! A marked stream, dropped, leaves the connection underneath in its [`Slot`] for a
//! lingering close (`pingora_compat::linger`, which holds the other end).

mod h2;
mod scan;

use async_trait::async_trait;
use h2::H2_PREFACE;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::TlsRef;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN, IO,
};
use scan::{HeadScan, Written};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a dropped, marked stream leaves the connection underneath for the
/// keep-alive loop (`pingora_compat::http1`), which lingers on it.
#[derive(Clone, Default)]
pub(crate) struct Slot(Arc<Mutex<Option<Stream>>>);

impl Slot {
    fn put(&self, stream: Stream) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(stream);
        }
    }

    pub(crate) fn take(&self) -> Option<Stream> {
        self.0.lock().ok()?.take()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A new connection, before its first byte: the head's deadline runs from
    /// the accept (as nginx's `client_header_timeout`), so a connection that sends
    /// nothing is closed too.
    Fresh,
    /// Between requests: waiting for the first byte of the next one (the
    /// keep-alive loop's timeout, `http1`).
    Idle,
    /// Reading a request head, which must end by the deadline.
    Head,
    /// The head is in; the body and the response take what they take.
    Served,
    /// HTTP/2 by ALPN: this many bytes of the preface are still to come, by the
    /// deadline.
    Preface(usize),
    /// Not HTTP/1 heads (h2c, an upgraded connection): no deadline ever again.
    Off,
}

/// A client connection whose request heads must each arrive within `timeout`.
pub(crate) struct HeadDeadline {
    inner: Stream,
    timeout: Duration,
    phase: Phase,
    scan: HeadScan,
    /// When the head being read must be in.
    head_deadline: Instant,
    /// The timer for it, made when a read first has to wait for more of a head.
    sleep: Option<Pin<Box<Sleep>>>,
    /// What a peek read, for the reads after it.
    peeked: Vec<u8>,
    /// Set when the connection closes with a request body unread: dropping this
    /// stream then leaves `inner` in `linger` for a lingering close.
    lingers: AtomicBool,
    linger: Slot,
}

impl HeadDeadline {
    pub(crate) fn new(inner: Stream, timeout: Duration) -> Self {
        HeadDeadline {
            inner,
            timeout,
            phase: Phase::Fresh,
            scan: HeadScan::default(),
            head_deadline: Instant::now() + timeout,
            sleep: None,
            peeked: Vec::new(),
            lingers: AtomicBool::new(false),
            linger: Slot::default(),
        }
    }

    fn timed_out(&self) -> io::Error {
        let message = match self.phase {
            Phase::Preface(_) => "the HTTP/2 preface did not arrive within client_header_timeout",
            _ => "the request head did not arrive within client_header_timeout",
        };
        io::Error::new(io::ErrorKind::TimedOut, message)
    }

    /// The `HeadDeadline` under an HTTP/1 stream, if it is one.
    pub(crate) fn of(stream: &Stream) -> Option<&HeadDeadline> {
        let io: &dyn IO = stream.as_ref();
        io.as_any().downcast_ref::<HeadDeadline>()
    }

    /// Where the connection is left when it must linger.
    pub(crate) fn linger_slot(&self) -> Slot {
        self.linger.clone()
    }

    /// Linger on this connection when it is dropped (the answer is written and
    /// the request body was not read).
    pub(crate) fn linger_on_close(&self) {
        self.lingers.store(true, Ordering::Relaxed);
    }

    /// Bytes were read: arm the deadline at a request's first byte, disarm it at
    /// the empty line that ends the head.
    fn saw(&mut self, bytes: &[u8]) {
        let waiting = matches!(self.phase, Phase::Fresh | Phase::Idle);
        if waiting && !bytes.is_empty() {
            if bytes.starts_with(H2_PREFACE) {
                self.phase = Phase::Off;
                return;
            }
            self.scan = HeadScan::default();
            // Most heads arrive in one read: those never arm a timer (and on a
            // kept connection never read the clock).
            if self.scan.ends_in(bytes) {
                self.phase = Phase::Served;
                return;
            }
            if self.phase == Phase::Idle {
                self.head_deadline = Instant::now() + self.timeout;
            }
            self.phase = Phase::Head;
            return;
        }
        if self.phase == Phase::Head && self.scan.ends_in(bytes) {
            self.phase = Phase::Served;
        }
    }

    /// Wait for the head's deadline (with the read); ready once it has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.head_deadline;
        let sleep = match &mut self.sleep {
            Some(sleep) => {
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
                sleep
            }
            None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
        };
        sleep.as_mut().poll(cx)
    }

    /// Bytes are written: a final response ends the request (a 1xx does not, and
    /// a 101 hands the connection to another protocol).
    fn writes(&mut self, bytes: &[u8]) {
        if self.phase == Phase::Served {
            self.phase = match Written::of(bytes) {
                Written::Final => Phase::Idle,
                Written::Interim => Phase::Served,
                Written::Switching => Phase::Off,
            };
        }
    }
}

impl AsyncRead for HeadDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let read = match this.peeked.is_empty() {
            true => Pin::new(&mut this.inner).poll_read(cx, buf),
            false => {
                let n = this.peeked.len().min(buf.remaining());
                buf.put_slice(&this.peeked[..n]);
                this.peeked.drain(..n);
                Poll::Ready(Ok(()))
            }
        };
        if let Poll::Ready(read) = read {
            read?;
            let (phase, new) = (this.phase, &buf.filled()[before..]);
            match phase {
                Phase::Fresh | Phase::Idle | Phase::Head => this.saw(new),
                Phase::Preface(left) => match left.checked_sub(new.len()) {
                    Some(left) if left > 0 => this.phase = Phase::Preface(left),
                    _ => this.phase = Phase::Off,
                },
                Phase::Served | Phase::Off => {}
            }
            return Poll::Ready(Ok(()));
        }
        if matches!(this.phase, Phase::Fresh | Phase::Head | Phase::Preface(_)) {
            ready!(this.poll_deadline(cx));
            return Poll::Ready(Err(this.timed_out()));
        }
        Poll::Pending
    }
}

impl AsyncWrite for HeadDeadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        self.writes(&buf[..written]);
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            self.writes(&first[..written.min(first.len())]);
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Drop for HeadDeadline {
    fn drop(&mut self) {
        if self.lingers.load(Ordering::Relaxed) {
            // An empty cursor stands in for the connection handed over.
            let closed: Stream = Box::new(io::Cursor::new(Vec::new()));
            self.linger.put(std::mem::replace(&mut self.inner, closed));
        }
    }
}

impl std::fmt::Debug for HeadDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadDeadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

// What Pingora asks of a stream, passed through to the connection underneath.

#[async_trait]
impl Shutdown for HeadDeadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for HeadDeadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for HeadDeadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for HeadDeadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for HeadDeadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for HeadDeadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}
