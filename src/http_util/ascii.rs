//! Numbers and addresses written as ASCII straight into a byte buffer, for the
//! per-request text Parapet produces (forwarding headers, access log lines).
//! `core::fmt` costs hundreds to thousands of instructions per value through its
//! dynamic dispatch and padding logic; these cost tens.

use bytes::BufMut;
use std::net::IpAddr;

/// A decimal integer.
pub(crate) fn put_uint(out: &mut impl BufMut, n: u64) {
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// A decimal integer padded with zeros to `width` digits (for dates and fractions).
pub(crate) fn put_padded(out: &mut impl BufMut, n: u64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n).as_bytes();
    for _ in digits.len()..width {
        out.put_u8(b'0');
    }
    out.put_slice(digits);
}

/// Milliseconds with three decimals (`12.345`), from a duration, without floats.
pub(crate) fn put_millis(out: &mut impl BufMut, d: std::time::Duration) {
    let micros = d.as_micros() as u64;
    put_uint(out, micros / 1000);
    out.put_u8(b'.');
    put_padded(out, micros % 1000, 3);
}

/// An IP address as text. IPv4, by far the common case, is written by hand;
/// IPv6 goes through its `Display`, which also picks the `::` compression.
pub(crate) fn put_ip(out: &mut impl BufMut, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.put_u8(b'.');
                }
                if octet >= 100 {
                    out.put_u8(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.put_u8(b'0' + octet / 10 % 10);
                }
                out.put_u8(b'0' + octet % 10);
            }
        }
        IpAddr::V6(_) => {
            use std::io::Write;
            let mut text = [0u8; 48];
            let mut cursor = &mut text[..];
            let _ = write!(cursor, "{ip}");
            let len = 48 - cursor.len();
            out.put_slice(&text[..len]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn numbers() {
        assert_eq!(text(|o| put_uint(o, 0)), "0");
        assert_eq!(
            text(|o| put_uint(o, 18_446_744_073_709_551_615)),
            "18446744073709551615"
        );
        assert_eq!(text(|o| put_padded(o, 7, 3)), "007");
        assert_eq!(text(|o| put_padded(o, 2026, 4)), "2026");
        assert_eq!(text(|o| put_padded(o, 12345, 3)), "12345");
        assert_eq!(
            text(|o| put_millis(o, Duration::from_micros(1500))),
            "1.500"
        );
        assert_eq!(text(|o| put_millis(o, Duration::from_micros(7))), "0.007");
        assert_eq!(
            text(|o| put_millis(o, Duration::from_secs(61))),
            "61000.000"
        );
    }

    #[test]
    fn addresses_match_display() {
        for ip in [
            "0.0.0.0",
            "10.20.3.255",
            "192.168.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(text(|o| put_ip(o, ip)), ip.to_string());
        }
    }
}
