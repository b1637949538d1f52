//! One access log line: a record as a JSON object, written without `core::fmt`.

use super::access_log::Record;
use crate::http_util::ascii::{put_ip, put_millis, put_padded, put_uint};
use crate::http_util::json::{json_opt, json_str};
use std::time::{SystemTime, UNIX_EPOCH};

/// Formats records as JSON lines. Built once per access log: upstream and backend
/// names are escaped ahead of time, and the date and time up to the second is
/// rendered once per second rather than once per line.
pub(crate) struct LineFormat {
    /// Per upstream: its name, then its backends' addresses, each as a JSON string.
    names: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    clock: SecondClock,
}

/// The date and time up to the second, rendered once per second.
struct SecondClock {
    /// The second `text` renders (`2026-11-25T14:18:15`).
    second: u64,
    text: Vec<u8>,
}

impl LineFormat {
    pub(crate) fn new(names: &[(String, Vec<String>)]) -> LineFormat {
        let quoted = |text: &str| {
            let mut out = Vec::with_capacity(text.len() + 2);
            json_str(&mut out, text.as_bytes());
            out
        };
        LineFormat {
            names: names
                .iter()
                .map(|(name, backends)| {
                    (quoted(name), backends.iter().map(|b| quoted(b)).collect())
                })
                .collect(),
            clock: SecondClock {
                second: u64::MAX,
                text: Vec::with_capacity(20),
            },
        }
    }

    /// One JSON object and a newline.
    pub(crate) fn line(&mut self, out: &mut Vec<u8>, r: &Record) {
        let upstream = r.upstream.and_then(|u| self.names.get(u));
        let backend = upstream.zip(r.backend).and_then(|((_, b), i)| b.get(i));
        out.extend_from_slice(b"{\"time\":\"");
        self.clock.put(out, r.time);
        out.extend_from_slice(b"\",\"request_id\":");
        json_str(out, r.request_id);
        out.extend_from_slice(b",\"trace_id\":");
        json_opt(out, r.trace_id.map(|t| &t[..]));
        out.extend_from_slice(b",\"client_ip\":\"");
        put_ip(out, r.client_ip);
        out.extend_from_slice(b"\",\"method\":");
        json_str(out, r.method.as_bytes());
        out.extend_from_slice(b",\"scheme\":\"");
        out.extend_from_slice(r.scheme.as_bytes());
        out.extend_from_slice(b"\",\"protocol\":\"");
        out.extend_from_slice(r.protocol.as_bytes());
        out.extend_from_slice(b"\",\"host\":");
        json_opt(out, r.host);
        out.extend_from_slice(b",\"path\":");
        json_str(out, r.path.as_bytes());
        out.extend_from_slice(b",\"status\":");
        put_uint(out, r.status.into());
        out.extend_from_slice(b",\"bytes_in\":");
        put_uint(out, r.bytes_in);
        out.extend_from_slice(b",\"bytes_out\":");
        put_uint(out, r.bytes_out);
        out.extend_from_slice(b",\"upstream\":");
        quoted_or_null(out, upstream.map(|(name, _)| name));
        out.extend_from_slice(b",\"backend\":");
        quoted_or_null(out, backend);
        out.extend_from_slice(b",\"attempts\":");
        put_uint(out, r.attempts.into());
        out.extend_from_slice(b",\"cache\":");
        json_opt(out, r.cache.map(str::as_bytes));
        out.extend_from_slice(b",\"refused_by\":");
        json_opt(out, r.refused_by.map(str::as_bytes));
        out.extend_from_slice(b",\"duration_ms\":");
        put_millis(out, r.duration);
        out.extend_from_slice(b",\"upstream_duration_ms\":");
        match r.upstream_duration {
            Some(d) => put_millis(out, d),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"user_agent\":");
        json_opt(out, r.user_agent);
        out.extend_from_slice(b"}\n");
    }
}

impl SecondClock {
    /// `2026-11-25T14:18:15.123Z`
    fn put(&mut self, out: &mut Vec<u8>, time: SystemTime) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        if secs != self.second {
            self.second = secs;
            self.text.clear();
            rfc3339_seconds(&mut self.text, secs);
        }
        out.extend_from_slice(&self.text);
        out.push(b'.');
        put_padded(out, since.subsec_millis().into(), 3);
        out.push(b'Z');
    }
}

fn quoted_or_null(out: &mut Vec<u8>, quoted: Option<&Vec<u8>>) {
    out.extend_from_slice(quoted.map_or(&b"null"[..], |q| &q[..]));
}

/// `2026-11-25T14:18:15`
fn rfc3339_seconds(out: &mut Vec<u8>, secs: u64) {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    put_padded(out, y.max(0) as u64, 4);
    for (sep, n) in [
        (b'-', m.into()),
        (b'-', d.into()),
        (b'T', rem / 3600),
        (b':', rem % 3600 / 60),
        (b':', rem % 60),
    ] {
        out.push(sep);
        put_padded(out, n, 2);
    }
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn line_is_json_with_escapes() {
        let r = sample();
        let mut out = Vec::new();
        let mut format = LineFormat::new(&[("app".into(), vec!["127.0.0.1:1".into()])]);
        format.line(&mut out, &r);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"2025-11-25T14:18:15.123Z\",\"request_id\":\"abc\",\"trace_id\":null,\"client_ip\":\"1.2.3.4\",\"method\":\"GET\",\"scheme\":\"https\",\"protocol\":\"HTTP/2.0\",\"host\":\"example.com\",\"path\":\"/a?q=x\",\"status\":200,\"bytes_in\":0,\"bytes_out\":5,\"upstream\":\"app\",\"backend\":\"127.0.0.1:1\",\"attempts\":1,\"cache\":\"hit\",\"refused_by\":null,\"duration_ms\":1.500,\"upstream_duration_ms\":1.000,\"user_agent\":\"curl\\\\8\"}\n"
        );
    }

    #[test]
    fn the_cached_second_moves_on() {
        let mut clock = SecondClock {
            second: u64::MAX,
            text: Vec::new(),
        };
        let mut out = Vec::new();
        for ms in [
            1_764_080_295_999,
            1_764_080_296_000,
            1_764_080_296_001,
            1_764_080_355_000,
        ] {
            clock.put(&mut out, UNIX_EPOCH + Duration::from_millis(ms));
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2025-11-25T14:18:15.999Z 2025-11-25T14:18:16.000Z 2025-11-25T14:18:16.001Z 2025-11-25T14:19:15.000Z "
        );
    }

    pub(crate) fn sample() -> Record<'static> {
        Record {
            time: UNIX_EPOCH + Duration::from_millis(1_764_080_295_123),
            request_id: b"abc",
            trace_id: None,
            client_ip: "1.2.3.4".parse().unwrap(),
            method: "GET",
            scheme: "https",
            protocol: "HTTP/2.0",
            host: Some(b"example.com"),
            path: "/a?q=x",
            status: 200,
            bytes_in: 0,
            bytes_out: 5,
            upstream: Some(0),
            backend: Some(0),
            attempts: 1,
            cache: Some("hit"),
            refused_by: None,
            duration: Duration::from_micros(1500),
            upstream_duration: Some(Duration::from_micros(1000)),
            user_agent: Some(b"curl\\8"),
        }
    }
}
