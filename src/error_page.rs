//! The responses Parapet itself produces (README: What Parapet answers itself): which
//! status a failure becomes, and its short body — JSON when the client accepts
//! `application/json`, plain text otherwise — carrying the request ID and never a
//! backend address or an internal error string.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType};

/// Seconds a client should wait after a 503 (no healthy backend) before trying again.
pub(crate) const RETRY_AFTER_SECS: &str = "5";

/// The status a failure becomes; 0 means the client is gone and gets nothing.
pub(crate) fn status_for(e: &Error) -> u16 {
    use ErrorType::*;
    match (e.etype(), e.esource()) {
        (HTTPStatus(code), _) => *code,
        // A client that stopped reading (`limits.client_send_timeout`) can be told
        // nothing more, as one that went away.
        (ReadError | WriteError | WriteTimedout | ConnectionClosed, ErrorSource::Downstream) => 0,
        (ReadTimedout, ErrorSource::Downstream) => 408,
        (_, ErrorSource::Downstream) => 400,
        (ConnectTimedout | ReadTimedout | WriteTimedout | TLSHandshakeTimedout, _) => 504,
        (_, ErrorSource::Upstream) => 502,
        _ => 500,
    }
}

/// The short, lowercase phrases the README documents for Parapet's own answers
/// (`"error":"bad gateway"`); `http::StatusCode`'s canonical phrases are title case and
/// spell some differently ("Internal Server Error"), so they are not used here.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "bad request",
        403 => "forbidden",
        404 => "not found",
        408 => "request timeout",
        413 => "payload too large",
        429 => "too many requests",
        431 => "request header fields too large",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        508 => "loop detected",
        _ => "internal error",
    }
}

fn wants_json(session: &Session) -> bool {
    session
        .req_header()
        .headers
        // Every `Accept` line: one list (RFC 9110 §5.3).
        .get_all(header::ACCEPT)
        .iter()
        .any(|a| a.as_bytes().windows(16).any(|w| w == b"application/json"))
}

fn body(status: u16, request_id: &HeaderValue, json: bool) -> Bytes {
    let id = request_id.as_bytes();
    let reason = reason(status);
    let mut buf = BytesMut::with_capacity(64 + id.len());
    // A status out of 100..=999 is a bug upstream of here; it is answered as a 500.
    let code =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    let code = code.as_str();
    if json {
        // The request ID is [A-Za-z0-9._:-] (accepted or generated): no escaping needed.
        buf.put_slice(b"{\"status\":");
        buf.put_slice(code.as_bytes());
        buf.put_slice(b",\"error\":\"");
        buf.put_slice(reason.as_bytes());
        buf.put_slice(b"\",\"request_id\":\"");
        buf.put_slice(id);
        buf.put_slice(b"\"}\n");
    } else {
        buf.put_slice(code.as_bytes());
        buf.put_slice(b" ");
        buf.put_slice(reason.as_bytes());
        buf.put_slice(b"\nrequest_id: ");
        buf.put_slice(id);
        buf.put_slice(b"\n");
    }
    buf.freeze()
}

/// Write a complete error response. The caller has checked that nothing was sent yet.
/// `extra` are more fields (a caching route's `Cache-Status`, a limited route's
/// `RateLimit`); a 503's or 429's `Retry-After` given there wins over the default.
pub(crate) async fn send(
    session: &mut Session,
    status: u16,
    request_id: &HeaderValue,
    request_id_header: &HeaderName,
    extra: Vec<(HeaderName, HeaderValue)>,
) -> pingora::Result<()> {
    let json = wants_json(session);
    let body = body(status, request_id, json);
    let mut resp = ResponseHeader::build(status, Some(6))?;
    let content_type = match json {
        true => "application/json",
        false => "text/plain; charset=utf-8",
    };
    resp.insert_header(header::CONTENT_TYPE, content_type)?;
    resp.insert_header(header::CONTENT_LENGTH, body.len())?;
    resp.insert_header(header::CACHE_CONTROL, "no-store")?;
    resp.insert_header(request_id_header.clone(), request_id.clone())?;
    if status == 503 {
        resp.insert_header(header::RETRY_AFTER, RETRY_AFTER_SECS)?;
    }
    for (name, value) in extra {
        resp.insert_header(name, value)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_statuses() {
        let up = |t| Error::new_up(t);
        assert_eq!(status_for(&up(ErrorType::ConnectRefused)), 502);
        assert_eq!(status_for(&up(ErrorType::ConnectionClosed)), 502);
        assert_eq!(status_for(&up(ErrorType::ConnectTimedout)), 504);
        assert_eq!(status_for(&up(ErrorType::ReadTimedout)), 504);
        assert_eq!(status_for(&Error::new_down(ErrorType::ConnectionClosed)), 0);
        assert_eq!(status_for(&Error::new_down(ErrorType::WriteTimedout)), 0);
        assert_eq!(status_for(&Error::new_down(ErrorType::ReadTimedout)), 408);
        assert_eq!(
            status_for(&Error::new_down(ErrorType::InvalidHTTPHeader)),
            400
        );
        assert_eq!(status_for(&Error::new(ErrorType::HTTPStatus(503))), 503);
    }

    #[test]
    fn bodies_carry_the_request_id_only() {
        let id = HeaderValue::from_static("abc");
        assert_eq!(
            &body(502, &id, true)[..],
            b"{\"status\":502,\"error\":\"bad gateway\",\"request_id\":\"abc\"}\n"
        );
        assert_eq!(
            &body(504, &id, false)[..],
            b"504 gateway timeout\nrequest_id: abc\n"
        );
    }
}
