//! The JSON access log: one object per request, written off the request path.
//!
//! The request path only moves a small record into a bounded channel (`try_send`,
//! never waiting); a background service drains it every 50 ms, formats the JSON
//! and writes it through a buffer. If the writer falls
//! behind, records are dropped and counted rather than slowing requests down.
//! SIGUSR1 reopens the file, for logrotate.

use super::json::{json_opt, json_str, millis};
use async_trait::async_trait;
use http::{HeaderValue, Method, Uri};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Records waiting for the writer; beyond this they are dropped (and counted).
const QUEUE: usize = 64 * 1024;
/// How often the writer drains the queue and flushes.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// Where the log goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stderr,
    File(PathBuf),
}

/// Everything one log line says, captured cheaply (shared buffers, no formatting).
pub struct Record {
    pub time: SystemTime,
    pub request_id: HeaderValue,
    pub trace_id: Option<[u8; 32]>,
    pub client_ip: IpAddr,
    pub method: Method,
    pub host: Option<HeaderValue>,
    pub uri: Uri,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub upstream: Option<usize>,
    pub backend: Option<usize>,
    pub attempts: u8,
    pub duration: Duration,
    pub upstream_duration: Option<Duration>,
    pub user_agent: Option<HeaderValue>,
}

/// The request path's end of the log.
pub struct AccessLog {
    tx: mpsc::Sender<Record>,
    dropped: AtomicU64,
}

/// The writer's end: a Pingora background service.
pub struct Writer {
    rx: Mutex<Option<mpsc::Receiver<Record>>>,
    target: Target,
    /// Upstream names and their backends' addresses, to name them in lines.
    names: Vec<(String, Vec<String>)>,
    /// How long requests may still finish after shutdown starts (Pingora's grace
    /// period): the writer keeps writing their lines that long, then drains the
    /// queue one last time and returns, rather than being dropped with lines still
    /// queued when Pingora stops the runtimes.
    grace: Duration,
}

pub fn channel(
    target: Target,
    names: Vec<(String, Vec<String>)>,
    grace: Duration,
) -> (AccessLog, Writer) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let log = AccessLog {
        tx,
        dropped: AtomicU64::new(0),
    };
    let writer = Writer {
        rx: Mutex::new(Some(rx)),
        target,
        names,
        grace,
    };
    (log, writer)
}

impl AccessLog {
    /// Queue a record; never waits.
    pub fn record(&self, record: Record) {
        if self.tx.try_send(record).is_err() {
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
        let Some(mut rx) = self.rx.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let mut reopen =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::error!("access log: cannot watch SIGUSR1, reopening disabled: {e}");
                    None
                }
            };
        let mut out = match open(&self.target) {
            Ok(w) => std::io::BufWriter::with_capacity(64 * 1024, w),
            Err(e) => {
                log::error!("access log: cannot open {:?}: {e}", self.target);
                return;
            }
        };
        let mut line = Vec::with_capacity(1024);
        // Drain on a timer rather than waking per record: a wake-up per request
        // would cost the request path a cross-thread notification each time.
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stop_at: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                Some(()) = async { match reopen.as_mut() { Some(s) => s.recv().await, None => None } } => {
                    self.drain(&mut rx, &mut out, &mut line);
                    let _ = out.flush();
                    match open(&self.target) {
                        Ok(w) => {
                            out = std::io::BufWriter::with_capacity(64 * 1024, w);
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
            self.drain(&mut rx, &mut out, &mut line);
            if let Err(e) = out.flush() {
                log::error!("access log: write failed: {e}");
            }
            if stop_at.is_some_and(|t| tokio::time::Instant::now() >= t) {
                return;
            }
        }
    }
}

impl Writer {
    fn drain(&self, rx: &mut mpsc::Receiver<Record>, out: &mut impl Write, line: &mut Vec<u8>) {
        while let Ok(record) = rx.try_recv() {
            self.write(out, line, &record);
        }
    }
    fn write(&self, out: &mut impl Write, line: &mut Vec<u8>, r: &Record) {
        line.clear();
        format_line(line, r, &self.names);
        if let Err(e) = out.write_all(line) {
            log::error!("access log: write failed: {e}");
        }
    }
}

/// One JSON object and a newline.
pub fn format_line(out: &mut Vec<u8>, r: &Record, names: &[(String, Vec<String>)]) {
    let upstream = r.upstream.and_then(|u| names.get(u));
    let backend = upstream.zip(r.backend).and_then(|((_, b), i)| b.get(i));
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339(out, r.time);
    out.extend_from_slice(b"\",\"request_id\":");
    json_str(out, r.request_id.as_bytes());
    out.extend_from_slice(b",\"trace_id\":");
    json_opt(out, r.trace_id.as_ref().map(|t| &t[..]));
    let _ = write!(out, ",\"client_ip\":\"{}\",\"method\":", r.client_ip);
    json_str(out, r.method.as_str().as_bytes());
    out.extend_from_slice(b",\"host\":");
    json_opt(out, r.host.as_ref().map(|h| h.as_bytes()));
    out.extend_from_slice(b",\"path\":");
    let path = r.uri.path_and_query().map_or("/", |p| p.as_str());
    json_str(out, path.as_bytes());
    let _ = write!(
        out,
        ",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"upstream\":",
        r.status, r.bytes_in, r.bytes_out
    );
    json_opt(out, upstream.map(|(name, _)| name.as_bytes()));
    out.extend_from_slice(b",\"backend\":");
    json_opt(out, backend.map(|b| b.as_bytes()));
    let _ = write!(
        out,
        ",\"attempts\":{},\"cache\":null,\"duration_ms\":",
        r.attempts
    );
    millis(out, r.duration);
    out.extend_from_slice(b",\"upstream_duration_ms\":");
    match r.upstream_duration {
        Some(d) => millis(out, d),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"user_agent\":");
    json_opt(out, r.user_agent.as_ref().map(|u| u.as_bytes()));
    out.extend_from_slice(b"}\n");
}

/// `2026-11-25T14:18:15.123Z`
fn rfc3339(out: &mut Vec<u8>, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    );
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn line_is_json_with_escapes() {
        let r = Record {
            time: UNIX_EPOCH + Duration::from_millis(1_764_080_295_123),
            request_id: HeaderValue::from_static("abc"),
            trace_id: None,
            client_ip: "1.2.3.4".parse().unwrap(),
            method: Method::GET,
            host: Some(HeaderValue::from_static("example.com")),
            uri: Uri::from_static("/a?q=x"),
            status: 200,
            bytes_in: 0,
            bytes_out: 5,
            upstream: Some(0),
            backend: Some(0),
            attempts: 1,
            duration: Duration::from_micros(1500),
            upstream_duration: Some(Duration::from_micros(1000)),
            user_agent: Some(HeaderValue::from_static("curl\\8")),
        };
        let mut out = Vec::new();
        format_line(&mut out, &r, &[("app".into(), vec!["127.0.0.1:1".into()])]);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"2025-11-25T14:18:15.123Z\",\"request_id\":\"abc\",\"trace_id\":null,\"client_ip\":\"1.2.3.4\",\"method\":\"GET\",\"host\":\"example.com\",\"path\":\"/a?q=x\",\"status\":200,\"bytes_in\":0,\"bytes_out\":5,\"upstream\":\"app\",\"backend\":\"127.0.0.1:1\",\"attempts\":1,\"cache\":null,\"duration_ms\":1.500,\"upstream_duration_ms\":1.000,\"user_agent\":\"curl\\\\8\"}\n"
        );
    }
}
