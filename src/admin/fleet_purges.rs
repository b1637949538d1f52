//! Purges that reach every instance of the fleet (README "A fleet"): a purge
//! answered here is also appended to one Redis stream, and every instance
//! follows that stream and applies what the others appended. The stream is the
//! log as well as the fan-out: a blocking `XREAD` brings an entry within a round
//! trip, in order, and an instance that was away reads on from the last entry it
//! applied (kept in memory; a restarted instance with only the memory tier has
//! nothing stored that an older purge could name). The stream is trimmed to
//! about `KEPT` entries.

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
const KEPT: usize = 100_000;
/// How long one `XREAD` waits for an entry.
const BLOCK: Duration = Duration::from_secs(1);

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
        let mut conn = store
            .dedicated(BLOCK + Duration::from_secs(2))
            .await
            .ok_or("cannot connect")?;
        loop {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("COUNT")
                .arg(500);
            cmd.arg("STREAMS").arg(STREAM).arg(last.as_str());
            let reply: Option<StreamReadReply> = cmd
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
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
        // New entries only: what is stored now was fetched after any older purge.
        let mut last = "$".to_string();
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
