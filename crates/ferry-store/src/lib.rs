//! Ferry's persistence. Everything durable goes through the [`Store`] trait (SQLite today,
//! PostgreSQL later, so the SQL stays portable); attachment content goes to a [`BlobStore`];
//! Dropbox tokens are encrypted with a [`SecretCipher`] before they reach the database.
//!
//! `Store` is the sum of one trait per aggregate — [`RecordStore`], [`RuleStore`],
//! [`ConnectionStore`], [`SyncStateStore`], [`QueueStore`], [`LogStore`] — so a backend is
//! written and reviewed one aggregate at a time, and every backend passes the same contract
//! suite (`contract.rs`, run by `store_contract_tests!`).

#![warn(missing_docs)]

pub mod blob_contract;
mod blobs;
pub mod bulk;
mod commit_slot;
mod console;
#[cfg(test)]
mod contract;
mod decisions;
mod error;
mod folder_maps;
mod links;
mod migrations;
mod mirror;
mod offload;
pub mod pg_testing;
mod postgres;
mod rows;
mod secrets;
mod sqlite;
mod types;
mod webhooks;

pub use blobs::{BlobDropGuard, BlobHold, BlobStore, BlobWriter, S3Settings};
pub use commit_slot::CommitSlot;
pub use error::StoreError;
pub use postgres::{PgStore, WRITE_LOCK, redact_database_url};
pub use secrets::{SecretCipher, write_private_file};
pub use sqlite::SqliteStore;
pub use types::*;
pub use webhooks::EVENT_TYPES;

use async_trait::async_trait;
use ferry_core::model::{Attachment, AttachmentId, Record, RecordId};
use ferry_core::rules::RuleSpec;
use futures::stream::BoxStream;

/// Result type of store calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// Records and their attachments (current and archived).
#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// Creates or updates a record; `changed` is false when nothing differed. A change queues
    /// the record and its relatives (parent, children, siblings) in the same transaction.
    async fn upsert_record(&self, input: &RecordInput) -> StoreResult<Upserted<Record>>;
    /// A record by kind and key.
    async fn record(&self, kind: &str, key: &str) -> StoreResult<Option<Record>>;
    /// A record by id.
    async fn record_by_id(&self, id: RecordId) -> StoreResult<Option<Record>>;
    /// The records whose parent is `id`, in key order.
    async fn children(&self, id: RecordId) -> StoreResult<Vec<Record>>;
    /// Ids of every record of a kind (for back-fill when a rule changes).
    async fn record_ids_of_kind(&self, kind: &str) -> StoreResult<Vec<RecordId>>;
    /// Forgets a record in one transaction — its attachments, archive, folders (bindings),
    /// file rows and queue entry — and queues its relatives (their templates may name it).
    /// Its files in Dropbox stay where they are. False if it does not exist.
    async fn forget_record(&self, record_id: RecordId) -> StoreResult<bool>;
    /// Marks a record as being deleted, its Dropbox files to go as `deletion` says first, and
    /// queues it and its relatives, in one transaction. With `Delete`, files whose current
    /// version came from Dropbox stop being tracked, so they stay there. False if it does not
    /// exist.
    async fn mark_record_deleting(
        &self,
        record_id: RecordId,
        deletion: ferry_core::model::Deletion,
    ) -> StoreResult<bool>;
    /// A page of records in id order, with their sync summaries.
    async fn list_records(&self, filter: &RecordFilter) -> StoreResult<Vec<RecordSummary>>;
    /// A record's attachments, in name order.
    async fn attachments(&self, record_id: RecordId) -> StoreResult<Vec<Attachment>>;
    /// Adds or replaces an attachment by name; `changed` is false when content and tags match.
    /// A version the other side wrote (or any Dropbox version) is archived before it is
    /// replaced; `if_match` makes the write conditional ([`StoreError::PreconditionFailed`]).
    /// A change queues the record and its relatives in the same transaction.
    async fn put_attachment(&self, input: &AttachmentInput) -> StoreResult<Upserted<Attachment>>;
    /// Removes an attachment (and dates the change on its record, and queues it and its
    /// relatives, in one transaction); false if there was none by that name.
    async fn remove_attachment(&self, record_id: RecordId, name: &str) -> StoreResult<bool>;
    /// Renames an attachment and records where it sits in Dropbox; false if it does not exist.
    async fn rename_attachment(
        &self,
        attachment_id: AttachmentId,
        name: &str,
        origin_path: &str,
    ) -> StoreResult<bool>;
    /// Moves an attachment to the archive (content kept); false if it does not exist.
    async fn archive_attachment(
        &self,
        attachment_id: AttachmentId,
        reason: &str,
    ) -> StoreResult<bool>;
    /// A record's archived versions, newest first.
    async fn archived_attachments(
        &self,
        record_id: RecordId,
    ) -> StoreResult<Vec<ArchivedAttachment>>;
    /// Makes an archived version the record's current attachment of that name again (the
    /// version it replaces is archived), and queues the record, in one transaction. `None`
    /// if the record has no such archived version.
    async fn restore_archived(
        &self,
        record_id: RecordId,
        archived_id: i64,
    ) -> StoreResult<Option<Upserted<Attachment>>>;
}

