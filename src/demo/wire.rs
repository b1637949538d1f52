//! Just enough HTTP/1.1 framing for the demo origin and the tests' raw client:
//! read a head, read a body (Content-Length, chunked or until close), a cheap
//! checksum to prove a streamed body arrived intact, and decode a query value.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

const MAX_HEAD: usize = 64 * 1024;

/// A request or response head as it was on the wire.
#[derive(Debug, Clone, Default)]
pub struct Head {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Status code of a response head.
    pub fn status(&self) -> u16 {
        self.start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// Method and target of a request head.
    pub fn method_target(&self) -> (&str, &str) {
        let mut parts = self.start_line.split(' ');
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
    }

    pub fn wants_close(&self) -> bool {
        self.get("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("close"))
            || self.start_line.ends_with("HTTP/1.0")
    }
}

/// How a body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

pub fn request_framing(head: &Head) -> Framing {
    body_framing(head).unwrap_or(Framing::Length(0))
}

pub fn response_framing(head: &Head, request_method: &str) -> Framing {
    let status = head.status();
    if request_method == "HEAD" || status == 204 || status == 304 || status < 200 {
        return Framing::Length(0);
    }
    body_framing(head).unwrap_or(Framing::UntilClose)
}

fn body_framing(head: &Head) -> Option<Framing> {
    if head
        .get("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        return Some(Framing::Chunked);
    }
    head.get("content-length")
        .and_then(|v| v.trim().parse().ok())
        .map(Framing::Length)
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Read one head; `None` when the peer closed before sending anything.
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> std::io::Result<Option<Head>> {
    let mut head = Head::default();
    let mut total = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).await?;
        total += n;
        if n == 0 {
            return match head.start_line.is_empty() {
                true => Ok(None),
                false => Err(invalid("connection closed inside a head")),
            };
        }
        if total > MAX_HEAD {
            return Err(invalid("head too large"));
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if head.start_line.is_empty() {
            if text.is_empty() {
                continue; // tolerate a stray CRLF between messages
            }
            head.start_line = text.to_string();
        } else if text.is_empty() {
            return Ok(Some(head));
        } else {
            let (name, value) = text.split_once(':').ok_or_else(|| invalid("bad header"))?;
            head.headers
                .push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// Read a body, handing each piece to `sink`; returns the byte count.
pub async fn read_body<R, F>(r: &mut R, framing: Framing, mut sink: F) -> std::io::Result<u64>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(&[u8]),
{
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    match framing {
        Framing::Length(len) => total = read_exact(r, len, &mut buf, &mut sink).await?,
        Framing::UntilClose => loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            sink(&buf[..n]);
            total += n as u64;
        },
        Framing::Chunked => loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line).await?;
            let size = size_line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // trailers, then the final CRLF
                loop {
                    let mut trailer = String::new();
                    if r.read_line(&mut trailer).await? == 0 || trailer.trim().is_empty() {
                        return Ok(total);
                    }
                }
            }
            total += read_exact(r, size, &mut buf, &mut sink).await?;
            let mut crlf = String::new();
            r.read_line(&mut crlf).await?;
        },
    }
    Ok(total)
}

async fn read_exact<R, F>(r: &mut R, len: u64, buf: &mut [u8], sink: &mut F) -> std::io::Result<u64>
where
    R: AsyncBufRead + Unpin,
    F: FnMut(&[u8]),
{
    let mut left = len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            return Err(invalid("body ended early"));
        }
        sink(&buf[..n]);
        left -= n as u64;
    }
    Ok(len)
}

/// FNV-1a over a stream of pieces: equal bodies give equal sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum(pub u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// The deterministic byte at `offset` of a generated body.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31) % 251) as u8
}

/// Fill `buf` with the pattern starting at `offset`.
pub fn fill_pattern(buf: &mut [u8], offset: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern_byte(offset + i as u64);
    }
}

/// A query value with `%XX` escapes and `+` decoded; invalid escapes stay as written.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
