//! The simulation's faulty store and blob store: every engine call to the store or the blob
//! store may fail with a transient error, decided by the seed's RNG (so a failing seed
//! replays). The simulation itself reads and writes the real ones, which never fail.

use async_trait::async_trait;
use ferry_core::model::{Attachment, AttachmentId, Record, RecordId};
use ferry_core::rules::RuleSpec;
use ferry_dropbox::Lockstep;
use ferry_store::prelude::*;
use ferry_store::{
    ArchivedAttachment, AttachmentInput, Binding, LogEntry, LogFilter, LogLine, Priority,
    ProcessInfo, QueueEntry, QueueStats, RecordFilter, RecordInput, RecordSummary, RuleChange,
    Store, StoreError, StoreResult, StoredConnection, SyncCounts, SyncRow, SyncedFileScan, Task,
    Upserted,
};
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use rand::Rng;
use rand::rngs::StdRng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Seeded decisions: whether the next store or blob call fails.
#[derive(Debug)]
pub(crate) struct StoreFaults {
    rng: Mutex<StdRng>,
    /// Faults are injected only while this is set (the random phase of a seed).
    pub(crate) enabled: Arc<AtomicBool>,
    /// Probability that one call fails.
    rate: f64,
    /// Faults injected so far.
    pub(crate) injected: AtomicU64,
}

impl StoreFaults {
    pub(crate) fn new(rng: StdRng, enabled: Arc<AtomicBool>, rate: f64) -> Self {
        StoreFaults {
            rng: Mutex::new(rng),
            enabled,
            rate,
            injected: AtomicU64::new(0),
        }
    }

    fn fails(&self) -> bool {
        if !self.enabled.load(Ordering::SeqCst) {
            return false;
        }
        let roll: f64 = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .r#gen();
        let fails = roll < self.rate;
        if fails {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fails
    }
}

/// A [`Store`] whose calls may fail with a transient I/O error before they reach the database.
/// Every call that reaches it runs in lockstep (`ferry_dropbox::Lockstep`), so the seed's
/// runtime never waits on the database's threads.
pub(crate) struct FaultyStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) faults: Arc<StoreFaults>,
    pub(crate) lockstep: Lockstep,
}

impl FaultyStore {
    /// `call` run to completion in lockstep.
    fn step<F: std::future::Future>(&self, call: F) -> F::Output {
        self.lockstep.run(call)
    }

    fn fault(&self, call: &str) -> StoreResult<()> {
        if self.faults.fails() {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "injected store fault in {call}"
            ))));
        }
        Ok(())
    }

    /// `inner` read whole in one lockstep call (a stream read item by item would hold a
    /// database connection while the seed's other tasks run, and a store call of theirs
    /// could then wait for it forever), or a stream that fails at once (a fault in the query
    /// that starts it).
    fn faulty_stream<'a, T: Send + 'a>(
        &self,
        call: &str,
        inner: BoxStream<'a, StoreResult<T>>,
    ) -> BoxStream<'a, StoreResult<T>> {
        use futures::StreamExt;
        match self.fault(call) {
            Ok(()) => futures::stream::iter(self.step(inner.collect::<Vec<_>>())).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }
}

#[async_trait]
impl OffloadStore for FaultyStore {
    async fn offload_candidates(
        &self,
        connection: &str,
        rule: &str,
        limit: u32,
    ) -> StoreResult<Vec<ferry_store::OffloadCandidate>> {
        self.fault("offload_candidates")?;
        self.step(self.inner.offload_candidates(connection, rule, limit))
    }

    async fn mark_offloaded(&self, candidate: &ferry_store::OffloadCandidate) -> StoreResult<bool> {
        self.fault("mark_offloaded")?;
        self.step(self.inner.mark_offloaded(candidate))
    }

    async fn clear_offloaded(
        &self,
        attachment_id: ferry_core::model::AttachmentId,
        content_hash: &str,
    ) -> StoreResult<bool> {
        self.fault("clear_offloaded")?;
        self.step(self.inner.clear_offloaded(attachment_id, content_hash))
    }

    async fn droppable_blobs(&self, limit: u32) -> StoreResult<Vec<String>> {
        self.fault("droppable_blobs")?;
        self.step(self.inner.droppable_blobs(limit))
    }