/// Folder rules.
#[async_trait]
pub trait RuleStore: Send + Sync + 'static {
    /// Creates or replaces a rule and, in the same transaction, queues every record of its
    /// kind (and of the kind it replaces): with [`Priority::Reverse`] when the rule moves to
    /// another connection (files come back before they go elsewhere), else
    /// [`Priority::Bulk`] (a record's own change goes first).
    async fn put_rule(&self, rule: &RuleSpec) -> StoreResult<RuleChange>;
    /// Deletes a rule and queues the records of its kind, in one transaction; `None` if unknown.
    async fn delete_rule(&self, name: &str) -> StoreResult<Option<RuleChange>>;
    /// All rules, by name.
    async fn rules(&self) -> StoreResult<Vec<RuleSpec>>;
}

/// Dropbox connections: encrypted credentials, cursors, state.
#[async_trait]
pub trait ConnectionStore: Send + Sync + 'static {
    /// Creates or replaces a connection (token already encrypted), starts its change feed
    /// anew (no cursor), and queues every record of the kinds its rules place (as
    /// [`Priority::Bulk`]), in one transaction. Returns how many records were queued.
    async fn put_connection(&self, connection: &StoredConnection) -> StoreResult<u64>;
    /// A connection by name.
    async fn connection(&self, name: &str) -> StoreResult<Option<StoredConnection>>;
    /// All connections, by name.
    async fn connections(&self) -> StoreResult<Vec<StoredConnection>>;
    /// Marks a connection as being disconnected and, in the same transaction, queues the
    /// records bound on it for reverse sync (most urgent) — or deletes it at once when none
    /// is. Returns those records.
    async fn set_disconnecting(&self, name: &str) -> StoreResult<Vec<RecordId>>;
    /// Deletes a connection (its bindings must be gone).
    async fn delete_connection(&self, name: &str) -> StoreResult<()>;
    /// Marks a connection as needing a reconnect (`Some(reason)`) or clears the mark.
    async fn set_needs_reconnect(&self, name: &str, reason: Option<&str>) -> StoreResult<()>;
    /// Sets the connection's change cursor (`None` clears it: the feed starts again). The
    /// mirror goes out of use either way: a cursor saved without one is for tests only.
    async fn set_connection_cursor(&self, name: &str, cursor: Option<&str>) -> StoreResult<()>;
    /// Moves a connection's root from `from` to `to` — only if its root is still `from` and
    /// it is not being disconnected — clearing its change cursor and queueing its rules'
    /// records in the same transaction. Whether it moved.
    async fn set_connection_root(&self, name: &str, from: &str, to: &str) -> StoreResult<bool>;
    /// The connection's change cursor.
    async fn connection_cursor(&self, name: &str) -> StoreResult<Option<String>>;
    /// An admin confirms the deletions the connection-wide brake stopped: the window starts
    /// anew and every paused binding may run once; their records are queued in the same
    /// transaction. Returns those records.
    async fn confirm_connection_deletions(&self, connection: &str) -> StoreResult<Vec<RecordId>>;
    /// When an admin last confirmed a connection's deletions (ms; 0 if never).
    async fn connection_deletions_confirmed_at(&self, connection: &str) -> StoreResult<i64>;
    /// Stores a connect flow's state (and forgets those that expired).
    async fn put_oauth_state(&self, state: &OAuthState) -> StoreResult<()>;
    /// Takes a connect flow's state: returns it once and deletes it (`None`: unknown, or
    /// already used).
    async fn take_oauth_state(&self, state: &str) -> StoreResult<Option<OAuthState>>;
}

