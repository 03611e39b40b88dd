//! One sync pass over one record: place, plan, execute, record the outcome per file.

use crate::placement::{Placed, place};
use crate::{Engine, EngineError};
use ferry_core::model::RecordId;
use ferry_core::plan::{PushAction, SyncedFile, plan_push};
use ferry_core::rules::{CompiledRule, RuleContext};
use ferry_dropbox::{DropboxClient, DropboxError, WriteMode};
use ferry_store::{SyncRow, SyncState};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassOutcome {
    /// Files written to Dropbox.
    pub uploaded: u32,
    /// Files already right in Dropbox.
    pub unchanged: u32,
    /// Files removed from Dropbox.
    pub deleted: u32,
    /// Files that failed (see their sync rows).
    pub failed: u32,
    /// Of the failures, how many may succeed on a later try.
    pub retryable: u32,
    /// Longest delay Dropbox asked for.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl PassOutcome {
    fn failure(&mut self, e: &DropboxError) {
        self.failed += 1;
        if e.is_retryable() {
            self.retryable += 1;
            self.retry_after = self.retry_after.max(e.retry_after());
        }
    }
}

impl Engine {
    /// Runs one sync pass for a record. Per-file failures are recorded in the record's sync
    /// rows and counted in the outcome; an `Err` means the pass itself could not run.
    pub async fn sync_record(&self, id: RecordId) -> Result<PassOutcome, EngineError> {
        let Some(record) = self.store.record_by_id(id).await? else {
            return Ok(PassOutcome::default());
        };
        let parent = match record.parent_id {
            Some(pid) => self.store.record_by_id(pid).await?,
            None => None,
        };
        let siblings = match &parent {
            Some(p) => self.store.children(p.id).await?,
            None => Vec::new(),
        };
        let children = self.store.children(id).await?;
        let attachments = self.store.attachments(id).await?;
        let mut rules = Vec::new();
        for spec in self.store.rules().await? {
            if spec.record_kind != record.kind {
                continue;
            }
            match CompiledRule::compile(spec) {
                Ok(rule) => rules.push(rule),
                // Rules are validated when saved; one that no longer compiles is skipped loudly.
                Err(e) => tracing::warn!(error = %e, "stored rule does not compile"),
            }
        }
        let roots: HashMap<String, String> = self
            .store
            .connections()
            .await?
            .into_iter()
            .map(|c| (c.name, c.root))
            .collect();
        let ctx = RuleContext::new(&record, parent.as_ref(), &children, &siblings);
        let placement = place(&record, &ctx, &attachments, &rules, &roots);

        let rows = self.store.sync_rows(id).await?;
        let mut connections: BTreeSet<String> = placement.by_connection.keys().cloned().collect();
        connections.extend(
            rows.iter()
                .filter(|r| r.path_lower.is_some())
                .map(|r| r.connection.clone()),
        );

        let mut outcome = PassOutcome::default();
        for connection in connections {
            let placed = placement
                .by_connection
                .get(&connection)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let rows: Vec<&SyncRow> = rows
                .iter()
                .filter(|r| r.connection == connection && r.path_lower.is_some())
                .collect();
            self.push_connection(id, &connection, placed, &rows, &mut outcome)
                .await?;
        }

        let unplaced: Vec<SyncRow> = placement
            .unplaced
            .iter()
            .map(|u| SyncRow {
                id: 0,
                record_id: id,
                rule_name: u.rule.clone(),
                connection: u.connection.clone(),
                attachment_id: u.attachment_id,
                path_display: None,
                path_lower: None,
                content_hash: None,
                rev: None,
                dropbox_id: None,
                state: SyncState::Failed,
                last_error: Some(u.error.clone()),
                updated_at: 0,
            })
            .collect();
        outcome.failed += u32::try_from(unplaced.len()).unwrap_or(u32::MAX);
        self.store.replace_unplaced_rows(id, &unplaced).await?;
        Ok(outcome)
    }

