//! The store's accounting of what an object really holds: the tag index names
//! exactly the objects held, and a stored header owns its bytes.

use super::meta::StoredMeta;
use super::*;
use crate::cache::purge::TAG_REFERENCE_BYTES;
use pingora::cache::storage::MissFinishType;
use pingora::cache::trace::Span;
use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

fn leak(max_size: usize) -> &'static MemoryStorage {
    Box::leak(Box::new(MemoryStorage::new(max_size)))
}

fn meta(tags: Option<&str>) -> CacheMeta {
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.append_header("Content-Type", "text/plain").unwrap();
    if let Some(tags) = tags {
        header.append_header("Cache-Tag", tags).unwrap();
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(300), now, 0, 0, header)
}

/// Store `len` bytes at `path` with `tags`; the bytes charged.
async fn store(
    storage: &'static MemoryStorage,
    path: &str,
    tags: Option<&str>,
    len: usize,
) -> usize {
    let span = Span::inactive().handle();
    let key = CacheKey::new(path, "");
    let mut miss = storage
        .get_miss_handler(&key, &meta(tags), &span)
        .await
        .unwrap();
    miss.write_body(Bytes::from(vec![b'x'; len]), true)
        .await
        .unwrap();
    match miss.finish().await.unwrap() {
        MissFinishType::Created(size) => size,
        _ => panic!("a memory fill is created whole"),
    }
}

#[tokio::test]
async fn evicted_and_purged_objects_leave_the_tag_index() {
    const MAX: usize = 64 * 1024;
    let storage = leak(MAX);
    for i in 0..200 {
        store(storage, &format!("/t/{i}"), Some("t1 t2"), 3 * 1024).await;
        assert_eq!(tag_references(storage) as u64, 2 * storage.objects());
    }
    assert!(storage.evictions() > 0);
    let held = storage.objects() as usize;
    assert!(held > 0);
    assert_eq!(storage.purge_tag("t1", false), held);
    assert_eq!((storage.objects(), tag_references(storage)), (0, 0));
}

#[tokio::test]
async fn tags_are_charged_and_fills_in_progress_are_purged_by_tag() {
    let storage = leak(1 << 20);
    let plain = store(storage, "/plain", None, 100).await;
    let tagged = store(storage, "/tagged", Some("t1 t2"), 100).await;
    let tag_field = super::meta::HEADER_FIELD_BYTES + 2 * "cache-tag".len() + "t1 t2".len();
    assert_eq!(tagged - plain, tag_field + 2 * TAG_REFERENCE_BYTES + 4);

    let span = Span::inactive().handle();
    let key = CacheKey::new("/filling", "");
    let miss = storage
        .get_miss_handler(&key, &meta(Some("t3")), &span)
        .await
        .unwrap();
    assert_eq!(storage.purge_tag("t3", false), 1, "the fill in progress");
    let finished = miss.finish().await.unwrap();
    assert!(
        matches!(finished, MissFinishType::Created(0)),
        "not stored after the purge"
    );
}

#[test]
fn a_stored_header_does_not_keep_the_read_buffer_alive() {
    // As pingora parses an origin's header: names and values are views into the
    // connection's read buffer.
    let buffer = Bytes::from(b"x-origin-name: value-from-the-buffer".repeat(100));
    let mut header = ResponseHeader::build(200, None).unwrap();
    let name = buffer.slice(0..13);
    let value = pingora::http::header_value_from_raw(buffer.slice(15..36));
    header.append_header(name, value).unwrap();
    let now = SystemTime::now();
    let stored = StoredMeta::capture(&CacheMeta::new(now, now, 0, 0, header)).unwrap();
    let range = buffer.as_ptr_range();
    let (name, value) = stored.header().case_header_iter().next().unwrap();
    assert_eq!(value.as_bytes(), b"value-from-the-buffer");
    for held in [name.as_slice(), value.as_bytes()] {
        assert!(
            !range.contains(&held.as_ptr()),
            "a view into the read buffer"
        );
    }
}

/// (tag, object) references in the store's tag index.
fn tag_references(storage: &MemoryStorage) -> usize {
    storage.lock_ledger().tags.references()
}