    async fn needs_blob(&self, content_hash: &str) -> StoreResult<bool> {
        self.fault("needs_blob")?;
        self.step(self.inner.needs_blob(content_hash))
    }

    async fn set_blob_dropped(&self, content_hash: &str) -> StoreResult<()> {
        self.fault("set_blob_dropped")?;
        self.step(self.inner.set_blob_dropped(content_hash))
    }

    async fn content_totals(&self) -> StoreResult<ferry_store::ContentTotals> {
        self.fault("content_totals")?;
        self.step(self.inner.content_totals())
    }
}

#[async_trait]
impl LinkStore for FaultyStore {
    async fn links_wanted(
        &self,
        connection: &str,
        rule: &str,
        folders: bool,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<ferry_store::LinkTarget>> {
        self.fault("links_wanted")?;
        self.step(
            self.inner
                .links_wanted(connection, rule, folders, now_ms, limit),
        )
    }

    async fn save_link(
        &self,
        target: &ferry_store::LinkTarget,
        result: &ferry_store::LinkResult,
    ) -> StoreResult<()> {
        self.fault("save_link")?;
        self.step(self.inner.save_link(target, result))
    }

    async fn record_links(
        &self,
        record_id: ferry_core::model::RecordId,
    ) -> StoreResult<Vec<ferry_store::StoredLink>> {
        self.fault("record_links")?;
        self.step(self.inner.record_links(record_id))
    }

    async fn prune_links(&self, connection: &str) -> StoreResult<u64> {
        self.fault("prune_links")?;
        self.step(self.inner.prune_links(connection))
    }
}

#[async_trait]
impl WebhookStore for FaultyStore {
    async fn put_webhook(&self, webhook: &ferry_store::StoredWebhook) -> StoreResult<i64> {
        self.fault("put_webhook")?;
        self.step(self.inner.put_webhook(webhook))
    }

    async fn webhooks(&self) -> StoreResult<Vec<ferry_store::StoredWebhook>> {
        self.fault("webhooks")?;
        self.step(self.inner.webhooks())
    }

    async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        self.fault("delete_webhook")?;
        self.step(self.inner.delete_webhook(id))
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        hold_ms: i64,
    ) -> StoreResult<Vec<ferry_store::DueDelivery>> {
        self.fault("due_deliveries")?;
        self.step(self.inner.due_deliveries(now_ms, limit, hold_ms))
    }

    async fn finish_delivery(
        &self,
        id: i64,
        delivered: bool,
        status: Option<u16>,
        error: Option<&str>,
        next_at_ms: Option<i64>,
    ) -> StoreResult<()> {
        self.fault("finish_delivery")?;
        self.step(
            self.inner
                .finish_delivery(id, delivered, status, error, next_at_ms),
        )
    }

    async fn deliveries(
        &self,
        subscription_id: i64,
        limit: u32,
    ) -> StoreResult<Vec<ferry_store::DeliveryView>> {
        self.fault("deliveries")?;
        self.step(self.inner.deliveries(subscription_id, limit))
    }

    async fn redeliver(&self, delivery_id: i64) -> StoreResult<bool> {
        self.fault("redeliver")?;
        self.step(self.inner.redeliver(delivery_id))
    }

    async fn prune_webhook_deliveries(&self, before_ms: i64) -> StoreResult<u64> {
        self.fault("prune_webhook_deliveries")?;
        self.step(self.inner.prune_webhook_deliveries(before_ms))
    }
}

#[async_trait]
impl FolderMapStore for FaultyStore {
    async fn put_folder_map(&self, map: &ferry_store::FolderMap) -> StoreResult<i64> {
        self.fault("put_folder_map")?;
        self.step(self.inner.put_folder_map(map))
    }

    async fn folder_maps(&self, record_id: RecordId) -> StoreResult<Vec<ferry_store::FolderMap>> {
        self.fault("folder_maps")?;
        self.step(self.inner.folder_maps(record_id))
    }

    async fn folder_maps_of_connection(
        &self,
        connection: &str,
    ) -> StoreResult<Vec<ferry_store::FolderMap>> {
        self.fault("folder_maps_of_connection")?;
        self.step(self.inner.folder_maps_of_connection(connection))
    }

    async fn set_folder_map_path(&self, id: i64, path: &str) -> StoreResult<()> {
        self.fault("set_folder_map_path")?;
        self.step(self.inner.set_folder_map_path(id, path))
    }

