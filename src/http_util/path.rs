//! The normal form of a request path, so that the edge routes and applies policies
//! to the resource the origin will serve (Envoy's CVE-2019-9901 was `/x/../admin`
//! walking past a route on `/admin`).
//!
//! In this order:
//! 1. percent-encoding normalisation (RFC 3986 §6.2.2.2): an encoded unreserved
//!    character (ALPHA DIGIT `-` `.` `_` `~`) is decoded, the hex digits of every
//!    other encoding are uppercased (§6.2.2.1). `%2F` and `%5C` are never decoded:
//!    they stay (as `%2F`, `%5C`) or the path is refused, as the caller chooses;
//! 2. repeated slashes are merged;
//! 3. dot segments are removed (RFC 3986 §5.2.4).
//!
//! Slashes are merged before dot segments are resolved, as nginx's `merge_slashes`
//! does before it resolves the URI, so `/a//../b` is `/b` both here and at an nginx
//! origin. A path that does not start with `/` (`*` of `OPTIONS *`) is left alone.
//! The query is not the caller's to pass: it is never changed.
//!
//! It runs on every request: a path already in normal form (the common case) costs
//! one scan of its bytes and allocates nothing.

/// What an encoded `/` or `\` (`%2F`, `%5C`, any case) in a path gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum EncodedSlash {
    /// Kept encoded (its hex uppercased): one segment, as the client meant it.
    #[default]
    Keep,
    /// The request is refused.
    Reject,
}

/// Why a path has no normal form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A `%` not followed by two hex digits (RFC 3986 §2.1).
    BadEscape,
    /// `%2F` or `%5C`, with [`EncodedSlash::Reject`].
    EncodedSlash,
}

/// The normal form of `path`, or `None` when it is normal already.
pub(crate) fn normalize(path: &[u8], slashes: EncodedSlash) -> Result<Option<Vec<u8>>, PathError> {
    if path.first() != Some(&b'/') || is_normal(path, slashes)? {
        return Ok(None);
    }
    Ok(Some(remove_dot_segments(&decode_and_merge(path))))
}

/// Whether `path` (starting with `/`) is in normal form: one pass that also
/// validates every escape, so an error is never missed by stopping early.
fn is_normal(path: &[u8], slashes: EncodedSlash) -> Result<bool, PathError> {
    let mut normal = true;
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let (byte, upper) = escape_at(path, i)?;
                if matches!(byte, b'/' | b'\\') && slashes == EncodedSlash::Reject {
                    return Err(PathError::EncodedSlash);
                }
                normal &= upper && !is_unreserved(byte);
                i += 3;
            }
            b'/' => {
                let rest = &path[i + 1..];
                normal &= !(rest.first() == Some(&b'/') || starts_with_dot_segment(rest));
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(normal)
}

/// `.` or `..` as the whole of the segment `rest` starts with.
fn starts_with_dot_segment(rest: &[u8]) -> bool {
    let dots = match rest {
        [b'.', b'.', ..] => 2,
        [b'.', ..] => 1,
        _ => return false,
    };
    matches!(rest.get(dots), None | Some(b'/'))
}

/// The byte `%XY` at `at` stands for, and whether its hex digits were uppercase.
fn escape_at(path: &[u8], at: usize) -> Result<(u8, bool), PathError> {
    let digit = |i: usize| -> Result<(u8, bool), PathError> {
        match path.get(i) {
            Some(d @ b'0'..=b'9') => Ok((d - b'0', true)),
            Some(d @ b'A'..=b'F') => Ok((d - b'A' + 10, true)),
            Some(d @ b'a'..=b'f') => Ok((d - b'a' + 10, false)),
            _ => Err(PathError::BadEscape),
        }
    };
    let ((high, high_upper), (low, low_upper)) = (digit(at + 1)?, digit(at + 2)?);
    Ok((high << 4 | low, high_upper && low_upper))
}

