//! The admin listener (README, "Observe it"): `/healthz`, `/readyz`, `/status`,
//! `/metrics`, cache purges (`purge`) and the live page (`dashboard`); its section
//! is `config`. When `admin.token` is set, every endpoint needs
//! `Authorization: Bearer <token>` (compared in constant time); otherwise 401. The
//! dashboard's script and style sheet, which hold no data, are the exception.

pub(crate) mod config;
pub(crate) mod dashboard;
mod documents;
mod fleet_purges;
mod purge;

pub(crate) use fleet_purges::PurgeFollower;

use crate::runtime::Runtime;
use async_trait::async_trait;
use dashboard::Dashboard;
use documents::{NotReady, Status};
use http::{header, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde::Serialize;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub(crate) struct Admin {
    rt: Arc<Runtime>,
    token: Option<Vec<u8>>,
    dashboard: Dashboard,
}

impl Admin {
    pub(crate) fn new(rt: Arc<Runtime>, token: Option<String>, dashboard: Dashboard) -> Self {
        Admin {
            rt,
            token: token.map(|t| format!("Bearer {t}").into_bytes()),
            dashboard,
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
        // Lengths may differ (the comparison is then false), contents are compared
        // without an early exit.
        bool::from(given.ct_eq(expected))
    }

    /// 200 when every upstream has a healthy backend, else 503 naming those without.
    fn readyz(&self) -> Response<Vec<u8>> {
        match NotReady::of(&self.rt) {
            None => text(StatusCode::OK, "ready\n"),
            Some(doc) => json(StatusCode::SERVICE_UNAVAILABLE, &doc),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let authorized = self.authorized(session);
        let req = session.req_header();
        if req.method == Method::GET || req.method == Method::HEAD {
            if let Some(file) = Dashboard::file(req.uri.path(), authorized) {
                return file;
            }
        }
        if !authorized {
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
            "/status" => json(StatusCode::OK, &Status::of(&self.rt)),
            "/dashboard/data" => self.dashboard.data(&self.rt),
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

fn json(status: StatusCode, doc: &impl Serialize) -> Response<Vec<u8>> {
    // Serialising plain structs of strings and numbers cannot fail.
    let mut body = serde_json::to_vec(doc).unwrap_or_default();
    body.push(b'\n');
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
