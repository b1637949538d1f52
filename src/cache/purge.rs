//! Purge (SPEC §5): drop, or with `soft` mark stale, what is stored for a URL, or
//! for every object that carried a tag in its `Cache-Tag` or `Surrogate-Key`
//! response field (space- or comma-separated, as Cloudflare and Fastly read them).
//!
//! The tag index maps each tag to the keys stored with it. It is bounded: past
//! `TAG_REFERENCES` references, new ones are not recorded (and logged once), so a
//! flood of tagged objects cannot grow it without limit. Keys the store has since
//! evicted stay in the index until their tag is purged; purging them finds nothing.

use super::{CACHE_TAG, SURROGATE_KEY};
use http::HeaderMap;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The most (tag, key) references the index holds.
const TAG_REFERENCES: usize = 1 << 20;

#[derive(Default)]
pub struct TagIndex {
    inner: Mutex<Tags>,
    full_logged: AtomicBool,
}

#[derive(Default)]
struct Tags {
    keys: HashMap<Box<str>, HashSet<Box<[u8]>>>,
    references: usize,
}

impl TagIndex {
    /// Remember that the object at `key` carries the tags in `headers`.
    pub fn record(&self, key: &[u8], headers: &HeaderMap) {
        let mut tags = tags_of(headers).peekable();
        if tags.peek().is_none() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for tag in tags {
            if inner.references >= TAG_REFERENCES {
                if !self.full_logged.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "cache tag index full: new tags are not recorded until some are purged"
                    );
                }
                return;
            }
            if inner.keys.entry(tag.into()).or_default().insert(key.into()) {
                inner.references += 1;
            }
        }
    }

    /// Forget `tag` and return the keys stored with it.
    pub fn take(&self, tag: &str) -> Vec<Box<[u8]>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let keys: Vec<_> = inner.keys.remove(tag).into_iter().flatten().collect();
        inner.references -= keys.len();
        keys
    }
}

/// The tags in `Cache-Tag` and `Surrogate-Key`.
fn tags_of(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    [&CACHE_TAG, &SURROGATE_KEY]
        .into_iter()
        .flat_map(|name| headers.get_all(name))
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([' ', ',', '\t']))
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        fields
            .iter()
            .map(|(n, v)| (n.parse().unwrap(), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn tags_from_both_fields_space_or_comma_separated() {
        let index = TagIndex::default();
        index.record(
            b"k1",
            &headers(&[("cache-tag", "a b,c"), ("surrogate-key", "d")]),
        );
        index.record(b"k2", &headers(&[("cache-tag", "a")]));
        index.record(b"k3", &headers(&[("x-other", "a")]));
        let mut a: Vec<_> = index.take("a").into_iter().map(|k| k.to_vec()).collect();
        a.sort();
        assert_eq!(a, [b"k1".to_vec(), b"k2".to_vec()]);
        assert!(index.take("a").is_empty(), "taken once");
        assert_eq!(index.take("d").len(), 1);
        assert_eq!(index.take("c").len(), 1);
        assert_eq!(index.inner.lock().unwrap().references, 1, "b is left");
    }
}
