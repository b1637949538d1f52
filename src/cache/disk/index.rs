//! The disk tier's index: each object file's key and length, in least recently
//! used order, so the tier knows its size and what to evict. Files are found by
//! their name (the key), so lookups do not need the index; it is rebuilt at start by
//! a scan of the directory, in the background.

use pingora::cache::key::HashBinary;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The file of `key` under `root`: `root/ab/<32 hex digits>`, 256 directories so
/// none grows too large.
pub(super) fn path_of(root: &Path, key: &HashBinary) -> PathBuf {
    let name = hex(key);
    root.join(&name[..2]).join(name)
}

fn hex(key: &HashBinary) -> String {
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The key a file name spells, if it is one of ours.
fn key_of(name: &str) -> Option<HashBinary> {
    if name.len() != 32 {
        return None;
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(name.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(key)
}

#[derive(Default)]
struct Lru {
    /// Key to (file length, last use).
    entries: HashMap<HashBinary, (u64, u64)>,
    /// Last use to key, oldest first.
    order: BTreeMap<u64, HashBinary>,
    next_use: u64,
    bytes: u64,
    /// Bytes of files being written, counted against the bound before they exist.
    reserved: u64,
}

impl Lru {
    fn tick(&mut self) -> u64 {
        self.next_use += 1;
        self.next_use
    }

    fn remove(&mut self, key: &HashBinary) -> Option<u64> {
        let (len, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        self.bytes -= len;
        Some(len)
    }

    fn insert(&mut self, key: HashBinary, len: u64) {
        self.remove(&key);
        let used = self.tick();
        self.entries.insert(key, (len, used));
        self.order.insert(used, key);
        self.bytes += len;
    }
}

/// The index. Its lock is held only for map operations, never across I/O.
#[derive(Default)]
pub(super) struct Index {
    lru: Mutex<Lru>,
}

impl Index {
    fn lock(&self) -> MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Record `key`'s file as `len` bytes, most recently used.
    pub(super) fn insert(&self, key: HashBinary, len: u64) {
        self.lock().insert(key, len);
    }

    /// Record a file found by a lookup or the scan, unless already known.
    pub(super) fn found(&self, key: HashBinary, len: u64) {
        let mut lru = self.lock();
        if !lru.entries.contains_key(&key) {
            lru.insert(key, len);
        }
    }

    /// Mark `key` used now.
    pub(super) fn touch(&self, key: &HashBinary) {
        let mut lru = self.lock();
        if let Some(&(len, _)) = lru.entries.get(key) {
            lru.insert(*key, len);
        }
    }

    pub(super) fn remove(&self, key: &HashBinary) -> Option<u64> {
        self.lock().remove(key)
    }

    /// Take out the least recently used entries until `incoming` more bytes fit in
    /// `max`, and reserve those bytes. Returns the keys taken out (their files are
    /// to be removed) and whether `incoming` fits; when it does not even with every
    /// entry out (writes in flight hold the rest), nothing is reserved.
    pub(super) fn make_room(&self, incoming: u64, max: u64) -> (Vec<HashBinary>, bool) {
        let mut lru = self.lock();
        let mut out = Vec::new();
        while lru.bytes + lru.reserved + incoming > max {
            let Some((_, key)) = lru.order.pop_first() else {
                break;
            };
            if let Some((len, _)) = lru.entries.remove(&key) {
                lru.bytes -= len;
            }
            out.push(key);
        }
        let fits = lru.bytes + lru.reserved + incoming <= max;
        if fits {
            lru.reserved += incoming;
        }
        (out, fits)
    }

    /// Record a written file whose bytes [`Self::make_room`] reserved.
    pub(super) fn insert_reserved(&self, key: HashBinary, len: u64, reserved: u64) {
        let mut lru = self.lock();
        lru.reserved = lru.reserved.saturating_sub(reserved);
        lru.insert(key, len);
    }

    /// Give back a reservation whose write failed.
    pub(super) fn release(&self, reserved: u64) {
        let mut lru = self.lock();
        lru.reserved = lru.reserved.saturating_sub(reserved);
    }

    pub(super) fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    pub(super) fn objects(&self) -> u64 {
        self.lock().entries.len() as u64
    }

    /// Every key held, for a sweep (purge by tag).
    pub(super) fn keys(&self) -> Vec<HashBinary> {
        self.lock().entries.keys().copied().collect()
    }
}

/// What a scan of the directory found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Scanned {
    pub(super) objects: u64,
    pub(super) removed_temporaries: u64,
}

/// Scan `root` into `index`: every object file by its name and length (the files
/// are checked when read, not here). Temporary files left by a process that is
/// gone (one that crashed while writing) are removed; those of a live one, the
/// other instance during a hand-off, are left alone.
pub(super) fn scan(root: &Path, index: &Index) -> Scanned {
    let mut scanned = Scanned::default();
    for shard in 0..=255u8 {
        let dir = root.join(format!("{shard:02x}"));
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found = Vec::new();
        for file in files.flatten() {
            let name = file.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if let Some(key) = key_of(name) {
                if let Ok(meta) = file.metadata() {
                    found.push((key, meta.len()));
                }
            } else if temporary_of_dead_writer(name) {
                scanned.removed_temporaries += u64::from(std::fs::remove_file(file.path()).is_ok());
            }
        }
        scanned.objects += found.len() as u64;
        let mut lru = index.lock();
        for (key, len) in found {
            if !lru.entries.contains_key(&key) {
                lru.insert(key, len);
            }
        }
    }
    scanned
}

/// The temporary file name for a write by this process: `<pid>.<n>.tmp`.
pub(super) fn temporary_name(n: u64) -> String {
    format!("{}.{n}.tmp", std::process::id())
}

fn temporary_of_dead_writer(name: &str) -> bool {
    let Some(pid) = name
        .strip_suffix(".tmp")
        .and_then(|rest| rest.split('.').next())
        .and_then(|pid| pid.parse::<libc::pid_t>().ok())
    else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    !alive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spell_keys_and_back() {
        let key = [0xab; 16];
        let path = path_of(Path::new("/c"), &key);
        assert_eq!(path, Path::new("/c/ab/abababababababababababababababab"));
        assert_eq!(key_of("abababababababababababababababab"), Some(key));
        assert_eq!(key_of("zz"), None);
        assert_eq!(key_of("12.3.tmp"), None);
    }

    #[test]
    fn room_is_made_least_recently_used_first() {
        let index = Index::default();
        index.insert([1; 16], 100);
        index.insert([2; 16], 100);
        index.insert([3; 16], 100);
        index.touch(&[1; 16]);
        assert_eq!(index.bytes(), 300);
        assert_eq!(index.make_room(50, 300), (vec![[2; 16]], true));
        index.release(50);
        assert_eq!(index.make_room(0, 300), (vec![], true));
        assert_eq!(index.make_room(250, 300), (vec![[3; 16], [1; 16]], true));
        assert_eq!((index.bytes(), index.objects()), (0, 0));
        // 250 reserved: another write of 100 cannot fit until it is done.
        assert_eq!(index.make_room(100, 300), (vec![], false));
        index.insert_reserved([5; 16], 240, 250);
        assert_eq!(index.bytes(), 240);
        assert_eq!(index.make_room(60, 300), (vec![], true));
        index.found([4; 16], 10);
        index.found([4; 16], 99);
        assert_eq!(index.bytes(), 250);
        assert_eq!(index.remove(&[4; 16]), Some(10));
    }

    #[test]
    fn temporaries_of_live_writers_are_kept() {
        assert!(!temporary_of_dead_writer(&temporary_name(7)));
        assert!(!temporary_of_dead_writer("1.2.tmp"), "init is alive");
        assert!(temporary_of_dead_writer("2147483646.1.tmp"));
        assert!(!temporary_of_dead_writer("notes.txt"));
    }
}