    async fn delete_folder_map(
        &self,
        record_id: RecordId,
        id: i64,
    ) -> StoreResult<Option<ferry_store::FolderMap>> {
        self.fault("delete_folder_map")?;
        self.step(self.inner.delete_folder_map(record_id, id))
    }
}

/// The console's accounts are not part of what the simulation checks: passed through.
#[async_trait]
impl ConsoleStore for FaultyStore {
    async fn put_admin(&self, name: &str, password_hash: &str) -> StoreResult<bool> {
        self.step(self.inner.put_admin(name, password_hash))
    }

    async fn admin(&self, name: &str) -> StoreResult<Option<ferry_store::AdminAccount>> {
        self.step(self.inner.admin(name))
    }

    async fn admin_count(&self) -> StoreResult<u64> {
        self.step(self.inner.admin_count())
    }

    async fn put_session(&self, session: &ferry_store::AdminSession) -> StoreResult<()> {
        self.step(self.inner.put_session(session))
    }

    async fn session(
        &self,
        id_hash: &str,
        now_ms: i64,
    ) -> StoreResult<Option<ferry_store::AdminSession>> {
        self.step(self.inner.session(id_hash, now_ms))
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool> {
        self.step(self.inner.delete_session(id_hash))
    }

    async fn put_login_link(
        &self,
        token_hash: &str,
        admin: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.step(self.inner.put_login_link(token_hash, admin, expires_at))
    }

    async fn take_login_link(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<String>> {
        self.step(self.inner.take_login_link(token_hash, now_ms))
    }

    async fn put_pending_connection(
        &self,
        pending: &ferry_store::PendingConnection,
    ) -> StoreResult<()> {
        self.step(self.inner.put_pending_connection(pending))
    }

    async fn pending_connection(
        &self,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<ferry_store::PendingConnection>> {
        self.step(self.inner.pending_connection(id, now_ms))
    }

    async fn delete_pending_connection(&self, id: &str) -> StoreResult<()> {
        self.step(self.inner.delete_pending_connection(id))
    }

    async fn confirm_pending_switch(&self, id: &str, expires_at: i64) -> StoreResult<()> {
        self.step(self.inner.confirm_pending_switch(id, expires_at))
    }

    async fn pending_switch(
        &self,
        connection: &str,
    ) -> StoreResult<Option<ferry_store::PendingConnection>> {
        self.step(self.inner.pending_switch(connection))
    }

    async fn pending_switch_connections(&self) -> StoreResult<Vec<String>> {
        self.step(self.inner.pending_switch_connections())
    }
}

#[async_trait]
impl MaintenanceStore for FaultyStore {
    async fn snapshot_to(&self, path: &std::path::Path) -> StoreResult<()> {
        self.fault("snapshot_to")?;
        self.step(self.inner.snapshot_to(path))
    }

    async fn integrity_problems(&self) -> StoreResult<Vec<String>> {
        self.fault("integrity_problems")?;
        self.step(self.inner.integrity_problems())
    }

    async fn verify_snapshot(&self, path: &std::path::Path) -> StoreResult<()> {
        self.fault("verify_snapshot")?;
        self.step(self.inner.verify_snapshot(path))
    }
}

#[async_trait]
impl RecordStore for FaultyStore {
    async fn upsert_record(&self, input: &RecordInput) -> StoreResult<Upserted<Record>> {
        self.fault("upsert_record")?;
        self.step(self.inner.upsert_record(input))
    }

    async fn record(&self, kind: &str, key: &str) -> StoreResult<Option<Record>> {
        self.fault("record")?;
        self.step(self.inner.record(kind, key))
    }

    async fn record_by_id(&self, id: RecordId) -> StoreResult<Option<Record>> {
        self.fault("record_by_id")?;
        self.step(self.inner.record_by_id(id))
    }

    async fn children(&self, id: RecordId) -> StoreResult<Vec<Record>> {
        self.fault("children")?;
        self.step(self.inner.children(id))
    }

    async fn record_ids_of_kind(&self, kind: &str) -> StoreResult<Vec<RecordId>> {
        self.fault("record_ids_of_kind")?;
        self.step(self.inner.record_ids_of_kind(kind))
    }

    async fn forget_record(&self, record_id: RecordId) -> StoreResult<bool> {
        self.fault("forget_record")?;
        self.step(self.inner.forget_record(record_id))
    }

    async fn mark_record_deleting(
        &self,
        record_id: RecordId,
        deletion: ferry_core::model::Deletion,
    ) -> StoreResult<bool> {
        self.fault("mark_record_deleting")?;
        self.step(self.inner.mark_record_deleting(record_id, deletion))
    }

    async fn list_records(&self, filter: &RecordFilter) -> StoreResult<Vec<RecordSummary>> {
        self.fault("list_records")?;
        self.step(self.inner.list_records(filter))
    }

    async fn attachments(&self, record_id: RecordId) -> StoreResult<Vec<Attachment>> {
        self.fault("attachments")?;
        self.step(self.inner.attachments(record_id))
    }

    async fn put_attachment(&self, input: &AttachmentInput) -> StoreResult<Upserted<Attachment>> {
        self.fault("put_attachment")?;
        self.step(self.inner.put_attachment(input))
    }

    async fn remove_attachment(&self, record_id: RecordId, name: &str) -> StoreResult<bool> {
        self.fault("remove_attachment")?;
        self.step(self.inner.remove_attachment(record_id, name))
    }

    async fn rename_attachment(
        &self,
        attachment_id: AttachmentId,
        name: &str,
        origin_path: &str,
    ) -> StoreResult<bool> {
        self.fault("rename_attachment")?;
        self.step(
            self.inner
                .rename_attachment(attachment_id, name, origin_path),
        )
    }

    async fn archive_attachment(
        &self,
        attachment_id: AttachmentId,
        reason: &str,
    ) -> StoreResult<bool> {
        self.fault("archive_attachment")?;
        self.step(self.inner.archive_attachment(attachment_id, reason))
    }

    async fn archived_attachments(
        &self,
        record_id: RecordId,
    ) -> StoreResult<Vec<ArchivedAttachment>> {
        self.fault("archived_attachments")?;
        self.step(self.inner.archived_attachments(record_id))
    }

    async fn restore_archived(
        &self,
        record_id: RecordId,
        archived_id: i64,
    ) -> StoreResult<Option<Upserted<Attachment>>> {
        self.fault("restore_archived")?;
        self.step(self.inner.restore_archived(record_id, archived_id))
    }
}

#[async_trait]
impl RuleStore for FaultyStore {
    async fn put_rule(&self, rule: &RuleSpec) -> StoreResult<RuleChange> {
        self.fault("put_rule")?;
        self.step(self.inner.put_rule(rule))
    }

    async fn delete_rule(&self, name: &str) -> StoreResult<Option<RuleChange>> {
        self.fault("delete_rule")?;
        self.step(self.inner.delete_rule(name))
    }

    async fn rules(&self) -> StoreResult<Vec<RuleSpec>> {
        self.fault("rules")?;
        self.step(self.inner.rules())
    }
}

#[async_trait]
impl ConnectionStore for FaultyStore {
    async fn put_connection(&self, connection: &StoredConnection) -> StoreResult<u64> {
        self.fault("put_connection")?;
        self.step(self.inner.put_connection(connection))
    }

    async fn connection(&self, name: &str) -> StoreResult<Option<StoredConnection>> {
        self.fault("connection")?;
        self.step(self.inner.connection(name))
    }

    async fn connections(&self) -> StoreResult<Vec<StoredConnection>> {
        self.fault("connections")?;
        self.step(self.inner.connections())
    }

    async fn set_disconnecting(&self, name: &str) -> StoreResult<Vec<RecordId>> {
        self.fault("set_disconnecting")?;
        self.step(self.inner.set_disconnecting(name))
    }

    async fn delete_connection(&self, name: &str) -> StoreResult<()> {
        self.fault("delete_connection")?;
        self.step(self.inner.delete_connection(name))
    }

    async fn set_needs_reconnect(&self, name: &str, reason: Option<&str>) -> StoreResult<()> {
        self.fault("set_needs_reconnect")?;
        self.step(self.inner.set_needs_reconnect(name, reason))
    }

    async fn set_connection_cursor(&self, name: &str, cursor: Option<&str>) -> StoreResult<()> {
        self.fault("set_connection_cursor")?;
        self.step(self.inner.set_connection_cursor(name, cursor))
    }

    async fn set_connection_root(&self, name: &str, from: &str, to: &str) -> StoreResult<bool> {
        self.fault("set_connection_root")?;
        self.step(self.inner.set_connection_root(name, from, to))
    }

    async fn connection_cursor(&self, name: &str) -> StoreResult<Option<String>> {
        self.fault("connection_cursor")?;
        self.step(self.inner.connection_cursor(name))
    }

    async fn confirm_connection_deletions(&self, connection: &str) -> StoreResult<Vec<RecordId>> {
        self.fault("confirm_connection_deletions")?;
        self.step(self.inner.confirm_connection_deletions(connection))
    }

    async fn connection_deletions_confirmed_at(&self, connection: &str) -> StoreResult<i64> {
        self.fault("connection_deletions_confirmed_at")?;
        self.step(self.inner.connection_deletions_confirmed_at(connection))
    }

    async fn put_oauth_state(&self, state: &ferry_store::OAuthState) -> StoreResult<()> {
        self.fault("put_oauth_state")?;
        self.step(self.inner.put_oauth_state(state))
    }

    async fn take_oauth_state(&self, state: &str) -> StoreResult<Option<ferry_store::OAuthState>> {
        self.fault("take_oauth_state")?;
        self.step(self.inner.take_oauth_state(state))
    }
}

#[async_trait]
impl SyncStateStore for FaultyStore {
    async fn bindings_for_record(&self, record_id: RecordId) -> StoreResult<Vec<Binding>> {
        self.fault("bindings_for_record")?;
        self.step(self.inner.bindings_for_record(record_id))
    }

    async fn binding(&self, id: i64) -> StoreResult<Option<Binding>> {
        self.fault("binding")?;
        self.step(self.inner.binding(id))
    }

    async fn bindings_within(
        &self,
        connection: &str,
        folder_lower: &str,
    ) -> StoreResult<Vec<Binding>> {
        self.fault("bindings_within")?;
        self.step(self.inner.bindings_within(connection, folder_lower))
    }

    async fn bindings_containing(
        &self,
        connection: &str,
        path_lower: &str,
    ) -> StoreResult<Vec<Binding>> {
        self.fault("bindings_containing")?;
        self.step(self.inner.bindings_containing(connection, path_lower))
    }

    async fn bindings_of_connection(&self, connection: &str) -> StoreResult<Vec<Binding>> {
        self.fault("bindings_of_connection")?;
        self.step(self.inner.bindings_of_connection(connection))
    }

    fn synced_files_by_path<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxStream<'a, StoreResult<SyncedFileScan>> {
        self.faulty_stream(
            "synced_files_by_path",
            self.inner.synced_files_by_path(connection),
        )
    }

    fn bindings_by_folder<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxStream<'a, StoreResult<Binding>> {
        self.faulty_stream(
            "bindings_by_folder",
            self.inner.bindings_by_folder(connection),
        )
    }

    async fn records_changed_since_pass(&self, connection: &str) -> StoreResult<Vec<RecordId>> {
        self.fault("records_changed_since_pass")?;
        self.step(self.inner.records_changed_since_pass(connection))
    }

    async fn knows_revision(
        &self,
        dropbox_id: &str,
        rev: &str,
        path_lower: &str,
    ) -> StoreResult<bool> {
        self.fault("knows_revision")?;
        self.step(self.inner.knows_revision(dropbox_id, rev, path_lower))
    }

    async fn save_binding(&self, binding: &Binding) -> StoreResult<i64> {
        self.fault("save_binding")?;
        self.step(self.inner.save_binding(binding))
    }

    async fn delete_binding(&self, id: i64) -> StoreResult<()> {
        self.fault("delete_binding")?;
        self.step(self.inner.delete_binding(id))
    }

    async fn subfolders_made(&self, binding_id: i64) -> StoreResult<bool> {
        self.fault("subfolders_made")?;
        self.step(self.inner.subfolders_made(binding_id))
    }

    async fn set_subfolders_made(&self, binding_id: i64) -> StoreResult<()> {
        self.fault("set_subfolders_made")?;
        self.step(self.inner.set_subfolders_made(binding_id))
    }

    async fn confirm_record_deletions(&self, record_id: RecordId) -> StoreResult<u64> {
        self.fault("confirm_record_deletions")?;
        self.step(self.inner.confirm_record_deletions(record_id))
    }

    async fn tree_files(
        &self,
        connection: &str,
        prefix_lower: &str,
        name_contains: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ferry_store::TreeFile>> {
        self.fault("tree_files")?;
        self.step(
            self.inner
                .tree_files(connection, prefix_lower, name_contains, limit),
        )
    }

    async fn tree_folders(
        &self,
        connection: &str,
        prefix_lower: &str,
        limit: u32,
    ) -> StoreResult<Vec<ferry_store::TreeFolder>> {
        self.fault("tree_folders")?;
        self.step(self.inner.tree_folders(connection, prefix_lower, limit))
    }

    async fn sync_rows(&self, record_id: RecordId) -> StoreResult<Vec<SyncRow>> {
        self.fault("sync_rows")?;
        self.step(self.inner.sync_rows(record_id))
    }

    async fn save_sync_row(&self, row: &SyncRow) -> StoreResult<i64> {
        self.fault("save_sync_row")?;
        self.step(self.inner.save_sync_row(row))
    }

    async fn save_sync_rows_logged(&self, rows: &[SyncRow], log: &[LogEntry]) -> StoreResult<()> {
        self.fault("save_sync_rows_logged")?;
        self.step(self.inner.save_sync_rows_logged(rows, log))
    }

    async fn delete_sync_row(&self, id: i64) -> StoreResult<()> {
        self.fault("delete_sync_row")?;
        self.step(self.inner.delete_sync_row(id))
    }

    async fn replace_unplaced_rows(
        &self,
        record_id: RecordId,
        rows: &[SyncRow],
    ) -> StoreResult<()> {
        self.fault("replace_unplaced_rows")?;
        self.step(self.inner.replace_unplaced_rows(record_id, rows))
    }

    async fn sync_counts(&self) -> StoreResult<SyncCounts> {
        self.fault("sync_counts")?;
        self.step(self.inner.sync_counts())
    }

    async fn upload_session(
        &self,
        connection: &str,
        content_hash: &str,
    ) -> StoreResult<Option<(String, u64)>> {
        self.fault("upload_session")?;
        self.step(self.inner.upload_session(connection, content_hash))
    }

    async fn save_upload_session(
        &self,
        connection: &str,
        content_hash: &str,
        session_id: &str,
        offset: u64,
    ) -> StoreResult<()> {
        self.fault("save_upload_session")?;
        self.step(
            self.inner
                .save_upload_session(connection, content_hash, session_id, offset),
        )
    }

    async fn delete_upload_session(&self, connection: &str, content_hash: &str) -> StoreResult<()> {
        self.fault("delete_upload_session")?;
        self.step(self.inner.delete_upload_session(connection, content_hash))
    }

    async fn deletions_since(
        &self,
        connection: &str,
        binding_id: Option<i64>,
        since_ms: i64,
    ) -> StoreResult<u64> {
        self.fault("deletions_since")?;
        self.step(self.inner.deletions_since(connection, binding_id, since_ms))
    }

    async fn synced_count(&self, connection: &str) -> StoreResult<u64> {
        self.fault("synced_count")?;
        self.step(self.inner.synced_count(connection))
    }
}

#[async_trait]
impl QueueStore for FaultyStore {
    async fn queued_on_connection(&self, connection: &str) -> StoreResult<u64> {
        self.fault("queued_on_connection")?;
        self.step(self.inner.queued_on_connection(connection))
    }

    async fn enqueue(&self, record_ids: &[RecordId], priority: Priority) -> StoreResult<()> {
        self.fault("enqueue")?;
        self.step(self.inner.enqueue(record_ids, priority))
    }

    async fn claim_tasks(
        &self,
        owner: &str,
        running: &[RecordId],
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        up_to: Priority,
    ) -> StoreResult<Vec<Task>> {
        self.fault("claim_task")?;
        self.step(
            self.inner
                .claim_tasks(owner, running, now_ms, lease_ms, limit, up_to),
        )
    }

    async fn finish_task(&self, task: &Task) -> StoreResult<()> {
        self.fault("finish_task")?;
        self.step(self.inner.finish_task(task))
    }

    async fn finish_task_logged(&self, task: &Task, log: &[LogEntry]) -> StoreResult<()> {
        self.fault("finish_task_logged")?;
        self.step(self.inner.finish_task_logged(task, log))
    }

    async fn retry_task(
        &self,
        task: &Task,
        error: &str,
        next_at_ms: i64,
        dead: bool,
    ) -> StoreResult<()> {
        self.fault("retry_task")?;
        self.step(self.inner.retry_task(task, error, next_at_ms, dead))
    }

    async fn defer_task(&self, task: &Task, reason: &str, next_at_ms: i64) -> StoreResult<()> {
        self.fault("defer_task")?;
        self.step(self.inner.defer_task(task, reason, next_at_ms))
    }

    async fn dead_tasks(&self) -> StoreResult<Vec<QueueEntry>> {
        self.fault("dead_tasks")?;
        self.step(self.inner.dead_tasks())
    }

    async fn requeue_dead(&self) -> StoreResult<u64> {
        self.fault("requeue_dead")?;
        self.step(self.inner.requeue_dead())
    }

    async fn heartbeat(
        &self,
        process: &ProcessInfo,
        renew: &[RecordId],
        until_ms: i64,
    ) -> StoreResult<()> {
        self.fault("heartbeat")?;
        self.step(self.inner.heartbeat(process, renew, until_ms))
    }

    async fn processes(&self) -> StoreResult<Vec<ProcessInfo>> {
        self.fault("processes")?;
        self.step(self.inner.processes())
    }

    async fn hold_duty(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool> {
        self.fault("hold_duty")?;
        self.step(self.inner.hold_duty(name, holder, now_ms, until_ms))
    }

    async fn commit_slot(&self, _connection: &str) -> StoreResult<ferry_store::CommitSlot> {
        // A PostgreSQL slot is a lock held on a database connection from one call to the
        // next: taken while the other engine holds it, it would block the seed's one thread
        // for good. Nothing needs it here: every request of a seed runs in lockstep, one at a
        // time, so two commits are never in flight together. (Its behaviour across processes
        // has tests of its own.)
        self.fault("commit_slot")?;
        Ok(ferry_store::CommitSlot::unshared())
    }

    async fn duties(&self) -> StoreResult<Vec<ferry_store::Duty>> {
        self.fault("duties")?;
        self.step(self.inner.duties())
    }

    async fn release_duty(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.fault("release_duty")?;
        self.step(self.inner.release_duty(name, holder))
    }

    async fn release_process(&self, id: &str) -> StoreResult<u64> {
        self.fault("release_process")?;
        self.step(self.inner.release_process(id))
    }

    async fn queue_entry(&self, record_id: RecordId) -> StoreResult<Option<QueueEntry>> {
        self.fault("queue_entry")?;
        self.step(self.inner.queue_entry(record_id))
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        self.fault("queue_stats")?;
        self.step(self.inner.queue_stats())
    }
}

#[async_trait]
impl LogStore for FaultyStore {
    async fn log_activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<ferry_store::ActivityBucket>> {
        self.fault("log_activity")?;
        self.step(self.inner.log_activity(since_ms, bucket_ms))
    }

    async fn log(&self, entry: &LogEntry) -> StoreResult<()> {
        self.fault("log")?;
        self.step(self.inner.log(entry))
    }

    async fn log_entries(&self, filter: &LogFilter) -> StoreResult<Vec<LogLine>> {
        self.fault("log_entries")?;
        self.step(self.inner.log_entries(filter))
    }
}

/// An object store whose calls may fail with a transient error.
#[derive(Debug)]
pub(crate) struct FaultyBlobs {
    pub(crate) inner: Arc<dyn ObjectStore>,
    pub(crate) faults: Arc<StoreFaults>,
    pub(crate) lockstep: Lockstep,
}

impl std::fmt::Display for FaultyBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultyBlobs({})", self.inner)
    }
}

impl FaultyBlobs {
    /// `call` run to completion in lockstep.
    fn step<F: std::future::Future>(&self, call: F) -> F::Output {
        self.lockstep.run(call)
    }

