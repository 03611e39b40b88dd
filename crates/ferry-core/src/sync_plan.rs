//! The three-tree planner: for one binding (a record's folder in Dropbox) it compares the
//! **local** tree (the attachments the rule selects), the **remote** tree (what Dropbox holds
//! under the folder) and the **synced** tree (what both sides last agreed on) and returns an
//! ordered list of actions. Pure: no I/O, the same input gives the same plan.
//!
//! Which side changed is decided against *synced* alone. Policies (see `docs/sync.md`):
//! - both sides changed with different content: the app's version wins; the Dropbox version is
//!   kept by renaming it to a conflicted-copy name in Dropbox (a pull binding then imports it);
//! - a file deleted in the app is deleted in Dropbox (only at the revision Ferry wrote);
//! - a file deleted in Dropbox is archived in Ferry (unlinked, content kept), and comes back
//!   on push-only bindings;
//! - a pass that would delete more than the brake allows is not run: the binding pauses.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Which way files flow for a rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// App → Dropbox only; Dropbox changes are overruled (edits kept as conflicted copies).
    #[default]
    Push,
    /// Dropbox → app only.
    Pull,
    /// Both ways.
    Both,
}

impl Direction {
    /// Whether app changes go to Dropbox.
    pub fn pushes(self) -> bool {
        matches!(self, Direction::Push | Direction::Both)
    }

    /// Whether Dropbox changes come into the app.
    pub fn pulls(self) -> bool {
        matches!(self, Direction::Pull | Direction::Both)
    }
}

/// A path relative to the binding's folder: `display` as written, `lower` for comparison
/// (see [`crate::names::dropbox_lower`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RelPath {
    /// Comparison key.
    pub lower: String,
    /// Casing to create.
    pub display: String,
}

impl RelPath {
    /// A relative path from its display form.
    pub fn new(display: impl Into<String>) -> Self {
        let display = display.into();
        RelPath {
            lower: crate::names::dropbox_lower(&display),
            display,
        }
    }
}

/// An attachment the rule places at `rel`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// The attachment.
    pub attachment_id: i64,
    /// Where it belongs.
    pub rel: RelPath,
    /// Its content hash.
    pub content_hash: String,
}

/// A file Dropbox holds under the binding's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Dropbox id (stable across moves).
    pub id: String,
    /// Where it is.
    pub rel: RelPath,
    /// Its revision.
    pub rev: String,
    /// Its content hash.
    pub content_hash: String,
}

/// What both sides last agreed on for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedFile {
    /// Store id of the sync row.
    pub row_id: i64,
    /// The attachment, while it exists.
    pub attachment_id: Option<i64>,
    /// Where it was.
    pub rel: RelPath,
    /// Dropbox id.
    pub dropbox_id: String,
    /// Revision Dropbox confirmed.
    pub rev: String,
    /// Content hash both sides had.
    pub content_hash: String,
}

/// Options of one planning run.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Which way files flow.
    pub direction: Direction,
    /// Pause when a pass would delete or archive more than this share of the synced files…
    pub brake_share: f64,
    /// …and at least this many files (so removing one file of two never pauses).
    pub brake_min: usize,
    /// The admin confirmed the deletions: run them even above the brake.
    pub deletions_confirmed: bool,
    /// Suffix for conflicted copies, e.g. `conflicted copy 2026-11-23` gives
    /// `name (Ferry conflicted copy 2026-11-23).ext`.
    pub conflict_label: String,
    /// Every path (lower-cased, relative) in the folder, including files the binding does not
    /// track: conflicted copies must not land on any of them.
    pub occupied: BTreeSet<String>,
    /// Deletions and archives this binding already made within the brake's window: deleting
    /// a folder file by file is braked like deleting it at once.
    pub recent_deletions: usize,
    /// The connection-wide brake, if any.
    pub connection_brake: Option<ConnectionBrake>,
}

