//! The stored form of a [`CacheMeta`], built so a hit does not decompress a header.
//!
//! `CacheMeta::serialize()` returns two blobs: the internal meta (msgpack: freshness,
//! timestamps, variance) and the response header (HTTP/1 text, zstd-compressed).
//! Deserializing the header costs a zstd decompression and an HTTP parse on every hit.
//! We keep the internal blob as bytes (it has no public constructor other than
//! `deserialize`) and the header as a ready `ResponseHeader`. A hit rebuilds the meta
//! from the internal blob plus the serialized *empty* header, computed once, and then
//! puts a clone of the stored header in place.

use pingora::cache::CacheMeta;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorType, Result};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The serialized header of an empty `200` response, the stand-in header that
/// [`StoredMeta::to_meta`] hands to `CacheMeta::deserialize`. `None` only if
/// serializing an empty header failed, which would make every rebuild fail loudly.
static EMPTY_HEADER: LazyLock<Option<Vec<u8>>> = LazyLock::new(|| {
    let header = ResponseHeader::build(200, None).ok()?;
    let meta = CacheMeta::new(UNIX_EPOCH, UNIX_EPOCH, 0, 0, header);
    meta.serialize().ok().map(|(_, header)| header)
});

fn empty_header() -> Result<&'static [u8]> {
    match EMPTY_HEADER.as_deref() {
        Some(header) => Ok(header),
        None => Error::e_explain(
            ErrorType::InternalError,
            "memory cache: cannot serialize an empty response header",
        ),
    }
}

/// A cache entry's meta as kept in memory: the internal blob and the live header.
pub(super) struct StoredMeta {
    internal: Box<[u8]>,
    header: ResponseHeader,
    /// What this meta is charged against the cache size: the internal blob plus the
    /// header's HTTP/1 wire size.
    bytes: usize,
}

impl StoredMeta {
    /// Capture `meta`. This serializes it (so compresses its header) once, on the fill
    /// or the 304 that stores it, never on a hit.
    pub(super) fn capture(meta: &CacheMeta) -> Result<Self> {
        let (internal, _compressed_header) = meta.serialize()?;
        Ok(Self::from_parts(internal, meta.response_header_copy()))
    }

    fn from_parts(internal: Vec<u8>, header: ResponseHeader) -> Self {
        let bytes = internal.len() + header_wire_size(&header);
        StoredMeta {
            internal: internal.into_boxed_slice(),
            header,
            bytes,
        }
    }

    /// Bytes charged for this meta.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Rebuild the `CacheMeta`: decode the internal blob with the empty header (a few
    /// bytes of zstd) and swap the stored header in.
    pub(super) fn to_meta(&self) -> Result<CacheMeta> {
        let mut meta = CacheMeta::deserialize(&self.internal, empty_header()?)?;
        *meta.response_header_mut() = self.header.clone();
        Ok(meta)
    }

    /// The same meta marked stale as of now (a soft purge); the header is kept.
    pub(super) fn expired_now(&self) -> Result<Self> {
        // Only the internal blob is re-serialized: this meta carries the empty header.
        let mut meta = CacheMeta::deserialize(&self.internal, empty_header()?)?;
        meta.expire_at(SystemTime::now());
        let (internal, _) = meta.serialize()?;
        Ok(Self::from_parts(internal, self.header.clone()))
    }
}

/// The header's size as HTTP/1 text: status line, `name: value` lines, blank line.
fn header_wire_size(header: &ResponseHeader) -> usize {
    // "HTTP/1.1 200 " + reason + CRLF, then the final CRLF.
    let status_line = 13 + header.get_reason_phrase().map_or(0, str::len) + 2;
    header
        .headers
        .iter()
        .fold(status_line + 2, |n, (name, value)| {
            n + name.as_str().len() + 2 + value.len() + 2
        })
}
