//! One object per file: a fixed header, the meta, the body.
//!
//! ```text
//! magic "PRPTDSK\0" | version u32 | key [16] | internal_len u32 | header_len u32
//! | body_len u64 | meta_crc u32 | body_crc u32 | internal | header | body
//! ```
//!
//! Little-endian. `internal` and `header` are the two blobs of
//! `CacheMeta::serialize()`. `meta_crc` (CRC-32) covers the fixed fields before it
//! and both blobs; `body_crc` covers the body. A file is written under a temporary
//! name and renamed into place (rename(2) is atomic), so a reader sees a whole old
//! file or a whole new one; a crash can still leave a file whose data never reached
//! the disk, which the checksums catch. Files are never changed in place: a meta
//! update writes a new file, so an open file keeps its verified contents.

use bytes::Bytes;
use pingora::cache::key::HashBinary;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

const MAGIC: [u8; 8] = *b"PRPTDSK\0";
const VERSION: u32 = 1;
/// Bytes before the meta.
pub(super) const HEADER_LEN: usize = 52;
/// Where the checksums start (what `meta_crc` covers of the fixed part ends here).
const CRCS_AT: usize = 44;
/// The largest meta accepted on read: a bound before allocating for it.
const MAX_META: usize = 1 << 20;
/// Read and checksum granularity.
pub(super) const CHUNK: usize = 64 << 10;

/// The meta of a stored object, as `CacheMeta::serialize()` gave it.
pub(super) struct MetaBlobs {
    pub(super) internal: Vec<u8>,
    pub(super) header: Vec<u8>,
}

/// A stored object whose meta and body were checked against their checksums.
pub(super) struct Verified {
    pub(super) file: File,
    pub(super) meta: MetaBlobs,
    pub(super) body_at: u64,
    pub(super) body_len: u64,
    pub(super) body_crc: u32,
    /// The whole body, when asked for and it is at most the size asked.
    pub(super) body: Option<Bytes>,
}

impl Verified {
    /// The file's length: what it is charged against the tier's size.
    pub(super) fn file_len(&self) -> u64 {
        self.body_at + self.body_len
    }
}

/// Why a file could not be used.
#[derive(Debug)]
pub(super) enum ReadError {
    /// There is no file: a plain miss.
    Missing,
    /// The file is not a whole, intact object for this key: remove it.
    Corrupt(&'static str),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing,
            io::ErrorKind::UnexpectedEof => ReadError::Corrupt("truncated"),
            _ => ReadError::Io(e),
        }
    }
}

/// The bytes of a file's fixed header.
fn header(key: &HashBinary, meta: &MetaBlobs, body_len: u64, body_crc: u32) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0..8].copy_from_slice(&MAGIC);
    out[8..12].copy_from_slice(&VERSION.to_le_bytes());
    out[12..28].copy_from_slice(key);
    out[28..32].copy_from_slice(&(meta.internal.len() as u32).to_le_bytes());
    out[32..36].copy_from_slice(&(meta.header.len() as u32).to_le_bytes());
    out[36..44].copy_from_slice(&body_len.to_le_bytes());
    let meta_crc = meta_crc(&out[..CRCS_AT], meta);
    out[44..48].copy_from_slice(&meta_crc.to_le_bytes());
    out[48..52].copy_from_slice(&body_crc.to_le_bytes());
    out
}

pub(super) fn meta_crc(fixed: &[u8], meta: &MetaBlobs) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(fixed);
    crc.update(&meta.internal);
    crc.update(&meta.header);
    crc.finalize()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Write a new object to `tmp`, then rename it to `dest`. The meta is limited to
