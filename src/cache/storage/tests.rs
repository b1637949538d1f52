use super::*;
use pingora::cache::storage::MissFinishType;
use pingora::cache::trace::Span;
use pingora::http::ResponseHeader;
use std::time::{Duration, SystemTime};

fn leak(max_size: usize) -> &'static MemoryStorage {
    Box::leak(Box::new(MemoryStorage::new(max_size)))
}

fn span() -> SpanHandle {
    Span::inactive().handle()
}

fn key(path: &str) -> CacheKey {
    CacheKey::new(path, "")
}

fn header(etag: &str) -> ResponseHeader {
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.append_header("Content-Type", "text/plain").unwrap();
    header.append_header("ETag", etag).unwrap();
    header.append_header("Set-Cookie", "a=1").unwrap();
    header.append_header("Set-Cookie", "b=2").unwrap();
    header
}

fn fresh_meta(etag: &str) -> CacheMeta {
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(300), now, 30, 60, header(etag))
}

fn created(finish: MissFinishType) -> usize {
    match finish {
        MissFinishType::Created(size) => size,
        MissFinishType::Appended(..) => panic!("a memory fill is always created whole"),
    }
}

/// A fill of `key` left open, with a fresh meta carrying `etag`.
async fn open_fill(storage: &'static MemoryStorage, key: &CacheKey, etag: &str) -> MissHandler {
    let meta = fresh_meta(etag);
    storage.get_miss_handler(key, &meta, &span()).await.unwrap()
}

/// Invalidate what the cache holds for `key` (an active purge).
async fn invalidate(storage: &'static MemoryStorage, key: &CacheKey) -> PurgeOutcome {
    let compact = key.to_compact();
    let target = PurgeTarget::Active(&compact);
    storage
        .purge(target, PurgeType::Invalidation, &span())
        .await
        .unwrap()
}

/// A complete fill of `body` in the given chunks; returns the bytes charged.
async fn store(
    storage: &'static MemoryStorage,
    key: &CacheKey,
    meta: &CacheMeta,
    chunks: &[&[u8]],
) -> usize {
    let mut miss = storage.get_miss_handler(key, meta, &span()).await.unwrap();
    for chunk in chunks {
        miss.write_body(Bytes::copy_from_slice(chunk), false)
            .await
            .unwrap();
    }
    created(miss.finish().await.unwrap())
}

