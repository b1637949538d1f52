//! W3C Trace Context: a valid `traceparent` from the client goes to the origin
//! unchanged; otherwise Parapet starts a trace, so the request can be followed into
//! the origin's traces. The trace id also goes into the access log.

use super::request_id;
use http::HeaderValue;

pub(crate) static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// The traceparent to send upstream and its trace id (32 lowercase hex digits).
pub(crate) struct TraceContext {
    pub(crate) header: HeaderValue,
    pub(crate) trace_id: [u8; 32],
}

/// Keep a valid incoming `traceparent`, or start a new sampled trace.
pub(crate) fn accept_or_start(incoming: Option<&HeaderValue>) -> TraceContext {
    if let Some(value) = incoming {
        if let Some(trace_id) = parse(value.as_bytes()) {
            return TraceContext {
                header: value.clone(),
                trace_id,
            };
        }
    }
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-01";
    let (hi, lo, span) = request_id::random_triple();
    request_id::hex(hi, &mut text[3..19]);
    request_id::hex(lo, &mut text[19..35]);
    request_id::hex(span, &mut text[36..52]);
    let mut trace_id = [0u8; 32];
    trace_id.copy_from_slice(&text[3..35]);
    TraceContext {
        header: request_id::shared_value(text).unwrap_or(HeaderValue::from_static("")),
        trace_id,
    }
}

/// The trace id of a well-formed version-00 (or later) traceparent.
fn parse(v: &[u8]) -> Option<[u8; 32]> {
    // version "-" trace-id "-" parent-id "-" flags; later versions may append fields.
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let hex = |s: &[u8]| s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let (version, trace, parent, flags) = (&v[..2], &v[3..35], &v[36..52], &v[53..55]);
    let all_zero = |s: &[u8]| s.iter().all(|b| *b == b'0');
    let valid = hex(version)
        && version != b"ff"
        && hex(trace)
        && !all_zero(trace)
        && hex(parent)
        && !all_zero(parent)
        && hex(flags)
        && (v.len() == 55 || (version != b"00" && v[55] == b'-'));
    valid.then(|| {
        let mut id = [0u8; 32];
        id.copy_from_slice(trace);
        id
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_traceparent_is_kept() {
        let v = HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let t = accept_or_start(Some(&v));
        assert_eq!(t.header, v);
        assert_eq!(&t.trace_id, b"4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn invalid_traceparent_is_replaced() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let v = HeaderValue::from_static(bad);
            let t = accept_or_start(Some(&v));
            assert_ne!(t.header, v, "{bad}");
            assert!(parse(t.header.as_bytes()).is_some());
        }
    }

    #[test]
    fn started_traces_differ() {
        let a = accept_or_start(None);
        let b = accept_or_start(None);
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(a.header.len(), 55);
        assert!(a.header.to_str().unwrap().ends_with("-01"));
    }
}
