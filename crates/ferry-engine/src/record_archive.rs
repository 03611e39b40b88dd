//! Deleting a record with `files=archive`: each of its folders moves, in one Dropbox move,
//! under the connection root's `Archived/` folder (keeping its path below the root), its
//! binding is dropped, and once none is left the record is forgotten. Nothing is deleted in
//! Dropbox; a crash in between leaves the record marked and queued, and the next pass goes on
//! where this one stopped.

use crate::sync_pass::PassOutcome;
use crate::{Engine, EngineError};
use ferry_core::model::Record;
use ferry_core::names::dropbox_lower;

/// The folder under each connection root that archived records move to.
pub const ARCHIVE_FOLDER: &str = "Archived";

/// Where an archived binding's folder goes: `<root>/Archived/<folder below the root>`.
fn archive_target(root: &str, folder: &str) -> String {
    let below = folder
        .get(root.len()..)
        .filter(|_| dropbox_lower(folder).starts_with(&dropbox_lower(root)))
        .unwrap_or(folder)
        .trim_start_matches('/');
    if below.is_empty() {
        format!("{root}/{ARCHIVE_FOLDER}")
    } else {
        format!("{root}/{ARCHIVE_FOLDER}/{below}")
    }
}

impl Engine {
    /// Moves the record's folders to the archive and forgets it once all have moved.
    pub(crate) async fn archive_record(
        &self,
        record: &Record,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        for binding in self.store.bindings_for_record(record.id).await? {
            let (client, root) = match self.client(&binding.connection).await {
                Ok(found) => found,
                Err(EngineError::Dropbox(e)) => {
                    outcome.failure(&e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let target = archive_target(&root, &binding.folder_display);
            // A folder other records' bindings also use (overlapping rules), or the root
            // itself (a rule with an empty folder), is not the record's to move: its own files
            // go one by one.
            let shared = binding.folder_lower == dropbox_lower(&root)
                || self
                    .store
                    .bindings_within(&binding.connection, &binding.folder_lower)
                    .await?
                    .iter()
                    .any(|b| b.record_id != record.id);
            let moved = if shared {
                self.move_tracked_files(&client, record, &binding, &target)
                    .await
            } else {
                self.move_folder(&client, record, &binding, &target).await
            };
            match moved {
                Ok(()) => self.store.delete_binding(binding.id).await?,
                Err(e) => outcome.failure(&e),
            }
        }
        if self.store.bindings_for_record(record.id).await?.is_empty() {
            tracing::info!(kind = %record.kind, key = %record.key, "archived record forgotten: its folders moved");
            self.store.forget_record(record.id).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::archive_target;

    #[test]
    fn archived_folders_keep_their_place_below_the_root() {
        assert_eq!(
            archive_target("/Ferry", "/Ferry/Tickets/T-1"),
            "/Ferry/Archived/Tickets/T-1"
        );
        assert_eq!(archive_target("", "/Tickets/T-1"), "/Archived/Tickets/T-1");
        assert_eq!(
            archive_target("/Ferry", "/ferry/Tickets/T-1"),
            "/Ferry/Archived/Tickets/T-1"
        );
        assert_eq!(archive_target("/Ferry", "/Ferry"), "/Ferry/Archived");
    }
}