/// The store's object and byte counters agree with what `prefix/0..count` holds.
async fn counters_match(storage: &'static MemoryStorage, prefix: &str, count: usize) {
    let (mut held, mut bytes) = (0u64, 0u64);
    for i in 0..count {
        let key = key(&format!("{prefix}/{i}"));
        if let Some((_, hit)) = storage.lookup(&key, &span()).await.unwrap() {
            held += 1;
            bytes += hit.get_eviction_weight() as u64;
        }
    }
    assert_eq!(held, storage.objects());
    assert_eq!(bytes, storage.size_bytes());
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = hit.read_body().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the next read is still waiting for the writer.
async fn read_pending(hit: &mut HitHandler) -> bool {
    tokio::time::timeout(Duration::from_millis(20), hit.read_body())
        .await
        .is_err()
}

fn headers_of(meta: &CacheMeta, name: &str) -> Vec<String> {
    meta.headers()
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

#[test]
fn stored_meta_round_trips_every_field() {
    let now = SystemTime::now();
    let mut meta = CacheMeta::new(
        now + Duration::from_secs(60),
        now - Duration::from_secs(10),
        7,
        9,
        header("\"v1\""),
    );
    meta.update_freshness(now + Duration::from_secs(120), 11, 13); // updated != created
    meta.set_variance(*b"0123456789abcdef");
    meta.set_epoch_override(now - Duration::from_secs(5));
    meta.response_header_mut()
        .set_reason_phrase(Some("Fine"))
        .unwrap();

    let back = StoredMeta::capture(&meta).unwrap().to_meta().unwrap();
    assert_eq!(back.fresh_until(), meta.fresh_until());
    assert_eq!(back.created(), meta.created());
    assert_eq!(back.updated(), meta.updated());
    assert_ne!(back.updated(), back.created());
    assert_eq!(back.provenance(), meta.provenance());
    assert_eq!(back.variance(), Some(*b"0123456789abcdef"));
    assert_eq!(back.epoch_override(), meta.epoch_override());
    assert_eq!(back.stale_while_revalidate_sec(), 11);
    assert_eq!(back.stale_if_error_sec(), 13);
    assert_eq!(back.response_header().status, 200);
    assert_eq!(back.response_header().get_reason_phrase(), Some("Fine"));
    assert_eq!(headers_of(&back, "etag"), ["\"v1\""]);
    assert_eq!(headers_of(&back, "set-cookie"), ["a=1", "b=2"]);
    assert_eq!(back.headers().len(), meta.headers().len());
}

#[test]
fn weights_are_kibibytes_rounded_up_and_capped() {
    let storage = MemoryStorage::new(1 << 30);
    assert_eq!(storage.weight_of(0), Some(1));
    assert_eq!(storage.weight_of(1), Some(1));
    assert_eq!(storage.weight_of(1024), Some(1));
    assert_eq!(storage.weight_of(1025), Some(2));
    assert_eq!(storage.weight_of(MAX_OBJECT_SIZE), Some(u16::MAX));
    assert_eq!(storage.weight_of(MAX_OBJECT_SIZE + 1), None);
    let small = MemoryStorage::new(10 * 1024 + 512);
    assert_eq!(small.weight_of(10 * 1024), Some(10));
    assert_eq!(small.weight_of(10 * 1024 + 1), None);
}

#[tokio::test]
async fn write_then_read() {
    let storage = leak(1 << 20);
    let key = key("/write-then-read");
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());

    let meta = fresh_meta("\"v1\"");
    let size = store(storage, &key, &meta, &[b"hello ", b"world"]).await;
    assert!(size > 11);
    assert_eq!(storage.objects(), 1);
    assert_eq!(storage.size_bytes(), size as u64);

    let (back, mut hit) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert_eq!(back.fresh_until(), meta.fresh_until());
    assert_eq!(back.created(), meta.created());
    assert_eq!(back.updated(), meta.updated());
    assert_eq!(back.stale_while_revalidate_sec(), 30);
    assert_eq!(back.stale_if_error_sec(), 60);
    assert_eq!(headers_of(&back, "etag"), ["\"v1\""]);
    assert_eq!(headers_of(&back, "set-cookie"), ["a=1", "b=2"]);
    assert!(hit.can_seek());
    assert!(hit.should_count_access());
    assert_eq!(hit.get_eviction_weight(), size);
    // The whole body at once, then the end.
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "hello world");
    assert!(hit.read_body().await.unwrap().is_none());
    hit.finish(storage, &key, &span()).await.unwrap();

    // Another key is not found.
    assert!(storage
        .lookup(&self::key("/other"), &span())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn partial_read_follows_the_writer() {
    let storage = leak(1 << 20);
    let key = key("/partial");
    let meta = fresh_meta("\"p\"");
    let mut miss = storage
        .get_miss_handler(&key, &meta, &span())
        .await
        .unwrap();

    let (back, mut first) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert_eq!(back.fresh_until(), meta.fresh_until());
    assert_eq!(headers_of(&back, "etag"), ["\"p\""]);
    assert!(!first.can_seek());
    assert!(first.seek(0, None).is_err());
    assert_eq!(first.get_eviction_weight(), 0);
    assert!(read_pending(&mut first).await);

    miss.write_body(Bytes::from_static(b"chunk1"), false)
        .await
        .unwrap();
    assert_eq!(first.read_body().await.unwrap().unwrap(), "chunk1");
    assert!(read_pending(&mut first).await);

    // A reader blocked on the next chunk is woken by the write.
    let waiting = tokio::spawn(async move {
        let chunk = first.read_body().await;
        (first, chunk)
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    miss.write_body(Bytes::from_static(b"chunk2"), false)
        .await
        .unwrap();
    let (mut first, chunk) = waiting.await.unwrap();
    assert_eq!(chunk.unwrap().unwrap(), "chunk2");

    // A later reader starts from the beginning.
    let (_, mut second) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert_eq!(second.read_body().await.unwrap().unwrap(), "chunk1");
    assert_eq!(second.read_body().await.unwrap().unwrap(), "chunk2");
    assert!(read_pending(&mut second).await);
    assert!(read_pending(&mut first).await);
    assert_eq!(storage.objects(), 0);

    let size = created(miss.finish().await.unwrap());
    assert!(first.read_body().await.unwrap().is_none());
    assert!(second.read_body().await.unwrap().is_none());

    // Now a complete object.
    assert_eq!(storage.objects(), 1);
    assert_eq!(storage.size_bytes(), size as u64);
    let (_, mut hit) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert!(hit.can_seek());
    assert_eq!(read_all(&mut hit).await.unwrap(), b"chunk1chunk2");
}

#[tokio::test]
async fn a_dropped_writer_fails_its_readers() {
    let storage = leak(1 << 20);
    let key = key("/dropped");
    let mut miss = open_fill(storage, &key, "\"d\"").await;
    miss.write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();

    let (_, mut early) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert_eq!(early.read_body().await.unwrap().unwrap(), "partial");
    let (_, mut late) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    let blocked = tokio::spawn(async move { early.read_body().await });
    tokio::time::sleep(Duration::from_millis(10)).await;

    drop(miss);
    assert!(blocked.await.unwrap().is_err(), "a waiting reader errors");
    // Data already written is still delivered, then the error, never a clean end.
    assert_eq!(late.read_body().await.unwrap().unwrap(), "partial");
    assert!(late.read_body().await.is_err());
    assert!(late.read_body().await.is_err());
    // Nothing was kept.
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());
    assert_eq!(storage.objects(), 0);
}

#[tokio::test]
async fn a_writer_dropped_after_eof_ends_its_readers_cleanly() {
    let storage = leak(1 << 20);
    let key = key("/eof-then-drop");
    let mut miss = open_fill(storage, &key, "\"e\"").await;
    let (_, mut reader) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    miss.write_body(Bytes::from_static(b"all"), true)
        .await
        .unwrap();
    // Writing past the end is an error, not a panic.
    assert!(miss
        .write_body(Bytes::from_static(b"more"), false)
        .await
        .is_err());
    drop(miss);
    assert_eq!(read_all(&mut reader).await.unwrap(), b"all");
    // Not finished, so not kept.
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());
}

#[tokio::test]
async fn lookup_streaming_write_finds_the_writers_own_fill() {
    let storage = leak(1 << 20);
    let key = key("/streaming-write");
    let mut one = open_fill(storage, &key, "\"1\"").await;
    let mut two = open_fill(storage, &key, "\"2\"").await;
    one.write_body(Bytes::from_static(b"one"), true)
        .await
        .unwrap();
    two.write_body(Bytes::from_static(b"two"), true)
        .await
        .unwrap();

    let tag_one = one.streaming_write_tag().unwrap().to_vec();
    let tag_two = two.streaming_write_tag().unwrap().to_vec();
    assert_ne!(tag_one, tag_two);
    let (meta, mut hit) = storage
        .lookup_streaming_write(&key, Some(&tag_one), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(headers_of(&meta, "etag"), ["\"1\""]);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"one");
    let (meta, mut hit) = storage
        .lookup_streaming_write(&key, Some(&tag_two), &span())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(headers_of(&meta, "etag"), ["\"2\""]);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"two");

    // No tag, a malformed one, or a finished fill: an error, never a panic.
    assert!(storage
        .lookup_streaming_write(&key, None, &span())
        .await
        .is_err());
    assert!(storage
        .lookup_streaming_write(&key, Some(b"short"), &span())
        .await
        .is_err());
    one.finish().await.unwrap();
    assert!(storage
        .lookup_streaming_write(&key, Some(&tag_one), &span())
        .await
        .is_err());
    assert!(storage
        .lookup_streaming_write(&key, Some(&tag_two), &span())
        .await
        .is_ok());
    two.finish().await.unwrap();
    assert_eq!(storage.objects(), 1, "the second fill replaced the first");
}

#[tokio::test]
async fn purge_removes_and_counts() {
    let storage = leak(1 << 20);
    let key = key("/purge");
    let compact = key.to_compact();
    store(storage, &key, &fresh_meta("\"x\""), &[b"body"]).await;
    assert_eq!(storage.objects(), 1);

    let outcome = invalidate(storage, &key).await;
    assert_eq!(outcome, PurgeOutcome::Purged(None));
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());
    assert_eq!(storage.objects(), 0);
    assert_eq!(storage.size_bytes(), 0);
    assert_eq!(storage.evictions(), 0);

    let outcome = invalidate(storage, &key).await;
    assert_eq!(outcome, PurgeOutcome::NotFound);

    // An exact target is treated like an active one.
    store(storage, &key, &fresh_meta("\"x\""), &[b"body"]).await;
    let exact = pingora::cache::CacheEntryKey::key_only(compact.clone());
    let outcome = storage
        .purge(PurgeTarget::Exact(&exact), PurgeType::Eviction, &span())
        .await
        .unwrap();
    assert_eq!(outcome, PurgeOutcome::Purged(None));
    assert_eq!(storage.objects(), 0);
}