/// what `u32` lengths hold (pingora's meta is far smaller).
pub(super) fn write(
    tmp: &Path,
    dest: &Path,
    key: &HashBinary,
    meta: &MetaBlobs,
    body: &[Bytes],
) -> io::Result<u64> {
    let mut crc = crc32fast::Hasher::new();
    let mut body_len = 0u64;
    for chunk in body {
        crc.update(chunk);
        body_len += chunk.len() as u64;
    }
    let fixed = header(key, meta, body_len, crc.finalize());
    let written = (|| {
        let mut out = io::BufWriter::with_capacity(CHUNK, create_new(tmp)?);
        out.write_all(&fixed)?;
        out.write_all(&meta.internal)?;
        out.write_all(&meta.header)?;
        for chunk in body {
            out.write_all(chunk)?;
        }
        out.into_inner().map_err(io::IntoInnerError::into_error)?;
        std::fs::rename(tmp, dest)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written.map(|()| (HEADER_LEN + meta.internal.len() + meta.header.len()) as u64 + body_len)
}

/// Write `old`'s body under a new meta to `tmp`, then rename it to `dest`.
pub(super) fn rewrite_meta(
    old: &Verified,
    tmp: &Path,
    dest: &Path,
    key: &HashBinary,
    meta: &MetaBlobs,
) -> io::Result<u64> {
    let fixed = header(key, meta, old.body_len, old.body_crc);
    let written = (|| {
        let mut out = create_new(tmp)?;
        out.write_all(&fixed)?;
        out.write_all(&meta.internal)?;
        out.write_all(&meta.header)?;
        let mut buf = vec![0u8; CHUNK];
        let mut at = 0u64;
        while at < old.body_len {
            let n = (old.body_len - at).min(CHUNK as u64) as usize;
            old.file.read_exact_at(&mut buf[..n], old.body_at + at)?;
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        std::fs::rename(tmp, dest)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    written.map(|()| (HEADER_LEN + meta.internal.len() + meta.header.len()) as u64 + old.body_len)
}

fn create_new(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

/// An object file's meta, checked, and where its body is.
struct Opened {
    file: File,
    meta: MetaBlobs,
    body_at: u64,
    body_len: u64,
    body_crc: u32,
}

/// The fixed header's fields.
pub(super) struct Fixed {
    pub(super) internal_len: usize,
    pub(super) header_len: usize,
    pub(super) body_len: u64,
    pub(super) body_crc: u32,
    meta_crc: u32,
}

impl Fixed {
    /// Where the body starts.
    pub(super) fn body_at(&self) -> u64 {
        (HEADER_LEN + self.internal_len + self.header_len) as u64
    }

    /// Whether `meta` is what this header was written with.
    pub(super) fn meta_matches(&self, fixed: &[u8], meta: &MetaBlobs) -> bool {
        meta_crc(&fixed[..CRCS_AT], meta) == self.meta_crc
    }
}

/// Check a file's fixed header (its first [`HEADER_LEN`] bytes) for `key`.
pub(super) fn parse_fixed(fixed: &[u8], key: &HashBinary) -> Result<Fixed, ReadError> {
    if fixed.len() < HEADER_LEN {
        return Err(ReadError::Corrupt("truncated"));
    }
    if fixed[0..8] != MAGIC || u32_at(fixed, 8) != VERSION {
        return Err(ReadError::Corrupt("not an object file of this version"));
    }
    if fixed[12..28] != key[..] {
        return Err(ReadError::Corrupt("another key"));
    }
    let internal_len = u32_at(fixed, 28) as usize;
    let header_len = u32_at(fixed, 32) as usize;
    if internal_len + header_len > MAX_META {
        return Err(ReadError::Corrupt("meta too large"));
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&fixed[36..44]);
    Ok(Fixed {
        internal_len,
        header_len,
        body_len: u64::from_le_bytes(word),
        meta_crc: u32_at(fixed, 44),
        body_crc: u32_at(fixed, 48),
    })
}

/// Open the object at `path` and check its header and meta for `key`.
fn open_meta(path: &Path, key: &HashBinary) -> Result<Opened, ReadError> {
    let mut file = File::open(path)?;
    let mut fixed = [0u8; HEADER_LEN];
    file.read_exact(&mut fixed)?;
    let f = parse_fixed(&fixed, key)?;
    let (internal_len, header_len, body_len) = (f.internal_len, f.header_len, f.body_len);
    let mut meta = MetaBlobs {
        internal: vec![0; internal_len],
        header: vec![0; header_len],
    };
    file.read_exact(&mut meta.internal)?;
    file.read_exact(&mut meta.header)?;
    if !f.meta_matches(&fixed, &meta) {
        return Err(ReadError::Corrupt("meta checksum"));
    }
    let body_at = f.body_at();
    if file.metadata()?.len() != body_at + body_len {
        return Err(ReadError::Corrupt("length"));
    }
    Ok(Opened {
        file,
        meta,
        body_at,
        body_len,
        body_crc: f.body_crc,
    })
}

/// The checked meta of the object at `path` (its body is not read).
pub(super) fn read_meta(path: &Path, key: &HashBinary) -> Result<MetaBlobs, ReadError> {
    open_meta(path, key).map(|opened| opened.meta)
}

/// Open the object at `path` and check it is a whole object for `key`: the header,
/// the meta, and the whole body against its checksum, before anything is served.
/// The body is kept in memory when it is at most `keep_body` bytes.
pub(super) fn open_verified(
    path: &Path,
    key: &HashBinary,
    keep_body: u64,
) -> Result<Verified, ReadError> {
    let o = open_meta(path, key)?;
    let keep = o.body_len <= keep_body;
    let body = check_body(&o.file, o.body_at, o.body_len, o.body_crc, keep)?;
    Ok(Verified {
        file: o.file,
        meta: o.meta,
        body_at: o.body_at,
        body_len: o.body_len,
        body_crc: o.body_crc,
        body,
    })
}

/// Checksum the body in chunks; keep it when `keep`.
fn check_body(
    file: &File,
    at: u64,
    len: u64,
    expected: u32,
    keep: bool,
) -> Result<Option<Bytes>, ReadError> {
    let mut crc = crc32fast::Hasher::new();
    let body = match keep {
        true => {
            let mut body = vec![0u8; len as usize];
            file.read_exact_at(&mut body, at)?;
            crc.update(&body);
            Some(Bytes::from(body))
        }
        false => {
            let mut buf = vec![0u8; CHUNK];
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(CHUNK as u64) as usize;
                file.read_exact_at(&mut buf[..n], at + done)?;
                crc.update(&buf[..n]);
                done += n as u64;
            }
            None
        }
    };
    match crc.finalize() == expected {
        true => Ok(body),
        false => Err(ReadError::Corrupt("body checksum")),
    }
}

/// Read up to `len` bytes at `at` (a body chunk for a hit).
pub(super) fn read_chunk(file: &File, at: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, at)?;
    Ok(Bytes::from(buf))
}