/// What was synced where: bindings (record folders), sync rows (files), upload sessions, and the deletion counts the brake reads.
#[async_trait]
pub trait SyncStateStore: Send + Sync + 'static {
    /// A record's bindings.
    async fn bindings_for_record(&self, record_id: RecordId) -> StoreResult<Vec<Binding>>;
    /// A binding by id.
    async fn binding(&self, id: i64) -> StoreResult<Option<Binding>>;
    /// Bindings of a connection whose folder is `folder_lower` or inside it.
    async fn bindings_within(
        &self,
        connection: &str,
        folder_lower: &str,
    ) -> StoreResult<Vec<Binding>>;
    /// Bindings of a connection whose folder contains `path_lower` (or is it).
    async fn bindings_containing(
        &self,
        connection: &str,
        path_lower: &str,
    ) -> StoreResult<Vec<Binding>>;
    /// All bindings of a connection.
    async fn bindings_of_connection(&self, connection: &str) -> StoreResult<Vec<Binding>>;
    /// Streams every file of `connection` that has a synced revision, with the content hash
    /// of its attachment now, ordered by its path (`folder_lower/rel_lower`, byte order) —
    /// the database sorts, so nothing grows with the tree here.
    fn synced_files_by_path<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxStream<'a, StoreResult<SyncedFileScan>>;
    /// Streams the bindings of `connection` ordered by their folder plus `/` (byte order),
    /// then by id: a folder comes right before the paths inside it.
    fn bindings_by_folder<'a>(&'a self, connection: &'a str)
    -> BoxStream<'a, StoreResult<Binding>>;
    /// Records bound on `connection` that need a pass whatever Dropbox holds: the record, one
    /// of its attachments or its rule changed after the binding's last pass, the rule is gone,
    /// or one of its files is not in the `synced` state.
    async fn records_changed_since_pass(&self, connection: &str) -> StoreResult<Vec<RecordId>>;
    /// Whether some sync row already agrees on this Dropbox file revision at this path (our
    /// own write coming back). A file someone moved keeps its id and revision but not its
    /// path, so it is news.
    async fn knows_revision(
        &self,
        dropbox_id: &str,
        rev: &str,
        path_lower: &str,
    ) -> StoreResult<bool>;
    /// Inserts (`id == 0`) or updates a binding; returns its id.
    async fn save_binding(&self, binding: &Binding) -> StoreResult<i64>;
    /// Deletes a binding and its sync rows.
    async fn delete_binding(&self, id: i64) -> StoreResult<()>;
    /// Whether a binding's default subfolders were made.
    async fn subfolders_made(&self, binding_id: i64) -> StoreResult<bool>;
    /// Records that a binding's default subfolders were made (gone with the binding).
    async fn set_subfolders_made(&self, binding_id: i64) -> StoreResult<()>;
    /// An admin confirms the deletions the brake stopped for one record: its paused bindings
    /// may run them once, and the record and its relatives are queued, in one transaction.
    /// Returns how many bindings were confirmed.
    async fn confirm_record_deletions(&self, record_id: RecordId) -> StoreResult<u64>;
    /// A record's sync rows.
    async fn sync_rows(&self, record_id: RecordId) -> StoreResult<Vec<SyncRow>>;
    /// Files of `connection` whose path (lower-cased) starts with `prefix_lower`, or, with
    /// `name_contains`, whose name contains it (lower-cased); by path, at most `limit`.
    async fn tree_files(
        &self,
        connection: &str,
        prefix_lower: &str,
        name_contains: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<TreeFile>>;
    /// Record folders of `connection` under `prefix_lower` (or equal to it), by path, at
    /// most `limit`.
    async fn tree_folders(
        &self,
        connection: &str,
        prefix_lower: &str,
        limit: u32,
    ) -> StoreResult<Vec<TreeFolder>>;
    /// Inserts (`id == 0`, upserting on binding + path) or updates a sync row; returns its id.
    async fn save_sync_row(&self, row: &SyncRow) -> StoreResult<i64>;
    /// Saves many sync rows (as [`SyncStateStore::save_sync_row`]) and log entries in one
    /// transaction: a batch of uploads is recorded at the cost of one commit.
    async fn save_sync_rows_logged(&self, rows: &[SyncRow], log: &[LogEntry]) -> StoreResult<()>;
    /// Deletes a sync row.
    async fn delete_sync_row(&self, id: i64) -> StoreResult<()>;
    /// Replaces a record's binding-less rows (files that could not be placed) with `rows`.
    async fn replace_unplaced_rows(&self, record_id: RecordId, rows: &[SyncRow])
    -> StoreResult<()>;
    /// Counts of sync rows by state, over all records.
    async fn sync_counts(&self) -> StoreResult<SyncCounts>;
    /// A large upload in progress: session id and the offset Dropbox confirmed.
    async fn upload_session(
        &self,
        connection: &str,
        content_hash: &str,
    ) -> StoreResult<Option<(String, u64)>>;
    /// Records a large upload's progress.
    async fn save_upload_session(
        &self,
        connection: &str,
        content_hash: &str,
        session_id: &str,
        offset: u64,
    ) -> StoreResult<()>;
    /// Forgets a finished (or expired) upload session.
    async fn delete_upload_session(&self, connection: &str, content_hash: &str) -> StoreResult<()>;
    /// Deletions and archives logged on `connection` (of one binding, if given) since
    /// `since_ms`: what the mass-deletion brake counts over its window.
    async fn deletions_since(
        &self,
        connection: &str,
        binding_id: Option<i64>,
        since_ms: i64,
    ) -> StoreResult<u64>;
    /// Files of `connection` with a synced revision.
    async fn synced_count(&self, connection: &str) -> StoreResult<u64>;
}

