//! The admin listener (SPEC §5): `/healthz`, `/readyz`, `/status`, `/metrics`, and
//! cache purges (`purge`).
//! When `admin.token` is set, every endpoint needs `Authorization: Bearer <token>`
//! (compared in constant time); otherwise 401.

mod purge;

use crate::config::ConfigErrors;
use crate::http_util::json::json_str;
use crate::listener::Listener;
use crate::runtime::Runtime;
use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

/// The `admin` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub address: String,
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

/// The admin listener's address and token.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminSettings {
    pub address: SocketAddr,
    pub token: Option<String>,
}

impl AdminSettings {
    /// `listeners` are the proxy's: the admin listener may not share one's address.
    pub fn from_config(
        config: AdminConfig,
        listeners: &[Listener],
        errors: &mut ConfigErrors,
    ) -> Option<AdminSettings> {
        let Ok(address) = config.address.parse::<SocketAddr>() else {
            let msg = format!("'{}' is not an IP:port address", config.address);
            errors.push("admin.address", msg);
            return None;
        };
        if listeners.iter().any(|l| l.address == address) {
            errors.push(
                "admin.address",
                format!("'{address}' is already a proxy listener"),
            );
        }
        match config.token.as_deref() {
            Some(t) if t.trim().is_empty() => errors.push(
                "admin.token",
                "must not be empty (leave it out to need no token on a loopback address)",
            ),
            // Purge and status must not be open to the network by default.
            None if !address.ip().to_canonical().is_loopback() => errors.push(
                "admin.token",
                format!(
                    "required when admin.address ({address}) is not a loopback address: \
                     set admin.token, or bind admin.address to 127.0.0.1"
                ),
            ),
            _ => {}
        }
        Some(AdminSettings {
            address,
            token: config.token,
        })
    }
}

pub struct Admin {
    rt: Arc<Runtime>,
    token: Option<Vec<u8>>,
}

impl Admin {
    pub fn new(rt: Arc<Runtime>, token: Option<String>) -> Self {
        Admin {
            rt,
            token: token.map(|t| format!("Bearer {t}").into_bytes()),
        }
    }

    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let given = session
            .req_header()
            .headers
            .get(header::AUTHORIZATION)
            .map_or(&[][..], |v| v.as_bytes());
        constant_time_eq(given, expected)
    }

    /// 200 when every upstream has a healthy backend, else 503 naming those without.
    fn readyz(&self) -> Response<Vec<u8>> {
        let down: Vec<&str> = self
            .rt
            .upstreams
            .iter()
            .filter(|u| !(0..u.len()).any(|i| u.is_healthy(i)))
            .map(|u| u.name.as_str())
            .collect();
        if down.is_empty() {
            return text(StatusCode::OK, "ready\n");
        }
        let mut body = b"{\"ready\":false,\"upstreams_without_healthy_backends\":[".to_vec();
        for (i, name) in down.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            json_str(&mut body, name.as_bytes());
        }
        body.extend_from_slice(b"]}\n");
        json(StatusCode::SERVICE_UNAVAILABLE, body)
    }

    fn status(&self) -> Response<Vec<u8>> {
        let mut body = b"{\"upstreams\":[".to_vec();
        for (n, u) in self.rt.upstreams.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(b"{\"name\":");
            json_str(&mut body, u.name.as_bytes());
            body.extend_from_slice(b",\"backends\":[");
            for i in 0..u.len() {
                let state = u.state(i);
                if i > 0 {
                    body.push(b',');
                }
                let _ = write!(
                    body,
                    "{{\"address\":\"{}\",\"healthy\":{},",
                    u.address(i),
                    u.is_healthy(i)
                );
                // Only backends of an upstream with a `circuit_breaker` have a circuit.
                if let Some(circuit) = state.circuit() {
                    let _ = write!(body, "\"circuit\":\"{}\",", circuit.as_str());
                }
                let _ = write!(body, "\"in_flight\":{},\"last_error\":", state.in_flight());
                match state.last_error() {
                    Some(e) => json_str(&mut body, e.as_bytes()),
                    None => body.extend_from_slice(b"null"),
                }
                body.push(b'}');
            }
            body.extend_from_slice(b"]}");
        }
        body.extend_from_slice(b"]");
        if let Some(shield) = &self.rt.shield {
            let store = shield.storage();
            let _ = write!(
                body,
                ",\"cache\":{{\"size_bytes\":{},\"objects\":{}}}",
                store.size_bytes(),
                store.objects()
            );
        }
        body.extend_from_slice(b"}\n");
        json(StatusCode::OK, body)
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if !self.authorized(session) {
            let mut resp = text(StatusCode::UNAUTHORIZED, "401 unauthorized\n");
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
        let req = session.req_header();
        if purge::is_purge(req) {
            return purge::answer(&self.rt, session).await;
        }
        if req.method != Method::GET && req.method != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
        }
        match req.uri.path() {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" => self.readyz(),
            "/status" => self.status(),
            "/metrics" => {
                let mut resp = Response::new(self.rt.metrics.render());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                finish(resp)
            }
            _ => text(StatusCode::NOT_FOUND, "404 not found\n"),
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    let mut resp = Response::new(body.as_bytes().to_vec());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    finish(resp)
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    finish(resp)
}

fn finish(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    let len = resp.body().len();
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, len.into());
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Equal-length inputs are compared without an early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_validated_with_field_paths() {
        let proxy = [Listener::cleartext("127.0.0.1:8080".parse().unwrap())];
        let check = |address: &str, token: Option<&str>| {
            let config = AdminConfig {
                address: address.into(),
                token: token.map(str::to_string),
            };
            let mut errors = ConfigErrors::default();
            let got = AdminSettings::from_config(config, &proxy, &mut errors);
            let paths = errors.paths();
            (got.map(|a| a.address.to_string()), paths)
        };
        assert_eq!(
            check("127.0.0.1:9901", Some("t")),
            (Some("127.0.0.1:9901".into()), vec![])
        );
        assert_eq!(
            check("localhost:9901", None),
            (None, vec!["admin.address".into()])
        );
        assert_eq!(check("127.0.0.1:8080", None).1, ["admin.address"]);
        assert_eq!(check("127.0.0.1:9901", Some(" ")).1, ["admin.token"]);
        // Off loopback, a token is required.
        for open in [
            "0.0.0.0:9901",
            "[::]:9901",
            "10.0.0.1:9901",
            "[::ffff:10.0.0.1]:1",
        ] {
            assert_eq!(check(open, None).1, ["admin.token"], "{open}");
            assert!(check(open, Some("t")).1.is_empty(), "{open}");
        }
        for local in [
            "127.0.0.1:9901",
            "127.9.9.9:9901",
            "[::1]:9901",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(check(local, None).1.is_empty(), "{local}");
        }
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
    }
}