/// The connection-wide deletion brake: across every binding of one connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionBrake {
    /// Deletions and archives on the connection within the window.
    pub recent: usize,
    /// Synced files of the connection now.
    pub files: usize,
    /// Pause above this share of the files (counting those deleted within the window)…
    pub share: f64,
    /// …and at least this many deletions.
    pub min: usize,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            direction: Direction::Push,
            brake_share: 0.5,
            brake_min: 3,
            deletions_confirmed: false,
            conflict_label: "conflicted copy".into(),
            occupied: BTreeSet::new(),
            recent_deletions: 0,
            connection_brake: None,
        }
    }
}

/// How an upload treats what is at the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadMode {
    /// Nothing of ours is there: never replace different content.
    Add,
    /// Replace exactly this revision (a newer human edit becomes a conflict, not a loss).
    Update(String),
}

/// One step of a plan. Executed in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Rename a Dropbox file out of the way, to keep a version the app's version replaces.
    PreserveRemote {
        /// Where it is.
        from: RelPath,
        /// Its conflicted-copy name.
        to: RelPath,
        /// Its revision (the move must not take a newer one by surprise).
        rev: String,
    },
    /// Upload an attachment.
    Upload {
        /// The attachment.
        attachment_id: i64,
        /// Where to.
        rel: RelPath,
        /// Content to write.
        content_hash: String,
        /// Add or update-by-revision.
        mode: UploadMode,
    },
    /// Delete a Dropbox file Ferry wrote, only if still at `rev`.
    DeleteRemote {
        /// Its sync row.
        row_id: i64,
        /// Where it is.
        rel: RelPath,
        /// The revision Ferry agreed on.
        rev: String,
    },
    /// Bring a Dropbox file into the app: a new attachment, or new content for `attachment_id`
    /// (the replaced content is archived first).
    Import {
        /// The file.
        remote: RemoteFile,
        /// The attachment to update, if any.
        attachment_id: Option<i64>,
    },
    /// A Dropbox file was deleted: unlink the attachment, keep its content in the archive.
    Archive {
        /// Its sync row.
        row_id: i64,
        /// The attachment.
        attachment_id: i64,
    },
    /// Both sides already agree (same content): remember it.
    RecordSynced {
        /// The attachment.
        attachment_id: i64,
        /// The Dropbox file.
        remote: RemoteFile,
    },
    /// Both sides dropped the file: forget the sync row.
    Forget {
        /// The sync row.
        row_id: i64,
    },
    /// Someone renamed or moved the file in Dropbox (same id, same content): follow it in
    /// the app — the attachment takes the new name and place.
    RenameLocal {
        /// The attachment.
        attachment_id: i64,
        /// Its sync row.
        row_id: i64,
        /// Where the file is now.
        to: RelPath,
    },
    /// Someone renamed a file of a push-only binding in Dropbox: put it back where the app
    /// says (one move, no re-upload).
    MoveRemote {
        /// Where it is now.
        from: RelPath,
        /// Where it belongs.
        to: RelPath,
    },
}

impl Action {
    /// What the step does, in words for an admin (a preview, `ferry records sync`).
    pub fn describe(&self) -> String {
        match self {
            Action::PreserveRemote { from, to, .. } => format!(
                "keep the Dropbox version of {} as {} (the app's version replaces it)",
                from.display, to.display
            ),
            Action::Upload { rel, mode, .. } => match mode {
                UploadMode::Add => format!("upload {} (new in Dropbox)", rel.display),
                UploadMode::Update(_) => {
                    format!(
                        "upload {} (a new version of the file in Dropbox)",
                        rel.display
                    )
                }
            },
            Action::DeleteRemote { rel, .. } => {
                format!("delete {} from Dropbox (the app removed it)", rel.display)
            }
            Action::Import {
                remote,
                attachment_id,
            } => match attachment_id {
                Some(_) => format!(
                    "bring the Dropbox edit of {} into the app (its version there is archived)",
                    remote.rel.display
                ),
                None => format!("bring {} from Dropbox into the app", remote.rel.display),
            },
            Action::Archive { .. } => {
                "archive a file deleted in Dropbox (its content is kept)".to_owned()
            }
            Action::RecordSynced { remote, .. } => {
                format!(
                    "note that {} is already the same on both sides",
                    remote.rel.display
                )
            }
            Action::Forget { .. } => "forget a file both sides removed".to_owned(),
            Action::RenameLocal { to, .. } => {
                format!("follow a rename in Dropbox: the file is now {}", to.display)
            }
            Action::MoveRemote { from, to } => format!(
                "move {} back to {} in Dropbox (this rule only pushes)",
                from.display, to.display
            ),
        }
    }
}

