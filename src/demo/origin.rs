//! The demo origin. Paths:
//! - `/health`: 200 `ok`, or 503 while marked unhealthy
//! - `/echo...`: the request head as received, then `body-bytes` and `body-sum`
//! - `/slow/MS`: answers after MS milliseconds
//! - `/status/N`: answers with status N
//! - `/bytes/N`: N bytes of a known pattern (see `wire::pattern_byte`)
//! - `/close`: closes the connection without answering
//! - `/hop`: a response carrying hop-by-hop headers a proxy must strip
//! - `/ws`: a WebSocket echo (`demo::websocket`); the connection is the socket's
//!   from the 101 on
//! - `/gen...?set-NAME=VALUE&...`: a generated response for cache tests: each
//!   `set-` parameter becomes a response header (percent-decoded), `status=N` and
//!   `delay=MS` set the status and a delay, `short=N` promises N more bytes than it
//!   sends and hangs up, `pad=N` adds N bytes of `x` to the body, `interim=1NN` sends
//!   that interim response (with a `Link` field) before the final one, and the body names
//!   how many `/gen`
//!   requests for its path came so far (and the request's `Accept-Encoding`), so every fetch
//!   is told apart (`X-Gen: N` says the same, on 304s too). A request whose
//!   `If-None-Match` matches the `ETag` to send, or whose `If-Modified-Since`
//!   equals the `Last-Modified` to send, gets a 304.
//! - anything else: a small HTML page
//!
//! A path may carry any prefix (`/app/slow/10` is `/slow/10`). Every response
//! carries `X-Origin: NAME`. Counters let tests see what arrived. A test can make
//! one origin fail (`OriginState::set_failing`): then every path but `/health`
//! answers the chosen status at once, so the same path works on another origin.

use super::websocket;
use super::wire::{self, Checksum, Head};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// What an origin has seen, shared with whoever started it.
pub struct OriginState {
    pub name: String,
    healthy: AtomicBool,
    /// The status every request but `/health` gets, or 0 to serve normally.
    failing: AtomicU16,
    requests: AtomicUsize,
    connections: AtomicUsize,
    seen: Mutex<Vec<String>>,
}

impl OriginState {
    /// Requests whose target starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().filter(|t| t.starts_with(prefix)).count()
    }

    /// Every request, health checks included.
    pub fn total(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Answer every request but `/health` with `status` (such as 500), at once and
    /// still counted; `None` serves normally again.
    pub fn set_failing(&self, status: Option<u16>) {
        self.failing.store(status.unwrap_or(0), Ordering::Relaxed);
    }
}

/// A running origin; dropping it (or `stop`) closes the port and every connection.
pub struct Origin {
    pub addr: SocketAddr,
    pub state: Arc<OriginState>,
    task: JoinHandle<()>,
}

impl Origin {
    /// Bind `addr` (port 0 for any) and serve on the current tokio runtime.
    pub async fn start(name: &str, addr: &str) -> std::io::Result<Origin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(OriginState {
            name: name.to_string(),
            healthy: AtomicBool::new(true),
            failing: AtomicU16::new(0),
            requests: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Origin { addr, state, task })
    }

    /// Stop at once, as a crashed backend would: refuse new connections and drop
    /// open ones.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<OriginState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    state.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve(stream, state.clone()));
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, state: Arc<OriginState>) {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    while let Ok(Some(head)) = wire::read_head(&mut read).await {
        let (method, target) = head.method_target();
        let (method, target) = (method.to_string(), target.to_string());
        state.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut seen) = state.seen.lock() {
            seen.push(target.clone());
        }
        let mut sum = Checksum::default();
        let framing = wire::request_framing(&head);
        let Ok(body_bytes) = wire::read_body(&mut read, framing, |b| sum.update(b)).await else {
            return;
        };
        match behaviour_path(target.split('?').next().unwrap_or_default()) {
            "/close" => return,
            "/ws" => {
                let _ = websocket::serve(read, write, &head, &state.name).await;
                return;
            }
            _ => {}
        }
        let request = Request {
            method: &method,
            target: &target,
            head: &head,
            body_bytes,
            sum,
        };
        if respond(&mut write, &state, &request).await.is_err() || head.wants_close() {
            return;
        }
    }
}

struct Request<'a> {
    method: &'a str,
    target: &'a str,
    head: &'a Head,
    body_bytes: u64,
    sum: Checksum,
}

