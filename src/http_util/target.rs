//! The request target as the origin will act on it, settled once before routing:
//! its path in normal form (`path`), the host of an absolute-form target as the
//! host (RFC 9112 §3.2.2) and that host in one spelling (`host`). The head is
//! rewritten in place, so routing, policies, the cache key and the upstream
//! request all read the same target and `Host`.

use super::host;
use super::path::{self, EncodedSlash};
use http::header::HOST;
use http::HeaderValue;
use pingora::http::authority::{raw_target_authority, RawTargetAuthority};
use pingora::http::RequestHeader;

/// Why a target was refused (each answered 400): the `refused_by` of the log.
pub(crate) type Refusal = &'static str;

/// Rewrite `req` to its normal target and `Host`; nothing is touched (or
/// allocated) when both are normal already.
///
/// An absolute-form target (`GET http://h/p`) becomes origin-form (`/p`) with its
/// authority as `Host`: Pingora keeps only its path in the URI and would write the
/// absolute form upstream (pingora-http lib.rs `parse_request_target`, pingora-core
/// v1/client.rs `http_req_header_to_wire` writes `raw_path`). The ingress has
/// already refused a `Host` that differs from it (pingora-core http/authority.rs).
/// An HTTP/2 `:authority` that needs a new spelling is moved to `Host` the same way.
/// An authority-form CONNECT target and `OPTIONS *` are kept as they are.
pub(crate) fn normalize(req: &mut RequestHeader, slashes: EncodedSlash) -> Result<(), Refusal> {
    let raw = req.raw_path();
    // Authority-form (`CONNECT host:443`) names no resource. (Pingora answers CONNECT
    // 405 unless `allow_connect_method_proxying`, pingora-proxy lib.rs; should that
    // change, a CONNECT with a path is routed by it, so it is normalised like any.)
    if req.method == http::Method::CONNECT && raw.first() != Some(&b'/') {
        return Ok(());
    }
    let (absolute, path_and_query) = match raw_target_authority(raw) {
        RawTargetAuthority::Absolute {
            authority,
            path_and_query,
            ..
        } => (Some(authority), path_and_query),
        // Ambiguous targets were refused at ingress (pingora-core http/authority.rs).
        RawTargetAuthority::None | RawTargetAuthority::AmbiguousAuthority => (None, raw),
    };
    let (path, query) = match path_and_query.iter().position(|b| *b == b'?') {
        Some(at) => path_and_query.split_at(at),
        None => (path_and_query, &[][..]),
    };
    // A broken escape or a refused encoded slash: the same 400.
    let new_path = path::normalize(path, slashes).map_err(|_| "path")?;
    let uri_authority = req.uri.authority().map(|a| a.as_str().as_bytes());
    let new_host = match (absolute, uri_authority) {
        (Some(authority), _) if !host::is_valid(authority) => return Err("host"),
        (Some(authority), _) => Some(host::normalized(authority).unwrap_or(authority.to_vec())),
        // HTTP/2: `:authority` is in the URI, which a new target replaces.
        (None, Some(authority)) => {
            host::normalized(authority).or_else(|| new_path.is_some().then(|| authority.to_vec()))
        }
        (None, None) => req
            .headers
            .get(HOST)
            .and_then(|h| host::normalized(h.as_bytes())),
    };
    if new_path.is_none() && absolute.is_none() && (new_host.is_none() || uri_authority.is_none()) {
        return set_host(req, new_host);
    }
    // Origin-form needs at least `/` (RFC 9112 §3.2.1): `http://h?q` is `/?q`.
    let path = new_path.as_deref().unwrap_or(path);
    let root: &[u8] = if path.is_empty() { b"/" } else { b"" };
    let target = [root, path, query].concat();
    // `set_raw_path` rather than `set_uri`: it also keeps a target that is not
    // UTF-8 byte for byte; for origin-form it drops the stored raw target as
    // `set_uri` does (pingora-http lib.rs), so the upstream gets this one.
    req.set_raw_path(&target).map_err(|_| "path")?;
    set_host(req, new_host)
}

