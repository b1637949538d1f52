//! How the tier is put in place: what pingora-cache is given (the memory store
//! alone, or both tiers), and the start-up index rebuild as a background service.

use super::*;

/// What pingora-cache is given: the memory store alone, or both tiers when
/// `settings` turn the disk tier on (then also returned as such).
pub(crate) fn stores(
    memory: &'static MemoryStorage,
    settings: Option<&DiskSettings>,
    handoff: Arc<Handoff>,
    registry: &prometheus::Registry,
) -> prometheus::Result<(
    &'static (dyn Storage + Sync),
    Option<&'static TieredStorage>,
)> {
    let Some(settings) = settings else {
        return Ok((memory, None));
    };
    let disk = DiskTier::build(settings, handoff, registry)?;
    let tiered: &'static TieredStorage = Box::leak(Box::new(TieredStorage::new(memory, disk)));
    Ok((tiered, Some(tiered)))
}

/// The background service that rebuilds the index at start (after daemonizing, so
/// in the process that serves), while requests are already served.
pub(crate) struct IndexRebuild(pub(crate) &'static DiskTier);

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for IndexRebuild {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        let tier = self.0;
        if let Err(e) = tokio::task::spawn_blocking(move || tier.rebuild_index()).await {
            log::error!("cache disk tier: the index rebuild failed: {e}");
        }
    }
}
