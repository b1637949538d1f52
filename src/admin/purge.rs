//! Cache purges on the admin listener (README, "Observe it"):
//! - `PURGE /path?query` with the site's `Host`: drop what is stored for that URL;
//! - `POST /cache/purge` with `{"host": "...", "path": "..."}`, the same;
//! - `POST /cache/purge` with `{"tags": ["a", "b"]}`: every object stored with one
//!   of those tags in `Cache-Tag` or `Surrogate-Key`;
//! - `"soft": true` in either body marks the objects stale instead of dropping them,
//!   so stale-while-revalidate and stale-if-error still apply.
//!
//! 200 with `{"purged": N}` when something matched, 404 with `{"purged": 0}` when
//! nothing did, 400 for a body that is not one of these.

use super::documents::Purged;
use super::{json, text};
use crate::http_util::{self, path::EncodedSlash};
use crate::runtime::Runtime;
use http::{header, Method, Response, StatusCode};
use pingora::http::RequestHeader;
use pingora::protocols::http::ServerSession;
use serde::Deserialize;

/// The largest purge body read.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurgeBody {
    pub(crate) host: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) tags: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) soft: bool,
}

pub(super) fn is_purge(req: &RequestHeader) -> bool {
    req.method.as_str() == "PURGE"
        || (req.method == Method::POST && req.uri.path() == "/cache/purge")
}

pub(super) async fn answer(rt: &Runtime, session: &mut ServerSession) -> Response<Vec<u8>> {
    let req = session.req_header();
    let body = if req.method.as_str() == "PURGE" {
        let host = req.headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let path = req.uri.path_and_query().map(|p| p.as_str().to_string());
        PurgeBody {
            host: host.map(str::to_string),
            path,
            tags: None,
            soft: false,
        }
    } else {
        match read_body(session).await.and_then(|b| parse(&b)) {
            Ok(body) => body,
            Err(why) => return text(StatusCode::BAD_REQUEST, &format!("400 {why}\n")),
        }
    };
    let Some(purged) = apply(rt, &body).await else {
        let why = "400 give either host and path (starting with /), or tags\n";
        return text(StatusCode::BAD_REQUEST, why);
    };
    if let Some(store) = &rt.store {
        // Boxed: rare, and its state would otherwise size every admin request's future.
        Box::pin(super::fleet_purges::publish(store, &rt.name, &body)).await;
    }
    let status = match purged {
        0 => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    };
    json(status, &Purged { purged })
}

/// Purge what `body` names here; `None` when it names nothing purgeable.
pub(crate) async fn apply(rt: &Runtime, body: &PurgeBody) -> Option<usize> {
    Some(match (&body.tags, &body.host, &body.path) {
        (Some(tags), None, None) => match &rt.shield {
            Some(shield) => shield.purge_tags(tags, body.soft).await,
            None => 0,
        },
        (None, Some(host), Some(path)) if path.starts_with('/') => {
            purge_url(rt, host, path, body.soft).await
        }
        _ => return None,
    })
}

/// The URL on the caching route it belongs to, under that route's key rule. Its
/// path is normalised as a request's is before it is routed and keyed, so any
/// spelling of a stored URL purges it (one with a broken escape names nothing).
async fn purge_url(rt: &Runtime, host: &str, path: &str, soft: bool) -> usize {
    let Some(shield) = &rt.shield else {
        return 0;
    };
    let (only_path, query) = path.split_at(path.find('?').unwrap_or(path.len()));
    let normal = match http_util::path::normalize(only_path.as_bytes(), EncodedSlash::Keep) {
        Ok(None) => None,
        Ok(Some(normal)) => String::from_utf8(normal).ok().map(|p| p + query),
        Err(_) => return 0,
    };
    let path = normal.as_deref().unwrap_or(path);
    let route = rt
        .routes
        .find(host.as_bytes(), path.as_bytes())
        .and_then(|m| rt.route(m.route))
        .and_then(|r| r.policies.cache.as_ref());
    match route {
        Some(route) => shield.purge_url(host, path, route, soft).await,
        None => 0,
    }
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() <= MAX_BODY => {
                body.extend_from_slice(&chunk)
            }
            Ok(Some(_)) => return Err(format!("body over {MAX_BODY} bytes")),
            Ok(None) => return Ok(body),
            Err(e) => return Err(format!("reading the body: {e}")),
        }
    }
}

/// JSON is YAML: the configuration's parser reads it.
fn parse(body: &[u8]) -> Result<PurgeBody, String> {
    serde_yaml::from_slice(body).map_err(|e| format!("not a purge request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_name_a_url_or_tags() {
        let url = parse(br#"{"host":"a.test","path":"/x?y=1","soft":true}"#).unwrap();
        assert_eq!(url.host.as_deref(), Some("a.test"));
        assert_eq!(url.path.as_deref(), Some("/x?y=1"));
        assert!(url.soft && url.tags.is_none());
        let tags = parse(br#"{"tags":["a","b"]}"#).unwrap();
        assert_eq!(tags.tags, Some(vec!["a".into(), "b".into()]));
        assert!(!tags.soft);
        assert!(parse(br#"{"hots":"a"}"#).is_err());
        assert!(parse(b"[1,2]").is_err());
    }

    #[test]
    fn purges_are_recognised_by_method_and_path() {
        let req = |m: &str, p: &str| RequestHeader::build(m, p.as_bytes(), None).unwrap();
        assert!(is_purge(&req("PURGE", "/a")));
        assert!(is_purge(&req("POST", "/cache/purge")));
        assert!(!is_purge(&req("POST", "/status")));
        assert!(!is_purge(&req("GET", "/cache/purge")));
    }
}