/// The durable sync queue, its claims, and the processes that hold them.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Queues records for a pass, due now, in the given order. A queued record is queued once,
    /// at the most urgent priority it was queued with.
    async fn enqueue(&self, record_ids: &[RecordId], priority: Priority) -> StoreResult<()>;
    /// Claims the most urgent due task for process `owner` until `now_ms + lease_ms`, if any
    /// (FIFO within a priority). The owner's heartbeat renews the claim while the pass runs.
    /// A task `owner` itself claimed but is not `running` (its bookkeeping write failed) is
    /// claimable again at once.
    async fn claim_task(
        &self,
        owner: &str,
        running: &[RecordId],
        now_ms: i64,
        lease_ms: i64,
    ) -> StoreResult<Option<Task>> {
        let claimed = self
            .claim_tasks(owner, running, now_ms, lease_ms, 1, Priority::Bulk)
            .await?;
        Ok(claimed.into_iter().next())
    }
    /// [`claim_task`](QueueStore::claim_task) for up to `limit` tasks at once, in one
    /// statement: the most urgent first (the order of the answer). A back-fill's passes
    /// then cost one claim per batch, and run side by side. Only tasks queued in `up_to` or
    /// a more urgent class are taken (`Priority::Bulk` takes every class): a worker whose
    /// back-fill window is full still claims live work.
    async fn claim_tasks(
        &self,
        owner: &str,
        running: &[RecordId],
        now_ms: i64,
        lease_ms: i64,
        limit: usize,
        up_to: Priority,
    ) -> StoreResult<Vec<Task>>;
    /// Removes a finished task, unless it was re-queued while it ran.
    async fn finish_task(&self, task: &Task) -> StoreResult<()>;
    /// [`finish_task`](QueueStore::finish_task) with `log` written in the same transaction:
    /// a pass's closing log entries (`record_synced`) and its end commit together.
    async fn finish_task_logged(&self, task: &Task, log: &[LogEntry]) -> StoreResult<()>;
    /// Puts a failed task back for `next_at_ms` (now, if it was re-queued while it ran), or
    /// dead-letters it when `dead`.
    async fn retry_task(
        &self,
        task: &Task,
        error: &str,
        next_at_ms: i64,
        dead: bool,
    ) -> StoreResult<()>;
    /// Puts a task back for `next_at_ms` without counting an attempt (work that waits for
    /// something outside Ferry, such as a reconnect).
    async fn defer_task(&self, task: &Task, reason: &str, next_at_ms: i64) -> StoreResult<()>;
    /// Dead-lettered tasks.
    async fn dead_tasks(&self) -> StoreResult<Vec<QueueEntry>>;
    /// Puts every dead-lettered task back, due now, with a fresh failure budget; returns how
    /// many.
    async fn requeue_dead(&self) -> StoreResult<u64>;
    /// Records that `process` is alive (registering it on first call) and renews its claims
    /// on `renew` until `until_ms`.
    async fn heartbeat(
        &self,
        process: &ProcessInfo,
        renew: &[RecordId],
        until_ms: i64,
    ) -> StoreResult<()>;
    /// Every registered process.
    async fn processes(&self) -> StoreResult<Vec<ProcessInfo>>;
    /// Forgets a dead process and releases its claims and duties at once; returns how many
    /// claims.
    async fn release_process(&self, id: &str) -> StoreResult<u64>;
    /// Takes or keeps duty `name` — a job one process runs for the whole installation (a
    /// connection's change watcher, the webhook sender, scheduled backups) — for `holder`
    /// until `until_ms`: when no one holds it, its lease ended before `now_ms`, or `holder`
    /// holds it already. Whether `holder` holds it now. The holder's [`heartbeat`] renews
    /// every duty it holds to the heartbeat's `until_ms`.
    ///
    /// [`heartbeat`]: QueueStore::heartbeat
    async fn hold_duty(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool>;
    /// Gives duty `name` up if `holder` holds it (its job ended), so another process may
    /// take it at once.
    async fn release_duty(&self, name: &str, holder: &str) -> StoreResult<()>;
    /// Every duty and who holds it, by name.
    async fn duties(&self) -> StoreResult<Vec<Duty>>;
    /// Waits for the right to commit to `connection`'s Dropbox namespace, held until the
    /// slot is released (see [`CommitSlot`]): across every process sharing the database.
    async fn commit_slot(&self, connection: &str) -> StoreResult<CommitSlot>;
    /// Whether a record is queued, and its last error if a pass failed.
    async fn queue_entry(&self, record_id: RecordId) -> StoreResult<Option<QueueEntry>>;
    /// Queue length and the earliest due time.
    async fn queue_stats(&self) -> StoreResult<QueueStats>;
    /// Queued records with a binding on `connection` (a disconnect's progress).
    async fn queued_on_connection(&self, connection: &str) -> StoreResult<u64>;
}