    fn fault(&self) -> object_store::Result<()> {
        if self.faults.fails() {
            return Err(object_store::Error::Generic {
                store: "simulation",
                source: "injected blob store fault".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for FaultyBlobs {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.fault()?;
        self.step(self.inner.put_opts(location, payload, opts))
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.fault()?;
        let inner = self.step(self.inner.put_multipart_opts(location, opts))?;
        Ok(Box::new(LockstepUpload {
            inner,
            lockstep: self.lockstep.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.fault()?;
        // Read whole in lockstep: a file payload would be read later on the seed's runtime.
        let got = self.step(async {
            let got = self.inner.get_opts(location, options).await?;
            let (meta, range, attributes) =
                (got.meta.clone(), got.range.clone(), got.attributes.clone());
            let bytes = got.bytes().await?;
            Ok::<_, object_store::Error>((meta, range, attributes, bytes))
        });
        let (meta, range, attributes, bytes) = got?;
        Ok(GetResult {
            payload: object_store::GetResultPayload::Stream(Box::pin(futures::stream::once(
                async move { Ok(bytes) },
            ))),
            meta,
            range,
            attributes,
        })
    }

    async fn delete(&self, location: &ObjectPath) -> object_store::Result<()> {
        self.fault()?;
        self.step(self.inner.delete(location))
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        use futures::StreamExt;
        futures::stream::iter(self.step(self.inner.list(prefix).collect::<Vec<_>>())).boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.fault()?;
        self.step(self.inner.list_with_delimiter(prefix))
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath) -> object_store::Result<()> {
        self.fault()?;
        self.step(self.inner.copy(from, to))
    }

    async fn copy_if_not_exists(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
    ) -> object_store::Result<()> {
        self.fault()?;
        self.step(self.inner.copy_if_not_exists(from, to))
    }

    async fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> object_store::Result<()> {
        self.fault()?;
        self.step(self.inner.rename(from, to))
    }

    async fn rename_if_not_exists(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
    ) -> object_store::Result<()> {
        self.fault()?;
        self.step(self.inner.rename_if_not_exists(from, to))
    }
}

/// A multipart upload whose parts are written in lockstep, one after the other.
#[derive(Debug)]
struct LockstepUpload {
    inner: Box<dyn MultipartUpload>,
    lockstep: Lockstep,
}

#[async_trait]
impl MultipartUpload for LockstepUpload {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        let written = self.lockstep.run(self.inner.put_part(data));
        Box::pin(async move { written })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.lockstep.run(self.inner.complete())
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.lockstep.run(self.inner.abort())
    }
}

#[async_trait]
impl MirrorStore for FaultyStore {
    async fn seed_mirror(
        &self,
        connection: &str,
        epoch: i64,
        changes: &[ferry_store::MirrorChange],
    ) -> StoreResult<()> {
        self.fault("seed_mirror")?;
        self.step(self.inner.seed_mirror(connection, epoch, changes))
    }

    async fn finish_mirror(
        &self,
        connection: &str,
        root: &str,
        epoch: i64,
        cursor: &str,
        live_until_ms: i64,
    ) -> StoreResult<bool> {
        self.fault("finish_mirror")?;
        self.step(
            self.inner
                .finish_mirror(connection, root, epoch, cursor, live_until_ms),
        )
    }

    async fn apply_feed_page(&self, page: &ferry_store::FeedPage<'_>) -> StoreResult<bool> {
        self.fault("apply_feed_page")?;
        self.step(self.inner.apply_feed_page(page))
    }

    async fn mirror_live(&self, connection: &str, until_ms: i64) -> StoreResult<()> {
        self.fault("mirror_live")?;
        self.step(self.inner.mirror_live(connection, until_ms))
    }

    async fn mirror_within(
        &self,
        connection: &str,
        folder_lower: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Vec<ferry_store::MirrorFile>>> {
        self.fault("mirror_within")?;
        self.step(self.inner.mirror_within(connection, folder_lower, now_ms))
    }

    async fn correct_mirror(
        &self,
        connection: &str,
        corrections: &[ferry_store::MirrorCorrection],
    ) -> StoreResult<()> {
        self.fault("correct_mirror")?;
        self.step(self.inner.correct_mirror(connection, corrections))
    }

    fn mirror_files_by_path<'a>(
        &'a self,
        connection: &'a str,
        epoch: i64,
    ) -> BoxStream<'a, StoreResult<ferry_store::MirrorFile>> {
        self.faulty_stream(
            "mirror_files_by_path",
            self.inner.mirror_files_by_path(connection, epoch),
        )
    }

    async fn drop_scratch_mirrors(&self, connection: &str) -> StoreResult<()> {
        self.fault("drop_scratch_mirrors")?;
        self.step(self.inner.drop_scratch_mirrors(connection))
    }
}
