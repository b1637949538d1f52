//! Purge (README: Observe it): drop, or with `soft` mark stale, what is stored for a URL, or
//! for every object that carried a tag in its `Cache-Tag` or `Surrogate-Key`
//! response field (space- or comma-separated, as Cloudflare and Fastly read them).
//!
//! The tag index maps each tag to the objects held with it, by their 16-byte key
//! hash. The store keeps it exact under the lock its writes already take: an
//! object is indexed when it is admitted and forgotten when it is replaced, purged
//! or evicted, so the index never names more than the store holds. Each object is
//! charged its references ([`charged_bytes`]) in its weight, so the index's memory
//! is part of `max_size`, not beside it. Hits never touch it.

use super::{CACHE_TAG, SURROGATE_KEY};
use http::HeaderMap;
use pingora::cache::key::HashBinary;
use std::collections::{HashMap, HashSet};

/// What one (tag, object) reference costs beyond the tag's bytes: the 16-byte key
/// hash in the tag's hash set, which may be as little as a quarter full after
/// removals before it is shrunk (see [`TagIndex::forget`]), with its control
/// bytes, plus the tag's own map entry and set header, charged to every object
/// that shares it.
pub(crate) const TAG_REFERENCE_BYTES: usize = 96;

/// Tag to the keys of the objects held with it.
#[derive(Default)]
pub(crate) struct TagIndex {
    keys: HashMap<Box<str>, HashSet<HashBinary>>,
}

impl TagIndex {
    /// Remember that the object at `key` carries the tags in `headers`.
    pub(crate) fn record(&mut self, key: &HashBinary, headers: &HeaderMap) {
        for tag in tags_of(headers) {
            match self.keys.get_mut(tag) {
                Some(keys) => {
                    keys.insert(*key);
                }
                None => {
                    self.keys.insert(tag.into(), HashSet::from([*key]));
                }
            }
        }
    }

    /// Forget the object at `key`, which carried the tags in `headers`.
    pub(crate) fn forget(&mut self, key: &HashBinary, headers: &HeaderMap) {
        for tag in tags_of(headers) {
            let Some(keys) = self.keys.get_mut(tag) else {
                continue;
            };
            keys.remove(key);
            if keys.is_empty() {
                self.keys.remove(tag);
            } else if keys.capacity() > 64 && keys.len() * 4 < keys.capacity() {
                // A set does not shrink by itself: one flood would keep its peak.
                keys.shrink_to_fit();
            }
        }
    }

    /// Forget `tag` and return the keys of the objects held with it.
    pub(crate) fn take(&mut self, tag: &str) -> Vec<HashBinary> {
        self.keys.remove(tag).into_iter().flatten().collect()
    }

    /// (tag, object) references held.
    #[cfg(test)]
    pub(crate) fn references(&self) -> usize {
        self.keys.values().map(HashSet::len).sum()
    }
}

/// The bytes an object's tags cost the index, charged in its weight.
pub(crate) fn charged_bytes(headers: &HeaderMap) -> usize {
    tags_of(headers)
        .map(|tag| TAG_REFERENCE_BYTES + tag.len())
        .sum()
}

/// The tags in `Cache-Tag` and `Surrogate-Key`.
pub(crate) fn tags_of(headers: &HeaderMap) -> impl Iterator<Item = &str> {
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
        let mut index = TagIndex::default();
        let k1 = headers(&[("cache-tag", "a b,c"), ("surrogate-key", "d")]);
        index.record(&[1; 16], &k1);
        index.record(&[2; 16], &headers(&[("cache-tag", "a")]));
        index.record(&[3; 16], &headers(&[("x-other", "a")]));
        let mut a = index.take("a");
        a.sort();
        assert_eq!(a, [[1; 16], [2; 16]]);
        assert!(index.take("a").is_empty(), "taken once");
        assert_eq!(index.take("d").len(), 1);
        assert_eq!(index.take("c").len(), 1);
        assert_eq!(index.references(), 1, "b is left");
        assert_eq!(charged_bytes(&k1), 4 * TAG_REFERENCE_BYTES + 4);
    }

    #[test]
    fn a_forgotten_object_leaves_no_reference() {
        let mut index = TagIndex::default();
        let tagged = headers(&[("cache-tag", "t1 t2")]);
        for i in 0..1000u16 {
            let mut key = [0; 16];
            key[..2].copy_from_slice(&i.to_le_bytes());
            index.record(&key, &tagged);
            if i >= 10 {
                let mut old = [0; 16];
                old[..2].copy_from_slice(&(i - 10).to_le_bytes());
                index.forget(&old, &tagged);
            }
        }
        assert_eq!(
            index.references(),
            20,
            "the last ten objects, two tags each"
        );
        assert!(index.keys.values().all(|keys| keys.capacity() <= 64));
        index.forget(&[9; 16], &tagged);
        assert_eq!(
            index.take("t1").len(),
            10,
            "forgetting the unknown is harmless"
        );
    }
}
