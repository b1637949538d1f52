//! `Vary` (RFC 9111 §4.1): a stored response lists the request fields that chose
//! it; requests that differ in them are different variants. pingora-cache keeps
//! variants apart once `cache_vary_filter` returns their hash, and ignores `Vary`
//! otherwise. `Vary: *` never reaches here: such responses are not stored.

use crate::http_util::tokens;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheMeta, VarianceBuilder};
use pingora::http::RequestHeader;

/// Stands for a request field that is absent, which differs from every value.
const ABSENT: &[u8] = b"\0absent";

/// The variant of `req` among the responses like `meta`; `None` when `meta` does
/// not vary. Values are compared after joining repeated lines with `,` and
/// folding white space, so `gzip,br` and `gzip, br` are one variant.
pub(crate) fn variance(meta: &CacheMeta, req: &RequestHeader) -> Option<HashBinary> {
    let mut names: Vec<String> = meta
        .headers()
        .get_all(http::header::VARY)
        .iter()
        .flat_map(|v| tokens(v.as_bytes()))
        .map(|name| String::from_utf8_lossy(name).to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    let mut builder = VarianceBuilder::new();
    for name in names {
        let value = normalized(req, &name);
        builder.add_owned_name_value(name, value);
    }
    builder.finalize()
}

fn normalized(req: &RequestHeader, name: &str) -> Vec<u8> {
    let lines = req.headers.get_all(name).iter();
    let mut parts = lines
        .flat_map(|line| line.as_bytes().split(|b| *b == b','))
        .peekable();
    if parts.peek().is_none() {
        return ABSENT.to_vec();
    }
    let mut out = Vec::new();
    for (i, part) in parts.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut last_space = false;
        for &b in part.trim_ascii() {
            let space = b == b' ' || b == b'\t';
            if !(space && last_space) {
                out.push(if space { b' ' } else { b });
            }
            last_space = space;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::ResponseHeader;
    use std::time::SystemTime;

    fn meta(vary: &[&str]) -> CacheMeta {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for v in vary {
            resp.append_header("vary", *v).unwrap();
        }
        let now = SystemTime::now();
        CacheMeta::new(now, now, 0, 0, resp)
    }

    fn req(fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in fields {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn variants_follow_the_listed_fields_only() {
        let m = meta(&["Accept-Encoding", "accept-language"]);
        let gzip = variance(&m, &req(&[("accept-encoding", "gzip"), ("x-other", "1")]));
        assert!(gzip.is_some());
        assert_eq!(gzip, variance(&m, &req(&[("accept-encoding", "gzip")])));
        assert_ne!(gzip, variance(&m, &req(&[("accept-encoding", "br")])));
        assert_ne!(gzip, variance(&m, &req(&[])));
        assert_ne!(
            variance(&m, &req(&[("accept-encoding", "")])),
            variance(&m, &req(&[])),
            "an empty field is not an absent one"
        );
        assert_eq!(
            variance(&meta(&[]), &req(&[("accept-encoding", "gzip")])),
            None
        );
    }

    #[test]
    fn values_are_compared_after_folding_white_space_and_lines() {
        let m = meta(&["accept-encoding"]);
        let one = variance(&m, &req(&[("accept-encoding", "gzip, br")]));
        assert_eq!(one, variance(&m, &req(&[("accept-encoding", "gzip,br")])));
        assert_eq!(
            one,
            variance(
                &m,
                &req(&[("accept-encoding", "gzip"), ("accept-encoding", "br")])
            )
        );
    }
}
