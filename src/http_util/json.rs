//! Writing JSON by hand, for the few small documents Parapet produces (access log
//! lines, admin answers), without building a value tree first.

use std::io::Write;

pub(crate) fn json_opt(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => json_str(out, v),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string; bytes that are not UTF-8 become U+FFFD.
pub(crate) fn json_str(out: &mut Vec<u8>, raw: &[u8]) {
    out.push(b'"');
    // Most values (paths, hosts, IDs) are plain printable ASCII: copy them as they
    // are. The check has no early exit, so the compiler can test 16 or 32 bytes at
    // a time; a short-circuiting `all` went byte by byte.
    let plain = raw.iter().fold(true, |plain, &b| {
        plain & (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.extend_from_slice(raw);
        out.push(b'"');
        return;
    }
    for c in String::from_utf8_lossy(raw).chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}
