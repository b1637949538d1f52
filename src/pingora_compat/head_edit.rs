//! Editing Pingora's request and response heads as plain `http` header maps.
//!
//! Pingora 0.9.1 keeps a second map beside a head's header map, with each name's
//! original case (pingora-http `lib.rs`, `header_name_map`), and its
//! `insert_header` goes through both maps, copying the name and growing each map
//! on its own; neither can be reserved. For the eight or so fields Parapet adds to
//! every request and response that is a large share of a proxied request's
//! instructions (bench/RESULTS.md). So a head is taken apart into its `http` parts,
//! edited (a request with room reserved up front), and put back together without
//! the case map. Header names then go out in lower case (the usual ones, such as
//! `Host`, `Content-Type` and `Content-Length`, in title case), as Envoy and
//! HAProxy send them; HTTP field names are case-insensitive (RFC 9110 §5.1). The
//! request-target and the response's reason phrase are kept byte for byte.

use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};

/// Edit an upstream request's header map, with room for `adding` more fields.
pub(crate) fn edit_request(
    req: &mut RequestHeader,
    adding: usize,
    edit: impl FnOnce(&mut HeaderMap),
) -> pingora::Result<()> {
    let from_uri = req.uri.path_and_query().map(|p| p.as_str().as_bytes());
    // Absolute-form and other targets the URI does not reproduce.
    let verbatim = (from_uri != Some(req.raw_path())).then(|| req.raw_path().to_vec());
    let keep_open = req.send_end_stream() == Some(false);
    let placeholder = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(req, placeholder).into();
    parts.headers.reserve(adding);
    edit(&mut parts.headers);
    *req = RequestHeader::from(parts);
    if let Some(target) = verbatim {
        req.set_raw_path(&target)?;
    }
    if keep_open {
        req.set_send_end_stream(false);
    }
    Ok(())
}

/// Edit a response's header map. Nothing is reserved: the edit usually removes the
/// origin's `Connection` before it adds its two or three fields, so the map parsed
/// from the origin mostly has room already, and reserving first would grow it.
pub(crate) fn edit_response(resp: &mut ResponseHeader, edit: impl FnOnce(&mut HeaderMap)) {
    let reason = resp
        .get_reason_phrase()
        .filter(|r| Some(*r) != resp.status.canonical_reason())
        .map(str::to_owned);
    let placeholder = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: http::response::Parts = std::mem::replace(resp, placeholder).into();
    edit(&mut parts.headers);
    *resp = ResponseHeader::from(parts);
    if let Some(reason) = reason {
        // It was the response's reason phrase a moment ago: still valid.
        let _ = resp.set_reason_phrase(Some(&reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    #[test]
    fn a_request_keeps_its_target_and_gains_fields() {
        for target in ["/a/b?c=d", "http://example.com/x?y", "*"] {
            let method = if target == "*" { "OPTIONS" } else { "GET" };
            let mut req = RequestHeader::build(method, target.as_bytes(), None).unwrap();
            req.insert_header("X-Old", "1").unwrap();
            edit_request(&mut req, 1, |h| {
                h.insert(
                    HeaderName::from_static("x-new"),
                    HeaderValue::from_static("2"),
                );
            })
            .unwrap();
            assert_eq!(req.raw_path(), target.as_bytes());
            assert_eq!(req.method, method);
            assert_eq!(req.headers.get("x-old").unwrap(), "1");
            assert_eq!(req.headers.get("x-new").unwrap(), "2");
        }
    }

    #[test]
    fn a_response_keeps_its_status_and_reason() {
        let mut resp = ResponseHeader::build(299, None).unwrap();
        resp.set_reason_phrase(Some("Fine Anyway")).unwrap();
        edit_response(&mut resp, |h| {
            h.insert(
                HeaderName::from_static("via"),
                HeaderValue::from_static("1.1 p"),
            );
        });
        assert_eq!(resp.status, 299);
        assert_eq!(resp.get_reason_phrase(), Some("Fine Anyway"));
        assert_eq!(resp.headers.get("via").unwrap(), "1.1 p");
        let mut resp = ResponseHeader::build(404, None).unwrap();
        edit_response(&mut resp, |_| {});
        assert_eq!(resp.get_reason_phrase(), Some("Not Found"));
    }
}