    async fn push_connection(
        &self,
        record_id: RecordId,
        connection: &str,
        placed: &[Placed],
        rows: &[&SyncRow],
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let desired: Vec<_> = placed.iter().map(|p| p.file.clone()).collect();
        let synced: Vec<SyncedFile> = rows
            .iter()
            .filter_map(|r| {
                Some(SyncedFile {
                    row_id: r.id,
                    path_lower: r.path_lower.clone()?,
                    path_display: r.path_display.clone().unwrap_or_default(),
                    content_hash: r.content_hash.clone(),
                    rev: r.rev.clone(),
                    ok: r.state == SyncState::Synced,
                })
            })
            .collect();
        let plan = plan_push(&desired, &synced);
        if plan.iter().all(|a| matches!(a, PushAction::Keep { .. })) {
            outcome.unchanged += u32::try_from(plan.len()).unwrap_or(u32::MAX);
            return Ok(());
        }
        let (client, _root) = self.client(connection).await?;
        let row_at = |path_lower: &str| {
            rows.iter()
                .find(|r| r.path_lower.as_deref() == Some(path_lower))
        };
        let rule_of = |attachment_id: i64| {
            placed
                .iter()
                .find(|p| p.file.attachment_id == attachment_id)
                .map(|p| p.rule.clone())
                .unwrap_or_default()
        };
        for action in plan {
            match action {
                PushAction::Keep { file } => {
                    outcome.unchanged += 1;
                    // Same content under a new attachment id (replaced with identical bytes).
                    if let Some(row) = row_at(&file.path_lower)
                        && row.attachment_id != Some(file.attachment_id)
                    {
                        let mut row = (*row).clone();
                        row.attachment_id = Some(file.attachment_id);
                        self.store.save_sync_row(&row).await?;
                    }
                }
                PushAction::Upload { file, replace_rev } => {
                    let previous = row_at(&file.path_lower).map(|r| (*r).clone());
                    let mut row = previous.unwrap_or_else(|| SyncRow {
                        id: 0,
                        record_id,
                        rule_name: String::new(),
                        connection: connection.to_owned(),
                        attachment_id: None,
                        path_display: Some(file.path_display.clone()),
                        path_lower: Some(file.path_lower.clone()),
                        content_hash: None,
                        rev: None,
                        dropbox_id: None,
                        state: SyncState::Pending,
                        last_error: None,
                        updated_at: 0,
                    });
                    row.rule_name = rule_of(file.attachment_id);
                    row.attachment_id = Some(file.attachment_id);
                    row.record_id = record_id;
                    match self
                        .upload(&client, &file.path_display, &file.content_hash, replace_rev)
                        .await
                    {
                        Ok(info) => {
                            outcome.uploaded += 1;
                            row.path_display = Some(info.path_display);
                            row.content_hash = info.content_hash;
                            row.rev = Some(info.rev);
                            row.dropbox_id = Some(info.id);
                            row.state = SyncState::Synced;
                            row.last_error = None;
                        }
                        Err(e) => {
                            tracing::warn!(path = %file.path_display, error = %e, "upload failed");
                            outcome.failure(&e);
                            row.state = SyncState::Failed;
                            row.last_error = Some(describe_upload_error(&e));
                        }
                    }
                    self.store.save_sync_row(&row).await?;
                }
                PushAction::Delete {
                    row_id,
                    path_display,
                    rev,
                } => {
                    match client.delete(&path_display, rev.as_deref()).await {
                        // Gone already, or changed by someone: either way it is no longer ours
                        // to track, and a changed file is left in place, never deleted.
                        Ok(_) | Err(DropboxError::NotFound(_)) => {
                            outcome.deleted += 1;
                            self.store.delete_sync_row(row_id).await?;
                        }
                        Err(e) => {
                            tracing::warn!(path = %path_display, error = %e, "delete failed");
                            outcome.failure(&e);
                            if let Some(row) = rows.iter().find(|r| r.id == row_id) {
                                let mut row = (*row).clone();
                                row.state = SyncState::Failed;
                                row.last_error =
                                    Some(format!("could not remove from Dropbox: {e}"));
                                self.store.save_sync_row(&row).await?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn upload(
        &self,
        client: &DropboxClient,
        path: &str,
        content_hash: &str,
        replace_rev: Option<String>,
    ) -> Result<ferry_dropbox::FileInfo, DropboxError> {
        let data = self
            .blobs
            .get(content_hash)
            .await
            .map_err(|e| DropboxError::Other(format!("attachment content unavailable: {e}")))?;
        let mode = replace_rev.map_or(WriteMode::Add, WriteMode::Update);
        client.upload(path, data, &mode).await
    }
}

fn describe_upload_error(e: &DropboxError) -> String {
    match e {
        DropboxError::Conflict(_) => format!(
            "{e}; the file in Dropbox was changed or created by someone else, so Ferry left it as it is"
        ),
        other => other.to_string(),
    }
}
