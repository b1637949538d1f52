//! Purges that reach every instance of the fleet (README "A fleet"): a purge
//! answered here is also appended to one Redis stream, and every instance
//! follows that stream and applies what the others appended. The stream is the
//! log as well as the fan-out: a blocking `XREAD` brings an entry within a round
//! trip, in order, and an instance that was away reads on from the last entry it
//! applied. With the disk tier that entry's id is kept beside the objects
//! (`LAST_APPLIED` in `cache.disk.path`), so an instance restarted with objects
//! from before applies the purges sent while it was down before it follows on;
//! with the memory tier alone a new instance has nothing an older purge could
//! name, and starts at the stream's end. The stream is trimmed to about `KEPT`
//! entries.

use super::purge::{self, PurgeBody};
use crate::fleet::RedisStore;
use crate::runtime::Runtime;
use async_trait::async_trait;
use http::HeaderValue;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use redis::streams::StreamReadReply;
use std::sync::Arc;
use std::time::Duration;

const STREAM: &str = "parapet:purges";
const LAST_APPLIED: &str = "fleet-purges.last";
const KEPT: usize = 100_000;
/// How long one `XREAD` waits for an entry.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries one read takes.
const BATCH: usize = 500;

/// Append `body` to the fleet's stream, marked as ours.
pub(super) async fn publish(store: &Arc<RedisStore>, name: &HeaderValue, body: &PurgeBody) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(STREAM).arg("MAXLEN").arg("~").arg(KEPT).arg("*");
    cmd.arg("from").arg(name.as_bytes());
    cmd.arg("soft").arg(u8::from(body.soft));
    if let Some(tags) = &body.tags {
        cmd.arg("tags").arg(tags.join(" "));
    }
    if let (Some(host), Some(path)) = (&body.host, &body.path) {
        cmd.arg("host").arg(host).arg("path").arg(path);
    }
    if let Err(e) = store.run::<String>(&cmd, Duration::from_secs(1)).await {
        log::error!("a purge did not reach the fleet's stream: {e}");
    }
}

/// Follows the stream and applies the other instances' purges.
pub(crate) struct PurgeFollower {
    rt: Arc<Runtime>,
}

impl PurgeFollower {
    pub(crate) fn new(rt: Arc<Runtime>) -> Self {
        PurgeFollower { rt }
    }

    async fn follow(&self, store: &Arc<RedisStore>, last: &mut String) -> Result<(), String> {
        let result = self.read_on(store, last).await;
        // Caught up, or Redis cannot say: either way the disk serves again (an
        // instance cut off from Redis cannot learn of purges at all).
        if let Some(shield) = &self.rt.shield {
            shield.hold_disk_reads(false);
        }
        result
    }

    async fn read_on(&self, store: &Arc<RedisStore>, last: &mut String) -> Result<(), String> {
        let mut conn = store
            .dedicated(BLOCK + Duration::from_secs(2))
            .await
            .ok_or("cannot connect")?;
        if last == "$" {
            // Pin "the end" to an id now (reading on from `$` each time would lose
            // what is appended between two reads), and keep it: purges sent after
            // this and before a restart are then read after the restart.
            let newest: Vec<redis::streams::StreamId> = redis::cmd("XREVRANGE")
                .arg(STREAM)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async::<redis::streams::StreamRangeReply>(&mut conn)
                .await
                .map_err(|e| e.to_string())?
                .ids;
            *last = newest
                .first()
                .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
            self.remember(last);
        }
        let mut caught_up = false;
        loop {
            let mut cmd = redis::cmd("XREAD");
            // The first read only takes the backlog: it does not wait for more.
            if caught_up {
                cmd.arg("BLOCK").arg(BLOCK.as_millis() as u64);
            }
            cmd.arg("COUNT").arg(BATCH);
            cmd.arg("STREAMS").arg(STREAM).arg(last.as_str());
            let reply: Option<StreamReadReply> = cmd
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            let entries: Vec<_> = reply
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .collect();
            for entry in &entries {
                *last = entry.id.clone();
                let field = |name: &str| entry.get::<String>(name);
                if field("from").as_deref() == self.rt.name.to_str().ok() {
                    continue;
                }
                let body = PurgeBody {
                    host: field("host"),
                    path: field("path"),
                    tags: field("tags").map(|t| t.split(' ').map(str::to_string).collect()),
                    soft: field("soft").as_deref() == Some("1"),
                };
                let purged = purge::apply(&self.rt, &body).await.unwrap_or(0);
                log::debug!("fleet purge {}: {purged} objects", entry.id);
            }
            if !entries.is_empty() {
                self.remember(last);
            }
            // The backlog is read (a read that did not fill up): the disk may
            // serve again.
            if !caught_up && entries.len() < BATCH {
                caught_up = true;
                if let Some(shield) = &self.rt.shield {
                    shield.hold_disk_reads(false);
                }
            }
        }
    }

    /// Where the last applied entry's id is kept: beside the disk tier's objects.
    fn last_applied_file(&self) -> Option<std::path::PathBuf> {
        let shield = self.rt.shield.as_ref()?;
        Some(shield.disk_path()?.join(LAST_APPLIED))
    }

    /// The id to read on from: the one kept on disk, else the stream's end.
    fn starting_point(&self) -> String {
        let kept = self
            .last_applied_file()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
        kept.unwrap_or_else(|| "$".to_string())
    }

    /// Keep `id` (written aside and renamed over, so a crash leaves the old one).
    fn remember(&self, id: &str) {
        let Some(file) = self.last_applied_file() else {
            return;
        };
        let aside = file.with_extension("tmp");
        let kept = std::fs::write(&aside, id).and_then(|()| std::fs::rename(&aside, &file));
        if let Err(e) = kept {
            log::warn!(
                "fleet purges: cannot keep the last applied id in {}: {e}",
                file.display()
            );
        }
    }
}

#[async_trait]
impl BackgroundService for PurgeFollower {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(store) = self.rt.store.clone() else {
            return;
        };
        store.warm();
        let mut last = self.starting_point();
        // Objects from before a restart wait for the purges sent meanwhile.
        let shield = self.rt.shield.as_ref();
        let catching_up = last != "$";
        if let (true, Some(shield)) = (catching_up, shield) {
            shield.hold_disk_reads(true);
        }
        loop {
            tokio::select! {
                ended = self.follow(&store, &mut last) => {
                    if let Err(e) = ended {
                        log::warn!("fleet purges: {e}; following again in 1s");
                    }
                }
                _ = shutdown.changed() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
