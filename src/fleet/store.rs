//! The fleet's shared store on Redis (or Valkey: the same protocol), through the
//! `redis` crate's `ConnectionManager` (it reconnects on its own). Every call is
//! bounded by `redis.timeout`; a store that is slow or down is an error the
//! caller decides around, never a wait. After `TRIP_AFTER` failures in a row the
//! store is not asked for `TRIPPED_FOR`, then one call probes it again.
//!
//! The global rate limit's lease is one GCRA step in one round trip (a Lua
//! script, loaded once and called by its SHA): grant up to `want` requests of a
//! key's budget and move its theoretical arrival time on by as many emission
//! intervals, Redis's own clock the one clock of the fleet.

use super::config::RedisSettings;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::IntoConnectionInfo;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRIP_AFTER: u32 = 5;
const TRIPPED_FOR: Duration = Duration::from_secs(1);

/// KEYS[1] the key; ARGV interval (µs), tolerance (µs: burst × interval), want.
/// Returns {granted, µs until one more is allowed when none was}.
const LEASE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((tolerance - (tat - now)) / interval)
local grant = math.max(0, math.min(want, room))
if grant > 0 then
  tat = tat + grant * interval
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  return {grant, 0}
end
return {0, tat + interval - now - tolerance}
";

pub(crate) struct RedisStore {
    settings: RedisSettings,
    client: Option<redis::Client>,
    connection: Mutex<Option<ConnectionManager>>,
    connecting: AtomicBool,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which the store is not asked.
    tripped_until: AtomicU64,
    epoch: Instant,
    lease: redis::Script,
    metrics: StoreMetrics,
}

struct StoreMetrics {
    errors: IntCounter,
    seconds: Histogram,
    up: IntGauge,
}

/// Why the store gave no answer.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// Not connected yet, or tripped after failures.
    Unavailable,
    Timeout,
    Redis(redis::RedisError),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Unavailable => f.write_str("not connected"),
            StoreError::Timeout => f.write_str("timed out"),
            StoreError::Redis(e) => write!(f, "{e}"),
        }
    }
}

impl RedisStore {
    pub(crate) fn new(
        settings: RedisSettings,
        registry: &Registry,
    ) -> prometheus::Result<Arc<Self>> {
        let errors = IntCounter::new(
            "parapet_ratelimit_store_errors_total",
            "Calls to the shared store (Redis) that failed or timed out; the local limiter decided",
        )?;
        let seconds = Histogram::with_opts(
            HistogramOpts::new(
                "parapet_redis_request_duration_seconds",
                "Round trips to the shared store (Redis) that answered",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0,
            ]),
        )?;
        let up = IntGauge::new(
            "parapet_redis_up",
            "1 while the shared store (Redis) answers",
        )?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(up.clone()))?;
        let client = settings
            .url
            .as_str()
            .into_connection_info()
            .ok()
            .map(|info| info.set_tcp_settings(TcpSettings::default().set_nodelay(true)))
            .and_then(|info| redis::Client::open(info).ok());
        Ok(Arc::new(RedisStore {
            settings,
            client,
            connection: Mutex::new(None),
            connecting: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            tripped_until: AtomicU64::new(0),
            epoch: Instant::now(),
            lease: redis::Script::new(LEASE),
            metrics: StoreMetrics {
                errors,
                seconds,
                up,
            },
        }))
    }

    /// Start connecting, so the first requests need not wait for it.
    pub(crate) fn warm(self: &Arc<Self>) {
        let _ = self.connection();
    }

    /// Whether the last call answered.
    pub(crate) fn is_up(&self) -> bool {
        self.metrics.up.get() == 1
    }

    /// A new connection of its own (for a blocking reader), with `response_timeout`.
    pub(crate) async fn dedicated(&self, response_timeout: Duration) -> Option<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(response_timeout))
            .set_number_of_retries(1);
        let client = self.client.as_ref()?;
        client.get_connection_manager_with_config(config).await.ok()
    }

    /// The shared connection, or `None` while there is none (one is then being made).
    fn connection(self: &Arc<Self>) -> Option<ConnectionManager> {
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        if now_ms < self.tripped_until.load(Ordering::Relaxed) {
            return None;
        }
        if let Some(c) = self.connection.lock().ok()?.as_ref() {
            return Some(c.clone());
        }
        if !self.connecting.swap(true, Ordering::AcqRel) {
            let store = self.clone();
            tokio::spawn(async move {
                let made = store.dedicated(Duration::from_secs(1)).await;
                if made.is_none() {
                    store.failed("connecting");
                }
                if let Ok(mut slot) = store.connection.lock() {
                    *slot = made;
                }
                store.connecting.store(false, Ordering::Release);
            });
        }
        None
    }

    fn failed(&self, what: &str) {
        self.metrics.errors.inc();
        self.metrics.up.set(0);
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n == TRIP_AFTER {
            log::error!(
                "redis {}: {what} failed {n} times in a row; local limits decide for now",
                self.settings.url
            );
        }
        if n >= TRIP_AFTER {
            let until = self.epoch.elapsed() + TRIPPED_FOR;
            self.tripped_until
                .store(until.as_millis() as u64, Ordering::Relaxed);
        }
    }

    fn answered(&self, started: Instant) {
        self.metrics
            .seconds
            .observe(started.elapsed().as_secs_f64());
        if self.failures.swap(0, Ordering::Relaxed) >= TRIP_AFTER {
            log::info!("redis {}: answering again", self.settings.url);
        }
        self.metrics.up.set(1);
    }

    /// Lease up to `want` requests of `key`'s budget: `(granted, µs until one is
    /// allowed again when none was)`.
    pub(crate) async fn lease_bytes(
        self: &Arc<Self>,
        key: &[u8],
        interval_us: u64,
        tolerance_us: u64,
        want: u32,
    ) -> Result<(u32, u64), StoreError> {
        let mut conn = self.connection().ok_or(StoreError::Unavailable)?;
        let started = Instant::now();
        let mut call = self.lease.key(key);
        call.arg(interval_us).arg(tolerance_us).arg(want);
        let answer =
            tokio::time::timeout(self.settings.timeout, call.invoke_async(&mut conn)).await;
        match answer {
            Ok(Ok((granted, retry))) => {
                self.answered(started);
                Ok((granted, retry))
            }
            Ok(Err(e)) => {
                self.failed("a lease");
                Err(StoreError::Redis(e))
            }
            Err(_) => {
                self.failed("a lease");
                Err(StoreError::Timeout)
            }
        }
    }

    /// Run `cmd` on the shared connection within `limit`.
    pub(crate) async fn run<T: redis::FromRedisValue>(
        self: &Arc<Self>,
        cmd: &redis::Cmd,
        limit: Duration,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection().ok_or(StoreError::Unavailable)?;
        let started = Instant::now();
        match tokio::time::timeout(limit, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => {
                self.answered(started);
                Ok(v)
            }
            Ok(Err(e)) => {
                self.failed("a command");
                Err(StoreError::Redis(e))
            }
            Err(_) => {
                self.failed("a command");
                Err(StoreError::Timeout)
            }
        }
    }
}
