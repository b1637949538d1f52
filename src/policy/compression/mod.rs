//! Response compression at the edge, per route (README: Compression at the edge), done
//! by Pingora's compression module: it drops `Content-Length`, weakens `ETag`, adds
//! `Vary: Accept-Encoding` and never compresses an answer that already has a
//! `Content-Encoding`. This policy decides what the module is told:
//!
//! - which coding, from the client's `Accept-Encoding`: the one it prefers by
//!   q-value among the route's `algorithms` (ties in the route's order), never one
//!   it refused with `q=0` (the module alone would take the client's first token,
//!   whatever its q);
//! - whether an answer qualifies: a `types` media type, and `min_size` bytes or an
//!   unknown length; never a 206 (its range is of the uncompressed body).
//!
//! On a caching route the cache stores the origin's answer as it came, one copy,
//! and each answer is compressed on its way out (the module runs after the cache).

use crate::config::units::Size;
use crate::config::{field, ConfigErrors};
use crate::http_util::{content_length, tokens};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use pingora::protocols::http::compression::Algorithm;
use serde::Deserialize;

mod module;
pub(crate) use module::{settle, start, stop};

/// `compression` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct CompressionConfig {
    pub(crate) algorithms: Vec<String>,
    pub(crate) min_size: Size,
    pub(crate) types: Vec<String>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            algorithms: ["gzip", "zstd"].map(String::from).to_vec(),
            min_size: Size(1024),
            types: [
                "text/html",
                "text/plain",
                "text/css",
                "text/javascript",
                "application/javascript",
                "application/json",
                "application/xml",
                "image/svg+xml",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A route's compression.
#[derive(Debug, Clone)]
pub(crate) struct Compression {
    algorithms: Vec<Algorithm>,
    min_size: u64,
    /// Lowercased media types; `type/*` covers a whole type.
    types: Vec<String>,
}

impl Compression {
    /// `path` is the route's.
    pub(crate) fn from_config(
        config: CompressionConfig,
        path: &str,
        errors: &mut ConfigErrors,
    ) -> Option<Compression> {
        let at = field(path, "compression");
        let mut algorithms = Vec::new();
        for (i, name) in config.algorithms.iter().enumerate() {
            match name.as_str() {
                "gzip" => algorithms.push(Algorithm::Gzip),
                "zstd" => algorithms.push(Algorithm::Zstd),
                "br" => algorithms.push(Algorithm::Brotli),
                other => errors.push(
                    format!("{at}.algorithms[{i}]"),
                    format!("'{other}' is not one of gzip, zstd, br"),
                ),
            }
        }
        if config.algorithms.is_empty() {
            errors.push(field(&at, "algorithms"), "at least one is required");
        }
        let types: Vec<String> = config
            .types
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        for (i, t) in types.iter().enumerate() {
            if t.split_once('/')
                .is_none_or(|(a, b)| a.is_empty() || b.is_empty())
            {
                errors.push(
                    format!("{at}.types[{i}]"),
                    format!("'{t}' is not a media type like text/html"),
                );
            }
        }
        (algorithms.len() == config.algorithms.len() && !algorithms.is_empty()).then_some(
            Compression {
                algorithms,
                min_size: config.min_size.0,
                types,
            },
        )
    }

    /// The coding to answer this request with, if any. `accept_encoding` are the
    /// request's `Accept-Encoding` field lines: one list (RFC 9110 §5.3).
    pub(crate) fn negotiate<'a>(
        &self,
        accept_encoding: impl IntoIterator<Item = &'a HeaderValue>,
    ) -> Option<Algorithm> {
        let items = accept_encoding
            .into_iter()
            .filter_map(|line| line.to_str().ok())
            .flat_map(|line| tokens(line.as_bytes()))
            // Parts of a `str` cut at ASCII bytes: still UTF-8.
            .filter_map(|item| std::str::from_utf8(item).ok());
        let mut best: Option<(f32, usize)> = None;
        for item in items {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let Some(rank) = self
                .algorithms
                .iter()
                .position(|a| a.as_str().eq_ignore_ascii_case(token))
            else {
                continue;
            };
            let better = best.is_none_or(|(bq, brank)| q > bq || (q == bq && rank < brank));
            if q > 0.0 && better {
                best = Some((q, rank));
            }
        }
        best.map(|(_, rank)| self.algorithms[rank])
    }

    /// Whether this answer is worth compressing.
    pub(crate) fn applies_to(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status == StatusCode::PARTIAL_CONTENT {
            return false;
        }
        if content_length(headers).is_some_and(|n| n < self.min_size) {
            return false;
        }
        let Some(media) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let media = media
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.types.iter().any(|t| match t.strip_suffix("/*") {
            Some(family) => media.split('/').next() == Some(family),
            None => *t == media,
        })
    }
}

