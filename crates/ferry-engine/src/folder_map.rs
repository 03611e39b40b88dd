//! Existing Dropbox folders mapped to a record by hand (a project folder that was there
//! before Ferry). A mapped folder syncs like a rule's folder — every attachment, by name, in
//! the direction chosen — through a binding named `map:<id>`. It is found by its Dropbox id
//! on every pass, so a rename or move in Dropbox is followed (the binding takes the new path;
//! nothing is moved back or uploaded again). A mapped folder that is gone is reported and
//! left alone: nothing is deleted or archived because of it.

use crate::placement::{Placement, Unplaced, place};
use crate::{Engine, EngineError};
use ferry_core::model::{Attachment, Record};
use ferry_core::names::dropbox_lower;
use ferry_core::rules::{CompiledRule, RuleContext, RuleSpec};
use ferry_core::sync_plan::Direction;
use ferry_dropbox::{DropboxClient, DropboxError, Entry, FolderInfo};
use ferry_store::{Binding, FolderMap};
use std::collections::{HashMap, HashSet};

/// Folders listed at most by the folder picker.
pub const PICKER_LIMIT: usize = 1000;
/// Listing pages read at most for one picker view.
const PICKER_PAGES: usize = 10;

/// What an admin maps.
#[derive(Debug, Clone)]
pub struct MapRequest {
    /// The connection the folder is in.
    pub connection: String,
    /// The folder's path (inside the connection's root).
    pub path: String,
    /// Which way files flow.
    pub direction: Direction,
    /// When pulling, also files in its subfolders.
    pub pull_subfolders: bool,
}

/// The binding name of a mapping.
pub(crate) fn binding_name(id: i64) -> String {
    format!("map:{id}")
}

/// Whether a binding is a folder mapped by hand (not a rule's).
pub(crate) fn is_mapped(binding: &Binding) -> bool {
    binding.rule_name.starts_with("map:")
}

/// `path` relative to `root` as folder components, if it is strictly inside it.
pub(crate) fn inside(root: &str, path: &str) -> Option<Vec<String>> {
    let root_lower = dropbox_lower(root);
    let lower = dropbox_lower(path);
    let rest_lower = lower.strip_prefix(&root_lower)?.strip_prefix('/')?;
    if rest_lower.is_empty() {
        return None;
    }
    // Same length in chars: the display form's tail is the part after the root.
    let skip = root.chars().count() + 1;
    let rest: String = path.chars().skip(skip).collect();
    Some(rest.split('/').map(str::to_owned).collect())
}

impl Engine {
    /// Maps the existing Dropbox folder `request.path` to record `kind/key`: it must be a
    /// folder inside the connection's root that no other binding syncs. The record is queued.
    pub async fn map_folder(
        &self,
        kind: &str,
        key: &str,
        request: MapRequest,
    ) -> Result<FolderMap, EngineError> {
        let record = self.find_record(kind, key).await?;
        let (client, root) = self.client(&request.connection).await?;
        let path = request.path.trim().trim_end_matches('/').to_owned();
        if !path.starts_with('/') || path.len() > 4096 {
            return Err(EngineError::Invalid(format!(
                "path {path:?} must be a folder path such as /Projects/Alpha"
            )));
        }
        let folder = match client.metadata(&path).await {
            Ok(Entry::Folder(f)) => f,
            Ok(_) => {
                return Err(EngineError::Invalid(format!(
                    "{path:?} is a file, not a folder"
                )));
            }
            Err(
                DropboxError::NotFound(_) | DropboxError::BadPath(_) | DropboxError::BadRequest(_),
            ) => {
                return Err(EngineError::Invalid(format!(
                    "there is no folder {path:?} in connection {:?}",
                    request.connection
                )));
            }
            Err(e) => return Err(e.into()),
        };
        if inside(&root, &folder.path_display).is_none() {
            return Err(EngineError::Invalid(format!(
                "{:?} is not inside the connection's root folder {root:?}",
                folder.path_display
            )));
        }
        let taken = self
            .store
            .bindings_within(&request.connection, &folder.path_lower)
            .await?
            .into_iter()
            .find(|b| b.folder_lower == folder.path_lower && b.record_id != record.id);
        if let Some(other) = taken {
            return Err(EngineError::Conflict(format!(
                "{:?} is already the folder of another record ({}); map another folder",
                folder.path_display, other.rule_name
            )));
        }
        let mut map = FolderMap {
            id: 0,
            record_id: record.id,
            connection: request.connection,
            folder_id: folder.id,
            path: folder.path_display,
            direction: request.direction,
            pull_subfolders: request.pull_subfolders,
        };
        map.id = self.store.put_folder_map(&map).await?;
        self.wake();
        Ok(map)
    }