#[tokio::test]
async fn purging_a_fill_keeps_it_from_being_stored() {
    let storage = leak(1 << 20);
    let key = key("/purge-fill");
    let mut miss = open_fill(storage, &key, "\"f\"").await;
    let (_, mut reader) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    miss.write_body(Bytes::from_static(b"old"), false)
        .await
        .unwrap();

    let outcome = invalidate(storage, &key).await;
    assert_eq!(outcome, PurgeOutcome::Purged(None));
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());

    // The fill still streams to the reader it has, but is not kept.
    miss.write_body(Bytes::from_static(b"er"), true)
        .await
        .unwrap();
    assert_eq!(created(miss.finish().await.unwrap()), 0);
    assert_eq!(read_all(&mut reader).await.unwrap(), b"older");
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());
    assert_eq!(storage.objects(), 0);
}

#[tokio::test]
async fn expire_keeps_the_object_but_makes_it_stale() {
    let storage = leak(1 << 20);
    let key = key("/expire");
    let compact = key.to_compact();
    let meta = fresh_meta("\"s\"");
    let size = store(storage, &key, &meta, &[b"stale body"]).await;

    let outcome = storage
        .expire(PurgeTarget::Active(&compact), &span())
        .await
        .unwrap();
    assert_eq!(outcome, PurgeOutcome::Expired);
    let (back, mut hit) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert!(!back.is_fresh(SystemTime::now() + Duration::from_secs(1)));
    assert!(back.serve_stale_while_revalidate(SystemTime::now()));
    assert_eq!(back.created(), meta.created());
    assert_eq!(headers_of(&back, "etag"), ["\"s\""]);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"stale body");
    assert_eq!(storage.objects(), 1);
    assert_eq!(storage.size_bytes(), hit.get_eviction_weight() as u64);
    assert!(hit.get_eviction_weight().abs_diff(size) < 16);

    let absent = self::key("/never").to_compact();
    let outcome = storage
        .expire(PurgeTarget::Active(&absent), &span())
        .await
        .unwrap();
    assert_eq!(outcome, PurgeOutcome::NotFound);
}