/// RFC 3986 §2.3.
fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Steps 1 and 2: escapes decoded or uppercased, repeated slashes merged. The
/// escapes were validated by `is_normal`.
fn decode_and_merge(path: &[u8]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => {
                let byte = escape_at(path, i).map_or(b'%', |(byte, _)| byte);
                match is_unreserved(byte) {
                    true => out.push(byte),
                    false => out.extend_from_slice(&[
                        b'%',
                        HEX[(byte >> 4) as usize],
                        HEX[(byte & 15) as usize],
                    ]),
                }
                i += 3;
            }
            b'/' if out.last() == Some(&b'/') => i += 1,
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Step 3, RFC 3986 §5.2.4 on an absolute path without repeated slashes: `.` is
/// dropped, `..` drops the segment before it (none above the root), and a path
/// that ended in either ends in `/`.
fn remove_dot_segments(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut segments = path[1..].split(|b| *b == b'/').peekable();
    while let Some(segment) = segments.next() {
        match segment {
            b"." => {}
            b".." => out.truncate(out.iter().rposition(|b| *b == b'/').unwrap_or(0)),
            _ => {
                out.push(b'/');
                out.extend_from_slice(segment);
                continue;
            }
        }
        if segments.peek().is_none() {
            out.push(b'/');
        }
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(path: &str) -> String {
        let out = normalize(path.as_bytes(), EncodedSlash::Keep).unwrap();
        let out = out.map_or(path.to_string(), |p| String::from_utf8(p).unwrap());
        // The normal form is normal.
        assert_eq!(
            normalize(out.as_bytes(), EncodedSlash::Keep),
            Ok(None),
            "{out}"
        );
        out
    }

    #[test]
    fn rfc_3986_dot_segment_examples() {
        // §5.4.1 and §5.4.2, as their merged paths against the base /b/c/d;p.
        for (path, resolved) in [
            ("/b/c/g", "/b/c/g"),
            ("/b/c/./g", "/b/c/g"),
            ("/b/c/g/", "/b/c/g/"),
            ("/b/c/.", "/b/c/"),
            ("/b/c/./", "/b/c/"),
            ("/b/c/..", "/b/"),
            ("/b/c/../", "/b/"),
            ("/b/c/../g", "/b/g"),
            ("/b/c/../..", "/"),
            ("/b/c/../../", "/"),
            ("/b/c/../../g", "/g"),
            ("/b/c/../../../g", "/g"),
            ("/b/c/../../../../g", "/g"),
            ("/./g", "/g"),
            ("/../g", "/g"),
            ("/b/c/g.", "/b/c/g."),
            ("/b/c/.g", "/b/c/.g"),
            ("/b/c/g..", "/b/c/g.."),
            ("/b/c/..g", "/b/c/..g"),
            ("/b/c/./../g", "/b/g"),
            ("/b/c/./g/.", "/b/c/g/"),
            ("/b/c/g/./h", "/b/c/g/h"),
            ("/b/c/g/../h", "/b/c/h"),
            ("/b/c/g;x=1/./y", "/b/c/g;x=1/y"),
            ("/b/c/g;x=1/../y", "/b/c/y"),
            // §5.2.4's own.
            ("/a/b/c/./../../g", "/a/g"),
        ] {
            assert_eq!(normal(path), resolved, "{path}");
        }
    }

    #[test]
    fn the_spellings_of_one_path_meet() {
        for path in [
            "/api/x",
            "//api/x",
            "/%61pi/x",
            "/%61%70%69/x",
            "/x/../api/x",
            "/x/%2e%2E/api/x",
            "/./api/x",
            "/api//x",
            "/.//api/x",
            "/a//../api/x",
        ] {
            assert_eq!(normal(path), "/api/x", "{path}");
        }
        assert_eq!(normal("/%2e%2e/"), "/");
        assert_eq!(normal("/%2e%2e"), "/");
        assert_eq!(normal("/.%2e/x"), "/x");
        assert_eq!(normal("///"), "/");
        assert_eq!(normal("/"), "/");
        assert_eq!(normal("/%7Euser/%41-%5f"), "/~user/A-_");
    }

    #[test]
    fn other_escapes_are_uppercased_never_decoded() {
        assert_eq!(normal("/a%2fb"), "/a%2Fb");
        assert_eq!(normal("/a%5cb/%2F"), "/a%5Cb/%2F");
        assert_eq!(normal("/%e2%82%ac"), "/%E2%82%AC");
        assert_eq!(normal("/%20%3f%25"), "/%20%3F%25");
        // An encoded slash is not a segment boundary: nothing to merge or remove.
        assert_eq!(normal("/a%2F..%2Fb"), "/a%2F..%2Fb");
        assert_eq!(normal("/a/%2F%2f/b"), "/a/%2F%2F/b");
    }

    #[test]
    fn encoded_slashes_may_be_refused() {
        for path in ["/a%2fb", "/a%2Fb", "/%5c", "/%5C/x", "/ok/../%2f"] {
            let refused = normalize(path.as_bytes(), EncodedSlash::Reject);
            assert_eq!(refused, Err(PathError::EncodedSlash), "{path}");
        }
        assert_eq!(normalize(b"/a/b", EncodedSlash::Reject), Ok(None));
        assert_eq!(
            normalize(b"/a//b", EncodedSlash::Reject),
            Ok(Some(b"/a/b".to_vec()))
        );
    }

    #[test]
    fn broken_escapes_are_errors() {
        for path in ["/a%zz", "/%", "/a%4", "/%4g", "/x/..%g1", "//a%"] {
            for slashes in [EncodedSlash::Keep, EncodedSlash::Reject] {
                let out = normalize(path.as_bytes(), slashes);
                assert_eq!(out, Err(PathError::BadEscape), "{path}");
            }
        }
    }

    #[test]
    fn normal_paths_and_non_paths_are_left_alone() {
        for path in [
            "/",
            "/index.html",
            "/a/b/c/",
            "/a.b/..c/c../.../",
            "/%2F%C3%A9",
            "/a;b=c,d",
            "/caf\u{e9}",
        ] {
            assert_eq!(
                normalize(path.as_bytes(), EncodedSlash::Keep),
                Ok(None),
                "{path}"
            );
        }
        for target in ["*", "", "a/../b"] {
            assert_eq!(normalize(target.as_bytes(), EncodedSlash::Keep), Ok(None));
        }
    }
}