/// The level each coding is used at: moderate, as a proxy compressing on every
/// request should (nginx's gzip default is 1; these are each library's usual).
pub(crate) fn level(algorithm: Algorithm) -> u32 {
    match algorithm {
        Algorithm::Gzip => 5,
        Algorithm::Brotli => 4,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compression(yaml: &str) -> (Option<Compression>, Vec<String>) {
        let config: CompressionConfig = serde_yaml::from_str(yaml).unwrap();
        let mut errors = ConfigErrors::default();
        let c = Compression::from_config(config, "routes[0]", &mut errors);
        (c, errors.paths())
    }

    fn ae(v: &'static str) -> Option<HeaderValue> {
        Some(HeaderValue::from_static(v))
    }

    #[test]
    fn the_client_preference_among_ours_wins_and_q0_refuses() {
        let (c, _) = compression("{}");
        let c = c.unwrap();
        assert_eq!(c.negotiate(ae("gzip").as_ref()), Some(Algorithm::Gzip));
        assert_eq!(
            c.negotiate(ae("gzip, deflate, br, zstd").as_ref()),
            Some(Algorithm::Gzip)
        );
        assert_eq!(
            c.negotiate(ae("gzip;q=0.5, zstd;q=0.9").as_ref()),
            Some(Algorithm::Zstd)
        );
        assert_eq!(
            c.negotiate(ae("gzip;q=0, br, zstd").as_ref()),
            Some(Algorithm::Zstd)
        );
        assert_eq!(c.negotiate(ae("gzip;q=0").as_ref()), None);
        assert_eq!(c.negotiate(ae("br, deflate, identity").as_ref()), None);
        assert_eq!(c.negotiate(None), None);
        // Several lines are one list.
        let mut lines = http::HeaderMap::new();
        lines.append(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        lines.append(
            http::header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0.5, br"),
        );
        assert_eq!(
            c.negotiate(lines.get_all(http::header::ACCEPT_ENCODING)),
            Some(Algorithm::Gzip)
        );
        let (only_zstd, _) = compression("{algorithms: [zstd]}");
        let only_zstd = only_zstd.unwrap();
        assert_eq!(
            only_zstd.negotiate(ae("gzip, zstd").as_ref()),
            Some(Algorithm::Zstd)
        );
    }

    #[test]
    fn answers_qualify_by_type_size_and_status() {
        let (c, _) = compression("{min_size: 100, types: [text/html, 'application/*']}");
        let c = c.unwrap();
        let qualifies = |status: u16, ct: &'static str, len: Option<u64>| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
            if let Some(n) = len {
                headers.insert(http::header::CONTENT_LENGTH, n.into());
            }
            c.applies_to(StatusCode::from_u16(status).unwrap(), &headers)
        };
        assert!(qualifies(200, "text/html; charset=utf-8", Some(100)));
        assert!(qualifies(200, "application/json", None));
        assert!(!qualifies(200, "text/html", Some(99)));
        assert!(!qualifies(200, "image/png", Some(5000)));
        assert!(!qualifies(206, "text/html", Some(5000)));
    }

    #[test]
    fn bad_settings_are_named() {
        let (c, problems) = compression("{algorithms: [gzip, lzma, br], types: [html]}");
        assert!(c.is_none());
        assert_eq!(
            problems,
            [
                "routes[0].compression.algorithms[1]",
                "routes[0].compression.types[0]"
            ]
        );
    }
}
