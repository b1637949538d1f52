//! Human-readable units in the configuration: durations (`250ms`, `2s`, `5m`, `1h`, `180d`),
//! sizes (`512`, `64KiB`, `256MiB`, `1GiB`) and shares (`20%`). Parsed once at load;
//! the request path only ever sees `std::time::Duration`, `u64` and `f64`.
//!
//! Sizes are binary: `KiB`, `MiB`, `GiB` are 2^10, 2^20, 2^30 bytes, and so are the
//! bare `K`, `M`, `G` (as nginx reads `k` and `m`). `KB`, `MB` and `GB` are refused
//! with a hint: SI makes them 10^3, 10^6, 10^9 but many tools (and earlier Parapet)
//! read them as binary, so which one the operator meant cannot be told.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A configured duration. Deserializes from a string with a unit suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span(pub Duration);

/// A configured size in bytes. Deserializes from an integer or a string with a binary
/// unit (`64KiB`); `64KB` is refused as ambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub u64);

/// A configured share, written `20%` (or `12.5%`); held as a fraction (0.2).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Percent(pub f64);

pub(crate) fn parse_percent(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let not_percent = || format!("'{text}' is not a percentage like '20%'");
    let number = text.strip_suffix('%').ok_or_else(not_percent)?;
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(n / 100.0),
        _ => Err(not_percent()),
    }
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("'{text}' has no unit (use ms, s, m, h or d, e.g. '2s')"))?;
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration like '250ms', '2s' or '5m'"))?;
    let millis = match unit {
        "ms" => Some(value),
        "s" => value.checked_mul(1_000),
        "m" => value.checked_mul(60_000),
        "h" => value.checked_mul(3_600_000),
        "d" => value.checked_mul(86_400_000),
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ms, s, m, h or d)"
            ))
        }
    };
    millis
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too large"))
}

pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size like '64KiB' or '256MiB'"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        ambiguous @ ("KB" | "MB" | "GB") => return Err(ambiguous_size(value, ambiguous)),
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}' (use KiB, MiB or GiB)"
            ))
        }
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// The hint for `64MB`: the binary spelling and the decimal count of bytes.
fn ambiguous_size(value: u64, unit: &str) -> String {
    let (binary, power, decimal) = match unit {
        "KB" => ("KiB", 10, 1_000u64),
        "MB" => ("MiB", 20, 1_000_000),
        _ => ("GiB", 30, 1_000_000_000),
    };
    let bytes = value
        .checked_mul(decimal)
        .map(|n| format!(" or {n}"))
        .unwrap_or_default();
    format!("'{value}{unit}' is ambiguous: write {value}{binary} (2^{power} bytes){bytes}")
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        parse_duration(&text)
            .map(Span)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        parse_percent(&text)
            .map(Percent)
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(de)? {
            Raw::Bytes(n) => Ok(Size(n)),
            Raw::Text(text) => parse_size(&text)
                .map(Size)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("180d"), Ok(Duration::from_secs(180 * 86400)));
        assert!(parse_duration("2").unwrap_err().contains("no unit"));
        assert!(parse_duration("2 weeks").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn bare_letters_are_binary() {
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512B"), Ok(512));
    }

    #[test]
    fn decimal_looking_units_are_refused_with_a_hint() {
        assert_eq!(
            parse_size("64MB"),
            Err("'64MB' is ambiguous: write 64MiB (2^20 bytes) or 64000000".to_string())
        );
        assert_eq!(
            parse_size("8KB"),
            Err("'8KB' is ambiguous: write 8KiB (2^10 bytes) or 8000".to_string())
        );
        assert_eq!(
            parse_size("1GB"),
            Err("'1GB' is ambiguous: write 1GiB (2^30 bytes) or 1000000000".to_string())
        );
        let huge = parse_size("99999999999999GB").unwrap_err();
        assert!(
            huge.ends_with("write 99999999999999GiB (2^30 bytes)"),
            "{huge}"
        );
    }

    #[test]
    fn a_size_refused_in_the_file_names_the_hint() {
        let err = serde_yaml::from_str::<Size>("64MB")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("write 64MiB (2^20 bytes) or 64000000"),
            "{err}"
        );
        assert_eq!(
            serde_yaml::from_str::<Size>("64MiB").ok(),
            Some(Size(64 << 20))
        );
        assert_eq!(serde_yaml::from_str::<Size>("4096").ok(), Some(Size(4096)));
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("20%"), Ok(0.2));
        assert_eq!(parse_percent("12.5 %"), Ok(0.125));
        assert!(parse_percent("0.2").unwrap_err().contains("like '20%'"));
        assert!(parse_percent("lots%").is_err());
    }
}
