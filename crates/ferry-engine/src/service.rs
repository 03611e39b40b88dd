//! The engine's service API: one method per thing a client can ask of Ferry. Each mutation
//! writes its change and the queue entries it implies in one store transaction, then wakes
//! the workers; the REST handlers only parse, call one of these, and serialise the view.

use crate::views::*;
use crate::{Engine, EngineError};
use ferry_core::model::{Attachment, Record, RecordId, Side, validate_record_ident};
use ferry_core::rules::RuleSpec;
use ferry_store::{
    ArchivedAttachment, AttachmentInput, LogFilter, RecordFilter, RecordInput, RecordState,
    SyncCounts, SyncState,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happens to a deleted record's files in Dropbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// They stay where they are; Ferry forgets the record at once (the default: deleting in
    /// the app never deletes in Dropbox unless asked to).
    #[default]
    Keep,
    /// They are deleted from Dropbox by the record's next passes, under the deletion brake;
    /// the record (and its content) is kept until they are gone, then forgotten.
    Delete,
    /// Each of the record's folders is moved under `Archived/` in its connection's root
    /// (keeping its path below the root); then the record is forgotten.
    Archive,
}

/// Where to open a synced file at `path`: its stored shared link (by connection and Dropbox
/// id), else its place in Dropbox.
fn file_link(
    links: &[ferry_store::StoredLink],
    row: &ferry_store::SyncRow,
    path: &str,
) -> LinkView {
    let stored = links
        .iter()
        .find(|l| l.connection == row.connection && Some(&l.item) == row.dropbox_id.as_ref());
    LinkView::new(stored, path)
}

/// A page of records: filters and cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordQuery {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only keys containing this (case-insensitive).
    pub q: Option<String>,
    /// Only records in this state.
    pub state: Option<RecordState>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (1–1000).
    pub limit: u32,
}

/// A page of the log: filters and cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this connection.
    pub connection: Option<String>,
    /// Only this record, `kind/key`.
    pub record: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only this outcome.
    pub outcome: Option<String>,
    /// Only entries at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only entries before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Page size (1–10000).
    pub limit: u32,
}

/// Records previewed per rule preview.
const PREVIEW_RECORDS: usize = 20;

fn not_found(what: String) -> EngineError {
    EngineError::NotFound(what)
}

/// A page size the caller asked for, refused outside `1..=max`.
fn page_size(limit: u32, max: u32) -> Result<u32, EngineError> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(EngineError::Invalid(format!(
            "limit must be between 1 and {max}, not {limit}"
        )))
    }
}

/// Parses a cursor Ferry handed out (a positive id).
fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, EngineError> {
    cursor
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| EngineError::Invalid(format!("cursor {c:?} is not one Ferry gave")))
        })
        .transpose()
}

impl Engine {
    /// A record by kind and key, or [`EngineError::NotFound`].
    pub async fn find_record(&self, kind: &str, key: &str) -> Result<Record, EngineError> {
        self.store
            .record(kind, key)
            .await?
            .ok_or_else(|| not_found(format!("no record {kind}/{key}")))
    }

    /// A record with its relatives and attachments, each with its links in Dropbox.
    pub async fn record_view(&self, record: &Record) -> Result<RecordView, EngineError> {
        self.record_view_with(record, true).await
    }

    /// [`Engine::record_view`], with or without the attachments' links (an upsert's answer
    /// leaves them out: they come with `GET`, and an app writing thousands of records
    /// should not pay for reading them back).
    async fn record_view_with(
        &self,
        record: &Record,
        links: bool,
    ) -> Result<RecordView, EngineError> {
        let parent = match record.parent_id {
            Some(id) => self.store.record_by_id(id).await?.map(|p| RecordRef {
                kind: p.kind,
                key: p.key,
            }),
            None => None,
        };
        let stored = self.store.attachments(record.id).await?;
        let ids: Vec<i64> = stored.iter().map(|a| a.id).collect();
        let mut attachments: Vec<AttachmentView> =
            stored.into_iter().map(AttachmentView::from).collect();
        let links = if links {
            self.file_links(record.id).await?
        } else {
            Vec::new()
        };
        for (attachment_id, link) in links {
            if let Some(i) = ids.iter().position(|id| *id == attachment_id) {
                attachments[i].links.push(link);
            }
        }
        let children = self.store.children(record.id).await?;
        Ok(RecordView {
            kind: record.kind.clone(),
            key: record.key.clone(),
            fields: record.fields.clone(),
            parent,
            children: children
                .into_iter()
                .map(|c| RecordRef {
                    kind: c.kind,
                    key: c.key,
                })
                .collect(),
            attachments,
        })
    }