/// The result of planning one binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Run these actions (possibly none).
    Run(Vec<Action>),
    /// Too many deletions: nothing is done until an admin confirms.
    Paused {
        /// Why, for the admin.
        reason: String,
    },
}

/// The conflicted-copy name for `rel`: `a/b/name (label).ext`, numbered if `taken` has it.
pub fn conflicted_copy(rel: &RelPath, label: &str, taken: &BTreeSet<String>) -> RelPath {
    let (dir, name) = match rel.display.rfind('/') {
        Some(i) => (&rel.display[..=i], &rel.display[i + 1..]),
        None => ("", rel.display.as_str()),
    };
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let mut n = 1;
    loop {
        let suffix = if n == 1 {
            String::new()
        } else {
            format!(" {n}")
        };
        let candidate = RelPath::new(format!("{dir}{stem} ({label}{suffix}){ext}"));
        if !taken.contains(&candidate.lower) {
            return candidate;
        }
        n += 1;
    }
}

/// Finds synced files that Dropbox now holds under another name (same id, same content,
/// nothing tracked at the new name) and returns the rename actions plus the trees as they
/// are after them.
fn follow_renames(
    local: &[LocalFile],
    remote: &[RemoteFile],
    synced: &[SyncedFile],
    direction: Direction,
) -> (
    Vec<Action>,
    Vec<LocalFile>,
    Vec<RemoteFile>,
    Vec<SyncedFile>,
) {
    let mut local = local.to_vec();
    let mut remote = remote.to_vec();
    let mut synced = synced.to_vec();
    let mut actions = Vec::new();
    let remote_keys: BTreeSet<String> = remote.iter().map(|f| f.rel.lower.clone()).collect();
    let synced_keys: BTreeSet<String> = synced.iter().map(|f| f.rel.lower.clone()).collect();
    let local_keys: BTreeSet<String> = local.iter().map(|f| f.rel.lower.clone()).collect();
    for sf_slot in synced.iter_mut() {
        let sf = sf_slot.clone();
        if remote_keys.contains(&sf.rel.lower) {
            continue;
        }
        let Some(ri) = remote.iter().position(|f| {
            f.id == sf.dropbox_id
                && f.content_hash == sf.content_hash
                && !synced_keys.contains(&f.rel.lower)
                && !local_keys.contains(&f.rel.lower)
        }) else {
            continue;
        };
        let Some(li) = local.iter().position(|f| f.rel.lower == sf.rel.lower) else {
            continue;
        };
        if local[li].content_hash != sf.content_hash {
            continue; // Changed in the app too: planned as a delete plus a new file.
        }
        let new_rel = remote[ri].rel.clone();
        if direction.pulls() {
            actions.push(Action::RenameLocal {
                attachment_id: local[li].attachment_id,
                row_id: sf.row_id,
                to: new_rel.clone(),
            });
            local[li].rel = new_rel.clone();
            sf_slot.rel = new_rel;
        } else {
            actions.push(Action::MoveRemote {
                from: new_rel,
                to: sf.rel.clone(),
            });
            remote[ri].rel = sf.rel.clone();
        }
    }
    (actions, local, remote, synced)
}

