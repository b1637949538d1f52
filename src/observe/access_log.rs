//! The JSON access log: one object per request, formatted on the request path and
//! written to disk off it.
//!
//! The request path formats its line (no allocation once the buffer has grown) onto a bounded in-memory buffer behind a mutex; a
//! background service swaps that buffer out every 50 ms and writes it to the file,
//! so no request waits on the disk. If the writer falls behind, lines are dropped
//! and counted rather than slowing requests down. SIGUSR1 reopens the file, for
//! logrotate.
//!
//! Lines are formatted on the request path, into that shared buffer, rather than
//! handed to the writer as records: a record had to clone the request's method,
//! URI and header values, and kept the request's read buffers alive until the
//! writer ran. Formatting here costs about the same instructions (bench/RESULTS.md)
//! and keeps nothing alive. The mutex is held only for the formatting, which is
//! rarely contended even with several worker threads.

use super::log_line::LineFormat;
use crate::config::ConfigErrors;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Deserialize;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// Bytes of lines waiting for the writer; beyond this lines are dropped (and counted).
const QUEUE_BYTES: usize = 16 << 20;
/// How often the writer drains the queue and flushes.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// The `access_log` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessLogConfig {
    /// A file path, or `stderr`.
    pub(crate) path: String,
}

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Stderr,
    File(PathBuf),
}

impl Target {
    /// `stderr`, or a file whose directory exists (the file itself is created).
    pub(crate) fn from_config(
        config: AccessLogConfig,
        errors: &mut ConfigErrors,
    ) -> Option<Target> {
        if config.path == "stderr" {
            return Some(Target::Stderr);
        }
        let path = PathBuf::from(&config.path);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        if config.path.is_empty() || path.is_dir() {
            errors.push("access_log.path", "must be a file path or `stderr`");
            return None;
        }
        if dir.is_some_and(|d| !d.is_dir()) {
            errors.push(
                "access_log.path",
                format!("the directory of '{}' does not exist", config.path),
            );
        }
        Some(Target::File(path))
    }
}

/// Everything one log line says, borrowed from the request and its context.
pub(crate) struct Record<'a> {
    pub(crate) time: SystemTime,
    pub(crate) request_id: &'a [u8],
    pub(crate) trace_id: Option<&'a [u8; 32]>,
    pub(crate) client_ip: IpAddr,
    pub(crate) method: &'a str,
    /// `http` or `https`, and the client's HTTP version (`HTTP/1.1`, `HTTP/2.0`).
    pub(crate) scheme: &'static str,
    pub(crate) protocol: &'static str,
    pub(crate) host: Option<&'a [u8]>,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) upstream: Option<usize>,
    pub(crate) backend: Option<usize>,
    pub(crate) attempts: u8,
    /// What the cache did (`hit`, `miss`, ...); `None` on routes without a cache.
    pub(crate) cache: Option<&'static str>,
    /// The policy that refused the request (`access`, `rate_limit`, `limits`, ...).
    pub(crate) refused_by: Option<&'static str>,
    pub(crate) duration: Duration,
    pub(crate) upstream_duration: Option<Duration>,
    pub(crate) user_agent: Option<&'a [u8]>,
}

/// The request path's end of the log.
pub(crate) struct AccessLog {
    queue: Arc<Queue>,
    dropped: AtomicU64,
}

/// The writer's end: a Pingora background service.
pub(crate) struct Writer {
    queue: Arc<Queue>,
    target: Target,
    /// How long requests may still finish after shutdown starts (Pingora's grace
    /// period): the writer keeps writing their lines that long, then drains the
    /// queue one last time and returns, rather than being dropped with lines still
    /// queued when Pingora stops the runtimes.
    grace: Duration,
}

pub(crate) fn channel(
    target: Target,
    names: Vec<(String, Vec<String>)>,
    grace: Duration,
) -> (AccessLog, Writer) {
    let queue = Arc::new(Queue(Mutex::new(Pending {
        lines: Vec::new(),
        format: LineFormat::new(&names),
    })));
    let log = AccessLog {
        queue: queue.clone(),
        dropped: AtomicU64::new(0),
    };
    let writer = Writer {
        queue,
        target,
        grace,
    };
    (log, writer)
}

