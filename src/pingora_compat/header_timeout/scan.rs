//! What the deadline reads from the bytes going by: where a request head ends,
//! and whether a response written is a final one.

/// The scan for the empty line that ends a head, across reads.
#[derive(Debug, Default)]
pub(super) struct HeadScan {
    /// A non-empty line was seen.
    seen_line: bool,
    /// The current line is empty so far (only `\r` since the last `\n`).
    line_empty: bool,
}

impl HeadScan {
    pub(super) fn ends_in(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            match b {
                // Empty lines before the request line end nothing (RFC 9112 §2.2).
                b'\n' if self.line_empty && self.seen_line => return true,
                b'\n' => self.line_empty = true,
                b'\r' => {}
                _ => (self.seen_line, self.line_empty) = (true, false),
            }
        }
        false
    }
}

/// What the first write after a head is the start of.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// A final response (or its body): the request is answered.
    Final,
    /// `100 Continue` and other 1xx: the request goes on.
    Interim,
    /// `101 Switching Protocols`: no more HTTP/1 heads on this connection.
    Switching,
}

impl Written {
    pub(super) fn of(bytes: &[u8]) -> Written {
        let status = bytes.get(9..12).filter(|_| bytes.starts_with(b"HTTP/1."));
        match status {
            Some(b"101") => Written::Switching,
            Some([b'1', ..]) => Written::Interim,
            _ => Written::Final,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_empty_line_however_it_is_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for split in 0..head.len() {
            let mut scan = HeadScan::default();
            let (a, b) = head.split_at(split);
            let ended = scan.ends_in(a) || scan.ends_in(b);
            assert!(ended, "split at {split}");
        }
        assert!(HeadScan::default().ends_in(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(!HeadScan::default().ends_in(b"GET / HTTP/1.1\r\nHost: a\r\n"));
    }

    #[test]
    fn leading_empty_lines_do_not_end_a_head() {
        let mut scan = HeadScan::default();
        assert!(!scan.ends_in(b"\r\n\r\n\n\n"));
        assert!(!scan.ends_in(b"GET / HTTP/1.1\r\n"));
        assert!(scan.ends_in(b"\r\n"));
    }

    #[test]
    fn interim_answers_keep_the_request_going() {
        assert_eq!(
            Written::of(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Written::Interim
        );
        assert_eq!(
            Written::of(b"HTTP/1.1 103 Early Hints\r\n"),
            Written::Interim
        );
        assert_eq!(
            Written::of(b"HTTP/1.1 101 Switching Protocols\r\n"),
            Written::Switching
        );
        assert_eq!(Written::of(b"HTTP/1.1 200 OK\r\n"), Written::Final);
        assert_eq!(Written::of(b"HTTP/1.0 404 Not Found\r\n"), Written::Final);
        assert_eq!(Written::of(b"body bytes 101"), Written::Final);
    }
}
