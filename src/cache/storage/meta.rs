//! The stored form of a [`CacheMeta`], built so a hit does not decompress a header.
//!
//! `CacheMeta::serialize()` returns two blobs: the internal meta (msgpack: freshness,
//! timestamps, variance) and the response header (HTTP/1 text, zstd-compressed).
//! Deserializing the header costs a zstd decompression and an HTTP parse on every hit.
//! We keep the internal blob as bytes (it has no public constructor other than
//! `deserialize`) and the header as a ready `ResponseHeader`. A hit rebuilds the meta
//! from the internal blob plus the serialized *empty* header, computed once, and then
//! puts a clone of the stored header in place.
//!
//! The header is copied into allocations of its own when it is captured: the one
//! pingora parsed from the origin holds its names and values as views into the
//! connection's read buffer, and a stored view would keep that whole buffer alive
//! for as long as the object is held, uncounted.

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
    /// What this meta is charged against the cache size: the internal blob, the
    /// header as held in memory and its tags' references in the tag index.
    bytes: usize,
}

impl StoredMeta {
    /// Capture `meta`. This serializes it (so compresses its header) once, on the fill
    /// or the 304 that stores it, never on a hit.
    pub(super) fn capture(meta: &CacheMeta) -> Result<Self> {
        let (internal, _compressed_header) = meta.serialize()?;
        Ok(Self::from_parts(
            internal,
            owned_copy(meta.response_header())?,
        ))
    }

    /// `meta` as read from a lower tier, with the internal blob it was stored with:
    /// no serialization (the header's compression is what a hit must not pay).
    pub(super) fn from_stored(internal: Vec<u8>, meta: &CacheMeta) -> Result<Self> {
        Ok(Self::from_parts(
            internal,
            owned_copy(meta.response_header())?,
        ))
    }

    fn from_parts(internal: Vec<u8>, header: ResponseHeader) -> Self {
        let bytes = internal.len()
            + header_bytes(&header)
            + crate::cache::purge::charged_bytes(&header.headers);
        StoredMeta {
            internal: internal.into_boxed_slice(),
            header,
            bytes,
        }
    }

    /// The stored response header.
    pub(super) fn header(&self) -> &ResponseHeader {
        &self.header
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

/// The `ResponseHeader` itself with its maps' fixed parts.
const HEADER_BASE_BYTES: usize = 512;

/// Per field beyond its name and value: its `HeaderMap` entry (hash, name, the
/// value's `Bytes`, links) and index slot, and its case-preserving name's entry.
pub(super) const HEADER_FIELD_BYTES: usize = 160;

/// What a stored header holds in memory (an estimate from above: each name is
/// counted twice, as held by the map and by the case-preserving names).
fn header_bytes(header: &ResponseHeader) -> usize {
    let reason = header.get_reason_phrase().map_or(0, str::len);
    header
        .headers
        .iter()
        .fold(HEADER_BASE_BYTES + reason, |n, (name, value)| {
            n + HEADER_FIELD_BYTES + 2 * name.as_str().len() + value.len()
        })
}

/// `header` with every name and value in allocations of its own (see the module
/// documentation), in the same order and case.
fn owned_copy(header: &ResponseHeader) -> Result<ResponseHeader> {
    let fields = Some(header.headers.len());
    let mut copy = match header.has_case() {
        true => ResponseHeader::build(header.status, fields)?,
        false => ResponseHeader::build_no_case(header.status, fields)?,
    };
    copy.set_version(header.version);
    copy.set_reason_phrase(header.get_reason_phrase())?;
    let value = |v: &http::HeaderValue| {
        http::HeaderValue::from_bytes(v.as_bytes())
            .or_else(|e| Error::e_explain(ErrorType::InternalError, e.to_string()))
    };
    if header.has_case() {
        for (name, v) in header.case_header_iter() {
            let name = bytes::Bytes::copy_from_slice(name.as_slice());
            copy.append_header(name, value(v)?)?;
        }
    } else {
        for (name, v) in header.headers.iter() {
            copy.append_header(name.clone(), value(v)?)?;
        }
    }
    Ok(copy)
}