    /// Creates or updates a record (fields must be a JSON object; the parent must exist). A
    /// change queues the record and its relatives in the same transaction.
    pub async fn upsert_record(
        &self,
        kind: &str,
        key: &str,
        fields: serde_json::Value,
        parent: Option<&RecordRef>,
    ) -> Result<RecordWritten, EngineError> {
        validate_record_ident("kind", kind).map_err(EngineError::Invalid)?;
        validate_record_ident("key", key).map_err(EngineError::Invalid)?;
        if !fields.is_object() {
            return Err(EngineError::Invalid("fields must be a JSON object".into()));
        }
        let parent_id = match parent {
            Some(p) => {
                if p.kind == kind && p.key == key {
                    return Err(EngineError::Invalid(
                        "a record cannot be its own parent".into(),
                    ));
                }
                let parent = self.store.record(&p.kind, &p.key).await?.ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "parent record {}/{} does not exist",
                        p.kind, p.key
                    ))
                })?;
                Some(parent.id)
            }
            None => None,
        };
        let upserted = self
            .store
            .upsert_record(&RecordInput {
                kind: kind.to_owned(),
                key: key.to_owned(),
                fields,
                parent_id,
            })
            .await?;
        if upserted.changed {
            self.wake();
        }
        Ok(RecordWritten {
            record: self.record_view_with(&upserted.value, false).await?,
            changed: upserted.changed,
        })
    }

    /// Deletes a record; `policy` says what happens to its files in Dropbox. A record with
    /// children is refused (delete them first): their folders may live inside its folder.
    pub async fn delete_record(
        &self,
        kind: &str,
        key: &str,
        policy: DeletePolicy,
    ) -> Result<RecordDeleted, EngineError> {
        let record = self.find_record(kind, key).await?;
        let children = self.store.children(record.id).await?;
        if let Some(child) = children.first() {
            return Err(EngineError::Conflict(format!(
                "record {kind}/{key} has {} child record(s), e.g. {}/{}; delete them first",
                children.len(),
                child.kind,
                child.key
            )));
        }
        let synced_files = self
            .store
            .sync_rows(record.id)
            .await?
            .iter()
            .filter(|r| r.rev.is_some())
            .count() as u64;
        match policy {
            DeletePolicy::Keep => {
                self.store.forget_record(record.id).await?;
            }
            DeletePolicy::Delete => {
                self.store
                    .mark_record_deleting(record.id, ferry_core::model::Deletion::Delete)
                    .await?;
            }
            DeletePolicy::Archive => {
                self.store
                    .mark_record_deleting(record.id, ferry_core::model::Deletion::Archive)
                    .await?;
            }
        }
        self.wake();
        Ok(RecordDeleted {
            deleted: RecordRef {
                kind: record.kind,
                key: record.key,
            },
            files: policy,
            synced_files,
        })
    }

    /// A page of records with their sync summaries.
    pub async fn list_records(&self, query: RecordQuery) -> Result<RecordPage, EngineError> {
        let limit = page_size(query.limit, 1000)?;
        let records = self
            .store
            .list_records(&RecordFilter {
                kind: query.kind,
                key_contains: query.q,
                state: query.state,
                after_id: parse_cursor(query.cursor.as_deref())?.unwrap_or(0),
                limit,
            })
            .await?;
        let next_cursor = (records.len() == limit as usize)
            .then(|| records.last().map(|r| r.id.to_string()))
            .flatten();
        Ok(RecordPage {
            records,
            next_cursor,
        })
    }

    /// The link of each synced file of a record, by attachment id.
    async fn file_links(&self, record_id: RecordId) -> Result<Vec<(i64, LinkView)>, EngineError> {
        let links = self.store.record_links(record_id).await?;
        let bindings = self.store.bindings_for_record(record_id).await?;
        let mut out = Vec::new();
        for r in self.store.sync_rows(record_id).await? {
            let (Some(attachment_id), Some(_)) = (r.attachment_id, &r.rev) else {
                continue;
            };
            let folder = bindings.iter().find(|b| Some(b.id) == r.binding_id);
            if let (Some(folder), Some(rel)) = (folder, &r.rel_display) {
                let path = format!("{}/{rel}", folder.folder_display);
                out.push((attachment_id, file_link(&links, &r, &path)));
            }
        }
        Ok(out)
    }

    /// Each file's Dropbox path, hash, state and last error, the record's folders and its
    /// queue entry.
    pub async fn record_sync(&self, kind: &str, key: &str) -> Result<RecordSyncView, EngineError> {
        let record = self.find_record(kind, key).await?;
        let names: std::collections::HashMap<i64, String> = self
            .store
            .attachments(record.id)
            .await?
            .into_iter()
            .map(|a| (a.id, a.name))
            .collect();
        let bindings = self.store.bindings_for_record(record.id).await?;
        let folder_of = |id: Option<i64>| {
            id.and_then(|id| bindings.iter().find(|b| b.id == id))
                .map(|b| b.folder_display.clone())
        };
        let links = self.store.record_links(record.id).await?;
        let mut summary = SyncCounts::default();
        let mut files = Vec::new();
        for r in self.store.sync_rows(record.id).await? {
            match r.state {
                SyncState::Synced => summary.synced += 1,
                SyncState::Pending => summary.pending += 1,
                SyncState::Failed => summary.failed += 1,
            }
            let path = match (folder_of(r.binding_id), &r.rel_display) {
                (Some(folder), Some(rel)) => Some(format!("{folder}/{rel}")),
                _ => None,
            };
            let link = match (&path, &r.rev) {
                (Some(path), Some(_)) => Some(file_link(&links, &r, path)),
                _ => None,
            };
            files.push(FileView {
                link,
                attachment: r.attachment_id.and_then(|id| names.get(&id).cloned()),
                rule: r.rule_name,
                connection: r.connection,
                path,
                content_hash: r.content_hash,
                rev: r.rev,
                dropbox_id: r.dropbox_id,
                state: r.state,
                last_error: r.last_error,
            });
        }
        let queue = self.store.queue_entry(record.id).await?;
        Ok(RecordSyncView {
            kind: record.kind,
            key: record.key,
            queued: queue.is_some(),
            queue,
            summary,
            bindings: bindings
                .iter()
                .map(|b| BindingView {
                    id: b.id,
                    rule: b.rule_name.clone(),
                    connection: b.connection.clone(),
                    folder: b.folder_display.clone(),
                    paused: b.paused_reason.clone(),
                    link: LinkView::new(
                        links.iter().find(|l| {
                            l.connection == b.connection && l.item == format!("binding:{}", b.id)
                        }),
                        &b.folder_display,
                    ),
                })
                .collect(),
            files,
        })
    }

    /// Forces a pass for the record and its relatives (also reviving a dead letter).
    pub async fn resync(&self, kind: &str, key: &str) -> Result<Queued, EngineError> {
        let record = self.find_record(kind, key).await?;
        self.enqueue_related(record.id).await?;
        Ok(Queued { queued: true })
    }

    /// Lets the record's paused bindings run the deletions the brake stopped, once.
    pub async fn confirm_record_deletions(
        &self,
        kind: &str,
        key: &str,
    ) -> Result<ConfirmedBindings, EngineError> {
        let record = self.find_record(kind, key).await?;
        let confirmed_bindings = self.store.confirm_record_deletions(record.id).await?;
        self.wake();
        Ok(ConfirmedBindings { confirmed_bindings })
    }

    /// Makes stored content (already in the blob store) the attachment `name` of a record.
    /// An attachment that came from Dropbox keeps its place there; `if_match` makes the
    /// write conditional. The change and its queue entries commit together.
    #[allow(clippy::too_many_arguments)]
    pub async fn put_attachment(
        &self,
        record: &Record,
        name: &str,
        tags: Vec<String>,
        content_hash: String,
        size: u64,
        if_match: Option<String>,
    ) -> Result<AttachmentWritten, EngineError> {
        let current = self
            .store
            .attachments(record.id)
            .await?
            .into_iter()
            .find(|a| a.name == name);
        // Replacing a Dropbox version archives it: one only Dropbox holds comes back first.
        if let Some(a) = current.as_ref().filter(|a| a.source == Side::Dropbox) {
            self.bring_back(a).await?;
        }
        let origin_path = current.and_then(|a| a.origin_path);
        let upserted = self
            .store
            .put_attachment(&AttachmentInput {
                record_id: record.id,
                name: name.to_owned(),
                tags,
                content_hash,
                size,
                origin_path,
                source: Side::App,
                if_match,
            })
            .await?;
        if upserted.changed {
            self.wake();
        }
        Ok(AttachmentWritten {
            attachment: upserted.value.into(),
            changed: upserted.changed,
        })
    }

    /// Removes an attachment; its file leaves Dropbox on the next pass.
    pub async fn remove_attachment(
        &self,
        kind: &str,
        key: &str,
        name: &str,
    ) -> Result<Removed, EngineError> {
        let record = self.find_record(kind, key).await?;
        // A Dropbox version the app removes is archived: one only Dropbox holds comes back.
        if let Some(a) = self
            .store
            .attachments(record.id)
            .await?
            .iter()
            .find(|a| a.name == name && a.source == Side::Dropbox)
        {
            self.bring_back(a).await?;
        }
        if !self.store.remove_attachment(record.id, name).await? {
            return Err(not_found(format!(
                "record {kind}/{key} has no attachment {name:?}"
            )));
        }
        self.wake();
        Ok(Removed {
            removed: name.to_owned(),
        })
    }

    /// An attachment of a record, or [`EngineError::NotFound`].
    pub async fn attachment(
        &self,
        kind: &str,
        key: &str,
        name: &str,
    ) -> Result<Attachment, EngineError> {
        let record = self.find_record(kind, key).await?;
        self.store
            .attachments(record.id)
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .ok_or_else(|| not_found(format!("record {kind}/{key} has no attachment {name:?}")))
    }

    /// A record's archived versions, newest first.
    pub async fn archive(&self, kind: &str, key: &str) -> Result<ArchiveList, EngineError> {
        let record = self.find_record(kind, key).await?;
        Ok(ArchiveList {
            archived: self.store.archived_attachments(record.id).await?,
        })
    }

    /// One archived version of a record.
    pub async fn archived(
        &self,
        kind: &str,
        key: &str,
        id: i64,
    ) -> Result<ArchivedAttachment, EngineError> {
        let record = self.find_record(kind, key).await?;
        self.store
            .archived_attachments(record.id)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            .ok_or_else(|| not_found(format!("record {kind}/{key} has no archived version {id}")))
    }

    /// Makes an archived version the current attachment of its name again (the version it
    /// replaces is archived); it syncs like any change.
    pub async fn restore_archived(
        &self,
        kind: &str,
        key: &str,
        id: i64,
    ) -> Result<Restored, EngineError> {
        let record = self.find_record(kind, key).await?;
        // The version a restore replaces is archived: one only Dropbox holds comes back.
        if let Some(archived) = self
            .store
            .archived_attachments(record.id)
            .await?
            .into_iter()
            .find(|a| a.id == id)
            && let Some(current) = self
                .store
                .attachments(record.id)
                .await?
                .iter()
                .find(|a| a.name == archived.name)
        {
            self.bring_back(current).await?;
        }
        let Some(restored) = self.store.restore_archived(record.id, id).await? else {
            return Err(not_found(format!(
                "record {kind}/{key} has no archived version {id}"
            )));
        };
        self.wake();
        Ok(Restored {
            restored: restored.value.into(),
            changed: restored.changed,
        })
    }

    /// All rules.
    pub async fn rules(&self) -> Result<RuleList, EngineError> {
        Ok(RuleList {
            rules: self.store.rules().await?,
        })
    }

    /// Checks a rule (templates, connection, limits, overlaps): overlaps where either rule
    /// pulls are refused, others come back as warnings.
    async fn vet_rule(&self, spec: &RuleSpec) -> Result<Vec<String>, EngineError> {
        let overlaps = self.check_rule(spec).await?;
        if let Some(o) = overlaps.iter().find(|o| o.pulls) {
            return Err(EngineError::Conflict(format!(
                "rule {:?} would place {} in the same folder {:?} as rule {:?}, and one of them pulls from Dropbox; give one rule another folder",
                spec.name,
                o.record.as_deref().unwrap_or("every record"),
                o.folder,
                o.rule
            )));
        }
        let rules = self.store.rules().await?;
        let order_of = |name: &str| {
            rules
                .iter()
                .find(|r| r.name == name)
                .map_or((0, name.to_owned()), |r| (r.order, r.name.clone()))
        };
        Ok(overlaps
            .iter()
            .map(|o| {
                let (first, second) = if (spec.order, spec.name.clone()) < order_of(&o.rule) {
                    (spec.name.as_str(), o.rule.as_str())
                } else {
                    (o.rule.as_str(), spec.name.as_str())
                };
                format!(
                    "rule {:?} places {} in the same folder {:?}; rule {first:?} comes first (order, then name) and claims the folder, so rule {second:?} places nothing there (a folder it already has keeps its files)",
                    o.rule,
                    o.record.as_deref().unwrap_or("every record"),
                    o.folder
                )
            })
            .collect())
    }

    /// Checks and stores a rule; every record of its kind (old and new) is queued in the same
    /// transaction. With `dry_run`, only checks.
    pub async fn put_rule(&self, spec: RuleSpec, dry_run: bool) -> Result<RuleSaved, EngineError> {
        let warnings = self.vet_rule(&spec).await?;
        let queued_records = if dry_run {
            0
        } else {
            let change = self.store.put_rule(&spec).await?;
            self.wake();
            change.queued
        };
        Ok(RuleSaved {
            rule: spec,
            queued_records,
            warnings,
            dry_run,
        })
    }

    /// What a rule would do for the first existing records of its kind, without storing or
    /// syncing anything: each record's folder and file paths, and the actions a pass would
    /// take now (Dropbox is read, never written).
    pub async fn preview_rule(&self, spec: RuleSpec) -> Result<RulePreview, EngineError> {
        let warnings = self.vet_rule(&spec).await?;
        let rule = ferry_core::rules::CompiledRule::compile(spec.clone())
            .map_err(|e| EngineError::Invalid(format!("invalid rule: {e}")))?;
        let root = self
            .store
            .connection(&spec.connection)
            .await?
            .map(|c| c.root)
            .unwrap_or_default();
        let ids = self.store.record_ids_of_kind(&spec.record_kind).await?;
        let mut records = Vec::new();
        for &id in ids.iter().take(PREVIEW_RECORDS) {
            let Some(record) = self.store.record_by_id(id).await? else {
                continue;
            };
            let (parent, children, siblings) = self.relatives(&record).await?;
            let ctx =
                ferry_core::rules::RuleContext::new(&record, parent.as_ref(), &children, &siblings);
            let mut preview = RecordPreview {
                record: RecordRef {
                    kind: record.kind.clone(),
                    key: record.key.clone(),
                },
                applies: false,
                folder: None,
                files: Vec::new(),
                actions: Vec::new(),
                errors: Vec::new(),
            };
            match rule.applies(&ctx) {
                Ok(applies) => preview.applies = applies,
                Err(e) => preview.errors.push(e.to_string()),
            }
            if preview.applies {
                match rule.folder(&ctx) {
                    Ok(parts) => {
                        let folder = ferry_core::names::join_path(&root, &parts);
                        for a in self.store.attachments(id).await? {
                            match (rule.selects(&ctx, &a), rule.file_path(&ctx, &a)) {
                                (Ok(false), _) => {}
                                (Ok(true), Ok(rel)) => {
                                    preview.files.push(format!("{folder}/{}", rel.join("/")))
                                }
                                (Err(e), _) | (_, Err(e)) => {
                                    preview.errors.push(format!("{}: {e}", a.name))
                                }
                            }
                        }
                        preview.folder = Some(folder);
                    }
                    Err(e) => preview.errors.push(e.to_string()),
                }
            }
            match self.pending_actions_with(id, &spec).await {
                Ok(actions) => preview.actions = actions,
                Err(e) => preview.errors.push(format!("cannot plan: {e}")),
            }
            records.push(preview);
        }
        Ok(RulePreview {
            rule: spec,
            total_records: ids.len() as u64,
            records,
            warnings,
        })
    }

    /// Deletes a rule; the files it placed leave Dropbox on the records' next passes (queued
    /// in the same transaction).
    pub async fn delete_rule(&self, name: &str) -> Result<RuleRemoved, EngineError> {
        let Some(change) = self.store.delete_rule(name).await? else {
            return Err(not_found(format!("no rule named {name:?}")));
        };
        self.wake();
        Ok(RuleRemoved {
            removed: name.to_owned(),
            queued_records: change.queued,
        })
    }

    /// All connections (never their tokens).
    pub async fn connections(&self) -> Result<ConnectionList, EngineError> {
        Ok(ConnectionList {
            connections: self
                .store
                .connections()
                .await?
                .into_iter()
                .map(|c| ConnectionView {
                    name: c.name,
                    root: c.root,
                    api_url: c.api_url,
                    content_url: c.content_url,
                    needs_reconnect: c.needs_reconnect,
                    disconnecting: c.disconnecting,
                    select_user: c.select_user,
                    path_root: c.path_root.unwrap_or_else(|| "home".into()),
                    oauth: c.refresh_ciphertext.is_some(),
                    app_access: c
                        .app_access
                        .as_deref()
                        .and_then(|a| crate::connections::AppAccess::parse(a).ok()),
                    account: c.account.map(|a| AccountView {
                        account_id: a.id,
                        display_name: a.name,
                        email: a.email,
                    }),
                })
                .collect(),
        })
    }

    /// Lets the deletions the connection-wide brake stopped go ahead (the window starts
    /// anew); the paused records are queued in the same transaction.
    pub async fn confirm_connection_deletions(
        &self,
        name: &str,
    ) -> Result<ConfirmedRecords, EngineError> {
        if self.store.connection(name).await?.is_none() {
            return Err(EngineError::UnknownConnection(name.to_owned()));
        }
        let records = self.store.confirm_connection_deletions(name).await?;
        self.wake();
        Ok(ConfirmedRecords {
            confirmed_records: records.len() as u64,
        })
    }

    /// Queue and file counts.
    pub async fn status(&self) -> Result<StatusView, EngineError> {
        Ok(StatusView {
            queue: self.store.queue_stats().await?,
            files: self.store.sync_counts().await?,
            content: self.store.content_totals().await?,
            processes: self.store.processes().await?,
            duties: self.store.duties().await?,
        })
    }

    /// A page of the log, newest first.
    pub async fn log(&self, query: LogQuery) -> Result<LogPage, EngineError> {
        let record_id = match &query.record {
            Some(r) => {
                let Some((kind, key)) = r.split_once('/') else {
                    return Err(EngineError::Invalid(
                        "record must be written kind/key".into(),
                    ));
                };
                Some(self.find_record(kind, key).await?.id)
            }
            None => None,
        };
        let limit = page_size(query.limit, 10_000)?;
        let entries = self
            .store
            .log_entries(&LogFilter {
                connection: query.connection,
                record_id,
                action: query.action,
                outcome: query.outcome,
                since_ms: query.since_ms,
                until_ms: query.until_ms,
                before_id: parse_cursor(query.cursor.as_deref())?,
                limit,
            })
            .await?;
        let next_cursor = (entries.len() == limit as usize)
            .then(|| entries.last().map(|e| e.entry.id.to_string()))
            .flatten();
        Ok(LogPage {
            entries,
            next_cursor,
        })
    }

    /// Dead-lettered records.
    pub async fn dead(&self) -> Result<DeadList, EngineError> {
        Ok(DeadList {
            dead: self.store.dead_tasks().await?,
        })
    }

    /// The first `limit` dead letters with the record each one is for (`None`: the record is
    /// gone), and how many there are in all.
    pub async fn dead_records(
        &self,
        limit: usize,
    ) -> Result<(Vec<(ferry_store::QueueEntry, Option<RecordRef>)>, usize), EngineError> {
        let mut out = Vec::new();
        let dead = self.store.dead_tasks().await?;
        let total = dead.len();
        for entry in dead.into_iter().take(limit) {
            let record = self
                .store
                .record_by_id(entry.record_id)
                .await?
                .map(|r| RecordRef {
                    kind: r.kind,
                    key: r.key,
                });
            out.push((entry, record));
        }
        Ok((out, total))
    }

    /// The log counted per `bucket_ms` from `since_ms` on (the dashboard's chart).
    pub async fn activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> Result<Vec<ferry_store::ActivityBucket>, EngineError> {
        Ok(self.store.log_activity(since_ms, bucket_ms).await?)
    }
}
