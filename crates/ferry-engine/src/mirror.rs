//! The remote mirror: each connection's Dropbox tree, kept in the store from the change feed
//! the watcher follows, so a pass plans from it instead of listing its folder.
//!
//! Only the feed writes the mirror forward (a page and its cursor commit together), so it is
//! never newer than Dropbox and never goes back in time. A pass trusts it only when nothing
//! it knows says otherwise: every file the binding synced is in the mirror at the revision
//! the binding recorded, no file of the record is failed or pending, the pass is not a retry,
//! and a watcher followed the feed lately. Anything else lists the folder, as before the
//! mirror, and that listing corrects the mirror where it still holds what was read before
//! the listing. A stale mirror can only hide a change for as long as the feed takes to bring
//! it (and the feed then queues the record), or make a write fail on its precondition
//! (`update(rev)`, a delete's `parent_rev`), which the retry re-plans from a listing.

use crate::Engine;
use ferry_core::sync_plan::SyncedFile;
use ferry_dropbox::{DropboxClient, DropboxError, Entry, FileInfo};
use ferry_store::{Binding, MirrorChange, MirrorCorrection, MirrorFile};
use std::collections::HashMap;

/// How long a mirror counts as followed after the watcher's last sign of life: a long-poll
/// may last its timeout plus up to 90 s of jitter Dropbox adds, then a margin.
pub(crate) fn live_until(longpoll_secs: u64) -> i64 {
    let secs = i64::try_from(longpoll_secs).unwrap_or(480) + 90 + 30;
    now_ms().saturating_add(secs * 1000)
}

use ferry_core::clock::now_ms;

/// A file of a listing or of the feed, as the mirror keeps it.
pub(crate) fn mirror_file(f: &FileInfo) -> MirrorFile {
    MirrorFile {
        path_lower: f.path_lower.clone(),
        path_display: f.path_display.clone(),
        id: f.id.clone(),
        rev: f.rev.clone(),
        size: f.size,
        content_hash: f.content_hash.clone(),
    }
}

/// An entry of a listing or of the feed, as the mirror applies it.
pub(crate) fn mirror_change(entry: &Entry) -> MirrorChange {
    match entry {
        Entry::File(f) => MirrorChange::File(mirror_file(f)),
        Entry::Folder(f) => MirrorChange::Folder {
            path_lower: f.path_lower.clone(),
        },
        Entry::Deleted { path_lower, .. } => MirrorChange::Deleted {
            path_lower: path_lower.clone(),
        },
    }
}

/// A mirrored file as a listing entry.
fn as_entry(f: MirrorFile) -> Entry {
    let name = f
        .path_display
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    Entry::File(FileInfo {
        id: f.id,
        name,
        path_display: f.path_display,
        path_lower: f.path_lower,
        rev: f.rev,
        size: f.size,
        content_hash: f.content_hash,
    })
}

/// Whether the mirror agrees with everything the binding synced: each file at its path, with
/// the id and revision recorded.
fn agrees(binding: &Binding, synced: &[SyncedFile], files: &[MirrorFile]) -> bool {
    let by_path: HashMap<&str, &MirrorFile> =
        files.iter().map(|f| (f.path_lower.as_str(), f)).collect();
    synced.iter().all(|s| {
        let path = format!("{}/{}", binding.folder_lower, s.rel.lower);
        by_path
            .get(path.as_str())
            .is_some_and(|f| f.id == s.dropbox_id && f.rev == s.rev)
    })
}

/// What to correct in the mirror after a listing of a folder, given what the mirror held
/// there before the listing: every path where the two differ.
fn corrections(before: &[MirrorFile], listed: &[Entry]) -> Vec<MirrorCorrection> {
    let mut was: HashMap<&str, &MirrorFile> =
        before.iter().map(|f| (f.path_lower.as_str(), f)).collect();
    let mut out = Vec::new();
    for entry in listed {
        let Entry::File(f) = entry else { continue };
        match was.remove(f.path_lower.as_str()) {
            Some(m) if m.id == f.id && m.rev == f.rev && m.path_display == f.path_display => {}
            held => out.push(MirrorCorrection {
                path_lower: f.path_lower.clone(),
                was_rev: held.map(|m| m.rev.clone()),
                now: Some(mirror_file(f)),
            }),
        }
    }
    out.extend(was.into_values().map(|m| MirrorCorrection {
        path_lower: m.path_lower.clone(),
        was_rev: Some(m.rev.clone()),
        now: None,
    }));
    out
}

/// Where a pass's view of a binding's folder came from (counted in the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeSource {
    /// The mirror, without a request.
    Mirror,
    /// A listing of the folder.
    Listing,
}

