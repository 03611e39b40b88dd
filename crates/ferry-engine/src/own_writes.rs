//! Ferry's own uploads from before they are sent until the pass has saved their rows. The
//! change feed often brings such a file back first (a batch commit's results come after
//! Dropbox applied it); without this, the watcher would take it for news and queue the
//! record for a second pass with nothing to do — ahead of a record's own change, since feed
//! work is more urgent. Once the row is saved the store answers the same question
//! ([`knows_revision`](ferry_store::Store::knows_revision)), so an entry lives only while
//! its pass holds it.
//!
//! A file is known by its path and content hash: what the pass is writing there. Skipping
//! the queue entry can never hide a change: the content in Dropbox is the content the pass
//! writes, and the pass still runs to its end (recording the file, or failing and being
//! retried), or its claim lapses and it runs again.

use ferry_dropbox::FileInfo;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// A file Ferry is writing: its lower-cased path and its content hash.
type Key = (String, String);

/// The files passes are uploading and have not saved yet.
#[derive(Default)]
pub(crate) struct OwnWrites {
    held: Mutex<HashMap<Key, usize>>,
}

/// Holds a pass's uploads until it is dropped (after the store write, or when the pass
/// fails or is cancelled).
pub(crate) struct Held<'a> {
    writes: &'a OwnWrites,
    keys: Vec<Key>,
}

impl OwnWrites {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, usize>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks each `(path, content_hash)` as being written by Ferry until the returned guard
    /// is dropped.
    pub(crate) fn hold(&self, files: impl IntoIterator<Item = (String, String)>) -> Held<'_> {
        let keys: Vec<Key> = files
            .into_iter()
            .map(|(path, hash)| (ferry_core::names::dropbox_lower(&path), hash))
            .collect();
        let mut map = self.map();
        for k in &keys {
            *map.entry(k.clone()).or_default() += 1;
        }
        Held { writes: self, keys }
    }

    /// Whether `file`, as the feed reports it, is what a running pass is writing.
    pub(crate) fn contains(&self, file: &FileInfo) -> bool {
        let Some(hash) = &file.content_hash else {
            return false;
        };
        let map = self.map();
        !map.is_empty() && map.contains_key(&(file.path_lower.clone(), hash.clone()))
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut map = self.writes.map();
        for k in self.keys.drain(..) {
            if let Some(n) = map.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, hash: Option<&str>) -> FileInfo {
        FileInfo {
            id: "id:a".into(),
            name: "a.pdf".into(),
            path_display: path.into(),
            path_lower: path.to_lowercase(),
            rev: "1".into(),
            size: 1,
            content_hash: hash.map(Into::into),
        }
    }

    #[test]
    fn a_write_is_known_while_held_and_forgotten_after() {
        let writes = OwnWrites::default();
        let ours = || ("/R/A.pdf".to_owned(), "h1".to_owned());
        let held = writes.hold([ours()]);
        let second = writes.hold([ours()]);
        assert!(writes.contains(&file("/R/A.pdf", Some("h1"))));
        // Other content at the path, the content elsewhere, or no hash: news.
        assert!(!writes.contains(&file("/R/A.pdf", Some("h2"))));
        assert!(!writes.contains(&file("/R/B.pdf", Some("h1"))));
        assert!(!writes.contains(&file("/R/A.pdf", None)));
        drop(held);
        assert!(
            writes.contains(&file("/R/A.pdf", Some("h1"))),
            "still held by the second pass"
        );
        drop(second);
        assert!(!writes.contains(&file("/R/A.pdf", Some("h1"))));
        assert!(writes.map().is_empty());
    }
}