impl AccessLog {
    /// Queue the record's line; never waits on the writer.
    pub(crate) fn record(&self, record: &Record) {
        let mut queue = self.queue.lock();
        if queue.lines.len() < QUEUE_BYTES {
            let Pending { lines, format } = &mut *queue;
            format.line(lines, record);
        } else {
            drop(queue);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                log::warn!("access log writer is behind: {} lines dropped", n + 1);
            }
        }
    }
}

fn open(target: &Target) -> std::io::Result<Box<dyn Write + Send>> {
    match target {
        Target::Stderr => Ok(Box::new(std::io::stderr())),
        Target::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            Ok(Box::new(file))
        }
    }
}

#[async_trait]
impl BackgroundService for Writer {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The writer's half of the double buffer: swapped with the queue, written
        // out, cleared, so that neither side allocates once both have grown.
        let mut batch = Vec::new();
        let mut reopen =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::error!("access log: cannot watch SIGUSR1, reopening disabled: {e}");
                    None
                }
            };
        // No BufWriter: each batch is already one buffer of whole lines, written
        // with one call.
        let mut out = match open(&self.target) {
            Ok(w) => w,
            Err(e) => {
                log::error!("access log: cannot open {:?}: {e}", self.target);
                return;
            }
        };
        // Drain on a timer rather than waking per record: a wake-up per request
        // would cost the request path a cross-thread notification each time.
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = async { match reopen.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    drain(&self.queue, &mut batch, &mut out);
                    let _ = out.flush();
                    match open(&self.target) {
                        Ok(w) => {
                            out = w;
                            log::info!("access log reopened");
                        }
                        Err(e) => log::error!("access log: cannot reopen {:?}: {e}", self.target),
                    }
                }
                // Keep writing while in-flight requests finish, then stop.
                _ = shutdown.changed(), if stop_at.is_none() => {
                    stop_at = Some(tokio::time::Instant::now() + self.grace + FLUSH_EVERY);
                }
            }
            drain(&self.queue, &mut batch, &mut out);
            if let Err(e) = out.flush() {
                log::error!("access log: write failed: {e}");
            }
            if stop_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
                return;
            }
        }
    }
}

/// Lines waiting for the writer, and what formats them.
struct Pending {
    lines: Vec<u8>,
    format: LineFormat,
}

struct Queue(Mutex<Pending>);

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while formatting leaves whole lines and maybe a partial one: keep
        // going rather than losing the log.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Write every queued line.
fn drain(queue: &Queue, batch: &mut Vec<u8>, out: &mut impl Write) {
    std::mem::swap(&mut queue.lock().lines, batch);
    if let Err(e) = out.write_all(batch) {
        log::error!("access log: write failed: {e}");
    }
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::log_line::tests::sample;

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let (log, writer) = channel(Target::Stderr, vec![], Duration::ZERO);
        let mut line = Vec::new();
        LineFormat::new(&[]).line(&mut line, &sample());
        let fits = QUEUE_BYTES.div_ceil(line.len());
        for _ in 0..fits + 3 {
            log.record(&sample());
        }
        assert_eq!(log.dropped.load(Ordering::Relaxed), 3);
        let (mut batch, mut out) = (Vec::new(), Vec::new());
        drain(&writer.queue, &mut batch, &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), fits);
        assert!(out.starts_with(&line));
        // Drained: there is room again, and the writer's buffer kept its capacity.
        log.record(&sample());
        assert_eq!(log.dropped.load(Ordering::Relaxed), 3);
        assert!(batch.capacity() >= QUEUE_BYTES);
    }

    #[test]
    fn targets_are_stderr_or_a_file_in_an_existing_directory() {
        let target = |path: &str| {
            let mut errors = ConfigErrors::default();
            let config = AccessLogConfig { path: path.into() };
            let target = Target::from_config(config, &mut errors);
            (target, errors.errors.len())
        };
        assert_eq!(target("stderr"), (Some(Target::Stderr), 0));
        let file = std::env::temp_dir().join("parapet-access.log");
        let (got, problems) = target(file.to_str().unwrap());
        assert_eq!((got, problems), (Some(Target::File(file)), 0));
        assert_eq!(target("").1, 1);
        assert_eq!(target("/").1, 1);
        assert_eq!(target("/no/such/dir/access.log").1, 1);
    }
}