    /// A record's mapped folders.
    pub async fn folder_maps_of(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<Vec<FolderMap>, EngineError> {
        let record = self.find_record(kind, key).await?;
        Ok(self.store.folder_maps(record.id).await?)
    }

    /// Removes a mapping: Ferry stops syncing the folder; its files stay in Dropbox.
    pub async fn unmap_folder(
        &self,
        kind: &str,
        key: &str,
        id: i64,
    ) -> Result<FolderMap, EngineError> {
        let record = self.find_record(kind, key).await?;
        self.store
            .delete_folder_map(record.id, id)
            .await?
            .ok_or_else(|| {
                EngineError::NotFound(format!("record {kind}/{key} has no mapped folder {id}"))
            })
    }

    /// The folders directly inside `path` in Dropbox now (the folder picker; at most
    /// [`PICKER_LIMIT`], by name). An empty path is the connection's root.
    pub async fn dropbox_folders(
        &self,
        connection: &str,
        path: &str,
    ) -> Result<(String, Vec<FolderInfo>), EngineError> {
        let (client, root) = self.client(connection).await?;
        let path = match path.trim().trim_end_matches('/') {
            "" => root.clone(),
            p => p.to_owned(),
        };
        if path != root && inside(&root, &path).is_none() {
            return Err(EngineError::Invalid(format!(
                "{path:?} is not inside the connection's root folder {root:?}"
            )));
        }
        Ok((path.clone(), child_folders(&client, &path).await?))
    }

    /// The folders directly inside `path` anywhere the connection reaches (`""`: the top
    /// of its Dropbox, or of its app folder), for picking a new root.
    pub async fn account_folders(
        &self,
        connection: &str,
        path: &str,
    ) -> Result<(String, Vec<FolderInfo>), EngineError> {
        let (client, _) = self.client(connection).await?;
        let path = path.trim().trim_end_matches('/').to_owned();
        if !path.is_empty() {
            crate::connections::validate_root(&path)?;
        }
        Ok((path.clone(), child_folders(&client, &path).await?))
    }

    /// Adds the record's mapped folders to its placement. Each is found by id first: a
    /// renamed one moves its binding in `bindings` along (and in the store, unless
    /// `dry_run`), so no request moves it back. Bindings to leave alone this pass (their
    /// folder is gone or outside the root) are taken out of `bindings`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn place_mapped_folders(
        &self,
        record: &Record,
        ctx: &RuleContext,
        attachments: &[Attachment],
        connections: &HashMap<String, String>,
        placement: &mut Placement,
        bindings: &mut Vec<Binding>,
        dry_run: bool,
    ) -> Result<(), EngineError> {
        let mut left_alone = HashSet::new();
        for map in self.store.folder_maps(record.id).await? {
            let name = binding_name(map.id);
            let Some(root) = connections.get(&map.connection) else {
                continue;
            };
            let (client, _) = self.client(&map.connection).await?;
            let problem = match client.metadata(&map.folder_id).await {
                Ok(Entry::Folder(f)) => match inside(root, &f.path_display) {
                    Some(components) => {
                        if !dry_run && f.path_display != map.path {
                            tracing::info!(from = %map.path, to = %f.path_display, "a mapped folder moved in Dropbox; following it");
                            self.store
                                .set_folder_map_path(map.id, &f.path_display)
                                .await?;
                        }
                        // Compared with the binding, not the mapping: a pass that stored one
                        // and failed before the other still catches up.
                        if let Some(b) = bindings
                            .iter_mut()
                            .find(|b| b.rule_name == name && b.folder_display != f.path_display)
                        {
                            b.folder_display = f.path_display.clone();
                            b.folder_lower = f.path_lower.clone();
                            if !dry_run {
                                self.store.save_binding(b).await?;
                            }
                        }
                        let spec = RuleSpec {
                            name: name.clone(),
                            record_kind: record.kind.clone(),
                            connection: map.connection.clone(),
                            folder: String::new(),
                            direction: map.direction,
                            pull_subfolders: map.pull_subfolders,
                            ..RuleSpec::default()
                        };
                        let rule = CompiledRule::compile(spec)
                            .map_err(|e| EngineError::Invalid(format!("mapped folder: {e}")))?;
                        let mut placed = place(ctx, attachments, &[rule], connections);
                        for p in &mut placed.rules {
                            p.folder = components.clone();
                        }
                        placement.rules.extend(placed.rules);
                        placement.unplaced.extend(placed.unplaced);
                        None
                    }
                    None => Some(format!(
                        "the mapped folder is now at {:?}, outside the connection's root: map it again or remove the mapping",
                        f.path_display
                    )),
                },
                Ok(_) | Err(DropboxError::NotFound(_)) => Some(format!(
                    "the mapped folder {:?} is gone from Dropbox: map another folder or remove the mapping (nothing was deleted)",
                    map.path
                )),
                Err(e) => return Err(e.into()),
            };
            if let Some(error) = problem {
                left_alone.insert(name.clone());
                placement.unplaced.push(Unplaced {
                    rule: name,
                    connection: map.connection.clone(),
                    attachment_id: None,
                    error,
                });
            }
        }
        // A mapped folder that is gone: its binding is left as it is (nothing deleted).
        bindings.retain(|b| !left_alone.contains(&b.rule_name));
        Ok(())
    }
}

