//! Where a record's files belong: every rule for the record's kind is evaluated; an applying
//! rule yields a folder and the local tree (attachments at their relative paths). Everything
//! that cannot be placed becomes a visible per-file error, never a crash or a silent skip.

use ferry_core::model::Attachment;
use ferry_core::rules::{CompiledRule, RuleContext};
use ferry_core::sync_plan::{Direction, LocalFile, RelPath};
use std::collections::HashMap;

/// One applying rule's result for a record.
#[derive(Debug, Clone)]
pub(crate) struct RulePlacement {
    pub(crate) rule: String,
    pub(crate) connection: String,
    pub(crate) direction: Direction,
    pub(crate) pull_subfolders: bool,
    /// Folders to make inside the record's folder (see `RuleSpec::subfolders`).
    pub(crate) subfolders: Vec<String>,
    /// Make missing ones on every pass.
    pub(crate) recreate_subfolders: bool,
    /// Sanitised folder components under the connection root.
    pub(crate) folder: Vec<String>,
    pub(crate) local: Vec<LocalFile>,
    /// An earlier rule (in rule order) puts this record in the same folder: that rule claims
    /// it, and this one makes no binding there (one it already has is kept).
    pub(crate) claimed_by: Option<String>,
}

/// A file (or a whole record, `attachment_id: None`) that could not be placed.
#[derive(Debug, Clone)]
pub(crate) struct Unplaced {
    pub(crate) rule: String,
    pub(crate) connection: String,
    pub(crate) attachment_id: Option<i64>,
    pub(crate) error: String,
}

/// All of a record's placements.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    pub(crate) rules: Vec<RulePlacement>,
    pub(crate) unplaced: Vec<Unplaced>,
}

/// Places a record's attachments with every rule for its kind (`rules` are pre-filtered by
/// kind). `connections` holds the known connection names.
pub(crate) fn place(
    ctx: &RuleContext,
    attachments: &[Attachment],
    rules: &[CompiledRule],
    connections: &HashMap<String, String>,
) -> Placement {
    let mut out = Placement::default();
    // The first rule (in rule order) to put the record in a folder claims it.
    let mut folders: HashMap<(String, String), String> = HashMap::new();
    for rule in rules {
        let spec = rule.spec();
        let fail = |attachment_id: Option<i64>, error: String| Unplaced {
            rule: spec.name.clone(),
            connection: spec.connection.clone(),
            attachment_id,
            error: format!("rule {:?}: {error}", spec.name),
        };
        match rule.applies(ctx) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                out.unplaced.push(fail(None, e.to_string()));
                continue;
            }
        }
        if !connections.contains_key(&spec.connection) {
            out.unplaced.push(fail(
                None,
                format!("unknown connection {:?}", spec.connection),
            ));
            continue;
        }
        let folder = match rule.folder(ctx) {
            Ok(folder) => folder,
            Err(e) => {
                out.unplaced.push(fail(None, e.to_string()));
                continue;
            }
        };
        let claimed_by = match folders.entry((
            spec.connection.clone(),
            ferry_core::names::dropbox_lower(&folder.join("/")),
        )) {
            std::collections::hash_map::Entry::Occupied(first) => Some(first.get().clone()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(spec.name.clone());
                None
            }
        };
        let mut local = Vec::new();
        // Who claimed each lower-cased path first.
        let mut claimed: HashMap<String, String> = HashMap::new();
        for attachment in attachments {
            match rule.selects(ctx, attachment) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    out.unplaced.push(fail(Some(attachment.id), e.to_string()));
                    continue;
                }
            }
            // A file imported from Dropbox stays where it was found.
            let rel = match &attachment.origin_path {
                Some(origin) => RelPath::new(origin.clone()),
                None => match rule.file_path(ctx, attachment) {
                    Ok(parts) => RelPath::new(parts.join("/")),
                    Err(e) => {
                        out.unplaced.push(fail(Some(attachment.id), e.to_string()));
                        continue;
                    }
                },
            };
            if let Some(first) = claimed.get(&rel.lower) {
                out.unplaced.push(fail(
                    Some(attachment.id),
                    format!(
                        "{:?} is already taken by {first:?} (Dropbox paths ignore case)",
                        rel.display
                    ),
                ));
                continue;
            }
            claimed.insert(rel.lower.clone(), attachment.name.clone());
            local.push(LocalFile {
                attachment_id: attachment.id,
                rel,
                content_hash: attachment.content_hash.clone(),
            });
        }
        out.rules.push(RulePlacement {
            rule: spec.name.clone(),
            connection: spec.connection.clone(),
            direction: spec.direction,
            pull_subfolders: spec.pull_subfolders,
            subfolders: spec.subfolders.clone(),
            recreate_subfolders: spec.recreate_subfolders,
            folder,
            local,
            claimed_by,
        });
    }
    out
}
