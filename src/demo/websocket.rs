//! The demo origin's WebSocket echo (`/ws`), and the frame helpers the tests'
//! client shares with it: just enough of RFC 6455 to prove that a proxy passes an
//! upgraded connection through untouched.
//!
//! The echo answers the opening handshake with a 101 (§4.2.2), then returns every
//! text, binary and continuation frame as it came (unmasked, as a server sends),
//! answers a ping with a pong, and a close with a close, after which it ends the
//! connection (§5.5.1: the server closes TCP first). No extensions, no
//! subprotocols: the echo must see the bytes the client sent.
//!
//! SHA-1 and base64 are written out here, for the handshake only: the demo is
//! not worth a dependency of the library.

use super::wire::Head;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The largest frame payload the demo reads, so a bad length cannot exhaust memory.
const MAX_PAYLOAD: u64 = 16 << 20;

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// One frame, its payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: u8,
    /// Whether it came masked (every client frame must, no server frame may).
    pub masked: bool,
    pub payload: Vec<u8>,
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    base64(&sha1(format!("{key}{ACCEPT_GUID}").as_bytes()))
}

/// A frame on the wire: a client's with `mask`, a server's without.
pub fn encode(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(u8::from(fin) << 7 | opcode);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Read one frame; `None` when the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut start = [0u8; 2];
    match r.read(&mut start[..1]).await? {
        0 => return Ok(None),
        _ => r.read_exact(&mut start[1..]).await?,
    };
    let len = match start[1] & 0x7F {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > MAX_PAYLOAD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large for the demo",
        ));
    }
    let masked = start[1] & 0x80 != 0;
    let mut key = [0u8; 4];
    if masked {
        r.read_exact(&mut key).await?;
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if masked {
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Ok(Some(Frame {
        fin: start[0] & 0x80 != 0,
        opcode: start[0] & 0x0F,
        masked,
        payload,
    }))
}

/// Serve `/ws` on a connection whose request head is `head`: the handshake, then
/// the echo until either side closes. Not a WebSocket handshake: 426.
pub async fn serve<R, W>(mut r: R, mut w: W, head: &Head, origin: &str) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let upgrade = head.get("upgrade").unwrap_or_default();
    let key = head.get("sec-websocket-key").filter(|k| !k.is_empty());
    let (true, Some(key)) = (upgrade.eq_ignore_ascii_case("websocket"), key) else {
        let refusal = format!(
            "HTTP/1.1 426 Upgrade Required\r\nX-Origin: {origin}\r\nSec-WebSocket-Version: 13\r\n\
             Content-Length: 15\r\nConnection: close\r\n\r\nwebsocket only\n"
        );
        return w.write_all(refusal.as_bytes()).await;
    };
    let accepted = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nX-Origin: {origin}\r\n\r\n",
        accept_key(key)
    );
    w.write_all(accepted.as_bytes()).await?;
    while let Some(frame) = read_frame(&mut r).await? {
        if !frame.masked {
            // §5.1: a server must close the connection on an unmasked client frame.
            w.write_all(&encode(true, CLOSE, &1002u16.to_be_bytes(), None))
                .await?;
            break;
        }
        let reply = match frame.opcode {
            PING => PONG,
            PONG => continue,
            opcode => opcode,
        };
        w.write_all(&encode(frame.fin, reply, &frame.payload, None))
            .await?;
        if frame.opcode == CLOSE {
            break;
        }
    }
    w.shutdown().await
}

/// SHA-1 (FIPS 180-4), for the handshake's accept key only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (h, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            match i <= group.len() {
                true => out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3F) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn sha1_and_base64_match_their_standards() {
        // FIPS 180-4 examples: one block, two blocks, and the empty message.
        let abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert_eq!(hex(&sha1(b"abc")), abc);
        let two = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(two)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        // RFC 4648 §10.
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")];
        for (text, encoded) in cases.into_iter().chain([("foobar", "Zm9vYmFy")]) {
            assert_eq!(base64(text.as_bytes()), encoded);
        }
    }

    #[test]
    fn the_accept_key_of_rfc_6455() {
        // §1.3's example handshake.
        let accept = accept_key("dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[tokio::test]
    async fn frames_round_trip_at_every_length_form() {
        for len in [0, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let wire = encode(true, BINARY, &payload, mask);
                let frame = read_frame(&mut wire.as_slice()).await.unwrap().unwrap();
                assert_eq!((frame.opcode, frame.fin), (BINARY, true));
                assert_eq!(frame.masked, mask.is_some());
                assert_eq!(frame.payload, payload, "length {len}");
            }
        }
        // §5.7: a masked "Hello".
        let hello = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(
            encode(true, TEXT, b"Hello", Some([0x37, 0xfa, 0x21, 0x3d])),
            hello
        );
        assert!(read_frame(&mut &b""[..]).await.unwrap().is_none());
    }
}