/// The log of executed actions.
#[async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Appends to the sync log.
    async fn log(&self, entry: &LogEntry) -> StoreResult<()>;
    /// The log entries `filter` selects, newest first, naming their records.
    async fn log_entries(&self, filter: &LogFilter) -> StoreResult<Vec<LogLine>>;
    /// Log entries from `since_ms` on, counted per `bucket_ms` (oldest first; empty buckets
    /// left out).
    async fn log_activity(&self, since_ms: i64, bucket_ms: i64)
    -> StoreResult<Vec<ActivityBucket>>;
}

/// Webhook subscriptions and deliveries. Events are written by the other aggregates' own
/// writes (see `webhooks.rs`); this trait manages subscriptions and moves deliveries along.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a subscription; returns its id.
    async fn put_webhook(&self, webhook: &StoredWebhook) -> StoreResult<i64>;
    /// All subscriptions, by id.
    async fn webhooks(&self) -> StoreResult<Vec<StoredWebhook>>;
    /// Deletes a subscription and its deliveries; false if unknown.
    async fn delete_webhook(&self, id: i64) -> StoreResult<bool>;
    /// Up to `limit` deliveries due at `now_ms`, each then held for `hold_ms` (so a slow
    /// receiver is not sent the same delivery twice at once).
    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        hold_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt: delivered (`next_at_ms` ignored), or failed and due again at
    /// `next_at_ms` (`None`: given up).
    async fn finish_delivery(
        &self,
        id: i64,
        delivered: bool,
        status: Option<u16>,
        error: Option<&str>,
        next_at_ms: Option<i64>,
    ) -> StoreResult<()>;
    /// A subscription's deliveries, newest first.
    async fn deliveries(&self, subscription_id: i64, limit: u32) -> StoreResult<Vec<DeliveryView>>;
    /// Sends a delivery again now, with a fresh attempt budget; false if unknown.
    async fn redeliver(&self, delivery_id: i64) -> StoreResult<bool>;
    /// Forgets deliveries that ended (delivered or given up) before `before_ms`, and events
    /// left without deliveries; pending ones are kept. Returns how many deliveries went.
    async fn prune_webhook_deliveries(&self, before_ms: i64) -> StoreResult<u64>;
}

