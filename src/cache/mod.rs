//! The origin shield: an RFC 9111 shared cache on `pingora-cache`, for routes with
//! `cache: true`. The proxy calls one method of `Shield` from each cache hook;
//! the rules live in the modules below.
//!
//! config     the `cache` section and the per-route `cache` / `cache_key`
//! storage    the bounded in-memory store (TinyUFO), with streaming partial writes
//! disk       the optional disk tier below it, surviving restarts and hand-offs
//! key        scheme, host, port, path and the kept query
//! policy     what may be stored, and for how long (response directives)
//! request    what the client's directives change
//! vary       variants of one URL
//! status     `Cache-Status` and the result for logs and metrics
//! invalidate what unsafe methods and purges (by URL or tag) drop
//! purge      the tag index
//! metrics    the cache's metric families
//!
//! Requests for one object are collapsed by pingora-cache's lock: one origin fetch,
//! everyone else waits up to `lock_timeout` and is served from it (the store
//! streams a body while it is still arriving). That holds for refreshes a client
//! asks for too (`no-cache`, `max-age=0`): the requests that waited on a refresh
//! are answered by its result rather than each asking for one more. When the answer
//! turns out uncacheable (a `Set-Cookie` by default), pingora's `Predictor`
//! remembers the key, so the next requests go to the origin in parallel instead of
//! queueing behind a lock (Varnish's hit-for-miss); it forgets the key when a later
//! response for it is cacheable.

pub(crate) mod config;
pub(crate) mod disk;
mod invalidate;
pub(crate) mod key;
pub(crate) mod metrics;
pub(crate) mod policy;
pub(crate) mod purge;
pub(crate) mod request;
pub(crate) mod status;
pub(crate) mod storage;
pub(crate) mod vary;

pub(crate) use invalidate::invalidates;

use config::{CacheSettings, ClientDirectives, RouteCache, SetCookie};
use metrics::CacheMetrics;
use pingora::cache::lock::{CacheKeyLockImpl, CacheLock};
use pingora::cache::predictor::Predictor;
use pingora::cache::{CacheKey, CacheMeta, CacheOptionOverrides, NoCacheReason, RespCacheable};
use pingora::cache::{ForcedFreshness, Storage};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;
use request::{RequestDirectives, Verdict};
use status::Facts;
use std::time::SystemTime;
use storage::MemoryStorage;

/// Keys remembered as uncacheable, per shard (16 shards).
const HIT_FOR_MISS_KEYS: usize = 1024;

/// Reasons not to store that belong to one request, not to the URL: the predictor
/// must not send the next requests for the URL around the cache because of them.
fn request_specific(reason: &'static str) -> bool {
    matches!(reason, REQUEST_NO_STORE | policy::AUTHORIZATION)
}

const REQUEST_NO_STORE: &str = "request-no-store";

/// What one request's cache handling has learned, for later hooks and the log.
#[derive(Debug, Default)]
pub(crate) struct CacheCtx {
    pub(crate) directives: RequestDirectives,
    /// The route's choice for responses that set a cookie.
    pub(crate) set_cookie: SetCookie,
    /// `cache_vary_filter` ran at lookup: a miss then is a variant miss.
    pub(crate) variant_lookup: bool,
    /// A request directive sent the object to the origin.
    pub(crate) by_request: bool,
    /// What the cache did, once the response went out.
    pub(crate) result: Option<&'static str>,
    /// The lookup found a stored object past its freshness: the origin was asked
    /// to revalidate it (pingora-cache disables the cache when that fails, so the
    /// phase no longer says it).
    pub(crate) found_stale: bool,
    /// The fields of the origin's 304 to a revalidation, which update the stored
    /// response beyond the few pingora-cache merges itself.
    pub(crate) not_modified: Option<http::HeaderMap>,
    /// The fields kept out of the stored copy of the response this request
    /// fetched (`policy::withheld`), given back to this request alone.
    pub(crate) withheld: Option<http::HeaderMap>,
    /// The hit is served by the disk tier.
    pub(crate) from_disk: bool,
}