async fn respond<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    state: &OriginState,
    req: &Request<'_>,
) -> std::io::Result<()> {
    let path = behaviour_path(req.target.split('?').next().unwrap_or(""));
    let number = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|n| n.parse::<u64>().ok())
    };
    if path == "/health" {
        return match state.healthy.load(Ordering::Relaxed) {
            true => send(w, state, 200, &[], b"ok\n").await,
            false => send(w, state, 503, &[], b"unhealthy\n").await,
        };
    }
    let failing = state.failing.load(Ordering::Relaxed);
    if failing != 0 {
        return send(w, state, failing, &[], b"failing\n").await;
    }
    if path.starts_with("/echo") {
        let mut body = format!("{}\n", req.head.start_line);
        for (name, value) in &req.head.headers {
            body.push_str(&format!("{name}: {value}\n"));
        }
        body.push_str(&format!(
            "\nbody-bytes: {}\nbody-sum: {:x}\n",
            req.body_bytes, req.sum.0
        ));
        return send(
            w,
            state,
            200,
            &[("Content-Type", "text/plain")],
            body.as_bytes(),
        )
        .await;
    }
    if let Some(ms) = number("/slow/") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return send(w, state, 200, &[], b"slow\n").await;
    }
    if let Some(code) = number("/status/") {
        return send(w, state, code as u16, &[], b"status\n").await;
    }
    if let Some(n) = number("/bytes/") {
        return send_pattern(w, state, n, req.method == "HEAD").await;
    }
    if path.starts_with("/gen") {
        return generated(w, state, req).await;
    }
    if path == "/hop" {
        let hop = [
            ("Connection", "X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Upgrade", "h2c"),
            ("Trailer", "X-Checksum"),
            ("X-Kept", "yes"),
        ];
        return send(w, state, 200, &hop, b"hop\n").await;
    }
    let page = format!(
        "<!doctype html><title>parapet demo</title><h1>Hello from {}</h1>\n",
        state.name
    );
    send(
        w,
        state,
        200,
        &[("Content-Type", "text/html")],
        page.as_bytes(),
    )
    .await
}

/// The part of a path that picks a behaviour: paths may carry any prefix (such as
/// a route's `path_prefix`), so `/app/slow/10` behaves as `/slow/10`.
fn behaviour_path(path: &str) -> &str {
    const KEYWORDS: [&str; 9] = [
        "/health", "/echo", "/slow/", "/status/", "/bytes/", "/close", "/hop", "/gen", "/ws",
    ];
    KEYWORDS
        .iter()
        .filter_map(|k| path.find(k))
        .min()
        .map_or(path, |at| &path[at..])
}

/// `/gen`: see the module documentation.
async fn generated<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    state: &OriginState,
    req: &Request<'_>,
) -> std::io::Result<()> {
    let query = req.target.split_once('?').map_or("", |(_, q)| q);
    let mut headers: Vec<(String, String)> = Vec::new();
    let (mut status, mut delay, mut short, mut pad) = (200u16, 0u64, 0usize, 0usize);
    let mut interim: Option<u16> = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = wire::percent_decode(value);
        if let Some(header) = name.strip_prefix("set-") {
            headers.push((header.to_string(), value));
        } else if name == "status" {
            status = value.parse().unwrap_or(200);
        } else if name == "delay" {
            delay = value.parse().unwrap_or(0);
        } else if name == "short" {
            short = value.parse().unwrap_or(0);
        } else if name == "interim" {
            interim = value.parse().ok().filter(|s| (102..200).contains(s));
        } else if name == "pad" {
            pad = value.parse::<usize>().unwrap_or(0).min(1 << 20);
        }
    }
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let sent = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let not_modified = (sent("etag").is_some() && req.head.get("if-none-match") == sent("etag"))
        || (sent("last-modified").is_some()
            && req.head.get("if-modified-since") == sent("last-modified"));
    let n = state.count(req.target.split('?').next().unwrap_or_default());
    headers.push(("X-Gen".to_string(), n.to_string()));
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if not_modified {
        return send(w, state, 304, &refs, b"").await;
    }
    let mut body = format!(
        "gen {n} ae={}\n",
        req.head.get("accept-encoding").unwrap_or("-")
    );
    body.extend(std::iter::repeat_n('x', pad));
    if short > 0 {
        // Promise `short` more bytes than come, then hang up.
        let mut out = format!(
            "HTTP/1.1 {status} OK\r\nContent-Length: {}\r\n",
            body.len() + short
        );
        for (name, value) in &refs {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.push_str(&body);
        w.write_all(out.as_bytes()).await?;
        w.flush().await?;
        return Err(std::io::Error::other("truncated on purpose"));
    }
    if let Some(code) = interim {
        let hints =
            format!("HTTP/1.1 {code} Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
        w.write_all(hints.as_bytes()).await?;
        w.flush().await?;
    }
    let head_only = req.method == "HEAD";
    send_with(w, state, status, &refs, body.as_bytes(), head_only).await
}

async fn send<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    state: &OriginState,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    send_with(w, state, status, headers, body, false).await
}

/// A response; `head_only` (HEAD) keeps the body's length but not the body.
async fn send_with<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    state: &OriginState,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nX-Origin: {}\r\n", state.name);
    // A 304 describes the stored response: it carries no length of its own.
    if status != 304 {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only && status != 304 && status != 204 {
        bytes.extend_from_slice(body);
    }
    w.write_all(&bytes).await?;
    w.flush().await
}

async fn send_pattern<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    state: &OriginState,
    n: u64,
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nX-Origin: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n",
        state.name
    );
    w.write_all(head.as_bytes()).await?;
    if !head_only {
        let mut buf = vec![0u8; 64 * 1024];
        let mut offset = 0;
        while offset < n {
            let len = (n - offset).min(buf.len() as u64) as usize;
            wire::fill_pattern(&mut buf[..len], offset);
            w.write_all(&buf[..len]).await?;
            offset += len as u64;
        }
    }
    w.flush().await
}