/// Shared links of synced files and record folders (made after the commit, by the link
/// maker, never on the sync path).
#[async_trait]
pub trait LinkStore: Send + Sync + 'static {
    /// Up to `limit` synced files of `rule` (on `connection`) whose link is missing, due for
    /// another try at `now_ms`, or expired; and, with `folders`, the rule's record folders
    /// likewise.
    async fn links_wanted(
        &self,
        connection: &str,
        rule: &str,
        folders: bool,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<LinkTarget>>;
    /// Records a link (or a failed try, due again at `retry_at_ms`) and logs it, in one
    /// transaction that also writes its webhook event.
    async fn save_link(&self, target: &LinkTarget, result: &LinkResult) -> StoreResult<()>;
    /// The links of a record's files and folders.
    async fn record_links(&self, record_id: RecordId) -> StoreResult<Vec<StoredLink>>;
    /// Forgets links of items Ferry no longer syncs on `connection`; returns how many.
    async fn prune_links(&self, connection: &str) -> StoreResult<u64>;
}

/// Offloaded content: attachments whose content only Dropbox holds (confirmed by its
/// content hash), and the blobs Ferry may drop because of it.
#[async_trait]
pub trait OffloadStore: Send + Sync + 'static {
    /// Up to `limit` attachments synced by `rule` on `connection` that Dropbox confirms
    /// (same content hash, a revision), not offloaded yet, of records at rest (none queued,
    /// so a pass that just brought content back is not undone under it).
    async fn offload_candidates(
        &self,
        connection: &str,
        rule: &str,
        limit: u32,
    ) -> StoreResult<Vec<OffloadCandidate>>;
    /// Marks an attachment offloaded to `connection`'s revision `rev`, only if it still has
    /// `content_hash` and that revision is still its synced state there. False otherwise.
    async fn mark_offloaded(&self, candidate: &OffloadCandidate) -> StoreResult<bool>;
    /// Clears an attachment's offload once its content `content_hash` is back in the blob
    /// store. False if the attachment changed meanwhile.
    async fn clear_offloaded(
        &self,
        attachment_id: AttachmentId,
        content_hash: &str,
    ) -> StoreResult<bool>;
    /// Up to `limit` content hashes whose blob Ferry may drop: every attachment with that
    /// content is offloaded, no archived version has it, and it was not dropped already.
    async fn droppable_blobs(&self, limit: u32) -> StoreResult<Vec<String>>;
    /// Whether anything still needs `content_hash` in the blob store (checked again right
    /// before the blob goes).
    async fn needs_blob(&self, content_hash: &str) -> StoreResult<bool>;
    /// Notes that the blob of `content_hash` is gone.
    async fn set_blob_dropped(&self, content_hash: &str) -> StoreResult<()>;
    /// Bytes and files held here and offloaded, over current attachments.
    async fn content_totals(&self) -> StoreResult<ContentTotals>;
}

