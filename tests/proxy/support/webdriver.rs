//! A headless Chromium driven over the W3C WebDriver protocol (chromedriver's JSON
//! API on a loopback port), with the few commands the dashboard's test needs. The
//! protocol is plain HTTP/1.1 and JSON, so a small client here is enough.
//! `make test-deps` installs Debian's `chromium` and `chromium-driver`.

use super::{free_port, scratch_dir};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C protocol's key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    /// Chromium's own process: chromedriver leaves it running when it is killed.
    chromium: Option<u32>,
    dir: PathBuf,
}

impl Browser {
    /// Start chromedriver and a fresh headless Chromium with its own profile. Fails
    /// the test, saying what to install, when either is missing.
    pub async fn start() -> Browser {
        for needed in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(needed).exists(),
                "{needed} is missing: the dashboard's browser test needs Debian's chromium \
                 and chromium-driver (`make test-deps` installs them)"
            );
        }
        let dir = scratch_dir("browser");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={}", addr.port()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting chromedriver");
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            chromium: None,
            dir,
        };
        let up = super::eventually(Duration::from_secs(30), async || {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
        assert!(up, "chromedriver never listened on {addr}");
        let profile = browser.dir.join("profile");
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1400",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created = browser.call("POST", "/session", Some(caps)).await["value"].take();
        let pid = created["capabilities"]["goog:processID"].as_u64();
        browser.chromium = pid.and_then(|p| u32::try_from(p).ok());
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    pub async fn goto(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url })).await;
    }

    /// The element `css` selects (which must exist).
    async fn element(&self, css: &str) -> String {
        let found = self
            .command(
                "POST",
                "element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// Click `css`, as a user would.
    pub async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.command("POST", &format!("element/{id}/click"), json!({}))
            .await;
    }

    /// Type `text` into `css` (after what it holds), as a user would.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command("POST", &format!("element/{id}/clear"), json!({}))
            .await;
        self.command(
            "POST",
            &format!("element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The value of `script` run in the page (a function body: it `return`s).
    pub async fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The text of the element `css` selects, "" when none does.
    pub async fn text(&self, css: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.eval(&script).await.as_str().unwrap_or("").to_string()
    }

    pub async fn url(&self) -> String {
        let url = self.command("GET", "url", Value::Null).await;
        url.as_str().unwrap_or("").to_string()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let png = self.command("GET", "screenshot", Value::Null).await;
        base64_decode(png.as_str().expect("screenshot is base64"))
    }

    async fn command(&self, method: &str, what: &str, body: Value) -> Value {
        let path = format!("/session/{}/{what}", self.session);
        let body = (method == "POST").then_some(body);
        self.call(method, &path, body).await["value"].take()
    }

    /// One request to chromedriver; its JSON answer. A WebDriver error fails the test.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.addr,
            body.len()
        );
        let exchange = async {
            let mut tcp = tokio::net::TcpStream::connect(self.addr).await?;
            tcp.write_all(head.as_bytes()).await?;
            tcp.write_all(body.as_bytes()).await?;
            read_answer(&mut tcp).await
        };
        let body = tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .unwrap_or_else(|_| panic!("chromedriver did not answer {method} {path}"))
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}"));
        let value: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("chromedriver {method} {path}: {e}: {body}"));
        if let Some(error) = value["value"]["error"].as_str() {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value
    }
}

impl Drop for Browser {
    /// End the session (which closes Chromium), then stop chromedriver.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            use std::io::{Read, Write};
            let request = format!(
                "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.session, self.addr
            );
            if let Ok(mut tcp) =
                std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            {
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = tcp.write_all(request.as_bytes());
                let _ = tcp.read(&mut [0u8; 4096]);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        if let Some(pid) = self.chromium {
            // Only if the session's end did not close it; the pid is the one
            // chromedriver started for this test.
            if super::process::alive(pid) {
                super::process::signal(pid, "KILL");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An answer's body, by its `Content-Length`: chromedriver keeps the connection
/// open whatever the request says.
async fn read_answer(tcp: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = tcp.read(&mut buf).await?;
        if n == 0 {
            return Ok(String::from_utf8_lossy(&raw).into_owned());
        }
        raw.extend_from_slice(&buf[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        if let Some(length) = length {
            if raw.len() >= end + 4 + length {
                let body = &raw[end + 4..end + 4 + length];
                return Ok(String::from_utf8_lossy(body).into_owned());
            }
        }
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let sextets: Vec<u8> = text.bytes().filter_map(value).collect();
    let mut out = Vec::with_capacity(sextets.len() * 3 / 4);
    for chunk in sextets.chunks(4) {
        let mut n = 0u32;
        for (i, s) in chunk.iter().enumerate() {
            n |= u32::from(*s) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