fn set_host(req: &mut RequestHeader, host: Option<Vec<u8>>) -> Result<(), Refusal> {
    let Some(host) = host else {
        return Ok(());
    };
    let value = HeaderValue::from_bytes(&host).map_err(|_| "host")?;
    req.insert_header(HOST, value).map_err(|_| "host")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(target: &str, host: Option<&str>) -> (String, Option<String>, Option<String>) {
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        if let Some(host) = host {
            req.insert_header("Host", host).unwrap();
        }
        normalize(&mut req, EncodedSlash::Keep).unwrap();
        let raw = String::from_utf8(req.raw_path().to_vec()).unwrap();
        let host = req
            .headers
            .get(HOST)
            .map(|h| h.to_str().unwrap().to_string());
        let authority = req.uri.authority().map(|a| a.to_string());
        (raw, host, authority)
    }

    #[test]
    fn the_path_is_normalised_and_the_query_kept() {
        let (raw, host, _) = normal("/a//b/../c?q=%61&r=/../", Some("h"));
        assert_eq!(
            (raw.as_str(), host.as_deref()),
            ("/a/c?q=%61&r=/../", Some("h"))
        );
        assert_eq!(normal("/a?", None).0, "/a?");
        assert_eq!(normal("*", Some("h")).0, "*");
    }

    #[test]
    fn an_absolute_form_target_becomes_origin_form_with_its_host() {
        for (target, origin_form, host) in [
            (
                "http://Admin.Example.COM./secret",
                "/secret",
                "admin.example.com",
            ),
            ("http://a.test:8080/x/../y?z", "/y?z", "a.test:8080"),
            ("http://a.test?q=1", "/?q=1", "a.test"),
            ("http://a.test", "/", "a.test"),
        ] {
            let (raw, got, authority) = normal(target, None);
            assert_eq!((raw.as_str(), got.as_deref()), (origin_form, Some(host)));
            assert_eq!(authority, None);
        }
    }

    #[test]
    fn host_gets_one_spelling() {
        assert_eq!(
            normal("/", Some("WWW.Example.COM.")).1.as_deref(),
            Some("www.example.com")
        );
        assert_eq!(
            normal("/", Some("A.test:81")).1.as_deref(),
            Some("a.test:81")
        );
        assert_eq!(normal("/", None).1, None);
    }

    #[test]
    fn an_http2_authority_moves_to_host_only_when_the_target_changes() {
        let h2 = |uri: &'static str| {
            let mut req = RequestHeader::build("GET", b"/", None).unwrap();
            req.set_uri(http::Uri::from_static(uri));
            normalize(&mut req, EncodedSlash::Keep).unwrap();
            let host = req
                .headers
                .get(HOST)
                .map(|h| h.to_str().unwrap().to_string());
            (req.uri.to_string(), host)
        };
        assert_eq!(h2("https://a.test/x"), ("https://a.test/x".into(), None));
        assert_eq!(h2("https://A.test/x"), ("/x".into(), Some("a.test".into())));
        assert_eq!(
            h2("https://a.test//x"),
            ("/x".into(), Some("a.test".into()))
        );
    }

    #[test]
    fn bad_targets_are_refused_and_connect_is_left_alone() {
        let mut req = RequestHeader::build("GET", b"/a%zz", None).unwrap();
        assert_eq!(normalize(&mut req, EncodedSlash::Keep), Err("path"));
        let mut req = RequestHeader::build("GET", b"/a%2f", None).unwrap();
        assert_eq!(normalize(&mut req, EncodedSlash::Reject), Err("path"));
        let mut req = RequestHeader::build("CONNECT", b"a.test:443", None).unwrap();
        assert_eq!(normalize(&mut req, EncodedSlash::Reject), Ok(()));
        assert_eq!(req.raw_path(), b"a.test:443");
        let mut req = RequestHeader::build("CONNECT", b"//api/x", None).unwrap();
        assert_eq!(normalize(&mut req, EncodedSlash::Keep), Ok(()));
        assert_eq!(req.raw_path(), b"/api/x");
    }
}