#[tokio::test]
async fn update_meta_replaces_the_header() {
    let storage = leak(1 << 20);
    let key = key("/update");
    store(storage, &key, &fresh_meta("\"v1\""), &[b"same body"]).await;

    let mut revalidated = fresh_meta("\"v2\"");
    revalidated
        .response_header_mut()
        .append_header(
            "X-Revalidated",
            "yes, with a longer header value than before",
        )
        .unwrap();
    assert!(storage
        .update_meta(&key, &revalidated, &span())
        .await
        .unwrap());

    let (back, mut hit) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert_eq!(back.fresh_until(), revalidated.fresh_until());
    assert_eq!(headers_of(&back, "etag"), ["\"v2\""]);
    assert_eq!(headers_of(&back, "x-revalidated").len(), 1);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"same body");
    assert_eq!(storage.objects(), 1);
    assert_eq!(storage.size_bytes(), hit.get_eviction_weight() as u64);

    assert!(!storage
        .update_meta(&self::key("/gone"), &revalidated, &span())
        .await
        .unwrap());
}

#[tokio::test]
async fn seek_serves_ranges() {
    let storage = leak(1 << 20);
    let key = key("/range");
    store(storage, &key, &fresh_meta("\"r\""), &[b"0123", b"456789"]).await;
    let (_, mut hit) = storage.lookup(&key, &span()).await.unwrap().unwrap();

    assert!(hit.seek(10, None).is_err(), "start at the length");
    assert!(hit.seek(10_000, Some(20_000)).is_err());
    assert!(hit.seek(5, Some(5)).is_err(), "empty range");

    hit.seek(5, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"56789");
    hit.seek(4, Some(5)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"4");
    hit.seek(8, Some(100)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"89", "end is clamped");
    hit.seek(0, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"0123456789");
    hit.seek_multipart(1, Some(3)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"12");
}

