//! HTTP/2 on a connection the deadline watches: by ALPN, its preface must arrive
//! in time; on an h2c listener, Pingora's peek for the preface reads under the deadline.

use super::{HeadDeadline, Phase};
use async_trait::async_trait;
use pingora::protocols::{Peek, Stream};
use std::io;
use std::time::Duration;

/// The HTTP/2 connection preface (RFC 9113 §3.4); its request line tells an
/// h2c connection from an HTTP/1 one.
const H2_PREFACE_ALL: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub(super) const H2_PREFACE: &[u8] = H2_PREFACE_ALL.split_at(14).0;

impl HeadDeadline {
    /// An HTTP/2 connection (by ALPN) whose preface must arrive within `timeout`.
    pub(crate) fn h2_preface(inner: Stream, timeout: Duration) -> Self {
        let mut stream = HeadDeadline::new(inner, timeout);
        stream.phase = Phase::Preface(H2_PREFACE_ALL.len());
        stream
    }
}

#[async_trait]
impl Peek for HeadDeadline {
    /// Pingora peeks only for the h2c preface: read until `buf` is full or a
    /// byte differs from the preface's, within the head's deadline; the bytes are
    /// read again by the reads after.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        use tokio::io::AsyncReadExt;
        let mut got = self.peeked.len().min(buf.len());
        buf[..got].copy_from_slice(&self.peeked[..got]);
        while got < buf.len() && buf[..got] == H2_PREFACE_ALL[..got.min(H2_PREFACE_ALL.len())] {
            let read = self.inner.read(&mut buf[got..]);
            let n = match tokio::time::timeout_at(self.head_deadline, read).await {
                Ok(n) => n?,
                Err(_) => return Err(self.timed_out()),
            };
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.peeked.extend_from_slice(&buf[got..got + n]);
            got += n;
        }
        Ok(true)
    }
}
