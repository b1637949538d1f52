//! The cache's disk tier: objects kept across restarts and crashes, never served
//! torn, purges that stay done, a bounded directory, Range from a file, and a disk
//! that fails under a running proxy. (Across a hand-off: `operations.rs`.)

use crate::support::client::{get_with, raw};
use crate::support::process::{signal, wait_exit};
use crate::support::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cacheable `/gen` object at `/gen/NAME`, with `pad` bytes of `x` after its
/// first line, and `extra` response fields (already encoded).
fn object(name: &str, pad: usize, extra: &str) -> String {
    format!("/gen/{name}?set-Cache-Control=max-age%3D600&pad={pad}{extra}")
}

fn config(o: &Origin, disk: &Path, max_size: &str) -> Config {
    Config::caching(o.addr).section(
        "cache",
        json!({"disk": {"path": disk, "max_size": max_size}}),
    )
}

/// A scratch directory for a disk tier, removed (with what a test put in its
/// place) when the test ends.
pub struct DiskDir(PathBuf);

impl DiskDir {
    pub fn new(tag: &str) -> DiskDir {
        DiskDir(scratch_dir(tag))
    }
}

impl std::ops::Deref for DiskDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for DiskDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(self.0.with_extension("moved"));
    }
}

/// The object files under `dir` (named by 32 hex digits).
pub fn object_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for file in std::fs::read_dir(shard.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if file.file_name().len() == 32 {
                out.push(file.path());
            }
        }
    }
    out
}

/// Wait until `dir` holds at least `n` object files.
pub async fn written(dir: &Path, n: usize) -> bool {
    eventually(Duration::from_secs(10), async || {
        object_files(dir).len() >= n
    })
    .await
}

fn cache_status(resp: &Response) -> &str {
    resp.header("cache-status").unwrap_or("")
}

/// Stop `proxy` with SIGTERM and wait for it to exit.
async fn stop(proxy: Proxy) {
    signal(proxy.pid(), "TERM");
    assert!(wait_exit(proxy.pid(), Duration::from_secs(10))
        .await
        .is_some());
}

