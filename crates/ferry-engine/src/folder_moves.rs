//! Keeping a binding's folder where its rule says: one move in Dropbox, never a re-upload;
//! case-only renames through a free temporary name; files moved one by one into a folder
//! someone already created at the target.

use crate::Engine;
use ferry_core::model::Record;
use ferry_core::names::dropbox_lower;
use ferry_dropbox::{DropboxClient, DropboxError};
use ferry_store::Binding;
use std::time::Instant;

impl Engine {
    /// Moves a binding's folder; a case-only rename goes through a temporary name. When
    /// something already exists at the target (someone created it), the tracked files move
    /// one by one into it; a clash on a file is left for the planner (it keeps both).
    pub(crate) async fn move_folder(
        &self,
        client: &DropboxClient,
        record: &Record,
        binding: &Binding,
        to: &str,
    ) -> Result<(), DropboxError> {
        let from = binding.folder_display.as_str();
        let started = Instant::now();
        let result = if dropbox_lower(from) == dropbox_lower(to) {
            self.rename_case(client, from, to).await
        } else {
            match client.move_entry(from, to).await {
                Ok(_) => Ok(()),
                Err(DropboxError::Conflict(_)) => {
                    self.move_tracked_files(client, record, binding, to).await
                }
                Err(e) => Err(e),
            }
        };
        // Nothing there (never created, or already moved with a parent folder): nothing to move.
        let result = match result {
            Err(DropboxError::NotFound(_)) => Ok(()),
            other => other,
        };
        self.log_action(
            binding,
            record,
            &format!("{from} -> {to}"),
            "move_folder",
            0,
            started,
            result.as_ref().err(),
        )
        .await;
        result
    }

    /// A case-only folder rename, which Dropbox does not do in one move: through the first
    /// free temporary name (one left over by a crash mid-rename is skipped, not reused).
    async fn rename_case(
        &self,
        client: &DropboxClient,
        from: &str,
        to: &str,
    ) -> Result<(), DropboxError> {
        let mut last = DropboxError::Conflict("no free temporary name".into());
        for n in 1..=5 {
            let temp = format!("{to} (renaming {n})");
            match client.move_entry(from, &temp).await {
                Ok(_) => {}
                Err(DropboxError::Conflict(m)) => {
                    last = DropboxError::Conflict(m);
                    continue;
                }
                Err(e) => return Err(e),
            }
            return match client.move_entry(&temp, to).await {
                Ok(_) => Ok(()),
                Err(e) => {
                    // Put it back so the folder stays where the binding says.
                    let _ = client.move_entry(&temp, from).await;
                    Err(e)
                }
            };
        }
        Err(last)
    }

    /// Moves each tracked file of the binding into `to` (Dropbox creates missing parents).
    pub(crate) async fn move_tracked_files(
        &self,
        client: &DropboxClient,
        record: &Record,
        binding: &Binding,
        to: &str,
    ) -> Result<(), DropboxError> {
        let rows = self
            .store
            .sync_rows(record.id)
            .await
            .map_err(|e| crate::error::store_step("reading the sync state", e))?;
        for row in rows.iter().filter(|r| r.binding_id == Some(binding.id)) {
            let Some(rel) = &row.rel_display else {
                continue;
            };
            match client
                .move_entry(
                    &format!("{}/{rel}", binding.folder_display),
                    &format!("{to}/{rel}"),
                )
                .await
            {
                Ok(_) | Err(DropboxError::NotFound(_)) | Err(DropboxError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