/// Why the deletion brake holds a pass that would delete or archive `deletions` of `synced`
/// files, counting what was deleted within the window; `None` if it may run.
fn brake(deletions: usize, synced: usize, options: &PlanOptions) -> Option<String> {
    if deletions == 0 || options.deletions_confirmed {
        return None;
    }
    let counted = deletions + options.recent_deletions;
    // The folder as it was when the window began: what is left plus what went since.
    let total = synced + options.recent_deletions;
    let limit = (total as f64 * options.brake_share).floor() as usize;
    if counted > limit && counted >= options.brake_min {
        let recent = if options.recent_deletions > 0 {
            format!(
                " ({} of them already deleted recently)",
                options.recent_deletions
            )
        } else {
            String::new()
        };
        return Some(format!(
            "this pass would bring deletions to {counted} of {total} synced files{recent}, more than {:.0}%; confirm to proceed",
            options.brake_share * 100.0
        ));
    }
    let c = options.connection_brake.as_ref()?;
    let counted = deletions + c.recent;
    let total = c.files + c.recent;
    let limit = (total as f64 * c.share).floor() as usize;
    (counted > limit && counted >= c.min).then(|| {
        format!(
            "deletions on this connection would reach {counted} of {total} synced files within the brake's window, more than {:.0}%; confirm for the connection to proceed",
            c.share * 100.0
        )
    })
}

