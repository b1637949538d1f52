//! The admin listener (README, "Observe it"): `/healthz`, `/readyz`, `/status`,
//! `/metrics`, and cache purges (`purge`); its section is `config`.
//! When `admin.token` is set, every endpoint needs `Authorization: Bearer <token>`
//! (compared in constant time); otherwise 401.

pub mod config;
mod purge;

use crate::http_util::json::json_str;
use crate::runtime::Runtime;
use async_trait::async_trait;
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::io::Write;
use std::sync::Arc;

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
    fn token_comparison() {
        assert!(constant_time_eq(b"Bearer abc", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer abd", b"Bearer abc"));
        assert!(!constant_time_eq(b"Bearer ab", b"Bearer abc"));
    }
}
