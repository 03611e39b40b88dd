//! Reverse sync: before a binding goes (its rule moved to another connection, or the
//! connection is being disconnected), every file only Dropbox holds becomes an attachment.
//! Nothing in Dropbox is deleted.

use crate::binding::{Ctx, abs, synced_file};
use crate::placement::RulePlacement;
use crate::sync_pass::PassOutcome;
use crate::{Engine, EngineError};
use ferry_core::model::Record;
use ferry_core::sync_plan::{Direction, SyncedFile};
use ferry_store::{Binding, SyncRow};
use std::collections::HashSet;
use std::time::Instant;

impl Engine {
    /// Reverse sync of one binding: every file in its folder whose content Ferry does not hold
    /// becomes an attachment (a new version of the attachment it tracked, or a new one), then
    /// the binding is dropped. Files stay in Dropbox: nothing there is deleted.
    pub(crate) async fn reverse_binding(
        &self,
        record: &Record,
        binding: &Binding,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let (client, _root) = self.client(&binding.connection).await?;
        let rows: Vec<SyncRow> = self
            .store
            .sync_rows(record.id)
            .await?
            .into_iter()
            .filter(|r| r.binding_id == Some(binding.id))
            .collect();
        let synced: Vec<SyncedFile> = rows.iter().filter_map(synced_file).collect();
        let placed = RulePlacement {
            rule: binding.rule_name.clone(),
            connection: binding.connection.clone(),
            direction: Direction::Pull,
            pull_subfolders: true,
            subfolders: Vec::new(),
            recreate_subfolders: false,
            folder: Vec::new(),
            local: Vec::new(),
            claimed_by: None,
        };
        let others = self
            .store
            .bindings_within(&binding.connection, &binding.folder_lower)
            .await?;
        let remote = match self
            .remote_tree(
                &client,
                binding,
                &others,
                Some(&placed),
                (&[], &synced),
                false,
            )
            .await
        {
            Ok(tree) => tree.files,
            Err(e) => {
                outcome.failure(&e);
                return Err(EngineError::Dropbox(e));
            }
        };
        let held: HashSet<String> = self
            .store
            .attachments(record.id)
            .await?
            .into_iter()
            .map(|a| a.content_hash)
            .collect();
        let cx = Ctx {
            client: &client,
            binding,
            record,
        };
        for file in remote.iter().filter(|f| !held.contains(&f.content_hash)) {
            let started = Instant::now();
            let tracked = rows
                .iter()
                .find(|r| r.rel_lower.as_deref() == Some(file.rel.lower.as_str()))
                .and_then(|r| r.attachment_id);
            let result = self.import(&cx, file, tracked).await;
            let path = abs(&binding.folder_display, &file.rel);
            self.log_action(
                binding,
                record,
                &path,
                "reverse_import",
                result.as_ref().map(|r| r.1).unwrap_or(0),
                started,
                result.as_ref().err(),
            )
            .await;
            match result {
                Ok(_) => outcome.imported += 1,
                Err(e) => {
                    // Keep the binding: the next pass tries again before anything else.
                    outcome.failure(&e);
                    return Err(EngineError::Dropbox(e));
                }
            }
        }
        self.store.delete_binding(binding.id).await?;
        Ok(())
    }
}
