//! The file manager behind the console: a connection's Dropbox tree as Ferry knows it (its
//! record folders and synced files — no request to Dropbox), search by name, the files of a
//! folder for a zip download, and moving a file from one record to another.

use crate::views::{AttachmentWritten, RecordRef};
use crate::{Engine, EngineError};
use ferry_core::model::Attachment;
use ferry_core::names::dropbox_lower;
use ferry_store::TreeFile;
use std::collections::{BTreeMap, HashMap};

/// Entries read for one folder listing.
pub const TREE_LIMIT: u32 = 5000;
/// Search results shown.
pub const SEARCH_LIMIT: u32 = 200;
/// Files one zip download may hold.
pub const ZIP_MAX_FILES: u32 = 5000;

/// A folder inside the folder being listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubFolder {
    /// Its name.
    pub name: String,
    /// Its full path.
    pub path: String,
    /// The record whose folder it is, if it is one.
    pub record: Option<RecordRef>,
}

/// One folder of a connection's tree.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FolderListing {
    /// The folder (`""`: the top of the account).
    pub path: String,
    /// The record whose folder it is, if it is one.
    pub record: Option<RecordRef>,
    /// Folders in it, by name.
    pub folders: Vec<SubFolder>,
    /// Files directly in it, by path.
    pub files: Vec<TreeFile>,
    /// More entries exist under it than were read.
    pub truncated: bool,
}

/// `"/A/B"` or `""`, from what a browser sent.
fn clean_path(path: &str) -> Result<String, EngineError> {
    let trimmed = path.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    if !trimmed.starts_with('/')
        || trimmed
            .split('/')
            .skip(1)
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(EngineError::Invalid(format!(
            "{path:?} is not a Dropbox folder path"
        )));
    }
    Ok(trimmed.to_owned())
}

impl Engine {
    async fn known_connection(&self, connection: &str) -> Result<(), EngineError> {
        match self.store.connection(connection).await? {
            Some(_) => Ok(()),
            None => Err(EngineError::UnknownConnection(connection.to_owned())),
        }
    }

    /// One folder of `connection`'s tree: its subfolders and files, as Ferry knows them.
    pub async fn browse(&self, connection: &str, path: &str) -> Result<FolderListing, EngineError> {
        self.known_connection(connection).await?;
        let path = clean_path(path)?;
        let prefix = format!("{}/", dropbox_lower(&path));
        let files = self
            .store
            .tree_files(connection, &prefix, None, TREE_LIMIT + 1)
            .await?;
        let bindings = self
            .store
            .tree_folders(connection, &prefix, TREE_LIMIT + 1)
            .await?;
        let truncated = files.len() > TREE_LIMIT as usize || bindings.len() > TREE_LIMIT as usize;
        let mut folders: BTreeMap<String, SubFolder> = BTreeMap::new();
        let mut direct = Vec::new();
        let mut record = None;
        let cut = prefix.chars().count();
        let first_part = |full: &str| -> Option<(String, bool)> {
            let rest: String = full.chars().skip(cut).collect();
            let (name, deeper) = match rest.split_once('/') {
                Some((name, _)) => (name.to_owned(), true),
                None => (rest, false),
            };
            (!name.is_empty()).then_some((name, deeper))
        };
        for b in &bindings {
            if dropbox_lower(&b.path) == dropbox_lower(&path) {
                record = Some(RecordRef {
                    kind: b.kind.clone(),
                    key: b.key.clone(),
                });
                continue;
            }
            if let Some((name, deeper)) = first_part(&b.path) {
                let entry = folders
                    .entry(dropbox_lower(&name))
                    .or_insert_with(|| SubFolder {
                        path: format!("{path}/{name}"),
                        name,
                        record: None,
                    });
                if !deeper {
                    entry.record = Some(RecordRef {
                        kind: b.kind.clone(),
                        key: b.key.clone(),
                    });
                }
            }
        }
        for f in files.into_iter().take(TREE_LIMIT as usize) {
            match first_part(&f.path) {
                Some((name, true)) => {
                    folders
                        .entry(dropbox_lower(&name))
                        .or_insert_with(|| SubFolder {
                            path: format!("{path}/{name}"),
                            name,
                            record: None,
                        });
                }
                Some((_, false)) => direct.push(f),
                None => {}
            }
        }
        Ok(FolderListing {
            path,
            record,
            folders: folders.into_values().collect(),
            files: direct,
            truncated,
        })
    }