/// The console's admins, their sessions and one-time login links. Tokens are stored only
/// as SHA-256 hashes; expired rows are never returned.
#[async_trait]
pub trait ConsoleStore: Send + Sync + 'static {
    /// Creates an admin or changes its password; a change ends the admin's sessions and
    /// login links in the same transaction. True if the admin is new.
    async fn put_admin(&self, name: &str, password_hash: &str) -> StoreResult<bool>;
    /// An admin by name.
    async fn admin(&self, name: &str) -> StoreResult<Option<AdminAccount>>;
    /// How many admins there are.
    async fn admin_count(&self) -> StoreResult<u64>;
    /// Stores a new session (and forgets expired ones).
    async fn put_session(&self, session: &AdminSession) -> StoreResult<()>;
    /// A live session by the hash of its token.
    async fn session(&self, id_hash: &str, now_ms: i64) -> StoreResult<Option<AdminSession>>;
    /// Ends a session (logout); false if there was none.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<bool>;
    /// Stores a one-time login link's token hash for `admin` until `expires_at`.
    async fn put_login_link(
        &self,
        token_hash: &str,
        admin: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Takes a login link (once): the admin it signs in, if it exists and has not expired.
    async fn take_login_link(&self, token_hash: &str, now_ms: i64) -> StoreResult<Option<String>>;
    /// Stores a team connection waiting for its member (and forgets expired ones).
    async fn put_pending_connection(&self, pending: &PendingConnection) -> StoreResult<()>;
    /// A live pending connection by id.
    async fn pending_connection(
        &self,
        id: &str,
        now_ms: i64,
    ) -> StoreResult<Option<PendingConnection>>;
    /// Forgets a pending connection (it was completed or abandoned).
    async fn delete_pending_connection(&self, id: &str) -> StoreResult<()>;
    /// Marks a pending connection as a confirmed account switch, kept until `expires_at`.
    async fn confirm_pending_switch(&self, id: &str, expires_at: i64) -> StoreResult<()>;
    /// The confirmed account switch waiting for `connection` to be gone, if any.
    async fn pending_switch(&self, connection: &str) -> StoreResult<Option<PendingConnection>>;
    /// The connections with a confirmed account switch waiting.
    async fn pending_switch_connections(&self) -> StoreResult<Vec<String>>;
}

/// Dropbox folders mapped to records by hand.
#[async_trait]
pub trait FolderMapStore: Send + Sync + 'static {
    /// Maps a folder (and queues the record, in the same transaction); its id. Mapping the
    /// same folder to the same record again changes nothing and answers the same id.
    async fn put_folder_map(&self, map: &FolderMap) -> StoreResult<i64>;
    /// A record's mapped folders, by id.
    async fn folder_maps(&self, record_id: RecordId) -> StoreResult<Vec<FolderMap>>;
    /// Every folder mapped on `connection`, by id (the reconciliation checks that each is
    /// still where it was last seen).
    async fn folder_maps_of_connection(&self, connection: &str) -> StoreResult<Vec<FolderMap>>;
    /// Where a mapped folder is now (it was renamed or moved in Dropbox).
    async fn set_folder_map_path(&self, id: i64, path: &str) -> StoreResult<()>;
    /// Removes a mapping with its binding and sync rows, in one transaction: its files stay
    /// in Dropbox, untracked. The mapping, if it existed.
    async fn delete_folder_map(
        &self,
        record_id: RecordId,
        id: i64,
    ) -> StoreResult<Option<FolderMap>>;
}