/// A `/gen` body: its first line, then exactly `pad` bytes of `x`.
fn whole(body: &[u8], pad: usize) -> bool {
    let text = String::from_utf8_lossy(body);
    let Some((first, rest)) = text.split_once('\n') else {
        return false;
    };
    first.starts_with("gen ") && rest.len() == pad && rest.bytes().all(|b| b == b'x')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_hits_from_disk_after_a_restart() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-restart");
    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    let mut first = Vec::new();
    for i in 0..20 {
        let resp = proxy.get(&object(&format!("r{i}"), 100 * i, "")).await;
        assert_eq!(resp.status(), 200);
        first.push(resp.body);
    }
    assert!(written(&disk, 20).await, "{:?}", object_files(&disk));
    stop(proxy).await;

    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    for (i, body) in first.iter().enumerate() {
        let resp = proxy.get(&object(&format!("r{i}"), 100 * i, "")).await;
        assert_eq!(resp.status(), 200);
        let status = cache_status(&resp);
        assert!(
            status.starts_with("parapet; hit") && status.contains("detail=disk"),
            "{status}"
        );
        assert_eq!(&resp.body, body, "the stored bytes");
        assert_eq!(
            o.state.count(&format!("/gen/r{i}?")),
            1,
            "no origin request"
        );
    }
    // Served once from disk, promoted: the next hit is from memory.
    let again = proxy.get(&object("r3", 300, "")).await;
    assert!(
        !cache_status(&again).contains("disk"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(again.body, first[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_during_writes_no_torn_object_is_served() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-kill");
    let pad = 300_000;
    let proxy = Proxy::start(&config(&o, &disk, "256MiB")).await;
    // Two stored objects, then damaged as a crash or a bad disk could leave them.
    for name in ["cut", "flip"] {
        assert_eq!(proxy.get(&object(name, pad, "")).await.status(), 200);
    }
    assert!(written(&disk, 2).await);
    let files = object_files(&disk);
    let cut = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &cut[..cut.len() / 2]).unwrap();
    let mut flip = std::fs::read(&files[1]).unwrap();
    *flip.last_mut().unwrap() ^= 0x01;
    std::fs::write(&files[1], flip).unwrap();

    let addr = proxy.addr;
    let burst: Vec<_> = (0..40)
        .map(|i| tokio::spawn(async move { get(addr, &object(&format!("b{i}"), pad, "")).await }))
        .collect();
    let started = eventually(Duration::from_secs(10), async || {
        o.state.count("/gen/b") > 0
    })
    .await;
    assert!(started, "the burst never reached the origin");
    drop(proxy); // SIGKILL, in the middle of the burst's writes
    for task in burst {
        let _ = task.await;
    }

    let proxy = Proxy::start(&config(&o, &disk, "256MiB")).await;
    for name in ["cut", "flip"] {
        let resp = proxy.get(&object(name, pad, "")).await;
        assert_eq!(resp.status(), 200);
        assert!(
            whole(&resp.body, pad),
            "{name}: a damaged object was served"
        );
        assert_eq!(o.state.count(&format!("/gen/{name}?")), 2, "{name}: a miss");
    }
    let mut from_disk = 0;
    for i in 0..40 {
        let resp = proxy.get(&object(&format!("b{i}"), pad, "")).await;
        assert_eq!(resp.status(), 200);
        assert!(whole(&resp.body, pad), "b{i}: a torn body was served");
        from_disk += usize::from(cache_status(&resp).contains("detail=disk"));
    }
    eprintln!("{from_disk} of 40 objects written before the kill were served from disk");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_stay_done_across_a_restart() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-purge");
    let url = object("url", 10, "");
    let tagged = object("tagged", 10, "&set-Cache-Tag=shoes");
    let soft = object("soft", 10, "&set-ETag=%22s%22");
    let kept = object("kept", 10, "");
    let (proxy, admin) = proxy_with_admin(config(&o, &disk, "64MiB")).await;
    for path in [&url, &tagged, &soft, &kept] {
        assert_eq!(proxy.get(path).await.status(), 200);
    }
    assert!(written(&disk, 4).await);
    let purge = format!("PURGE {url} HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(
        raw(admin, purge.as_bytes(), "PURGE")
            .await
            .unwrap()
            .status(),
        200
    );
    let by_tag = purge_post(admin, "{\"tags\":[\"shoes\"]}").await;
    assert_eq!(by_tag.text(), "{\"purged\":1}\n");
    let body = format!("{{\"host\":\"test\",\"path\":\"{soft}\",\"soft\":true}}");
    assert_eq!(purge_post(admin, &body).await.status(), 200);
    assert_eq!(
        object_files(&disk).len(),
        2,
        "purged files are removed at once"
    );
    drop(proxy);

    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    for (path, name) in [(&url, "url"), (&tagged, "tagged")] {
        let resp = proxy.get(path).await;
        assert!(
            cache_status(&resp).contains("fwd=uri-miss"),
            "{}",
            cache_status(&resp)
        );
        assert_eq!(
            o.state.count(&format!("/gen/{name}?")),
            2,
            "{name} was purged"
        );
    }
    let resp = proxy.get(&soft).await;
    assert!(
        cache_status(&resp).contains("fwd=stale"),
        "{}",
        cache_status(&resp)
    );
    assert_eq!(
        o.state.count("/gen/soft"),
        2,
        "the soft-purged object revalidated"
    );
    let resp = proxy.get(&kept).await;
    assert!(
        cache_status(&resp).contains("detail=disk"),
        "{}",
        cache_status(&resp)
    );
    assert_eq!(o.state.count("/gen/kept"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_refresh_is_kept_on_disk() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-304");
    let path = object("etag", 10, "&set-ETag=%22e%22");
    let (proxy, admin) = proxy_with_admin(config(&o, &disk, "64MiB")).await;
    assert_eq!(proxy.get(&path).await.header("x-gen"), Some("1"));
    assert!(written(&disk, 1).await);
    let body = format!("{{\"host\":\"test\",\"path\":\"{path}\",\"soft\":true}}");
    assert_eq!(purge_post(admin, &body).await.status(), 200);
    let refreshed = proxy.get(&path).await;
    assert!(
        cache_status(&refreshed).contains("fwd-status=304"),
        "{}",
        cache_status(&refreshed)
    );
    assert_eq!(refreshed.header("x-gen"), Some("2"), "the 304's fields");
    drop(proxy);

    // Fresh again on disk, with the 304's fields: a hit, not a revalidation.
    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    let resp = proxy.get(&path).await;
    assert!(
        cache_status(&resp).contains("detail=disk"),
        "{}",
        cache_status(&resp)
    );
    assert_eq!(resp.header("x-gen"), Some("2"));
    assert_eq!(o.state.count("/gen/etag?"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_stays_within_max_size() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-size");
    let max = 1u64 << 20;
    let (proxy, admin) = proxy_with_admin(config(&o, &disk, "1MiB")).await;
    // Three times max_size offered, in 60 objects of about 50 KiB.
    for i in 0..60 {
        assert_eq!(
            proxy
                .get(&object(&format!("s{i}"), 50_000, ""))
                .await
                .status(),
            200
        );
    }
    let metrics = async || raw(admin, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", "GET").await;
    let all_written = eventually(Duration::from_secs(10), async || {
        metrics()
            .await
            .unwrap()
            .text()
            .contains("parapet_cache_disk_writes_total 60")
    })
    .await;
    let text = metrics().await.unwrap().text();
    assert!(all_written, "{text}");
    let on_disk: u64 = object_files(&disk)
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    assert!(on_disk <= max + max / 100, "{on_disk} bytes on disk");
    assert!(on_disk > max / 2, "the tier is used: {on_disk}");
    assert!(
        !text.contains("parapet_cache_disk_evictions_total 0"),
        "{text}"
    );
    assert!(
        text.contains(&format!("parapet_cache_disk_bytes {on_disk}")),
        "{text}"
    );
    let status = raw(admin, b"GET /status HTTP/1.1\r\nHost: a\r\n\r\n", "GET")
        .await
        .unwrap();
    assert!(
        status.text().contains("\"disk\":{\"size_bytes\""),
        "{}",
        status.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_is_answered_from_a_file() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-range");
    // Larger than what is read whole (1 MiB): streamed from the file.
    let pad = 1 << 20;
    let path = object("big", pad, "");
    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    let full = proxy.get(&path).await;
    assert!(whole(&full.body, pad));
    assert!(written(&disk, 1).await);
    drop(proxy);

    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    let start = full.body.len() - 70_000;
    let range = format!("Range: bytes={start}-{}", start + 69_999);
    let part = get_with(proxy.addr, &path, &[&range]).await;
    assert_eq!(part.status(), 206, "{}", cache_status(&part));
    assert!(
        cache_status(&part).contains("detail=disk"),
        "{}",
        cache_status(&part)
    );
    assert_eq!(part.body, full.body[start..start + 70_000]);
    let whole_again = proxy.get(&path).await;
    assert_eq!(whole_again.body, full.body);
    assert_eq!(o.state.count("/gen/big"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_fails_leaves_the_proxy_serving() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-fail");
    let proxy = Proxy::start(&config(&o, &disk, "64MiB")).await;
    let before = object("before", 10, "");
    assert_eq!(proxy.get(&before).await.status(), 200);
    assert!(written(&disk, 1).await);
    // Unwritable even for root: the directory is gone and a file has its name.
    std::fs::rename(&*disk, disk.with_extension("moved")).unwrap();
    std::fs::write(&*disk, b"not a directory").unwrap();
    for i in 0..10 {
        let resp = proxy.get(&object(&format!("after{i}"), 10, "")).await;
        assert_eq!(resp.status(), 200, "{}", proxy.stderr());
        let again = proxy.get(&object(&format!("after{i}"), 10, "")).await;
        assert!(
            cache_status(&again).starts_with("parapet; hit"),
            "kept in memory"
        );
    }
    let resp = proxy.get(&before).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(o.state.count("/gen/before"), 1, "still a hit, from memory");
    let errors = proxy
        .stderr()
        .matches("cache disk tier: writing an object failed")
        .count();
    assert_eq!(errors, 1, "one error line:\n{}", proxy.stderr());
}

#[test]
fn the_check_refuses_a_path_that_is_not_a_writable_directory() {
    let yaml = "upstreams: {app: {backends: [{address: '127.0.0.1:9'}]}}\n\
                routes: [{upstream: app, cache: true}]\n\
                cache: {disk: {path: /nonexistent/parapet, max_size: 1GiB}}\n";
    refused_naming(yaml, &["cache.disk.path"]);
    let dir = DiskDir::new("disk-check");
    let file = dir.join("file");
    std::fs::write(&file, b"").unwrap();
    let yaml = yaml.replace("/nonexistent/parapet", &file.display().to_string());
    refused_naming(&yaml, &["cache.disk.path", "not a directory"]);
}
