//! Where a record's files belong: rules evaluated against the record, paths rendered,
//! collisions caught. Everything that cannot be placed becomes a visible per-file error.

use ferry_core::model::{Attachment, Record};
use ferry_core::names::{dropbox_lower, join_path};
use ferry_core::plan::DesiredFile;
use ferry_core::rules::{CompiledRule, RuleContext};
use std::collections::{BTreeMap, HashMap};

/// A file that should be in Dropbox, with the rule that put it there.
#[derive(Debug, Clone)]
pub(crate) struct Placed {
    pub(crate) rule: String,
    pub(crate) file: DesiredFile,
}

/// A file (or a whole record, `attachment_id: None`) that could not be placed.
#[derive(Debug, Clone)]
pub(crate) struct Unplaced {
    pub(crate) rule: String,
    pub(crate) connection: String,
    pub(crate) attachment_id: Option<i64>,
    pub(crate) error: String,
}

/// The placement of one record: desired files per connection, and failures.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    pub(crate) by_connection: BTreeMap<String, Vec<Placed>>,
    pub(crate) unplaced: Vec<Unplaced>,
}

/// Places a record's attachments with every rule for its kind. `roots` maps connection names
/// to their root folders; a rule naming an unknown connection is an error for the record.
pub(crate) fn place(
    record: &Record,
    ctx: &RuleContext,
    attachments: &[Attachment],
    rules: &[CompiledRule],
    roots: &HashMap<String, String>,
) -> Placement {
    let mut out = Placement::default();
    // Who claimed each lower-cased path first, per connection.
    let mut claimed: HashMap<(String, String), String> = HashMap::new();
    for rule in rules.iter().filter(|r| r.spec().record_kind == record.kind) {
        let spec = rule.spec();
        let fail = |attachment_id: Option<i64>, error: String| Unplaced {
            rule: spec.name.clone(),
            connection: spec.connection.clone(),
            attachment_id,
            error,
        };
        match rule.applies(ctx) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                out.unplaced
                    .push(fail(None, format!("rule {:?}: {e}", spec.name)));
                continue;
            }
        }
        let Some(root) = roots.get(&spec.connection) else {
            out.unplaced.push(fail(
                None,
                format!(
                    "rule {:?} uses unknown connection {:?}",
                    spec.name, spec.connection
                ),
            ));
            continue;
        };
        let folder = match rule.folder(ctx) {
            Ok(folder) => folder,
            Err(e) => {
                out.unplaced
                    .push(fail(None, format!("rule {:?}: {e}", spec.name)));
                continue;
            }
        };
        for attachment in attachments {
            match rule.selects(ctx, attachment) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    out.unplaced.push(fail(
                        Some(attachment.id),
                        format!("rule {:?}: {e}", spec.name),
                    ));
                    continue;
                }
            }
            let parts = match rule.file_path(ctx, attachment) {
                Ok(parts) => parts,
                Err(e) => {
                    out.unplaced.push(fail(
                        Some(attachment.id),
                        format!("rule {:?}: {e}", spec.name),
                    ));
                    continue;
                }
            };
            let mut components = folder.clone();
            components.extend(parts);
            let path_display = join_path(root, &components);
            let path_lower = dropbox_lower(&path_display);
            let key = (spec.connection.clone(), path_lower.clone());
            if let Some(first) = claimed.get(&key) {
                out.unplaced.push(fail(
                    Some(attachment.id),
                    format!(
                        "{path_display:?} is already taken by {first:?} (Dropbox paths ignore case)"
                    ),
                ));
                continue;
            }
            claimed.insert(key, attachment.name.clone());
            out.by_connection
                .entry(spec.connection.clone())
                .or_default()
                .push(Placed {
                    rule: spec.name.clone(),
                    file: DesiredFile {
                        attachment_id: attachment.id,
                        path_display,
                        path_lower,
                        content_hash: attachment.content_hash.clone(),
                    },
                });
        }
    }
    out
}