    /// Files of `connection` whose name contains `needle` (case-insensitive), by path.
    pub async fn search_tree(
        &self,
        connection: &str,
        needle: &str,
    ) -> Result<Vec<TreeFile>, EngineError> {
        self.known_connection(connection).await?;
        let needle = needle.trim().to_lowercase();
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .store
            .tree_files(connection, "/", Some(&needle), SEARCH_LIMIT)
            .await?)
    }

    /// The files under `path` that Ferry holds as attachments, each with its path inside the
    /// folder (for a zip). More than [`ZIP_MAX_FILES`] is refused.
    pub async fn files_under(
        &self,
        connection: &str,
        path: &str,
    ) -> Result<Vec<(String, Attachment)>, EngineError> {
        self.known_connection(connection).await?;
        let path = clean_path(path)?;
        let prefix = format!("{}/", dropbox_lower(&path));
        let files = self
            .store
            .tree_files(connection, &prefix, None, ZIP_MAX_FILES + 1)
            .await?;
        if files.len() > ZIP_MAX_FILES as usize {
            return Err(EngineError::Invalid(format!(
                "more than {ZIP_MAX_FILES} files are under {path:?}; download a folder further down"
            )));
        }
        let mut by_record: HashMap<i64, Vec<Attachment>> = HashMap::new();
        let mut out = Vec::new();
        let cut = prefix.chars().count();
        for f in files {
            let Some(name) = &f.attachment else { continue };
            let attachments = match by_record.entry(f.record_id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(self.store.attachments(f.record_id).await?)
                }
            };
            if let Some(a) = attachments.iter().find(|a| &a.name == name) {
                out.push((f.path.chars().skip(cut).collect(), a.clone()));
            }
        }
        Ok(out)
    }

    /// The files under `base` that Ferry holds, limited to a selection of files and folders
    /// inside it (by full path, any case), each with its path inside `base` (for a zip).
    pub async fn files_selected(
        &self,
        connection: &str,
        base: &str,
        picked: &[String],
    ) -> Result<Vec<(String, Attachment)>, EngineError> {
        if picked.is_empty() {
            return Err(EngineError::Invalid(
                "select at least one file or folder".into(),
            ));
        }
        let base = clean_path(base)?;
        let base_lower = dropbox_lower(&base);
        let mut wanted = Vec::with_capacity(picked.len());
        for p in picked {
            let p = dropbox_lower(&clean_path(p)?);
            match p
                .strip_prefix(&base_lower)
                .and_then(|rest| rest.strip_prefix('/'))
            {
                Some(rel) => wanted.push(rel.to_owned()),
                None => {
                    return Err(EngineError::Invalid(format!(
                        "{p:?} is not inside the folder {base:?}"
                    )));
                }
            }
        }
        let all = self.files_under(connection, &base).await?;
        Ok(all
            .into_iter()
            .filter(|(rel, _)| {
                let rel = dropbox_lower(rel);
                wanted
                    .iter()
                    .any(|w| rel == *w || rel.starts_with(&format!("{w}/")))
            })
            .collect())
    }

    /// Moves attachment `name` from one record to another: it becomes the other record's
    /// (and syncs into its folder), then leaves this one. The other record must not have a
    /// file of that name. A crash in between leaves the file on both records, never on none.
    pub async fn move_attachment(
        &self,
        from: (&str, &str),
        name: &str,
        to: (&str, &str),
    ) -> Result<AttachmentWritten, EngineError> {
        if from == to {
            return Err(EngineError::Invalid(
                "the file is already on that record".into(),
            ));
        }
        let source = self.attachment(from.0, from.1, name).await?;
        let target = self.find_record(to.0, to.1).await?;
        if self
            .store
            .attachments(target.id)
            .await?
            .iter()
            .any(|a| a.name == name)
        {
            return Err(EngineError::Conflict(format!(
                "record {}/{} already has a file named {name:?}",
                to.0, to.1
            )));
        }
        // Content only Dropbox holds comes back first: the new attachment needs it here.
        self.bring_back(&source).await?;
        let written = self
            .put_attachment(
                &target,
                name,
                source.tags.clone(),
                source.content_hash.clone(),
                source.size,
                None,
            )
            .await?;
        self.remove_attachment(from.0, from.1, name).await?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::clean_path;

    #[test]
    fn paths_from_the_browser_are_checked() {
        assert_eq!(clean_path("").unwrap(), "");
        assert_eq!(clean_path("/Ferry/Orders/").unwrap(), "/Ferry/Orders");
        for bad in ["Ferry", "/a//b", "/a/../b", "/."] {
            assert!(clean_path(bad).is_err(), "{bad}");
        }
    }
}
