//! A raw HTTP/1.1 client: exact bytes out, exact head back (and, after a 101,
//! WebSocket frames).

use parapet::demo::websocket::{self, Frame};
use parapet::demo::wire::{self, Checksum, Head};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }
    /// For `/echo` responses: a header as the origin received it.
    pub fn echoed(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\n\n").next().unwrap_or("");
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }
}

/// One client connection, reusable for keep-alive.
pub struct Conn {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(Conn {
            read: BufReader::new(read),
            write,
        })
    }

    pub async fn send(&mut self, raw: &[u8]) -> std::io::Result<()> {
        self.write.write_all(raw).await
    }

    /// Read one response to a request made with `method`.
    pub async fn response(&mut self, method: &str) -> std::io::Result<Response> {
        let head = wire::read_head(&mut self.read)
            .await?
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"))?;
        let mut body = Vec::new();
        let framing = wire::response_framing(&head, method);
        wire::read_body(&mut self.read, framing, |b| body.extend_from_slice(b)).await?;
        Ok(Response { head, body })
    }

    /// Read a response body without keeping it: (status, bytes, checksum).
    pub async fn response_summary(
        &mut self,
        method: &str,
    ) -> std::io::Result<(u16, u64, Checksum)> {
        let head = wire::read_head(&mut self.read)
            .await?
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"))?;
        let mut sum = Checksum::default();
        let framing = wire::response_framing(&head, method);
        let n = wire::read_body(&mut self.read, framing, |b| sum.update(b)).await?;
        Ok((head.status(), n, sum))
    }

    /// `GET path` with extra header lines (each "Name: value").
    pub async fn get(&mut self, path: &str, headers: &[&str]) -> std::io::Result<Response> {
        self.send(request("GET", path, headers).as_bytes()).await?;
        self.response("GET").await
    }

    /// The next WebSocket frame, after a 101; `None` once the proxy has closed.
    pub async fn frame(&mut self) -> std::io::Result<Option<Frame>> {
        websocket::read_frame(&mut self.read).await
    }

    /// Whether the proxy closes this connection, sending nothing more, within 5 s.
    /// Once it has, it is done with every request of the connection, and their
    /// upstream connections are back in the pool.
    pub async fn closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), self.read.read(&mut byte));
        matches!(read.await, Ok(Ok(0)))
    }

    /// End this connection as a client does after its last request, and wait for
    /// the proxy to close its side (see `closed_by_peer`).
    pub async fn finish(mut self) -> bool {
        self.write.shutdown().await.is_ok() && self.closed_by_peer().await
    }
}

/// A request head with `Host: test` and extra header lines.
pub fn request(method: &str, path: &str, headers: &[&str]) -> String {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    for h in headers {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out
}

/// One GET on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    get_with(addr, path, &[]).await
}

pub async fn get_with(addr: SocketAddr, path: &str, headers: &[&str]) -> Response {
    let mut conn = Conn::open(addr).await.expect("connect");
    conn.get(path, headers).await.expect("response")
}

/// Send raw bytes on a fresh connection and read one response.
pub async fn raw(addr: SocketAddr, bytes: &[u8], method: &str) -> std::io::Result<Response> {
    let mut conn = Conn::open(addr).await?;
    conn.send(bytes).await?;
    conn.response(method).await
}

/// An HTTP/2 answer's status and whole body, giving its flow-control window back as
/// it is read.
pub async fn h2_answer(resp: http::Response<h2::RecvStream>) -> (u16, Vec<u8>) {
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (status, bytes)
}
