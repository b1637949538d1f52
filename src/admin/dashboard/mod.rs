//! `/dashboard` on the admin listener (README, "The dashboard"): a page for people,
//! served by Parapet itself with its script and style sheet (no external resource,
//! a Content-Security-Policy that allows only these same-origin files), which polls
//! `/dashboard/data` once a second and draws it.
//!
//! With `admin.token` set, the page's three files carry no data and are served to
//! anyone (the page answers 401 without the token, and shows its login form); the
//! data and the purge need `Authorization: Bearer <token>`, which the script sends
//! from the tab's sessionStorage, never in a URL.
//!
//! families  the registry read by name and label
//! history   the ring of the last five minutes and the service that fills it
//! data      the polled document

mod data;
mod families;
mod history;
#[cfg(test)]
mod tests;

use super::{finish, json};
use crate::runtime::Runtime;
use families::Families;
use history::{History, Sampler};
use http::{header, HeaderValue, Response, StatusCode};
use pingora::services::background::{background_service, GenBackgroundService};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// Only the page's own script, style sheet and data; no frames, forms go nowhere
/// but here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; form-action 'none'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What the page says about the running instance.
#[derive(Serialize)]
pub(crate) struct About {
    version: &'static str,
    config_file: String,
    /// Unix time, in seconds, of when the configuration was loaded.
    loaded_at: u64,
}

pub(crate) struct Dashboard {
    about: About,
    started: Instant,
    history: Arc<History>,
}

impl Dashboard {
    /// The dashboard of `rt`, whose configuration came from `config_file` just now,
    /// and the background service that samples its history.
    pub(crate) fn new(
        rt: Arc<Runtime>,
        config_file: String,
    ) -> (Dashboard, GenBackgroundService<Sampler>) {
        let history = Arc::new(History::default());
        let sampler = Sampler {
            rt,
            history: history.clone(),
        };
        let dashboard = Dashboard {
            about: About {
                version: env!("CARGO_PKG_VERSION"),
                config_file,
                loaded_at: history::unix_now(),
            },
            started: Instant::now(),
            history,
        };
        (dashboard, background_service("dashboard history", sampler))
    }

    /// The page, its script or its style sheet for a GET of `path`, if it names
    /// one; the page answers 401 when the token is needed and was not given.
    pub(crate) fn file(path: &str, authorized: bool) -> Option<Response<Vec<u8>>> {
        let (body, kind) = match path {
            "/dashboard" | "/dashboard/" => (PAGE, "text/html; charset=utf-8"),
            "/dashboard/app.js" => (SCRIPT, "text/javascript; charset=utf-8"),
            "/dashboard/style.css" => (STYLE, "text/css; charset=utf-8"),
            _ => return None,
        };
        let mut resp = Response::new(body.as_bytes().to_vec());
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
        if !authorized && kind.starts_with("text/html") {
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        Some(secured(finish(resp)))
    }

    /// `/dashboard/data`.
    pub(crate) fn data(&self, rt: &Runtime) -> Response<Vec<u8>> {
        let families = Families::gather(&rt.metrics);
        let uptime = self.started.elapsed().as_secs();
        let doc = data::Data::of(rt, &families, &self.about, uptime, self.history.samples());
        secured(json(StatusCode::OK, &doc))
    }
}

/// The headers every dashboard answer carries.
fn secured(mut resp: Response<Vec<u8>>) -> Response<Vec<u8>> {
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}