/// The folders directly inside `path` (a few pages at most; at most [`PICKER_LIMIT`], by
/// name).
async fn child_folders(client: &DropboxClient, path: &str) -> Result<Vec<FolderInfo>, EngineError> {
    let mut page = client.list_folder(path, false).await.map_err(|e| match e {
        DropboxError::NotFound(_) => EngineError::NotFound(format!("there is no folder {path:?}")),
        other => other.into(),
    })?;
    let mut folders = Vec::new();
    // A folder of many files pages a long time for few folders: a few pages at most.
    for read in 1..=PICKER_PAGES {
        folders.extend(page.entries.into_iter().filter_map(|e| match e {
            Entry::Folder(f) => Some(f),
            _ => None,
        }));
        if !page.has_more || folders.len() >= PICKER_LIMIT || read == PICKER_PAGES {
            break;
        }
        page = client.list_folder_continue(&page.cursor).await?;
    }
    folders.truncate(PICKER_LIMIT);
    folders.sort_by(|a, b| a.path_lower.cmp(&b.path_lower));
    Ok(folders)
}

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn a_mapped_folder_is_strictly_inside_the_root() {
        assert_eq!(
            inside("/Ferry", "/ferry/Projects/Alpha"),
            Some(vec!["Projects".to_owned(), "Alpha".to_owned()])
        );
        assert_eq!(inside("", "/Projects"), Some(vec!["Projects".to_owned()]));
        assert_eq!(inside("/Ferry", "/Ferry"), None);
        assert_eq!(inside("/Ferry", "/Ferryman/x"), None);
        assert_eq!(inside("/Ferry", "/Other/x"), None);
    }
}