impl CacheCtx {
    /// Give the fetching client the fields its stored copy goes without: pingora
    /// serves it from the store's copy of the header (`proxy_cache.rs`,
    /// `ServeFromCache::enable_miss`). A field already there is left alone.
    pub(crate) fn restore_withheld(&self, headers: &mut http::HeaderMap) {
        let Some(withheld) = &self.withheld else {
            return;
        };
        for name in withheld.keys() {
            if !headers.contains_key(name) {
                for value in withheld.get_all(name) {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
    }
}

/// The cache, built once when some route caches.
pub(crate) struct Shield {
    storage: &'static MemoryStorage,
    /// What pingora-cache is given: the memory store, or both tiers.
    store: &'static (dyn Storage + Sync),
    tiered: Option<&'static disk::TieredStorage>,
    lock: &'static CacheKeyLockImpl,
    predictor: &'static Predictor<16>,
    settings: CacheSettings,
    metrics: CacheMetrics,
}

impl Shield {
    /// The store, lock and predictor live as long as the process: pingora-cache
    /// takes them as `&'static`, and a reload starts a new process.
    /// `handoff` tells the disk tier when this instance hands over to a new one;
    /// `upper_tier`: some upstream is a tier of shields (hashed by `cache_key`).
    pub(crate) fn build(
        settings: CacheSettings,
        handoff: std::sync::Arc<crate::connection::handoff::Handoff>,
        registry: &prometheus::Registry,
        upper_tier: bool,
    ) -> prometheus::Result<Shield> {
        let storage: &'static MemoryStorage =
            Box::leak(Box::new(MemoryStorage::new(settings.max_size)));
        let (store, tiered) = disk::stores(storage, settings.disk.as_ref(), handoff, registry)?;
        let lock: &'static CacheLock = Box::leak(CacheLock::new_boxed(settings.lock_timeout));
        let predictor = Predictor::new(HIT_FOR_MISS_KEYS, Some(request_specific));
        let predictor = Box::leak(Box::new(predictor));
        Ok(Shield {
            storage,
            store,
            tiered,
            lock,
            predictor,
            metrics: CacheMetrics::register(registry, storage, upper_tier)?,
            settings,
        })
    }

    pub(crate) fn storage(&self) -> &'static MemoryStorage {
        self.storage
    }

    /// The response after the lookup that ended in `result` sent `bytes` body bytes
    /// (counted once the request is over).
    pub(crate) fn served(&self, result: &str, bytes: u64) {
        self.metrics.served(result, bytes);
    }

    /// `parapet_cache_lookups_total` alone, for the dashboard's history.
    pub(crate) fn lookup_families(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.metrics.lookup_families()
    }

    /// The disk tier's directory, when it is on: what outlives this process.
    pub(crate) fn disk_path(&self) -> Option<&std::path::Path> {
        self.settings.disk.as_ref().map(|d| d.path.as_path())
    }

    /// Hold the disk tier's reads back until `release_disk_reads`, or let them go.
    pub(crate) fn hold_disk_reads(&self, held: bool) {
        if let Some(tiered) = self.tiered {
            match held {
                true => tiered.disk().hold_reads(),
                false => tiered.disk().release_reads(),
            }
        }
    }

    /// The disk tier's state, when it is on.
    pub(crate) fn disk_status(&self) -> Option<disk::DiskStatus> {
        self.tiered.map(|t| t.disk().status())
    }

    /// The background service that rebuilds the disk tier's index at start.
    pub(crate) fn disk_index_service(&self) -> Option<disk::IndexRebuild> {
        self.tiered.map(|t| disk::IndexRebuild(t.disk()))
    }

    /// `request_cache_filter`: GET and HEAD requests use the cache, but not a
    /// WebSocket handshake: a stored page must not answer it, nor may it wait for
    /// another request's fetch.
    pub(crate) fn enable(&self, session: &mut Session, route: &RouteCache, ctx: &mut CacheCtx) {
        let req = session.req_header();
        let cached = matches!(req.method, http::Method::GET | http::Method::HEAD);
        if !cached || crate::http_util::is_websocket_handshake(req) {
            return;
        }
        ctx.directives = match route.client_directives {
            ClientDirectives::Honor => RequestDirectives::of(req),
            ClientDirectives::Ignore => RequestDirectives::credentials_only(req),
        };
        ctx.set_cookie = route.set_cookie;
        let mut overrides = CacheOptionOverrides::default();
        overrides.wait_timeout = Some(self.settings.lock_timeout);
        session.cache.enable(
            self.store,
            None,
            Some(self.predictor),
            Some(self.lock),
            Some(overrides),
        );
        session
            .cache
            .set_max_file_size_bytes(self.settings.max_object_size);
    }

    /// `cache_key_callback`.
    pub(crate) fn key(
        &self,
        req: &RequestHeader,
        route: &RouteCache,
        scheme: crate::http_util::Scheme,
    ) -> CacheKey {
        CacheKey::new(key::primary(req, scheme, &route.query), "")
    }

    /// `cache_hit_filter`: the request's directives against a stored object.
    ///
    /// A request that waited on the cache lock for this key looks the object up
    /// again once the fetch it waited for is done (pingora-proxy's
    /// `proxy_cache.rs`, lookup loop), and finds that fetch's result. A demand to
    /// revalidate is met by it: the origin answered after the request arrived.
    /// Asking again would chain the waiting requests into one origin request each,
    /// one after another.
    pub(crate) fn hit_filter(
        &self,
        session: &Session,
        meta: &CacheMeta,
        is_fresh: bool,
        hit: &pingora::cache::storage::HitHandler,
        ctx: &mut CacheCtx,
    ) -> Option<ForcedFreshness> {
        ctx.found_stale = !is_fresh;
        ctx.from_disk = disk::is_disk_hit(hit);
        if !ctx.directives.any() {
            return None;
        }
        let waited_for_a_fetch = session.cache.lock_duration().is_some();
        match ctx.directives.verdict(meta, SystemTime::now()) {
            Verdict::AsStored => None,
            Verdict::Revalidate if waited_for_a_fetch => None,
            Verdict::Revalidate => {
                ctx.by_request = true;
                Some(ForcedFreshness::ForceExpired)
            }
            Verdict::ServeStale => Some(ForcedFreshness::ForceFresh),
            Verdict::Bypass => {
                ctx.by_request = true;
                Some(ForcedFreshness::ForceMiss)
            }
        }
    }

    /// `proxy_upstream_filter`: whether the request may go to the origin. With
    /// `only-if-cached` it may not, and gets a 504.
    pub(crate) fn may_fetch(&self, ctx: &CacheCtx) -> bool {
        !ctx.directives.only_if_cached
    }

    /// `upstream_response_filter`: keep a revalidation's 304 fields (RFC 9111
    /// §4.3.4: they update the stored response; pingora-cache merges only
    /// Cache-Control, Expires, ETag and the tags, and not `Date`, without which the
    /// refreshed object would look as old as the first one).
    pub(crate) fn upstream_answered(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        ctx: &mut CacheCtx,
    ) {
        let revalidating = session.cache.phase() == pingora::cache::CachePhase::Stale;
        if resp.status == http::StatusCode::NOT_MODIFIED && revalidating {
            ctx.not_modified = Some(resp.headers.clone());
        }
        if let Some(upper) = resp.headers.get(&status::CACHE_STATUS) {
            self.metrics.tier_answered(status::is_hit(upper.as_bytes()));
        }
    }

    /// `response_cache_filter`. After a 304, `resp` is the stored response with
    /// pingora's merge, and the 304's other fields are applied here.
    pub(crate) fn cacheable(&self, resp: &ResponseHeader, ctx: &mut CacheCtx) -> RespCacheable {
        let decision = self.with_not_modified(resp, ctx);
        if let RespCacheable::Cacheable(meta) = &decision {
            ctx.withheld = policy::withheld(resp, meta.headers());
        }
        decision
    }

    fn with_not_modified(&self, resp: &ResponseHeader, ctx: &CacheCtx) -> RespCacheable {
        let Some(fields) = &ctx.not_modified else {
            return self.decide(resp, ctx);
        };
        let mut merged = resp.clone();
        crate::pingora_compat::head_edit::edit_response(&mut merged, |h| {
            for name in fields.keys() {
                if name != http::header::CONTENT_LENGTH {
                    h.remove(name);
                    for value in fields.get_all(name) {
                        h.append(name.clone(), value.clone());
                    }
                }
            }
        });
        self.decide(&merged, ctx)
    }

    fn decide(&self, resp: &ResponseHeader, ctx: &CacheCtx) -> RespCacheable {
        if ctx.directives.no_store {
            return RespCacheable::Uncacheable(NoCacheReason::Custom(REQUEST_NO_STORE));
        }
        let too_large = crate::http_util::content_length(&resp.headers)
            .is_some_and(|len| len > self.settings.max_object_size as u64);
        if too_large {
            return RespCacheable::Uncacheable(NoCacheReason::ResponseTooLarge);
        }
        let authorization = ctx.directives.authorization;
        let now = SystemTime::now();
        policy::cacheable(resp, authorization, ctx.set_cookie, &self.settings, now)
    }

    /// `fail_to_proxy`: a stored object that could not be revalidated, and that
    /// may not be served stale (`must-revalidate`, or no stale window), is
    /// answered 504: the cache is disconnected from the origin (RFC 9111
    /// §5.2.2.2, §4.2.4), not facing a broken one.
    pub(crate) fn failure_status(&self, ctx: &CacheCtx, code: u16) -> u16 {
        match code {
            502 | 503 if ctx.found_stale => 504,
            _ => code,
        }
    }

    /// What the cache did for this response; counted, and remembered for the log.
    pub(crate) fn facts(
        &self,
        session: &Session,
        ctx: &mut CacheCtx,
        fwd_status: Option<u16>,
    ) -> Facts {
        let mut facts = Facts::of(&session.cache, fwd_status);
        facts.from_disk = ctx.from_disk;
        facts.vary_miss = ctx.variant_lookup;
        facts.by_request = ctx.by_request;
        facts.unsafe_method = !matches!(
            session.req_header().method,
            http::Method::GET | http::Method::HEAD
        );
        if ctx.result.is_none() {
            let result = facts.result();
            ctx.result = Some(result);
            self.metrics.looked_up(result, facts.collapsed);
        }
        facts
    }
}

/// Fields meant for Parapet alone, not forwarded to clients: the directives
/// targeted at Parapet (`Parapet-CDN-Cache-Control`) and the purge tags.
/// `CDN-Cache-Control` goes on: it is targeted at every CDN on the way
/// (RFC 9213 §2), and a cache behind Parapet may be one.
pub(crate) fn strip_own_fields(headers: &mut http::HeaderMap) {
    for name in [
        &policy::PARAPET_CDN_CACHE_CONTROL,
        &CACHE_TAG,
        &SURROGATE_KEY,
    ] {
        headers.remove(name);
    }
}

pub(crate) static CACHE_TAG: http::HeaderName = http::HeaderName::from_static("cache-tag");
pub(crate) static SURROGATE_KEY: http::HeaderName = http::HeaderName::from_static("surrogate-key");