/// Each connection's mirror of its Dropbox tree, fed by the change feed (see
/// docs/sync.md, "The remote mirror"). The mirror is in use while the connection has a
/// cursor: every cursor is saved together with the mirror it is current for.
#[async_trait]
pub trait MirrorStore: Send + Sync + 'static {
    /// Writes one page of a full listing into mirror `epoch`, which is being built and not
    /// in use yet.
    async fn seed_mirror(
        &self,
        connection: &str,
        epoch: i64,
        changes: &[MirrorChange],
    ) -> StoreResult<()>;
    /// Puts mirror `epoch` in use with the cursor its listing ended with, only if the
    /// connection still has `root` and no cursor; drops every other mirror of the
    /// connection. Whether it was put in use (if not, `epoch` is dropped).
    async fn finish_mirror(
        &self,
        connection: &str,
        root: &str,
        epoch: i64,
        cursor: &str,
        live_until_ms: i64,
    ) -> StoreResult<bool>;
    /// Applies one page of the change feed, only if the cursor is still the page's `from`
    /// under its root: the entries (in order), the new cursor and the queueing of the page's
    /// records commit together. Whether it was applied.
    async fn apply_feed_page(&self, page: &FeedPage<'_>) -> StoreResult<bool>;
    /// Marks the connection's mirror as followed until `until_ms` (a watcher is polling).
    async fn mirror_live(&self, connection: &str, until_ms: i64) -> StoreResult<()>;
    /// The mirror's files inside `folder_lower`, by path; `None` when the mirror cannot be
    /// trusted at `now_ms`: there is none, or no watcher has followed the feed lately.
    async fn mirror_within(
        &self,
        connection: &str,
        folder_lower: &str,
        now_ms: i64,
    ) -> StoreResult<Option<Vec<MirrorFile>>>;
    /// Streams the files of mirror `epoch` by path (byte order).
    fn mirror_files_by_path<'a>(
        &'a self,
        connection: &'a str,
        epoch: i64,
    ) -> BoxStream<'a, StoreResult<MirrorFile>>;
    /// Drops the connection's scratch mirrors (negative epochs: a reconciliation's listing,
    /// never put in use).
    async fn drop_scratch_mirrors(&self, connection: &str) -> StoreResult<()>;
    /// Applies what a listing read, each only where the mirror in use still holds the
    /// correction's `was_rev`.
    async fn correct_mirror(
        &self,
        connection: &str,
        corrections: &[MirrorCorrection],
    ) -> StoreResult<()>;
}

/// The database as a whole: consistent copies and their check (backups).
#[async_trait]
pub trait MaintenanceStore: Send + Sync + 'static {
    /// Writes a consistent copy of the whole database to `path` (which must not exist),
    /// while the store stays in use.
    async fn snapshot_to(&self, path: &std::path::Path) -> StoreResult<()>;
    /// Checks the database's own consistency; the problems found (none: empty).
    async fn integrity_problems(&self) -> StoreResult<Vec<String>>;
    /// Checks that a copy [`snapshot_to`](MaintenanceStore::snapshot_to) wrote reads back
    /// whole (an error says what is wrong with it).
    async fn verify_snapshot(&self, path: &std::path::Path) -> StoreResult<()>;
}

/// Everything Ferry keeps durably, except attachment content: the sum of the per-aggregate
/// traits. A backend implements each of them; `Store` then comes for free.
///
/// Callers hold an `Arc<dyn Store>` and bring the aggregates' methods into scope with
/// `use ferry_store::prelude::*`.
pub trait Store:
    RecordStore
    + RuleStore
    + ConnectionStore
    + SyncStateStore
    + QueueStore
    + LogStore
    + MaintenanceStore
    + WebhookStore
    + LinkStore
    + OffloadStore
    + ConsoleStore
    + FolderMapStore
    + MirrorStore
{
}

impl<T> Store for T where
    T: RecordStore
        + RuleStore
        + ConnectionStore
        + SyncStateStore
        + QueueStore
        + LogStore
        + MaintenanceStore
        + WebhookStore
        + LinkStore
        + OffloadStore
        + ConsoleStore
        + FolderMapStore
        + MirrorStore
{
}

/// The store traits, for `use ferry_store::prelude::*`.
pub mod prelude {
    pub use super::{
        ConnectionStore, ConsoleStore, FolderMapStore, LinkStore, LogStore, MaintenanceStore,
        MirrorStore, OffloadStore, QueueStore, RecordStore, RuleStore, Store, SyncStateStore,
        WebhookStore,
    };
}
