//! Client connections as an internet-facing edge keeps them: idle keep-alive
//! connections closed after `limits.client_keepalive_timeout`, a connection's last
//! request (`keepalive_requests`) answered with `Connection: close`, connections that
//! never send a head closed by the header timeout, and the listeners' connection
//! caps, which refuse new connections and never touch open ones.

use crate::support::client::request;
use crate::support::*;
use std::net::SocketAddr;
use std::time::Duration;

/// A proxy in front of `o` with `limits` and an extra listener with `caps`; the
/// extra listener's address and the admin address.
async fn edge(
    o: &Origin,
    limits: serde_json::Value,
    caps: serde_json::Value,
) -> (Proxy, SocketAddr, SocketAddr) {
    let capped = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let listener = merged(json!({"address": capped.to_string()}), caps);
    let config = Config::single(&[o.addr])
        .section("limits", limits)
        .listener(listener);
    let (proxy, admin) = proxy_with_admin(config).await;
    proxy.wait_accepting(capped).await;
    (proxy, capped, admin)
}

/// A connection to `to` from the loopback address `from`.
async fn open_from(from: [u8; 4], to: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// `n` connections from 127.0.0.1 to `to`, each served once and kept open.
async fn open_served(n: usize, to: SocketAddr) -> Vec<tokio::net::TcpStream> {
    let mut open = Vec::new();
    for _ in 0..n {
        let mut tcp = open_from([127, 0, 0, 1], to).await;
        assert!(
            served(&mut tcp).await,
            "connection {} was refused",
            open.len() + 1
        );
        open.push(tcp);
    }
    open
}

/// Whether a GET on `tcp` is answered 200 (false: refused, closed).
async fn served(tcp: &mut tokio::net::TcpStream) -> bool {
    use parapet::demo::wire;
    use tokio::io::AsyncWriteExt;
    if tcp
        .write_all(request("GET", "/echo", &[]).as_bytes())
        .await
        .is_err()
    {
        return false;
    }
    let answer = async {
        let mut io = tokio::io::BufReader::new(tcp);
        let head = wire::read_head(&mut io).await.ok()??;
        let framing = wire::response_framing(&head, "GET");
        wire::read_body(&mut io, framing, |_| {}).await.ok()?;
        Some(head.status())
    };
    let status = tokio::time::timeout(Duration::from_secs(5), answer).await;
    matches!(status, Ok(Some(200)))
}

async fn refused(admin: SocketAddr, listener: SocketAddr, reason: &str) -> u64 {
    let text = get(admin, "/metrics").await.text();
    let series = format!(
        "parapet_connections_refused_total{{listener=\"{listener}\",reason=\"{reason}\"}} "
    );
    text.lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_used_up_connections_are_closed() {
    let o = origin("o").await;
    let limits = json!({"client_keepalive_timeout": "1s", "keepalive_requests": 3, "client_header_timeout": "1s"});
    let (proxy, _, _) = edge(&o, limits, json!({})).await;

    let mut conn = Conn::open(proxy.addr).await.unwrap();
    assert_eq!(conn.get("/echo", &[]).await.unwrap().status(), 200);
    assert!(
        conn.closed_by_peer().await,
        "an idle keep-alive connection stayed open"
    );

    let mut conn = Conn::open(proxy.addr).await.unwrap();
    for _ in 0..2 {
        let resp = conn.get("/echo", &[]).await.unwrap();
        assert_ne!(resp.header("connection"), Some("close"));
    }
    let last = conn.get("/echo", &[]).await.unwrap();
    assert_eq!(
        (last.status(), last.header("connection")),
        (200, Some("close"))
    );
    assert!(conn.closed_by_peer().await);

    // A connection that never sends a byte is closed by the header timeout.
    let mut silent = Conn::open(proxy.addr).await.unwrap();
    assert!(
        silent.closed_by_peer().await,
        "a silent connection stayed open"
    );
    assert_eq!(o.state.count("/echo"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cap_per_address_refuses_the_eleventh_and_serves_others() {
    let o = origin("o").await;
    let (_proxy, capped, admin) = edge(&o, json!({}), json!({"max_connections_per_ip": 10})).await;
    let mut open = open_served(10, capped).await;
    let mut eleventh = open_from([127, 0, 0, 1], capped).await;
    assert!(
        !served(&mut eleventh).await,
        "the 11th connection was served"
    );
    let mut other = open_from([127, 0, 0, 2], capped).await;
    assert!(served(&mut other).await, "another address was refused");
    // Open connections are untouched.
    for tcp in &mut open {
        assert!(served(tcp).await);
    }
    assert_eq!(refused(admin, capped, "max_connections_per_ip").await, 1);
    // A closed connection frees its place.
    open.pop();
    let freed = eventually(Duration::from_secs(5), async || {
        served(&mut open_from([127, 0, 0, 1], capped).await).await
    })
    .await;
    assert!(freed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_cap_refuses_the_hundred_and_first() {
    let o = origin("o").await;
    let (proxy, capped, admin) = edge(&o, json!({}), json!({"max_connections": 100})).await;
    let _open = open_served(100, capped).await; // held open
    let mut over = open_from([127, 0, 0, 3], capped).await;
    assert!(!served(&mut over).await, "the 101st connection was served");
    assert_eq!(refused(admin, capped, "max_connections").await, 1);
    // The cap is the listener's: the process's own listener still serves.
    assert_eq!(proxy.get("/echo").await.status(), 200);
    let text = get(admin, "/metrics").await.text();
    let active = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("parapet_connections_active ")?
                .parse::<u64>()
                .ok()
        })
        .unwrap();
    assert!(
        (100..=102).contains(&active),
        "{active} connections counted"
    );
}

#[test]
fn connection_settings_are_checked() {
    let yaml = "listeners: [{address: '127.0.0.1:1', max_connections: 0, max_connections_per_ip: 0, read_buffer: 100}]\n\
                upstreams: {app: {backends: [{address: '127.0.0.1:2'}]}}\n\
                routes: [{upstream: app}]\n\
                limits: {client_keepalive_timeout: 0s}\n";
    refused_naming(
        yaml,
        &[
            "listeners[0].max_connections: must be at least 1",
            "listeners[0].max_connections_per_ip: must be at least 1",
            "listeners[0].read_buffer: must be between 1KiB and 1MiB",
            "limits.client_keepalive_timeout: must be at least 1s",
        ],
    );
}

/// What the kernel counts as the process's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Raise this process's open-file limit (and so its children's) to `want`, if
/// the hard limit allows; false if it does not.
fn open_files_at_least(want: u64) -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_max < want {
            return false;
        }
        limit.rlim_cur = limit.rlim_cur.max(want);
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_connections_take_under_40_kib_each() {
    const IDLE: usize = 5_000;
    if !open_files_at_least(2 * IDLE as u64 + 1_000) {
        eprintln!("SKIPPED: the open-file limit cannot be raised to hold {IDLE} connections");
        return;
    }
    let o = origin("o").await;
    let proxy = Proxy::start(&Config::single(&[o.addr])).await;
    // The first connections set up what every later one shares.
    drop(open_served(100, proxy.addr).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib(proxy.pid());
    let mut open = Vec::with_capacity(IDLE);
    for _ in 0..IDLE / 100 {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..100 {
            batch.spawn(open_served(1, proxy.addr));
        }
        open.extend(batch.join_all().await.into_iter().flatten());
    }
    let added = rss_kib(proxy.pid()) - before;
    let per_connection = added as f64 / IDLE as f64;
    eprintln!("{IDLE} idle connections: {added} KiB, {per_connection:.1} KiB each");
    assert!(
        per_connection < 40.0,
        "{per_connection:.1} KiB per idle connection"
    );
    assert_eq!(open.len(), IDLE);
}
