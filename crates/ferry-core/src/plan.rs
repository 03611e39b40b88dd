//! The push planner: a pure function from what a record should have in Dropbox (`desired`)
//! and what Ferry last confirmed there (`synced`) to an ordered list of actions.
//!
//! Recomputed from state on every pass, so a crash between any two actions is recovered by
//! planning again. Two-way sync (issue 4) extends this with the remote tree.

use crate::model::AttachmentId;
use std::collections::{BTreeMap, HashSet};

/// A file the rules say should be in Dropbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFile {
    /// The attachment it comes from.
    pub attachment_id: AttachmentId,
    /// Full Dropbox path with the casing to create.
    pub path_display: String,
    /// Comparison key (see [`crate::names::dropbox_lower`]).
    pub path_lower: String,
    /// Content hash of the attachment's content.
    pub content_hash: String,
}

/// A file Ferry put in Dropbox and Dropbox confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedFile {
    /// Store id of the sync row.
    pub row_id: i64,
    /// Comparison key of its path.
    pub path_lower: String,
    /// Path as shown.
    pub path_display: String,
    /// Content hash Dropbox confirmed; `None` if nothing was ever confirmed.
    pub content_hash: Option<String>,
    /// Revision Dropbox gave it; `None` if nothing was ever confirmed.
    pub rev: Option<String>,
    /// True when the last attempt ended well.
    pub ok: bool,
}

/// One step of a push plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAction {
    /// Upload the file. `replace_rev`: the revision Ferry last wrote there, so the write is an
    /// `update(rev)` and a human edit in between turns into a conflict instead of being lost.
    Upload {
        /// What to write.
        file: DesiredFile,
        /// Revision to replace, if Ferry wrote this path before.
        replace_rev: Option<String>,
    },
    /// Nothing to do: Dropbox already holds this content at this path.
    Keep {
        /// The file.
        file: DesiredFile,
    },
    /// Remove a file Ferry wrote that no rule wants any more (only if still at `rev`).
    Delete {
        /// Its sync row.
        row_id: i64,
        /// Where it is.
        path_display: String,
        /// Revision Ferry wrote; the delete must not remove a newer human edit.
        rev: Option<String>,
    },
}

/// Plans one record's push to one connection. Uploads come before deletes, so a renamed file
/// exists at its new path before the old one goes; each group is ordered by path.
pub fn plan_push(desired: &[DesiredFile], synced: &[SyncedFile]) -> Vec<PushAction> {
    let by_path: BTreeMap<&str, &SyncedFile> =
        synced.iter().map(|s| (s.path_lower.as_str(), s)).collect();
    let mut wanted: Vec<&DesiredFile> = desired.iter().collect();
    wanted.sort_by(|a, b| a.path_lower.cmp(&b.path_lower));
    let wanted_paths: HashSet<&str> = wanted.iter().map(|d| d.path_lower.as_str()).collect();

    let mut actions = Vec::new();
    for file in wanted {
        match by_path.get(file.path_lower.as_str()) {
            Some(s) if s.ok && s.content_hash.as_deref() == Some(file.content_hash.as_str()) => {
                actions.push(PushAction::Keep { file: file.clone() });
            }
            existing => actions.push(PushAction::Upload {
                file: file.clone(),
                replace_rev: existing.and_then(|s| s.rev.clone()),
            }),
        }
    }
    for (path, s) in &by_path {
        if !wanted_paths.contains(path) {
            actions.push(PushAction::Delete {
                row_id: s.row_id,
                path_display: s.path_display.clone(),
                rev: s.rev.clone(),
            });
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn want(id: i64, path: &str, hash: &str) -> DesiredFile {
        DesiredFile {
            attachment_id: id,
            path_display: path.into(),
            path_lower: path.to_lowercase(),
            content_hash: hash.into(),
        }
    }

    fn had(row: i64, path: &str, hash: &str, rev: &str) -> SyncedFile {
        SyncedFile {
            row_id: row,
            path_lower: path.to_lowercase(),
            path_display: path.into(),
            content_hash: Some(hash.into()),
            rev: Some(rev.into()),
            ok: true,
        }
    }

    #[test]
    fn table() {
        // new file
        assert_eq!(
            plan_push(&[want(1, "/a/x", "h1")], &[]),
            vec![PushAction::Upload {
                file: want(1, "/a/x", "h1"),
                replace_rev: None
            }]
        );
        // unchanged: keep, never re-upload
        assert_eq!(
            plan_push(&[want(1, "/a/x", "h1")], &[had(9, "/A/X", "h1", "r1")]),
            vec![PushAction::Keep {
                file: want(1, "/a/x", "h1")
            }]
        );
        // changed content: update by rev
        assert_eq!(
            plan_push(&[want(1, "/a/x", "h2")], &[had(9, "/a/x", "h1", "r1")]),
            vec![PushAction::Upload {
                file: want(1, "/a/x", "h2"),
                replace_rev: Some("r1".into())
            }]
        );
        // removed: delete at the rev we wrote
        assert_eq!(
            plan_push(&[], &[had(9, "/a/x", "h1", "r1")]),
            vec![PushAction::Delete {
                row_id: 9,
                path_display: "/a/x".into(),
                rev: Some("r1".into())
            }]
        );
        // moved (folder template changed): upload new first, then delete old
        let plan = plan_push(&[want(1, "/b/x", "h1")], &[had(9, "/a/x", "h1", "r1")]);
        assert!(matches!(plan[0], PushAction::Upload { .. }));
        assert!(matches!(plan[1], PushAction::Delete { row_id: 9, .. }));
        // failed last time: retry even with the same hash
        let mut failed = had(9, "/a/x", "h1", "r1");
        failed.ok = false;
        assert!(matches!(
            plan_push(&[want(1, "/a/x", "h1")], &[failed])[0],
            PushAction::Upload { .. }
        ));
    }

    proptest! {
        /// Applying a plan and planning again yields only `Keep`s: the planner converges.
        #[test]
        fn converges(files in proptest::collection::btree_map("[a-c]{1,2}", "[xyz]", 0..6),
                     prior in proptest::collection::btree_map("[a-c]{1,2}", "[xyz]", 0..6)) {
            let desired: Vec<DesiredFile> = files.iter().enumerate()
                .map(|(i, (p, h))| want(i as i64, &format!("/{p}"), h)).collect();
            let synced: Vec<SyncedFile> = prior.iter().enumerate()
                .map(|(i, (p, h))| had(i as i64, &format!("/{p}"), h, "r")).collect();
            let plan = plan_push(&desired, &synced);
            let mut after: Vec<SyncedFile> = Vec::new();
            for action in &plan {
                match action {
                    PushAction::Upload { file, .. } | PushAction::Keep { file } =>
                        after.push(had(file.attachment_id, &file.path_display, &file.content_hash, "r2")),
                    PushAction::Delete { .. } => {}
                }
            }
            let uploads = plan.iter().filter(|a| matches!(a, PushAction::Upload { .. })).count();
            let deletes = plan.iter().filter(|a| matches!(a, PushAction::Delete { .. })).count();
            prop_assert_eq!(plan.len() - deletes, desired.len());
            prop_assert!(uploads <= desired.len());
            let replanned = plan_push(&desired, &after);
            let all_keep = replanned.iter().all(|a| matches!(a, PushAction::Keep { .. }));
            prop_assert!(all_keep, "replanning after applying must be a no-op: {:?}", replanned);
        }
    }
}
