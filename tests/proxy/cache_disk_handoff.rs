//! The disk tier across a SIGQUIT hand-off: what the old instance stored is served
//! by the new one, while both run and under load.

use crate::cache_disk::{object_files, written, DiskDir};
use crate::operations::Load;
use crate::support::process::{wait_exit, Daemon};
use crate::support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_cached_before_an_upgrade_are_hits_after_it() {
    let o = origin("o").await;
    let disk = DiskDir::new("disk-handoff");
    let config = Config::new()
        .upstream("app", json!({"backends": backends(&[o.addr])}))
        .route(json!({"upstream": "app", "cache": true}))
        .section(
            "cache",
            json!({"disk": {"path": &*disk, "max_size": "64MiB"}}),
        );
    let mut daemon = Daemon::start(free_port(), 1, &config).await;
    let path = |i: usize| format!("/gen/h{i:03}?set-Cache-Control=max-age%3D600&pad={i}");
    let mut bodies = Vec::new();
    for i in 0..100 {
        let resp = get(daemon.addr, &path(i)).await;
        assert_eq!(resp.status(), 200);
        bodies.push(resp.body);
    }
    assert!(
        written(&disk, 100).await,
        "{} files",
        object_files(&disk).len()
    );

    // The load's /echo is not cacheable: it keeps both instances busy.
    let load = Load::start(daemon.addr);
    assert!(load.progressed(0, 1).await, "the load never got going");
    let old = daemon.pid().unwrap();
    let (ok, out) = daemon.reload().await;
    assert!(ok, "reload failed: {out}\n{}", daemon.log());
    let since = load.ok();
    assert!(
        load.progressed(since, 50).await,
        "no load served after the reload"
    );
    // Only the new instance answers from here on: its memory store is empty.
    let gone = wait_exit(old, Duration::from_secs(15)).await;
    assert!(
        gone.is_some(),
        "the old instance never left; log:\n{}",
        daemon.log()
    );

    for (i, body) in bodies.iter().enumerate() {
        let resp = get(daemon.addr, &path(i)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(&resp.body, body, "object {i}: the stored bytes");
        let status = resp.header("cache-status").unwrap_or("");
        assert!(status.contains("detail=disk"), "object {i}: {status}");
    }
    let fetched = (0..100)
        .filter(|i| o.state.count(&format!("/gen/h{i:03}?")) != 1)
        .count();
    assert_eq!(fetched, 0, "objects fetched again after the upgrade");
    let t = load.finish().await;
    assert_eq!(t.failed, 0, "{t:?}; log:\n{}", daemon.log());
}