impl Engine {
    /// What Dropbox holds under the binding's folder (every file, at every depth), and where
    /// that came from: the mirror when `may_use_mirror` and the mirror agrees with `synced`,
    /// else a listing (which then corrects the mirror). A missing folder is empty.
    pub(crate) async fn folder_entries(
        &self,
        client: &DropboxClient,
        binding: &Binding,
        synced: &[SyncedFile],
        may_use_mirror: bool,
    ) -> Result<(Vec<Entry>, TreeSource), DropboxError> {
        let before = if may_use_mirror && self.config.remote_mirror {
            self.store
                .mirror_within(&binding.connection, &binding.folder_lower, now_ms())
                .await
                .map_err(|e| crate::error::store_step("reading the remote mirror", e))?
        } else {
            None
        };
        if let Some(files) = &before
            && agrees(binding, synced, files)
        {
            self.metrics.remote_tree(TreeSource::Mirror);
            tracing::debug!(folder = %binding.folder_display, files = files.len(), "remote tree from the mirror");
            let entries = before.into_iter().flatten().map(as_entry).collect();
            return Ok((entries, TreeSource::Mirror));
        }
        self.metrics.remote_tree(TreeSource::Listing);
        tracing::debug!(folder = %binding.folder_display, mirror = before.is_some(), "remote tree from a listing");
        let listed = match client.list_all(&binding.folder_display, true).await {
            Ok((entries, _)) => entries,
            Err(DropboxError::NotFound(_)) => Vec::new(),
            Err(e) => return Err(e),
        };
        if let Some(files) = &before {
            let fixes = corrections(files, &listed);
            if !fixes.is_empty() {
                tracing::debug!(folder = %binding.folder_display, corrections = fixes.len(), "the listing corrects the remote mirror");
                // The listing stands whatever happens to the correction: a failure here
                // only leaves the mirror to the next listing or the feed.
                if let Err(e) = self.store.correct_mirror(&binding.connection, &fixes).await {
                    tracing::warn!(error = %e, "cannot correct the remote mirror");
                }
            }
        }
        Ok((listed, TreeSource::Listing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::sync_plan::RelPath;

    fn file(path: &str, rev: &str) -> FileInfo {
        FileInfo {
            id: format!("id:{path}"),
            name: path.rsplit('/').next().unwrap().into(),
            path_display: path.into(),
            path_lower: path.to_lowercase(),
            rev: rev.into(),
            size: 1,
            content_hash: None,
        }
    }

    fn binding() -> Binding {
        Binding {
            id: 1,
            record_id: 1,
            rule_name: "r".into(),
            connection: "c".into(),
            folder_display: "/F".into(),
            folder_lower: "/f".into(),
            paused_reason: None,
            confirm_deletions: false,
            deletions_confirmed_at: 0,
        }
    }

    fn synced(rel: &str, rev: &str) -> SyncedFile {
        SyncedFile {
            row_id: 1,
            attachment_id: Some(1),
            rel: RelPath::new(rel.to_owned()),
            dropbox_id: format!("id:/F/{rel}"),
            rev: rev.into(),
            content_hash: String::new(),
        }
    }

    #[test]
    fn the_mirror_is_trusted_only_when_it_holds_every_synced_revision() {
        let files = vec![mirror_file(&file("/F/a.pdf", "1"))];
        assert!(agrees(&binding(), &[], &files));
        assert!(agrees(&binding(), &[synced("a.pdf", "1")], &files));
        assert!(!agrees(&binding(), &[synced("a.pdf", "2")], &files));
        assert!(!agrees(&binding(), &[synced("b.pdf", "1")], &files));
        assert!(!agrees(&binding(), &[synced("a.pdf", "1")], &[]));
    }

    #[test]
    fn a_listing_corrects_what_differs_and_only_that() {
        let before = vec![
            mirror_file(&file("/F/same.pdf", "1")),
            mirror_file(&file("/F/changed.pdf", "1")),
            mirror_file(&file("/F/gone.pdf", "1")),
        ];
        let listed = vec![
            Entry::File(file("/F/same.pdf", "1")),
            Entry::File(file("/F/changed.pdf", "2")),
            Entry::File(file("/F/new.pdf", "1")),
        ];
        let mut fixes: Vec<(String, Option<String>, Option<String>)> =
            corrections(&before, &listed)
                .into_iter()
                .map(|c| (c.path_lower, c.was_rev, c.now.map(|f| f.rev)))
                .collect();
        fixes.sort();
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            fixes,
            [
                ("/f/changed.pdf".into(), some("1"), some("2")),
                ("/f/gone.pdf".into(), some("1"), None),
                ("/f/new.pdf".into(), None, some("1")),
            ]
        );
    }
}
