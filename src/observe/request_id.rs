//! Request IDs: accepted from the client when well-formed (1..=128 characters of
//! `[A-Za-z0-9._:-]`), generated otherwise. Generation takes no lock and makes no
//! syscall: a process-wide random seed and an atomic counter pass through a
//! bijective mixer, so IDs never repeat within a process and do not reveal counts.

use crate::config::{header_name, ConfigErrors};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

static SEED: LazyLock<(u64, u64)> = LazyLock::new(|| {
    let state = RandomState::new();
    (state.hash_one(0x5eed_u64), state.hash_one(0xfeed_u64))
});
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The `request_id` section as the operator wrote it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RequestIdConfig {
    pub(crate) header: String,
}

impl Default for RequestIdConfig {
    fn default() -> Self {
        RequestIdConfig {
            header: "X-Request-Id".into(),
        }
    }
}

/// The header that carries request IDs in and out.
pub(crate) fn header_from_config(
    config: RequestIdConfig,
    errors: &mut ConfigErrors,
) -> Option<HeaderName> {
    header_name(&config.header, "request_id.header", errors)
}

/// The client's ID when acceptable, else a fresh one.
pub(crate) fn accept_or_generate(incoming: Option<&HeaderValue>) -> HeaderValue {
    match incoming {
        Some(id) if is_acceptable(id.as_bytes()) => id.clone(),
        _ => generate(),
    }
}

pub(crate) fn is_acceptable(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new 32-hex-digit ID.
pub(crate) fn generate() -> HeaderValue {
    let (hi, lo) = unique_pair();
    let mut text = [0u8; 32];
    hex(hi, &mut text[..16]);
    hex(lo, &mut text[16..]);
    shared_value(text).unwrap_or(HeaderValue::from_static("0"))
}

/// A header value that owns `text` in one allocation shared by all its clones. (A
/// value built from a slice is copied into a `Vec`, and its first clone allocates
/// again to make that `Vec` shareable; the request ID is cloned into the upstream
/// request and the response.)
pub(crate) fn shared_value<const N: usize>(text: [u8; N]) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text)).ok()
}

/// 128 bits unique within this process (the counter goes through a bijection).
fn unique_pair() -> (u64, u64) {
    let (seed_hi, seed_lo) = *SEED;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let lo = mix(n ^ seed_lo);
    (mix(lo ^ seed_hi), lo)
}

/// Three unpredictable-looking words for trace and span ids; the first two are
/// unique within the process.
pub(crate) fn random_triple() -> (u64, u64, u64) {
    let (hi, lo) = unique_pair();
    (hi, lo, mix(hi ^ lo.rotate_left(17)) | 1)
}

/// splitmix64's finalizer: a bijection on u64, so distinct counters give distinct IDs.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Write `v` as `out.len()` lowercase hex digits (the low ones).
pub(crate) fn hex(mut v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn accepts_well_formed_ids_only() {
        let ok = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(accept_or_generate(Some(&ok)), ok);
        let bad = HeaderValue::from_static("has space");
        assert_ne!(accept_or_generate(Some(&bad)), bad);
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert_ne!(accept_or_generate(Some(&long)), long);
    }

    #[test]
    fn generated_ids_are_unique_and_acceptable() {
        let ids: HashSet<_> = (0..10_000).map(|_| generate()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids
            .iter()
            .all(|id| is_acceptable(id.as_bytes()) && id.len() == 32));
    }
}
