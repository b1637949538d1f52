use super::cached::read_cached;
use super::file::{self, MetaBlobs, ReadError};
use super::index::{self, Index};
use bytes::Bytes;
use std::path::PathBuf;

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("parapet-disk-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("ab")).unwrap();
    dir
}

fn meta() -> MetaBlobs {
    MetaBlobs {
        internal: b"internal".to_vec(),
        header: b"header".to_vec(),
    }
}

const KEY: [u8; 16] = [0xab; 16];

fn write(dir: &std::path::Path, body: &[&[u8]]) -> PathBuf {
    let dest = index::path_of(dir, &KEY);
    let tmp = dest.with_file_name("1.1.tmp");
    let body: Vec<Bytes> = body.iter().map(|b| Bytes::copy_from_slice(b)).collect();
    file::write(&tmp, &dest, &KEY, &meta(), &body).unwrap();
    assert!(!tmp.exists(), "renamed into place");
    dest
}

#[test]
fn an_object_reads_back_whole_or_streamed() {
    let dir = scratch("roundtrip");
    let path = write(&dir, &[b"hello ", b"world"]);
    let whole = file::open_verified(&path, &KEY, 1 << 20).unwrap();
    assert_eq!(whole.body.as_deref(), Some(&b"hello world"[..]));
    assert_eq!(whole.meta.internal, b"internal");
    assert_eq!(whole.meta.header, b"header");
    assert_eq!(whole.file_len(), std::fs::metadata(&path).unwrap().len());
    let streamed = file::open_verified(&path, &KEY, 4).unwrap();
    assert!(streamed.body.is_none());
    let chunk = file::read_chunk(&streamed.file, streamed.body_at + 6, 5).unwrap();
    assert_eq!(&chunk[..], b"world");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_file_is_never_read_as_an_object() {
    let dir = scratch("damaged");
    let path = write(&dir, &[b"0123456789"]);
    let good = std::fs::read(&path).unwrap();
    let corrupt = |bytes: Vec<u8>| {
        std::fs::write(&path, bytes).unwrap();
        match file::open_verified(&path, &KEY, 1 << 20) {
            Err(ReadError::Corrupt(why)) => why,
            Ok(_) => panic!("a damaged file was read"),
            Err(e) => panic!("{e:?}"),
        }
    };
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    assert_eq!(corrupt(flipped), "body checksum");
    assert_eq!(corrupt(good[..good.len() - 3].to_vec()), "length");
    let mut meta = good.clone();
    meta[file::HEADER_LEN] ^= 1;
    assert_eq!(corrupt(meta), "meta checksum");
    assert_eq!(corrupt(good[..20].to_vec()), "truncated");
    assert_eq!(
        corrupt(b"garbage that is not a file".repeat(4)),
        "not an object file of this version"
    );
    std::fs::write(&path, &good).unwrap();
    let other = [0xcd; 16];
    assert!(matches!(
        file::open_verified(&path, &other, 1 << 20),
        Err(ReadError::Corrupt("another key"))
    ));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        file::open_verified(&path, &KEY, 1 << 20),
        Err(ReadError::Missing)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_meta_rewrite_keeps_the_body() {
    let dir = scratch("rewrite");
    let path = write(&dir, &[b"body bytes"]);
    let old = file::open_verified(&path, &KEY, 0).unwrap();
    let new_meta = MetaBlobs {
        internal: b"a longer internal blob".to_vec(),
        header: b"h".to_vec(),
    };
    let tmp = path.with_file_name("1.2.tmp");
    file::rewrite_meta(&old, &tmp, &path, &KEY, &new_meta).unwrap();
    let new = file::open_verified(&path, &KEY, 1 << 20).unwrap();
    assert_eq!(new.meta.internal, b"a longer internal blob");
    assert_eq!(new.body.as_deref(), Some(&b"body bytes"[..]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_scan_finds_objects_and_drops_dead_temporaries() {
    let dir = scratch("scan");
    let path = write(&dir, &[b"x"]);
    std::fs::write(dir.join("ab").join("2147483646.9.tmp"), b"partial").unwrap();
    let live = dir.join("ab").join(index::temporary_name(3));
    std::fs::write(&live, b"in progress").unwrap();
    let index = Index::default();
    let scanned = index::scan(&dir, &index);
    assert_eq!((scanned.objects, scanned.removed_temporaries), (1, 1));
    assert_eq!(index.bytes(), std::fs::metadata(&path).unwrap().len());
    assert!(live.exists(), "a live writer's temporary file stays");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_cached_small_object_is_read_whole_and_checked() {
    let dir = scratch("cached");
    let path = write(&dir, &[b"small ", b"body"]);
    let small = read_cached(&path, &KEY, 1 << 20).unwrap().unwrap();
    assert_eq!(&small.body[..], b"small body");
    assert_eq!(small.meta.header, b"header");
    assert_eq!(small.file_len, std::fs::metadata(&path).unwrap().len());
    assert!(
        read_cached(&path, &KEY, 10).unwrap().is_none(),
        "too large: blocking"
    );
    let mut bytes = std::fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        read_cached(&path, &KEY, 1 << 20),
        Err(ReadError::Corrupt("body checksum"))
    ));
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    assert!(matches!(
        read_cached(&path, &KEY, 1 << 20),
        Err(ReadError::Corrupt("length"))
    ));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(
        read_cached(&path, &KEY, 1 << 20),
        Err(ReadError::Missing)
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