/// Plans one binding. `local` and `remote` must have unique `rel.lower` keys.
pub fn plan(
    local: &[LocalFile],
    remote: &[RemoteFile],
    synced: &[SyncedFile],
    options: &PlanOptions,
) -> Plan {
    // Renames in Dropbox, recognised by id: followed (pull, both) or undone (push); the trees
    // are then planned as if the file were where it ends up.
    let (renames, local, remote, synced) = follow_renames(local, remote, synced, options.direction);
    let (local, remote, synced) = (&local[..], &remote[..], &synced[..]);
    let l: BTreeMap<&str, &LocalFile> = local.iter().map(|f| (f.rel.lower.as_str(), f)).collect();
    let r: BTreeMap<&str, &RemoteFile> = remote.iter().map(|f| (f.rel.lower.as_str(), f)).collect();
    let s: BTreeMap<&str, &SyncedFile> = synced.iter().map(|f| (f.rel.lower.as_str(), f)).collect();
    let keys: BTreeSet<&str> = l.keys().chain(r.keys()).chain(s.keys()).copied().collect();
    // Names already used in Dropbox, so conflicted copies never collide.
    let mut taken: BTreeSet<String> = r.keys().map(|k| k.to_string()).collect();
    taken.extend(l.keys().map(|k| k.to_string()));
    taken.extend(options.occupied.iter().cloned());

    let push = options.direction.pushes();
    let pull = options.direction.pulls();
    let mut preserve = Vec::new();
    let mut writes = Vec::new();
    let mut destructive = Vec::new();
    let mut bookkeeping = Vec::new();

    let keep_remote_version =
        |rf: &RemoteFile, taken: &mut BTreeSet<String>, out: &mut Vec<Action>| {
            let to = conflicted_copy(&rf.rel, &options.conflict_label, taken);
            taken.insert(to.lower.clone());
            out.push(Action::PreserveRemote {
                from: rf.rel.clone(),
                to,
                rev: rf.rev.clone(),
            });
        };

    for key in keys {
        let (lf, rf, sf) = (
            l.get(key).copied(),
            r.get(key).copied(),
            s.get(key).copied(),
        );
        let upload = |lf: &LocalFile, mode: UploadMode| Action::Upload {
            attachment_id: lf.attachment_id,
            rel: lf.rel.clone(),
            content_hash: lf.content_hash.clone(),
            mode,
        };
        match sf {
            None => match (lf, rf) {
                (None, None) => {}
                (Some(lf), None) => {
                    if push {
                        writes.push(upload(lf, UploadMode::Add));
                    }
                }
                (None, Some(rf)) => {
                    if pull {
                        writes.push(Action::Import {
                            remote: rf.clone(),
                            attachment_id: None,
                        });
                    }
                }
                (Some(lf), Some(rf)) if lf.content_hash == rf.content_hash => {
                    bookkeeping.push(Action::RecordSynced {
                        attachment_id: lf.attachment_id,
                        remote: rf.clone(),
                    });
                }
                (Some(lf), Some(rf)) => {
                    if push {
                        keep_remote_version(rf, &mut taken, &mut preserve);
                        writes.push(upload(lf, UploadMode::Add));
                    } else {
                        // Pull-only: Dropbox wins; the app's version goes to the archive.
                        writes.push(Action::Import {
                            remote: rf.clone(),
                            attachment_id: Some(lf.attachment_id),
                        });
                    }
                }
            },
            Some(sf) => {
                let local_same = lf.is_some_and(|lf| lf.content_hash == sf.content_hash);
                let remote_same = rf.is_some_and(|rf| rf.content_hash == sf.content_hash);
                match (lf, rf, local_same, remote_same) {
                    (Some(lf), Some(rf), true, true) => {
                        // Unchanged; keep ids and revs current (a move or a no-op rewrite).
                        if lf.attachment_id != sf.attachment_id.unwrap_or(-1)
                            || rf.rev != sf.rev
                            || rf.id != sf.dropbox_id
                        {
                            bookkeeping.push(Action::RecordSynced {
                                attachment_id: lf.attachment_id,
                                remote: rf.clone(),
                            });
                        }
                    }
                    // Only the app changed. Replace the revision Dropbox holds now: same content as
                    // agreed, but possibly a newer revision (deleted and re-created identically).
                    (Some(lf), Some(rf), false, true) => {
                        if push {
                            writes.push(upload(lf, UploadMode::Update(rf.rev.clone())));
                        }
                    }
                    (None, Some(rf), _, true) => {
                        // Pull-only: the app's deletion stays in the app (no re-import).
                        if push {
                            destructive.push(Action::DeleteRemote {
                                row_id: sf.row_id,
                                rel: sf.rel.clone(),
                                rev: rf.rev.clone(),
                            });
                        }
                    }
                    // Only Dropbox changed.
                    (Some(lf), Some(rf), true, false) => {
                        if pull {
                            writes.push(Action::Import {
                                remote: rf.clone(),
                                attachment_id: Some(lf.attachment_id),
                            });
                        } else {
                            keep_remote_version(rf, &mut taken, &mut preserve);
                            writes.push(upload(lf, UploadMode::Add));
                        }
                    }
                    (Some(lf), None, true, _) => {
                        if pull {
                            destructive.push(Action::Archive {
                                row_id: sf.row_id,
                                attachment_id: lf.attachment_id,
                            });
                        } else {
                            writes.push(upload(lf, UploadMode::Add));
                        }
                    }
                    // Both changed.
                    (Some(lf), Some(rf), false, false) => {
                        if lf.content_hash == rf.content_hash {
                            bookkeeping.push(Action::RecordSynced {
                                attachment_id: lf.attachment_id,
                                remote: rf.clone(),
                            });
                        } else if push {
                            keep_remote_version(rf, &mut taken, &mut preserve);
                            writes.push(upload(lf, UploadMode::Add));
                        } else {
                            writes.push(Action::Import {
                                remote: rf.clone(),
                                attachment_id: Some(lf.attachment_id),
                            });
                        }
                    }
                    (Some(lf), None, false, _) => {
                        // Changed in the app, deleted in Dropbox: the app's version wins.
                        if push {
                            writes.push(upload(lf, UploadMode::Add));
                        } else {
                            destructive.push(Action::Archive {
                                row_id: sf.row_id,
                                attachment_id: lf.attachment_id,
                            });
                        }
                    }
                    (None, Some(rf), _, false) => {
                        // Deleted in the app, edited in Dropbox: the edit is a new version
                        // someone wrote; keep it (imported, or left in Dropbox untracked).
                        if pull {
                            writes.push(Action::Import {
                                remote: rf.clone(),
                                attachment_id: None,
                            });
                        } else {
                            bookkeeping.push(Action::Forget { row_id: sf.row_id });
                        }
                    }
                    (None, None, _, _) => bookkeeping.push(Action::Forget { row_id: sf.row_id }),
                }
            }
        }
    }

    if let Some(reason) = brake(destructive.len(), synced.len(), options) {
        return Plan::Paused { reason };
    }
    // Renames first (they put files where the rest of the plan expects them), then preserve
    // human versions, then write, then delete, then bookkeeping.
    let mut actions = renames;
    actions.extend(preserve);
    actions.extend(writes);
    actions.extend(destructive);
    actions.extend(bookkeeping);
    Plan::Run(actions)
}

#[cfg(test)]
#[path = "sync_plan_tests.rs"]
mod tests;
