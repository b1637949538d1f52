//! Small objects read on the request's own thread when their file is all in the
//! page cache: `preadv2(2)` with `RWF_NOWAIT` returns what is cached and never
//! waits for the disk. Anything else (a larger file, a file not cached, a kernel
//! without the flag) is read on a blocking thread instead; a hop there costs two
//! thread switches, which is most of what a small disk hit would cost.

use super::file::{parse_fixed, MetaBlobs, ReadError, HEADER_LEN};
use bytes::Bytes;
use pingora::cache::key::HashBinary;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A small object read whole, checked against its checksums.
pub(super) struct Small {
    pub(super) meta: MetaBlobs,
    pub(super) body: Bytes,
    pub(super) file_len: u64,
}

/// The object at `path` for `key` when its file is at most `max` bytes and all in
/// the page cache; `Ok(None)` when it must be read on a blocking thread.
pub(super) fn read_cached(
    path: &Path,
    key: &HashBinary,
    max: u64,
) -> Result<Option<Small>, ReadError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Ok(None);
    }
    let mut buf = vec![0u8; len as usize];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` describes `buf`, which is valid for writes of its length and
    // outlives the call; the descriptor is `file`'s, open for reading.
    let read = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    if read < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => Ok(None),
            _ => Err(e.into()),
        };
    }
    if (read as u64) < len {
        // Partly cached (or shorter than its length a moment ago): read it blocking.
        return Ok(None);
    }
    parse(Bytes::from(buf), key).map(Some)
}

/// Check a whole object file's bytes for `key`.
fn parse(file: Bytes, key: &HashBinary) -> Result<Small, ReadError> {
    let fixed = parse_fixed(&file, key)?;
    let body_at = fixed.body_at() as usize;
    if file.len() as u64 != fixed.body_at() + fixed.body_len {
        return Err(ReadError::Corrupt("length"));
    }
    let meta = MetaBlobs {
        internal: file[HEADER_LEN..HEADER_LEN + fixed.internal_len].to_vec(),
        header: file[HEADER_LEN + fixed.internal_len..body_at].to_vec(),
    };
    if !fixed.meta_matches(&file, &meta) {
        return Err(ReadError::Corrupt("meta checksum"));
    }
    if crc32fast::hash(&file[body_at..]) != fixed.body_crc {
        return Err(ReadError::Corrupt("body checksum"));
    }
    Ok(Small {
        meta,
        file_len: file.len() as u64,
        // A copy: a view would keep the header and meta alive in the memory store.
        body: Bytes::copy_from_slice(&file[body_at..]),
    })
}
