//! The bench's constant-rate client: `open_loop ADDR RATE SECONDS CONNECTIONS`.
//!
//! wrk sends the next request as soon as the last answer arrives, so it measures
//! latency at whatever rate the server sustains. `make bench` also wants latency at a
//! fixed rate, which needs an open-loop client: request k is due at start + k/RATE
//! and goes out on any idle keep-alive connection (of CONNECTIONS), and its latency
//! is counted from when it was due, not from when it was sent, so a stalled server is
//! charged for the requests it delayed (no coordinated omission). One thread, epoll,
//! and a timerfd for microsecond send times, so the client costs little on the core
//! it shares with the origin. The first second is warm-up and is not counted.
//!
//! Prints one line: `sent=N errors=N rate=R p50=MS p90=MS p99=MS p999=MS max=MS`.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const WARM_UP: Duration = Duration::from_secs(1);
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
const TIMER: u64 = u64::MAX;

struct Conn {
    stream: TcpStream,
    /// When the request in flight was due.
    due: Option<Instant>,
    buf: Vec<u8>,
}

struct Client {
    addr: String,
    epoll: i32,
    conns: Vec<Conn>,
    idle: Vec<usize>,
    latencies: Vec<u32>,
    errors: usize,
    counted_from: Instant,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, rate, seconds, connections] = &args[..] else {
        eprintln!("usage: open_loop ADDR RATE SECONDS CONNECTIONS");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("RATE: requests per second");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let connections: usize = connections.parse().expect("CONNECTIONS");
    let interval = Duration::from_secs_f64(1.0 / rate);

    // SAFETY: plain system calls on descriptors this process owns.
    let (epoll, timer) = unsafe {
        let epoll = libc::epoll_create1(libc::EPOLL_CLOEXEC);
        let timer = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC);
        assert!(epoll >= 0 && timer >= 0, "epoll/timerfd");
        watch(epoll, timer, TIMER);
        (epoll, timer)
    };
    let start = Instant::now() + Duration::from_millis(100);
    let mut client = Client {
        addr: addr.clone(),
        epoll,
        conns: Vec::new(),
        idle: Vec::new(),
        latencies: Vec::new(),
        errors: 0,
        counted_from: start + WARM_UP,
    };
    for i in 0..connections {
        let stream = client.connect(i);
        client.conns.push(Conn {
            stream,
            due: None,
            buf: Vec::with_capacity(4096),
        });
        client.idle.push(i);
    }
    let end = start + WARM_UP + Duration::from_secs_f64(seconds);
    let mut next_due = start;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        let now = Instant::now();
        while next_due <= now && next_due < end {
            let Some(i) = client.idle.pop() else { break };
            client.send(i, next_due);
            next_due += interval;
        }
        let in_flight = client.idle.len() < connections;
        if next_due >= end && !in_flight {
            break;
        }
        if next_due < end && !client.idle.is_empty() {
            arm(timer, next_due.saturating_duration_since(Instant::now()));
        }
        // SAFETY: `events` outlives the call and its length is passed.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, 1000) };
        for event in &events[..n.max(0) as usize] {
            match event.u64 {
                TIMER => {
                    let mut expirations = [0u8; 8];
                    // SAFETY: reads 8 bytes into an 8-byte buffer.
                    unsafe { libc::read(timer, expirations.as_mut_ptr().cast(), 8) };
                }
                i => client.readable(i as usize),
            }
        }
        if Instant::now() > end + Duration::from_secs(10) {
            client.errors += connections - client.idle.len();
            break;
        }
    }
    report(&mut client.latencies, client.errors, seconds);
}

impl Client {
    fn connect(&self, i: usize) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream.set_nonblocking(true).expect("nonblocking");
        // SAFETY: registering a descriptor this process owns.
        unsafe { watch(self.epoll, stream.as_raw_fd(), i as u64) };
        stream
    }

    fn send(&mut self, i: usize, due: Instant) {
        let conn = &mut self.conns[i];
        conn.due = Some(due);
        conn.buf.clear();
        // A 33-byte request into an empty socket buffer is written whole.
        if conn.stream.write_all(REQUEST).is_err() {
            self.failed(i);
        }
    }

    fn readable(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let mut chunk = [0u8; 4096];
        loop {
            match conn.stream.read(&mut chunk) {
                Ok(0) => return self.failed(i),
                Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return self.failed(i),
            }
        }
        let Some(total) = response_length(&conn.buf) else {
            return;
        };
        if conn.buf.len() < total {
            return;
        }
        let ok = conn.buf.starts_with(b"HTTP/1.1 200");
        let Some(due) = conn.due.take() else {
            return self.failed(i);
        };
        if !ok {
            return self.failed(i);
        }
        if due >= self.counted_from {
            let micros = due.elapsed().as_micros().min(u32::MAX as u128) as u32;
            self.latencies.push(micros);
        }
        self.idle.push(i);
    }

    /// Count the error and replace the connection.
    fn failed(&mut self, i: usize) {
        self.errors += 1;
        let fresh = self.connect(i);
        let conn = &mut self.conns[i];
        conn.stream = fresh;
        conn.due = None;
        conn.buf.clear();
        self.idle.push(i);
    }
}

/// Head plus Content-Length, once the head is complete.
fn response_length(data: &[u8]) -> Option<usize> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&data[..head_end]).ok()?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    })?;
    Some(head_end + length)
}

/// # Safety
/// `epoll` and `fd` must be open descriptors.
unsafe fn watch(epoll: i32, fd: i32, token: u64) {
    let mut event = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event);
}

/// Fire the timer once, `after` from now (at least 1 ns: zero would disarm it).
fn arm(timer: i32, after: Duration) {
    let after = after.max(Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: after.as_secs() as libc::time_t,
            tv_nsec: after.subsec_nanos() as libc::c_long,
        },
    };
    // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
    unsafe { libc::timerfd_settime(timer, 0, &spec, std::ptr::null_mut()) };
}

fn report(latencies: &mut [u32], errors: usize, seconds: f64) {
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |us| *us as f64 / 1000.0)
    };
    println!(
        "sent={} errors={} rate={:.0} p50={:.3} p90={:.3} p99={:.3} p999={:.3} max={:.3}",
        latencies.len(),
        errors,
        latencies.len() as f64 / seconds,
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}