#[tokio::test]
async fn the_size_bound_holds_and_evictions_are_counted() {
    const MAX: usize = 64 * 1024;
    let storage = leak(MAX);
    let body = vec![b'x'; 3 * 1024];
    let count = 4 * MAX / body.len();
    for i in 0..count {
        store(
            storage,
            &key(&format!("/bound/{i}")),
            &fresh_meta("\"b\""),
            &[&body],
        )
        .await;
        assert!(storage.size_bytes() <= MAX as u64);
    }
    assert!(storage.evictions() > 0);
    // Every object is either held or counted as evicted.
    assert_eq!(storage.objects() + storage.evictions(), count as u64);

    // The counters match what is actually held.
    counters_match(storage, "/bound", count).await;
}

#[tokio::test]
async fn replacing_a_key_does_not_double_count() {
    let storage = leak(1 << 20);
    let key = key("/replace");
    let first = store(storage, &key, &fresh_meta("\"1\""), &[&[b'a'; 2000]]).await;
    assert_eq!(storage.size_bytes(), first as u64);
    let second = store(storage, &key, &fresh_meta("\"2\""), &[&[b'b'; 500]]).await;
    assert_ne!(first, second);
    assert_eq!(storage.objects(), 1);
    assert_eq!(storage.size_bytes(), second as u64);
    assert_eq!(storage.evictions(), 0);
    let (meta, mut hit) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    assert_eq!(headers_of(&meta, "etag"), ["\"2\""]);
    assert_eq!(read_all(&mut hit).await.unwrap(), vec![b'b'; 500]);
}

#[tokio::test]
async fn an_object_too_large_streams_but_is_not_kept() {
    let storage = leak(16 * 1024);
    let key = key("/too-large");
    let mut miss = open_fill(storage, &key, "\"l\"").await;
    let (_, mut reader) = storage.lookup(&key, &span()).await.unwrap().unwrap();
    for _ in 0..4 {
        miss.write_body(Bytes::from(vec![b'z'; 8 * 1024]), false)
            .await
            .unwrap();
    }
    assert_eq!(created(miss.finish().await.unwrap()), 0);
    assert_eq!(read_all(&mut reader).await.unwrap().len(), 32 * 1024);
    assert!(storage.lookup(&key, &span()).await.unwrap().is_none());
    assert_eq!(storage.objects(), 0);
    assert_eq!(storage.size_bytes(), 0);
}

#[tokio::test]
async fn purge_refill_and_hits_keep_the_bound() {
    // Purging and refilling the same keys under eviction pressure: a regression test
    // for the TinyUFO `remove` weight corruption that tombstones avoid.
    for seed in [0x9e37_79b9_7f4a_7c15, 1, 0xdead_beef] {
        churn(seed).await;
    }
}

async fn churn(mut seed: u64) {
    const MAX: usize = 32 * 1024;
    let storage = leak(MAX);
    let body = vec![b'y'; 1500];
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for _ in 0..4000 {
        let key = key(&format!("/churn/{}", next(40)));
        match next(4) {
            0 => {
                invalidate(storage, &key).await;
            }
            1 => {
                store(storage, &key, &fresh_meta("\"c\""), &[&body]).await;
            }
            _ => {
                if let Some((_, mut hit)) = storage.lookup(&key, &span()).await.unwrap() {
                    read_all(&mut hit).await.unwrap();
                }
            }
        }
        assert!(
            storage.size_bytes() <= MAX as u64,
            "over the bound: {}",
            storage.size_bytes()
        );
    }
    counters_match(storage, "/churn", 40).await;
}
