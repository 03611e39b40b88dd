//! The SQLite store (the embedded default).

use crate::prelude::*;
use crate::rows::*;
use crate::{
    ArchivedAttachment, AttachmentInput, Binding, DeliveryView, DueDelivery, LogEntry, LogFilter,
    LogLine, Priority, ProcessInfo, QueueEntry, QueueStats, RecordFilter, RecordInput, RecordState,
    RecordSummary, RuleChange, StoreError, StoreResult, StoredConnection, StoredWebhook,
    SyncCounts, SyncRow, SyncState, SyncedFileScan, Task, Upserted, migrations,
};
use async_trait::async_trait;
use ferry_core::model::{Attachment, AttachmentId, Deletion, Record, RecordId, Side};
use ferry_core::rules::RuleSpec;
use futures::stream::BoxStream;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// A [`Store`] on one SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Connections for reads (WAL: readers never wait for the writer).
    pub(crate) pool: SqlitePool,
    /// The one connection that writes. SQLite lets one writer in at a time; a second
    /// connection trying meets SQLITE_BUSY and its busy handler sleeps (1, 2, 5 … 100 ms)
    /// and polls. Writers of this process queue for this connection instead, in order and
    /// without sleeping; the busy handler is left for other processes on the same file.
    pub(crate) writer: SqlitePool,
}

pub(crate) use ferry_core::clock::now_ms;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::connect(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a database from a URL such as `sqlite://ferry.db`, with the same settings as
    /// [`SqliteStore::open`].
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        Self::connect(SqliteConnectOptions::from_str(url)?).await
    }

    /// A write transaction that takes the write lock up front. A deferred transaction that
    /// reads first and writes later gets SQLITE_BUSY at once (no busy wait) when another
    /// connection wrote in between.
    pub(crate) async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Where statements that write outside a transaction go (see [`SqliteStore::writer`]).
    pub(crate) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn connect(options: SqliteConnectOptions) -> StoreResult<Self> {
        // WAL with `synchronous = NORMAL`: a commit is durable against a crash of Ferry (the
        // WAL is in the OS's hands at once) and fsyncs only at checkpoints. Every way in
        // gets the same settings: a URL once got the default FULL, an fsync per commit.
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool_of = |connections| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                // A connection to a local file does not go stale: no ping (a round trip to
                // its thread) before every use.
                .test_before_acquire(false)
                // A connection that comes back still counted inside a transaction — a call
                // cancelled just as its BEGIN was answered leaves no `Transaction` to end it —
                // is closed, which rolls the transaction back. Pooled, it would keep the write
                // lock and every later statement on it would join a transaction that never
                // commits.
                .after_release(|conn, _| {
                    Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
                })
        };
        let writer = pool_of(1).connect_with(options.clone()).await?;
        migrations::migrator().await?.run(&writer).await?;
        let pool = pool_of(8).connect_with(options).await?;
        Ok(SqliteStore { pool, writer })
    }
}

/// A connection's synced files by path, a thousand per row (see [`json_pages`]).
const SYNCED_BY_PATH: &str = "SELECT json_group_array(json_array(record_id, folder_lower, \
     rel_lower, rev, content_hash, state, updated_at) ORDER BY path) AS page \
     FROM (SELECT s.record_id, b.folder_lower, s.rel_lower, s.rev, s.content_hash, s.state, \
     s.updated_at, \
     b.folder_lower || '/' || COALESCE(s.rel_lower, '') AS path, \
     (row_number() OVER (ORDER BY b.folder_lower || '/' || COALESCE(s.rel_lower, '')) - 1) \
     / 1000 AS chunk \
     FROM sync_files s JOIN bindings b ON b.id = s.binding_id \
     WHERE b.connection = ?1 AND s.rev IS NOT NULL) GROUP BY chunk ORDER BY chunk";

/// A connection's bindings by `folder/`, then id, a thousand per row (see [`json_pages`]).
const BINDINGS_BY_FOLDER: &str = "SELECT json_group_array(json_array(id, record_id, rule_name, \
     connection, folder_display, folder_lower, paused_reason, confirm_deletions, \
     deletions_confirmed_at) ORDER BY k, id) AS page \
     FROM (SELECT *, folder_lower || '/' AS k, \
     (row_number() OVER (ORDER BY folder_lower || '/', id) - 1) / 1000 AS chunk \
     FROM bindings WHERE connection = ?1) GROUP BY chunk ORDER BY chunk";

/// Streams the rows of `sql` (bound to `connection`), which returns them a thousand per row
/// as a JSON array of arrays in column `page`. SQLite hands each result row from its thread
/// to the caller's, a thread switch per row; streaming a million rows one by one cost about
/// 10 µs each, in pages it costs a thousandth of that. The database still sorts (and spills
/// to disk), so memory holds one page.
fn json_pages<'a, R, T>(
    pool: &'a SqlitePool,
    sql: &'static str,
    connection: &'a str,
    each: fn(R) -> T,
) -> BoxStream<'a, StoreResult<T>>
where
    R: serde::de::DeserializeOwned + Send + 'a,
    T: Send + 'a,
{
    use futures::{StreamExt, TryStreamExt};
    sqlx::query_scalar::<_, String>(sql)
        .bind(connection)
        .fetch(pool)
        .map(move |page| -> StoreResult<_> {
            let rows: Vec<R> = serde_json::from_str(&page?)
                .map_err(|e| StoreError::Corrupt(format!("a page of rows: {e}")))?;
            Ok(futures::stream::iter(rows.into_iter().map(each).map(Ok)))
        })
        .try_flatten()
        .boxed()
}

/// Queues `record_id` and every record whose rules can see it (its parent, its children, its
/// siblings), due now, inside the caller's transaction: a change and its queue entry commit
/// together or not at all.
async fn enqueue_related_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    record_id: RecordId,
) -> StoreResult<()> {
    let now = now_ms();
    sqlx::query(&format!(
        "INSERT INTO sync_queue (record_id, priority, generation, attempts, next_at, enqueued_at, dead) \
         SELECT r.id, ?, 1, 0, ?, ?, 0 FROM records r WHERE r.id = ? \
           OR r.id = (SELECT parent_id FROM records WHERE id = ?) \
           OR r.parent_id = ? \
           OR r.parent_id = (SELECT parent_id FROM records WHERE id = ?) \
         ORDER BY r.id {ENQUEUE_CONFLICT}"
    ))
    .bind(Priority::Normal as i64)
    .bind(now)
    .bind(now)
    .bind(record_id)
    .bind(record_id)
    .bind(record_id)
    .bind(record_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removes a finished task, unless it was re-queued while it ran (a new generation): then
/// only its claim ends, and the new work stays due.
async fn end_task(conn: &mut sqlx::SqliteConnection, task: &Task) -> StoreResult<()> {
    let done = sqlx::query("DELETE FROM sync_queue WHERE record_id = ? AND generation = ?")
        .bind(task.record_id)
        .bind(task.generation)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        sqlx::query(
            "UPDATE sync_queue SET claimed_until = NULL, claimed_by = NULL WHERE record_id = ?",
        )
        .bind(task.record_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The upsert of a queue entry that is due now: a queued record gets a new generation (the
/// running pass will see it was re-queued), a fresh failure budget and the higher priority.
const ENQUEUE_CONFLICT: &str = "ON CONFLICT (record_id) DO UPDATE SET \
     generation = sync_queue.generation + 1, attempts = 0, dead = 0, failing_since = NULL, \
     next_at = excluded.next_at, priority = MIN(sync_queue.priority, excluded.priority)";

/// Queues every record of a kind, inside the caller's transaction; returns how many.
async fn enqueue_kind_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    kind: &str,
    priority: Priority,
) -> StoreResult<u64> {
    let now = now_ms();
    let done = sqlx::query(&format!(
        "INSERT INTO sync_queue (record_id, priority, generation, attempts, next_at, enqueued_at, dead) \
         SELECT id, ?, 1, 0, ?, ?, 0 FROM records WHERE kind = ? ORDER BY id {ENQUEUE_CONFLICT}"
    ))
    .bind(priority as i64)
    .bind(now)
    .bind(now)
    .bind(kind)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Queues records in the given order, inside the caller's transaction.
pub(crate) async fn enqueue_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    record_ids: &[RecordId],
    priority: Priority,
) -> StoreResult<()> {
    let now = now_ms();
    // The order of `record_ids` is kept (FIFO by `enqueued_at`): all are due now.
    for (position, id) in (0i64..).zip(record_ids) {
        sqlx::query(&format!(
            "INSERT INTO sync_queue (record_id, priority, generation, attempts, next_at, enqueued_at, dead) \
             VALUES (?, ?, 1, 0, ?, ?, 0) {ENQUEUE_CONFLICT}"
        ))
        .bind(id)
        .bind(priority as i64)
        .bind(now)
        .bind(now + position)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// A stored rule by name, inside the caller's transaction.
async fn rule_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    name: &str,
) -> StoreResult<Option<RuleSpec>> {
    let definition: Option<String> =
        sqlx::query_scalar("SELECT definition FROM rules WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
    definition
        .map(|d| serde_json::from_str(&d).map_err(|e| StoreError::Corrupt(format!("rule: {e}"))))
        .transpose()
}

/// Moves an attachment row to the archive, inside the caller's transaction.
async fn archive_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    a: &Attachment,
    reason: &str,
) -> StoreResult<()> {
    // An archived version always has its content here: one only Dropbox holds is brought
    // back by the engine before it may be archived.
    if a.offloaded.is_some() {
        return Err(StoreError::Offloaded(a.id));
    }
    let tags =
        serde_json::to_string(&a.tags).map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
    sqlx::query(
        "INSERT INTO archived_attachments (record_id, name, tags, content_hash, size, reason, \
         archived_at, origin_path, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.record_id)
    .bind(&a.name)
    .bind(&tags)
    .bind(&a.content_hash)
    .bind(i64::try_from(a.size).unwrap_or(i64::MAX))
    .bind(reason)
    .bind(now_ms())
    .bind(&a.origin_path)
    .bind(a.source.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Queues every record of every rule on connection `name` (its target changed); how many.
async fn enqueue_rules_of(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    name: &str,
) -> StoreResult<u64> {
    let definitions: Vec<String> = sqlx::query_scalar("SELECT definition FROM rules")
        .fetch_all(&mut **tx)
        .await?;
    let mut kinds = std::collections::BTreeSet::new();
    for d in &definitions {
        let rule: RuleSpec =
            serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("rule: {e}")))?;
        if rule.connection == name {
            kinds.insert(rule.record_kind);
        }
    }
    let mut queued = 0;
    for kind in &kinds {
        queued += enqueue_kind_tx(tx, kind, Priority::Bulk).await?;
    }
    Ok(queued)
}

/// New content is Ferry's own again: an upsert that changes the content clears the offload.
const OFFLOAD_RESET: &str = "\
     offload_connection = CASE WHEN attachments.content_hash = excluded.content_hash THEN attachments.offload_connection END, \
     offload_rev = CASE WHEN attachments.content_hash = excluded.content_hash THEN attachments.offload_rev END, \
     offloaded_at = CASE WHEN attachments.content_hash = excluded.content_hash THEN attachments.offloaded_at END, \
     offload_dropped_at = CASE WHEN attachments.content_hash = excluded.content_hash THEN attachments.offload_dropped_at END";

const SYNC_COLUMNS: &str = "id, record_id, binding_id, rule_name, connection, attachment_id, \
     rel_display, rel_lower, dropbox_id, rev, content_hash, state, last_error, updated_at";

#[async_trait]
impl RecordStore for SqliteStore {
    async fn upsert_record(&self, input: &RecordInput) -> StoreResult<Upserted<Record>> {
        let fields = input.fields.to_string();
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT * FROM records WHERE kind = ? AND key = ?")
            .bind(&input.kind)
            .bind(&input.key)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| record_from_row(&r))
            .transpose()?;
        let now = now_ms();
        let (value, changed) = match existing {
            Some(old)
                if old.fields == input.fields
                    && old.parent_id == input.parent_id
                    && old.deletion.is_none() =>
            {
                (old, false)
            }
            // An upsert of a record being deleted takes the deletion back.
            Some(old) => {
                sqlx::query(
                    "UPDATE records SET fields = ?, parent_id = ?, updated_at = ?, deleting = 0 \
                     WHERE id = ?",
                )
                .bind(&fields)
                .bind(input.parent_id)
                .bind(now)
                .bind(old.id)
                .execute(&mut *tx)
                .await?;
                let new = Record {
                    fields: input.fields.clone(),
                    parent_id: input.parent_id,
                    deletion: None,
                    ..old
                };
                (new, true)
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO records (kind, key, fields, parent_id, created_at, updated_at) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(&input.kind)
                .bind(&input.key)
                .bind(&fields)
                .bind(input.parent_id)
                .bind(now)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let new = Record {
                    id,
                    kind: input.kind.clone(),
                    key: input.key.clone(),
                    fields: input.fields.clone(),
                    parent_id: input.parent_id,
                    deletion: None,
                };
                (new, true)
            }
        };
        if changed {
            enqueue_related_tx(&mut tx, value.id).await?;
        }
        tx.commit().await?;
        Ok(Upserted { value, changed })
    }

    async fn record(&self, kind: &str, key: &str) -> StoreResult<Option<Record>> {
        sqlx::query("SELECT * FROM records WHERE kind = ? AND key = ?")
            .bind(kind)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| record_from_row(&r))
            .transpose()
    }

    async fn record_by_id(&self, id: RecordId) -> StoreResult<Option<Record>> {
        sqlx::query("SELECT * FROM records WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| record_from_row(&r))
            .transpose()
    }

    async fn children(&self, id: RecordId) -> StoreResult<Vec<Record>> {
        sqlx::query("SELECT * FROM records WHERE parent_id = ? ORDER BY kind, key")
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(record_from_row)
            .collect()
    }

    async fn record_ids_of_kind(&self, kind: &str) -> StoreResult<Vec<RecordId>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM records WHERE kind = ? ORDER BY id")
                .bind(kind)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn forget_record(&self, record_id: RecordId) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        enqueue_related_tx(&mut tx, record_id).await?;
        for table in [
            "sync_queue",
            "sync_files",
            "bindings",
            "attachments",
            "archived_attachments",
            "folder_maps",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE record_id = ?"))
                .bind(record_id)
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM records WHERE id = ?")
            .bind(record_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn mark_record_deleting(
        &self,
        record_id: RecordId,
        deletion: Deletion,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE records SET deleting = ?, updated_at = ? WHERE id = ?")
            .bind(deletion.code())
            .bind(now_ms())
            .bind(record_id)
            .execute(&mut *tx)
            .await?;
        if deletion == Deletion::Delete {
            // A file whose current version came from Dropbox is not the app's to delete: it
            // stays there, untracked, when the record goes.
            sqlx::query(
                "DELETE FROM sync_files WHERE record_id = ? AND attachment_id IN \
                 (SELECT id FROM attachments WHERE record_id = ? AND source = 'dropbox')",
            )
            .bind(record_id)
            .bind(record_id)
            .execute(&mut *tx)
            .await?;
        }
        enqueue_related_tx(&mut tx, record_id).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_records(&self, filter: &RecordFilter) -> StoreResult<Vec<RecordSummary>> {
        // The state is derived from the queue entry and the files' states, as the listing
        // shows them; `?n IS NULL` leaves a filter out.
        let rows = sqlx::query(
            "SELECT * FROM (SELECT r.id, r.kind, r.key, \
               (SELECT COUNT(*) FROM attachments a WHERE a.record_id = r.id) AS attachments, \
               (SELECT COUNT(*) FROM sync_files f WHERE f.record_id = r.id AND f.state = 'synced') AS synced, \
               (SELECT COUNT(*) FROM sync_files f WHERE f.record_id = r.id AND f.state = 'pending') AS pending, \
               (SELECT COUNT(*) FROM sync_files f WHERE f.record_id = r.id AND f.state = 'failed') AS failed, \
               q.record_id IS NOT NULL AS queued, COALESCE(q.dead, 0) AS dead \
             FROM records r LEFT JOIN sync_queue q ON q.record_id = r.id \
             WHERE r.id > ?1 AND (?2 IS NULL OR r.kind = ?2) \
               AND (?3 IS NULL OR instr(lower(r.key), lower(?3)) > 0)) \
             WHERE ?4 IS NULL \
               OR (?4 = 'dead' AND dead = 1) \
               OR (?4 = 'failed' AND (dead = 1 OR failed > 0)) \
               OR (?4 = 'pending' AND dead = 0 AND failed = 0 AND (queued = 1 OR pending > 0)) \
               OR (?4 = 'synced' AND queued = 0 AND failed = 0 AND pending = 0) \
             ORDER BY id LIMIT ?5",
        )
        .bind(filter.after_id)
        .bind(filter.kind.as_deref())
        .bind(filter.key_contains.as_deref())
        .bind(filter.state.map(|s| match s {
            RecordState::Synced => "synced",
            RecordState::Pending => "pending",
            RecordState::Failed => "failed",
            RecordState::Dead => "dead",
        }))
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(record_summary_from_row).collect()
    }

    async fn attachments(&self, record_id: RecordId) -> StoreResult<Vec<Attachment>> {
        sqlx::query("SELECT * FROM attachments WHERE record_id = ? ORDER BY name")
            .bind(record_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(attachment_from_row)
            .collect()
    }

    async fn put_attachment(&self, input: &AttachmentInput) -> StoreResult<Upserted<Attachment>> {
        let tags = serde_json::to_string(&input.tags)
            .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
        let size =
            i64::try_from(input.size).map_err(|_| StoreError::Corrupt("size too large".into()))?;
        let mut tx = self.write_tx().await?;
        let existing = sqlx::query("SELECT * FROM attachments WHERE record_id = ? AND name = ?")
            .bind(input.record_id)
            .bind(&input.name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| attachment_from_row(&r))
            .transpose()?;
        crate::decisions::check_if_match(input, existing.as_ref())?;
        if let Some(old) = &existing
            && crate::decisions::unchanged(old, input)
        {
            tx.commit().await?;
            return Ok(Upserted {
                value: old.clone(),
                changed: false,
            });
        }
        if let Some(old) = &existing
            && let Some(reason) = crate::decisions::replaced_version_reason(old, input)
        {
            archive_tx(&mut tx, old, reason).await?;
        }
        let now = now_ms();
        let row = sqlx::query(&format!(
            "INSERT INTO attachments (record_id, name, tags, content_hash, size, origin_path, source, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (record_id, name) DO UPDATE SET tags = excluded.tags, \
             content_hash = excluded.content_hash, size = excluded.size, \
             origin_path = excluded.origin_path, source = excluded.source, \
             updated_at = excluded.updated_at, {OFFLOAD_RESET} \
             RETURNING *"
        ))
        .bind(input.record_id)
        .bind(&input.name)
        .bind(&tags)
        .bind(&input.content_hash)
        .bind(size)
        .bind(&input.origin_path)
        .bind(input.source.as_str())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let value = attachment_from_row(&row)?;
        enqueue_related_tx(&mut tx, input.record_id).await?;
        tx.commit().await?;
        Ok(Upserted {
            value,
            changed: true,
        })
    }

    async fn remove_attachment(&self, record_id: RecordId, name: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let found = sqlx::query("SELECT * FROM attachments WHERE record_id = ? AND name = ?")
            .bind(record_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| attachment_from_row(&r))
            .transpose()?;
        let Some(found) = found else { return Ok(false) };
        let id = found.id;
        // The app removing a version someone wrote in Dropbox keeps it in the archive.
        if found.source == Side::Dropbox {
            archive_tx(
                &mut tx,
                &found,
                "a Dropbox version removed by the application",
            )
            .await?;
        }
        // Sync rows outlive the attachment until the engine has removed the file from Dropbox.
        sqlx::query("UPDATE sync_files SET attachment_id = NULL WHERE attachment_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM attachments WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // The removal leaves no row behind to date it: the record carries the change, so a
        // reconciliation sees it (`records_changed_since_pass`).
        sqlx::query("UPDATE records SET updated_at = ? WHERE id = ?")
            .bind(now_ms())
            .bind(record_id)
            .execute(&mut *tx)
            .await?;
        enqueue_related_tx(&mut tx, record_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rename_attachment(
        &self,
        attachment_id: AttachmentId,
        name: &str,
        origin_path: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE attachments SET name = ?, origin_path = ?, updated_at = ? WHERE id = ?",
        )
        .bind(name)
        .bind(origin_path)
        .bind(now_ms())
        .bind(attachment_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn archive_attachment(
        &self,
        attachment_id: AttachmentId,
        reason: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT * FROM attachments WHERE id = ?")
            .bind(attachment_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let a = attachment_from_row(&row)?;
        archive_tx(&mut tx, &a, reason).await?;
        sqlx::query("UPDATE sync_files SET attachment_id = NULL WHERE attachment_id = ?")
            .bind(attachment_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM attachments WHERE id = ?")
            .bind(attachment_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn archived_attachments(
        &self,
        record_id: RecordId,
    ) -> StoreResult<Vec<ArchivedAttachment>> {
        let rows =
            sqlx::query("SELECT * FROM archived_attachments WHERE record_id = ? ORDER BY id DESC")
                .bind(record_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(archived_from_row).collect()
    }

    async fn restore_archived(
        &self,
        record_id: RecordId,
        archived_id: i64,
    ) -> StoreResult<Option<Upserted<Attachment>>> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT * FROM archived_attachments WHERE id = ? AND record_id = ?")
            .bind(archived_id)
            .bind(record_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let archived = archived_from_row(&row)?;
        let current = sqlx::query("SELECT * FROM attachments WHERE record_id = ? AND name = ?")
            .bind(record_id)
            .bind(&archived.name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| attachment_from_row(&r))
            .transpose()?;
        if let Some(current) = &current {
            if current.content_hash == archived.content_hash {
                tx.commit().await?;
                return Ok(Some(Upserted {
                    value: current.clone(),
                    changed: false,
                }));
            }
            // The version being replaced stays retrievable too.
            archive_tx(&mut tx, current, "replaced by a restored version").await?;
        }
        let tags = serde_json::to_string(&archived.tags)
            .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
        let now = now_ms();
        // A restore is the admin's (the app side's) decision: the restored content is the
        // app's version from now on, and it is pushed like any app change.
        let row = sqlx::query(&format!(
            "INSERT INTO attachments (record_id, name, tags, content_hash, size, origin_path, source, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'app', ?, ?) \
             ON CONFLICT (record_id, name) DO UPDATE SET tags = excluded.tags, \
             content_hash = excluded.content_hash, size = excluded.size, \
             origin_path = excluded.origin_path, source = excluded.source, \
             updated_at = excluded.updated_at, {OFFLOAD_RESET} RETURNING *"
        ))
        .bind(record_id)
        .bind(&archived.name)
        .bind(&tags)
        .bind(&archived.content_hash)
        .bind(i64::try_from(archived.size).unwrap_or(i64::MAX))
        .bind(&archived.origin_path)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let value = attachment_from_row(&row)?;
        enqueue_related_tx(&mut tx, record_id).await?;
        tx.commit().await?;
        Ok(Some(Upserted {
            value,
            changed: true,
        }))
    }
}

#[async_trait]
impl RuleStore for SqliteStore {
    async fn put_rule(&self, rule: &RuleSpec) -> StoreResult<RuleChange> {
        let definition =
            serde_json::to_string(rule).map_err(|e| StoreError::Corrupt(format!("rule: {e}")))?;
        let mut tx = self.write_tx().await?;
        let previous = rule_tx(&mut tx, &rule.name).await?;
        sqlx::query(
            "INSERT INTO rules (name, record_kind, definition, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET record_kind = excluded.record_kind, \
             definition = excluded.definition, updated_at = excluded.updated_at",
        )
        .bind(&rule.name)
        .bind(&rule.record_kind)
        .bind(&definition)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let priority = match &previous {
            Some(p) if p.connection != rule.connection => Priority::Reverse,
            _ => Priority::Bulk,
        };
        let mut queued = enqueue_kind_tx(&mut tx, &rule.record_kind, priority).await?;
        if let Some(old_kind) = previous
            .as_ref()
            .map(|p| &p.record_kind)
            .filter(|k| **k != rule.record_kind)
        {
            queued += enqueue_kind_tx(&mut tx, old_kind, Priority::Bulk).await?;
        }
        tx.commit().await?;
        Ok(RuleChange { previous, queued })
    }

    async fn delete_rule(&self, name: &str) -> StoreResult<Option<RuleChange>> {
        let mut tx = self.write_tx().await?;
        let Some(previous) = rule_tx(&mut tx, name).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM rules WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let queued = enqueue_kind_tx(&mut tx, &previous.record_kind, Priority::Bulk).await?;
        tx.commit().await?;
        Ok(Some(RuleChange {
            previous: Some(previous),
            queued,
        }))
    }

    async fn rules(&self) -> StoreResult<Vec<RuleSpec>> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT definition FROM rules ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        let mut rules = rows
            .iter()
            .map(|d| serde_json::from_str(d).map_err(|e| StoreError::Corrupt(format!("rule: {e}"))))
            .collect::<StoreResult<Vec<RuleSpec>>>()?;
        rules.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
        Ok(rules)
    }
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn put_connection(&self, c: &StoredConnection) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let was_refused: Option<Option<String>> =
            sqlx::query_scalar("SELECT needs_reconnect FROM connections WHERE name = ?")
                .bind(&c.name)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(Some(reason)) = was_refused {
            crate::webhooks::emit(
                &mut tx,
                "connection.reconnected",
                serde_json::json!({"connection": c.name, "was": reason}),
            )
            .await?;
        }
        sqlx::query(
            "INSERT INTO connections (name, api_url, content_url, notify_url, root, token_ciphertext, \
             refresh_ciphertext, app_key, app_secret_ciphertext, needs_reconnect, updated_at, \
             select_user, path_root, account_id, account_name, account_email, app_access) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET \
             api_url = excluded.api_url, content_url = excluded.content_url, notify_url = excluded.notify_url, \
             root = excluded.root, token_ciphertext = excluded.token_ciphertext, \
             refresh_ciphertext = excluded.refresh_ciphertext, app_key = excluded.app_key, \
             app_secret_ciphertext = excluded.app_secret_ciphertext, \
             needs_reconnect = excluded.needs_reconnect, disconnecting = 0, cursor = NULL, \
             updated_at = excluded.updated_at, select_user = excluded.select_user, \
             path_root = excluded.path_root, account_id = excluded.account_id, \
             account_name = excluded.account_name, account_email = excluded.account_email, \
             app_access = excluded.app_access",
        )
        .bind(&c.name)
        .bind(&c.api_url)
        .bind(&c.content_url)
        .bind(&c.notify_url)
        .bind(&c.root)
        .bind(&c.token_ciphertext)
        .bind(&c.refresh_ciphertext)
        .bind(&c.app_key)
        .bind(&c.app_secret_ciphertext)
        .bind(&c.needs_reconnect)
        .bind(now_ms())
        .bind(&c.select_user)
        .bind(&c.path_root)
        .bind(c.account.as_ref().map(|a| &a.id))
        .bind(c.account.as_ref().map(|a| &a.name))
        .bind(c.account.as_ref().map(|a| &a.email))
        .bind(&c.app_access)
        .execute(&mut *tx)
        .await?;
        // Its rules' records have a new target: all of them get a pass.
        let queued = enqueue_rules_of(&mut tx, &c.name).await?;
        tx.commit().await?;
        Ok(queued)
    }

    async fn set_connection_root(&self, name: &str, from: &str, to: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let moved = sqlx::query(
            "UPDATE connections SET root = ?3, cursor = NULL, updated_at = ?4 \
             WHERE name = ?1 AND root = ?2 AND disconnecting = 0",
        )
        .bind(name)
        .bind(from)
        .bind(to)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if moved {
            enqueue_rules_of(&mut tx, name).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    async fn connection(&self, name: &str) -> StoreResult<Option<StoredConnection>> {
        sqlx::query("SELECT * FROM connections WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| connection_from_row(&r))
            .transpose()
    }

    async fn connections(&self) -> StoreResult<Vec<StoredConnection>> {
        sqlx::query("SELECT * FROM connections ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(connection_from_row)
            .collect()
    }

    async fn set_disconnecting(&self, name: &str) -> StoreResult<Vec<RecordId>> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE connections SET disconnecting = 1 WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let ids: Vec<RecordId> = sqlx::query_scalar(
            "SELECT DISTINCT record_id FROM bindings WHERE connection = ? ORDER BY record_id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            sqlx::query("DELETE FROM connections WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        } else {
            enqueue_tx(&mut tx, &ids, Priority::Reverse).await?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn delete_connection(&self, name: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM connections WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM mirror_files WHERE connection = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_needs_reconnect(&self, name: &str, reason: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE connections SET needs_reconnect = ? WHERE name = ?")
            .bind(reason)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn set_connection_cursor(&self, name: &str, cursor: Option<&str>) -> StoreResult<()> {
        sqlx::query("UPDATE connections SET cursor = ?, mirror_epoch = 0 WHERE name = ?")
            .bind(cursor)
            .bind(name)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn connection_cursor(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT cursor FROM connections WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .flatten(),
        )
    }

    async fn confirm_connection_deletions(&self, connection: &str) -> StoreResult<Vec<RecordId>> {
        let mut tx = self.write_tx().await?;
        let now = now_ms();
        sqlx::query("UPDATE connections SET deletions_confirmed_at = ? WHERE name = ?")
            .bind(now)
            .bind(connection)
            .execute(&mut *tx)
            .await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT record_id FROM bindings WHERE connection = ? AND paused_reason IS NOT NULL",
        )
        .bind(connection)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE bindings SET confirm_deletions = 1 WHERE connection = ? AND paused_reason IS NOT NULL",
        )
        .bind(connection)
        .execute(&mut *tx)
        .await?;
        enqueue_tx(&mut tx, &ids, Priority::Normal).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn connection_deletions_confirmed_at(&self, connection: &str) -> StoreResult<i64> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT deletions_confirmed_at FROM connections WHERE name = ?")
                .bind(connection)
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.unwrap_or(0))
    }

    async fn put_oauth_state(&self, st: &crate::OAuthState) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM oauth_states WHERE expires_at < ?")
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO oauth_states (state, connection, root, api_url, content_url, notify_url, \
             select_user, path_root, verifier_ciphertext, created_at, expires_at, session_hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&st.state)
        .bind(&st.connection)
        .bind(&st.root)
        .bind(&st.api_url)
        .bind(&st.content_url)
        .bind(&st.notify_url)
        .bind(&st.select_user)
        .bind(&st.path_root)
        .bind(&st.verifier_ciphertext)
        .bind(st.created_at)
        .bind(st.expires_at)
        .bind(&st.session_hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_oauth_state(&self, state: &str) -> StoreResult<Option<crate::OAuthState>> {
        let row = sqlx::query("DELETE FROM oauth_states WHERE state = ? RETURNING *")
            .bind(state)
            .fetch_optional(self.writer())
            .await?;
        row.as_ref().map(oauth_state_from_row).transpose()
    }
}

#[async_trait]
impl SyncStateStore for SqliteStore {
    async fn bindings_for_record(&self, record_id: RecordId) -> StoreResult<Vec<Binding>> {
        sqlx::query("SELECT * FROM bindings WHERE record_id = ? ORDER BY rule_name")
            .bind(record_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(binding_from_row)
            .collect()
    }

    async fn binding(&self, id: i64) -> StoreResult<Option<Binding>> {
        sqlx::query("SELECT * FROM bindings WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| binding_from_row(&r))
            .transpose()
    }

    async fn bindings_within(
        &self,
        connection: &str,
        folder_lower: &str,
    ) -> StoreResult<Vec<Binding>> {
        // The folder itself, then the range of keys starting with "folder/" ('0' follows '/'),
        // both served by the (connection, folder_lower) index. No LIKE: '%' and '_' in folder
        // names are plain characters.
        sqlx::query(
            "SELECT * FROM bindings WHERE connection = ? AND (folder_lower = ? OR \
             (folder_lower > ? || '/' AND folder_lower < ? || '0')) ORDER BY folder_lower, id",
        )
        .bind(connection)
        .bind(folder_lower)
        .bind(folder_lower)
        .bind(folder_lower)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(binding_from_row)
        .collect()
    }

    async fn bindings_containing(
        &self,
        connection: &str,
        path_lower: &str,
    ) -> StoreResult<Vec<Binding>> {
        // The path and each of its ancestors (and the root, ""): index lookups.
        let folders = crate::decisions::folder_and_ancestors(path_lower);
        let mut q =
            sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT * FROM bindings WHERE connection = ");
        q.push_bind(connection).push(" AND folder_lower IN (");
        let mut list = q.separated(", ");
        for f in &folders {
            list.push_bind(*f);
        }
        q.push(") ORDER BY length(folder_lower) DESC, id");
        q.build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(binding_from_row)
            .collect()
    }

    async fn bindings_of_connection(&self, connection: &str) -> StoreResult<Vec<Binding>> {
        sqlx::query("SELECT * FROM bindings WHERE connection = ? ORDER BY id")
            .bind(connection)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(binding_from_row)
            .collect()
    }

    fn synced_files_by_path<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxStream<'a, StoreResult<SyncedFileScan>> {
        type Row = (
            RecordId,
            String,
            Option<String>,
            String,
            Option<String>,
            String,
            i64,
        );
        json_pages(
            &self.pool,
            SYNCED_BY_PATH,
            connection,
            |(record_id, folder_lower, rel, rev, hash, state, updated_at): Row| SyncedFileScan {
                record_id,
                folder_lower,
                rel_lower: rel.unwrap_or_default(),
                rev,
                content_hash: hash.unwrap_or_default(),
                synced: state == "synced",
                updated_at,
            },
        )
    }

    fn bindings_by_folder<'a>(
        &'a self,
        connection: &'a str,
    ) -> BoxStream<'a, StoreResult<Binding>> {
        type Row = (
            i64,
            RecordId,
            String,
            String,
            String,
            String,
            Option<String>,
            i64,
            i64,
        );
        json_pages(
            &self.pool,
            BINDINGS_BY_FOLDER,
            connection,
            |(id, record_id, rule_name, connection, display, lower, paused, confirm, at): Row| {
                Binding {
                    id,
                    record_id,
                    rule_name,
                    connection,
                    folder_display: display,
                    folder_lower: lower,
                    paused_reason: paused,
                    confirm_deletions: confirm != 0,
                    deletions_confirmed_at: at,
                }
            },
        )
    }

    async fn records_changed_since_pass(&self, connection: &str) -> StoreResult<Vec<RecordId>> {
        // Every pass stamps its binding's `updated_at` before it reads anything. A binding
        // with neither a rule nor a folder mapping (its rule was deleted) needs a pass.
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT b.record_id FROM bindings b \
             JOIN records r ON r.id = b.record_id \
             LEFT JOIN rules ru ON ru.name = b.rule_name \
             WHERE b.connection = ? AND ( \
               r.updated_at > b.updated_at \
               OR (ru.name IS NULL AND NOT EXISTS (SELECT 1 FROM folder_maps m \
                                                   WHERE 'map:' || m.id = b.rule_name)) \
               OR ru.updated_at > b.updated_at \
               OR EXISTS (SELECT 1 FROM attachments a \
                          WHERE a.record_id = b.record_id AND a.updated_at > b.updated_at) \
               OR EXISTS (SELECT 1 FROM sync_files s \
                          WHERE s.record_id = b.record_id AND s.state <> 'synced')) \
             ORDER BY b.record_id",
        )
        .bind(connection)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn knows_revision(
        &self,
        dropbox_id: &str,
        rev: &str,
        path_lower: &str,
    ) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sync_files s JOIN bindings b ON b.id = s.binding_id \
             WHERE s.dropbox_id = ? AND s.rev = ? AND b.folder_lower || '/' || s.rel_lower = ? LIMIT 1",
        )
        .bind(dropbox_id)
        .bind(rev)
        .bind(path_lower)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    async fn save_binding(&self, b: &Binding) -> StoreResult<i64> {
        let now = now_ms();
        if b.id == 0 {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO bindings (record_id, rule_name, connection, folder_display, folder_lower, \
                 paused_reason, confirm_deletions, deletions_confirmed_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (record_id, rule_name) DO UPDATE SET connection = excluded.connection, \
                 folder_display = excluded.folder_display, folder_lower = excluded.folder_lower, \
                 paused_reason = excluded.paused_reason, confirm_deletions = excluded.confirm_deletions, \
                 deletions_confirmed_at = excluded.deletions_confirmed_at, \
                 updated_at = excluded.updated_at RETURNING id",
            )
            .bind(b.record_id)
            .bind(&b.rule_name)
            .bind(&b.connection)
            .bind(&b.folder_display)
            .bind(&b.folder_lower)
            .bind(&b.paused_reason)
            .bind(i64::from(b.confirm_deletions))
            .bind(b.deletions_confirmed_at)
            .bind(now)
            .fetch_one(self.writer())
            .await?;
            return Ok(id);
        }
        sqlx::query(
            "UPDATE bindings SET record_id = ?, rule_name = ?, connection = ?, folder_display = ?, \
             folder_lower = ?, paused_reason = ?, confirm_deletions = ?, deletions_confirmed_at = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(b.record_id)
        .bind(&b.rule_name)
        .bind(&b.connection)
        .bind(&b.folder_display)
        .bind(&b.folder_lower)
        .bind(&b.paused_reason)
        .bind(i64::from(b.confirm_deletions))
        .bind(b.deletions_confirmed_at)
        .bind(now)
        .bind(b.id)
        .execute(self.writer())
        .await?;
        Ok(b.id)
    }

    async fn delete_binding(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sync_files WHERE binding_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM bindings WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn subfolders_made(&self, binding_id: i64) -> StoreResult<bool> {
        let made: Option<i64> =
            sqlx::query_scalar("SELECT made_at FROM binding_subfolders WHERE binding_id = ?")
                .bind(binding_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(made.is_some())
    }

    async fn set_subfolders_made(&self, binding_id: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO binding_subfolders (binding_id, made_at) VALUES (?, ?) \
             ON CONFLICT (binding_id) DO NOTHING",
        )
        .bind(binding_id)
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn confirm_record_deletions(&self, record_id: RecordId) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE bindings SET confirm_deletions = 1 WHERE record_id = ? AND paused_reason IS NOT NULL",
        )
        .bind(record_id)
        .execute(&mut *tx)
        .await?;
        enqueue_related_tx(&mut tx, record_id).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn tree_files(
        &self,
        connection: &str,
        prefix_lower: &str,
        name_contains: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<crate::TreeFile>> {
        let rows = sqlx::query(
            "SELECT b.folder_display || '/' || f.rel_display AS path, f.record_id, r.kind, r.key, \
             a.name AS attachment, a.size, f.state \
             FROM sync_files f JOIN bindings b ON b.id = f.binding_id \
             JOIN records r ON r.id = f.record_id \
             LEFT JOIN attachments a ON a.id = f.attachment_id \
             WHERE f.connection = ?1 AND f.rel_lower IS NOT NULL \
             AND substr(b.folder_lower || '/' || f.rel_lower, 1, length(?2)) = ?2 \
             AND (?3 IS NULL OR instr(lower(f.rel_display), ?3) > 0) \
             ORDER BY b.folder_lower || '/' || f.rel_lower LIMIT ?4",
        )
        .bind(connection)
        .bind(prefix_lower)
        .bind(name_contains)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tree_file_from_row).collect()
    }

    async fn tree_folders(
        &self,
        connection: &str,
        prefix_lower: &str,
        limit: u32,
    ) -> StoreResult<Vec<crate::TreeFolder>> {
        let rows = sqlx::query(
            "SELECT b.folder_display AS path, r.kind, r.key FROM bindings b \
             JOIN records r ON r.id = b.record_id \
             WHERE b.connection = ?1 AND substr(b.folder_lower || '/', 1, length(?2)) = ?2 \
             ORDER BY b.folder_lower LIMIT ?3",
        )
        .bind(connection)
        .bind(prefix_lower)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tree_folder_from_row).collect()
    }

    async fn sync_rows(&self, record_id: RecordId) -> StoreResult<Vec<SyncRow>> {
        sqlx::query(&format!(
            "SELECT {SYNC_COLUMNS} FROM sync_files WHERE record_id = ? ORDER BY binding_id, rel_lower, id"
        ))
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(sync_row_from_row)
        .collect()
    }

    async fn save_sync_row(&self, r: &SyncRow) -> StoreResult<i64> {
        upsert_sync_row(&self.pool, r).await
    }

    async fn save_sync_rows_logged(&self, rows: &[SyncRow], log: &[LogEntry]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for r in rows {
            upsert_sync_row(&mut *tx, r).await?;
        }
        let subscribed = crate::webhooks::any_subscription(&mut tx).await?;
        for e in log {
            insert_log_with(&mut tx, e, subscribed).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_sync_row(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM sync_files WHERE id = ?")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn replace_unplaced_rows(
        &self,
        record_id: RecordId,
        rows: &[SyncRow],
    ) -> StoreResult<()> {
        // Nearly every pass has none to replace: a read then, not a turn of the one writer.
        if rows.is_empty() {
            let any: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM sync_files WHERE record_id = ? AND binding_id IS NULL LIMIT 1",
            )
            .bind(record_id)
            .fetch_optional(&self.pool)
            .await?;
            if any.is_none() {
                return Ok(());
            }
        }
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM sync_files WHERE record_id = ? AND binding_id IS NULL")
            .bind(record_id)
            .execute(&mut *tx)
            .await?;
        let now = now_ms();
        for r in rows {
            sqlx::query(
                "INSERT INTO sync_files (record_id, rule_name, connection, attachment_id, state, \
                 last_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(record_id)
            .bind(&r.rule_name)
            .bind(&r.connection)
            .bind(r.attachment_id)
            .bind(r.state.as_str())
            .bind(&r.last_error)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sync_counts(&self) -> StoreResult<SyncCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM sync_files GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = SyncCounts::default();
        for row in rows {
            let state: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            let n = u64::try_from(n).unwrap_or(0);
            match SyncState::parse(&state) {
                Some(SyncState::Synced) => counts.synced = n,
                Some(SyncState::Pending) => counts.pending = n,
                Some(SyncState::Failed) => counts.failed = n,
                None => return Err(StoreError::Corrupt(format!("unknown sync state {state:?}"))),
            }
        }
        Ok(counts)
    }

    async fn upload_session(
        &self,
        connection: &str,
        content_hash: &str,
    ) -> StoreResult<Option<(String, u64)>> {
        let row = sqlx::query(
            "SELECT session_id, upload_offset FROM upload_sessions WHERE connection = ? AND content_hash = ?",
        )
        .bind(connection)
        .bind(content_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let offset: i64 = r.try_get("upload_offset")?;
            Ok((r.try_get("session_id")?, u64::try_from(offset).unwrap_or(0)))
        })
        .transpose()
    }

    async fn save_upload_session(
        &self,
        connection: &str,
        content_hash: &str,
        session_id: &str,
        offset: u64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO upload_sessions (connection, content_hash, session_id, upload_offset, updated_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (connection, content_hash) DO UPDATE SET \
             session_id = excluded.session_id, upload_offset = excluded.upload_offset, updated_at = excluded.updated_at",
        )
        .bind(connection)
        .bind(content_hash)
        .bind(session_id)
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn delete_upload_session(&self, connection: &str, content_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM upload_sessions WHERE connection = ? AND content_hash = ?")
            .bind(connection)
            .bind(content_hash)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn deletions_since(
        &self,
        connection: &str,
        binding_id: Option<i64>,
        since_ms: i64,
    ) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_log WHERE connection = ? AND action IN ('delete', 'archive') \
             AND outcome = 'ok' AND at >= ? AND (? IS NULL OR binding_id = ?)",
        )
        .bind(connection)
        .bind(since_ms)
        .bind(binding_id)
        .bind(binding_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn synced_count(&self, connection: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_files WHERE connection = ? AND rev IS NOT NULL",
        )
        .bind(connection)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn enqueue(&self, record_ids: &[RecordId], priority: Priority) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        enqueue_tx(&mut tx, record_ids, priority).await?;
        tx.commit().await?;
        Ok(())
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
        // Claim and read in one statement so two workers never take the same record.
        let running_list = vec!["?"; running.len()].join(", ");
        let sql = format!(
            "UPDATE sync_queue SET claimed_until = ?, claimed_by = ? WHERE record_id IN ( \
               SELECT record_id FROM sync_queue WHERE dead = 0 AND next_at <= ? AND priority <= ? \
               AND (claimed_until IS NULL OR claimed_until < ? \
                    OR (claimed_by = ? AND record_id NOT IN ({running_list}))) \
               ORDER BY priority, next_at, enqueued_at, record_id LIMIT ?) \
             RETURNING record_id, generation, attempts, failing_since, priority, next_at, enqueued_at"
        );
        let mut query = sqlx::query(&sql)
            .bind(now_ms.saturating_add(lease_ms))
            .bind(owner)
            .bind(now_ms)
            .bind(up_to as i64)
            .bind(now_ms)
            .bind(owner);
        for id in running {
            query = query.bind(id);
        }
        let rows = query
            .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
            .fetch_all(self.writer())
            .await?;
        claimed_in_order(&rows)
    }

    async fn finish_task(&self, task: &Task) -> StoreResult<()> {
        let mut conn = self.writer().acquire().await?;
        end_task(&mut conn, task).await
    }

    async fn finish_task_logged(&self, task: &Task, log: &[LogEntry]) -> StoreResult<()> {
        if log.is_empty() {
            return self.finish_task(task).await;
        }
        let mut tx = self.write_tx().await?;
        for e in log {
            insert_log(&mut tx, e).await?;
        }
        end_task(&mut tx, task).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retry_task(
        &self,
        task: &Task,
        error: &str,
        next_at_ms: i64,
        dead: bool,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        // Re-queued while running (generation moved on): run again now, never dead-letter.
        sqlx::query(
            "UPDATE sync_queue SET claimed_until = NULL, claimed_by = NULL, last_error = ?, \
             attempts = CASE WHEN generation = ? THEN attempts + 1 ELSE attempts END, \
             failing_since = CASE WHEN generation = ? THEN COALESCE(failing_since, ?) ELSE failing_since END, \
             dead = CASE WHEN generation = ? THEN ? ELSE 0 END, \
             next_at = CASE WHEN generation = ? THEN ? ELSE next_at END WHERE record_id = ?",
        )
        .bind(error)
        .bind(task.generation)
        .bind(task.generation)
        .bind(now_ms())
        .bind(task.generation)
        .bind(i64::from(dead))
        .bind(task.generation)
        .bind(next_at_ms)
        .bind(task.record_id)
        .execute(&mut *tx)
        .await?;
        if dead {
            let record: Option<(String, String, i64)> = sqlx::query_as(
                "SELECT r.kind, r.key, q.dead FROM records r JOIN sync_queue q ON q.record_id = r.id \
                 WHERE r.id = ?",
            )
            .bind(task.record_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((kind, key, 1)) = record {
                crate::webhooks::emit(
                    &mut tx,
                    "record.dead_lettered",
                    serde_json::json!({"record": {"kind": kind, "key": key}, "error": error}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn defer_task(&self, task: &Task, reason: &str, next_at_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "UPDATE sync_queue SET claimed_until = NULL, claimed_by = NULL, last_error = ?, \
             next_at = CASE WHEN generation = ? THEN ? ELSE next_at END WHERE record_id = ?",
        )
        .bind(reason)
        .bind(task.generation)
        .bind(next_at_ms)
        .bind(task.record_id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn requeue_dead(&self) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE sync_queue SET dead = 0, attempts = 0, failing_since = NULL, next_at = ?, \
             generation = generation + 1 WHERE dead = 1",
        )
        .bind(now_ms())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    async fn heartbeat(
        &self,
        process: &ProcessInfo,
        renew: &[RecordId],
        until_ms: i64,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO processes (id, host, pid, boot_token, started_at, heartbeat_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET \
             heartbeat_at = excluded.heartbeat_at",
        )
        .bind(&process.id)
        .bind(&process.host)
        .bind(process.pid)
        .bind(&process.boot_token)
        .bind(process.started_at)
        .bind(process.heartbeat_at)
        .execute(&mut *tx)
        .await?;
        for id in renew {
            sqlx::query(
                "UPDATE sync_queue SET claimed_until = ? WHERE record_id = ? AND claimed_by = ?",
            )
            .bind(until_ms)
            .bind(id)
            .bind(&process.id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE duties SET until_ms = ? WHERE holder = ?")
            .bind(until_ms)
            .bind(&process.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn processes(&self) -> StoreResult<Vec<ProcessInfo>> {
        let rows = sqlx::query("SELECT * FROM processes ORDER BY started_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(process_from_row).collect()
    }

    async fn release_process(&self, id: &str) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let released = sqlx::query(
            "UPDATE sync_queue SET claimed_until = NULL, claimed_by = NULL WHERE claimed_by = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM processes WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM duties WHERE holder = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(released)
    }

    async fn hold_duty(
        &self,
        name: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> StoreResult<bool> {
        // One statement: of processes asking at once, one gets the duty.
        let done = sqlx::query(
            "INSERT INTO duties (name, holder, until_ms) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             until_ms = excluded.until_ms \
             WHERE duties.holder = excluded.holder OR duties.until_ms < ?4",
        )
        .bind(name)
        .bind(holder)
        .bind(until_ms)
        .bind(now_ms)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_duty(&self, name: &str, holder: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM duties WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    /// One SQLite database serves one process: the engine's own lock keeps its commits
    /// apart.
    async fn commit_slot(&self, _connection: &str) -> StoreResult<crate::CommitSlot> {
        Ok(crate::CommitSlot::unshared())
    }

    async fn duties(&self) -> StoreResult<Vec<crate::Duty>> {
        let rows = sqlx::query("SELECT name, holder, until_ms FROM duties ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(duty_from_row).collect()
    }

    async fn dead_tasks(&self) -> StoreResult<Vec<QueueEntry>> {
        sqlx::query("SELECT * FROM sync_queue WHERE dead = 1 ORDER BY record_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(queue_entry_from_row)
            .collect()
    }

    async fn queue_entry(&self, record_id: RecordId) -> StoreResult<Option<QueueEntry>> {
        sqlx::query("SELECT * FROM sync_queue WHERE record_id = ?")
            .bind(record_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| queue_entry_from_row(&r))
            .transpose()
    }

    async fn queued_on_connection(&self, connection: &str) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_queue q WHERE EXISTS \
             (SELECT 1 FROM bindings b WHERE b.record_id = q.record_id AND b.connection = ?)",
        )
        .bind(connection)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    async fn queue_stats(&self) -> StoreResult<QueueStats> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS queued, \
             COALESCE(SUM(CASE WHEN attempts > 0 AND dead = 0 THEN 1 ELSE 0 END), 0) AS retrying, \
             COALESCE(SUM(dead), 0) AS dead, MIN(CASE WHEN dead = 0 THEN next_at END) AS next_due \
             FROM sync_queue",
        )
        .fetch_one(&self.pool)
        .await?;
        let queued: i64 = row.try_get("queued")?;
        let retrying: i64 = row.try_get("retrying")?;
        let dead: i64 = row.try_get("dead")?;
        Ok(QueueStats {
            queued: u64::try_from(queued).unwrap_or(0),
            retrying: u64::try_from(retrying).unwrap_or(0),
            dead: u64::try_from(dead).unwrap_or(0),
            next_due_ms: row.try_get("next_due")?,
        })
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn log(&self, e: &LogEntry) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_log(&mut tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn log_activity(
        &self,
        since_ms: i64,
        bucket_ms: i64,
    ) -> StoreResult<Vec<crate::ActivityBucket>> {
        let bucket_ms = bucket_ms.max(1);
        let rows = sqlx::query(
            "SELECT (at - ?1) / ?2 AS bucket, \
             SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END) AS ok, \
             SUM(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed, \
             SUM(bytes) AS bytes \
             FROM sync_log WHERE at >= ?1 GROUP BY bucket ORDER BY bucket",
        )
        .bind(since_ms)
        .bind(bucket_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::ActivityBucket {
                    start_ms: since_ms + r.try_get::<i64, _>("bucket")? * bucket_ms,
                    ok: r.try_get::<i64, _>("ok")? as u64,
                    failed: r.try_get::<i64, _>("failed")? as u64,
                    bytes: r.try_get::<i64, _>("bytes")? as u64,
                })
            })
            .collect()
    }

    async fn log_entries(&self, filter: &LogFilter) -> StoreResult<Vec<LogLine>> {
        let rows = sqlx::query(
            "SELECT l.*, r.kind AS record_kind, r.key AS record_key \
             FROM sync_log l LEFT JOIN records r ON r.id = l.record_id \
             WHERE (?1 IS NULL OR l.connection = ?1) AND (?2 IS NULL OR l.record_id = ?2) \
               AND (?3 IS NULL OR l.action = ?3) AND (?4 IS NULL OR l.outcome = ?4) \
               AND (?5 IS NULL OR l.at >= ?5) AND (?6 IS NULL OR l.at < ?6) \
               AND (?7 IS NULL OR l.id < ?7) \
             ORDER BY l.id DESC LIMIT ?8",
        )
        .bind(filter.connection.as_deref())
        .bind(filter.record_id)
        .bind(filter.action.as_deref())
        .bind(filter.outcome.as_deref())
        .bind(filter.since_ms)
        .bind(filter.until_ms)
        .bind(filter.before_id)
        .bind(i64::from(filter.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(LogLine {
                    entry: log_from_row(row)?,
                    kind: row.try_get("record_kind")?,
                    key: row.try_get("record_key")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl MaintenanceStore for SqliteStore {
    async fn snapshot_to(&self, path: &std::path::Path) -> StoreResult<()> {
        let target = path
            .to_str()
            .ok_or_else(|| StoreError::Corrupt(format!("snapshot path {path:?} is not UTF-8")))?;
        // One statement, one read transaction: a consistent copy while writers go on.
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn integrity_problems(&self) -> StoreResult<Vec<String>> {
        let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().filter(|r| r != "ok").collect())
    }

    /// Opens the copy as a database of its own and runs SQLite's integrity check on it.
    async fn verify_snapshot(&self, path: &std::path::Path) -> StoreResult<()> {
        let copy = SqliteStore::open(path).await?;
        let problems = copy.integrity_problems().await?;
        copy.pool.close().await;
        copy.writer.close().await;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!(
                "the copy is damaged: {}",
                problems.join("; ")
            )))
        }
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn put_webhook(&self, w: &StoredWebhook) -> StoreResult<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhook_subscriptions (url, events, secret_ciphertext, created_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(&w.url)
        .bind(events_column(&w.events))
        .bind(&w.secret_ciphertext)
        .bind(now_ms())
        .fetch_one(self.writer())
        .await?;
        Ok(id)
    }

    async fn webhooks(&self) -> StoreResult<Vec<StoredWebhook>> {
        let rows = sqlx::query("SELECT * FROM webhook_subscriptions ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE id = ?")
            .bind(id)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: u32,
        hold_ms: i64,
    ) -> StoreResult<Vec<DueDelivery>> {
        let mut tx = self.write_tx().await?;
        let rows = sqlx::query(
            "SELECT d.id, d.subscription_id, s.url, s.secret_ciphertext, d.event_id, e.payload, d.attempts \
             FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id \
             JOIN webhook_events e ON e.id = d.event_id \
             WHERE d.state = 'pending' AND d.next_at <= ? ORDER BY d.next_at, d.id LIMIT ?",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut due = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            sqlx::query("UPDATE webhook_deliveries SET next_at = ? WHERE id = ?")
                .bind(now_ms + hold_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            due.push(due_delivery_from_row(r)?);
        }
        tx.commit().await?;
        Ok(due)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        delivered: bool,
        status: Option<u16>,
        error: Option<&str>,
        next_at_ms: Option<i64>,
    ) -> StoreResult<()> {
        let state = match (delivered, next_at_ms) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        sqlx::query(
            "UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, last_status = ?, \
             last_error = ?, next_at = COALESCE(?, next_at), \
             delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END WHERE id = ?",
        )
        .bind(state)
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next_at_ms)
        .bind(delivered)
        .bind(now_ms())
        .bind(id)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn deliveries(&self, subscription_id: i64, limit: u32) -> StoreResult<Vec<DeliveryView>> {
        let rows = sqlx::query(
            "SELECT d.*, e.type AS event_type FROM webhook_deliveries d \
             JOIN webhook_events e ON e.id = d.event_id WHERE d.subscription_id = ? \
             ORDER BY d.id DESC LIMIT ?",
        )
        .bind(subscription_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn prune_webhook_deliveries(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE state IN ('delivered', 'failed') \
             AND created_at < ?",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_events WHERE created_at < ? AND NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn redeliver(&self, delivery_id: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_at = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(delivery_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Inserts (`id == 0`, upserting on binding + path) or updates a sync row; returns its id.
async fn upsert_sync_row<'e, E>(executor: E, r: &SyncRow) -> StoreResult<i64>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let now = now_ms();
    let sql = if r.id == 0 {
        // A path a binding already tracks is the same file: update it in place.
        "INSERT INTO sync_files (record_id, binding_id, rule_name, connection, attachment_id, \
         rel_display, rel_lower, dropbox_id, rev, content_hash, state, last_error, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (binding_id, rel_lower) DO UPDATE SET record_id = excluded.record_id, \
         rule_name = excluded.rule_name, connection = excluded.connection, \
         attachment_id = excluded.attachment_id, rel_display = excluded.rel_display, \
         dropbox_id = excluded.dropbox_id, rev = excluded.rev, content_hash = excluded.content_hash, \
         state = excluded.state, last_error = excluded.last_error, updated_at = excluded.updated_at \
         RETURNING id"
    } else {
        "UPDATE sync_files SET record_id = ?, binding_id = ?, rule_name = ?, connection = ?, \
         attachment_id = ?, rel_display = ?, rel_lower = ?, dropbox_id = ?, rev = ?, \
         content_hash = ?, state = ?, last_error = ?, updated_at = ? WHERE id = ? RETURNING id"
    };
    let mut query = sqlx::query_scalar(sql)
        .bind(r.record_id)
        .bind(r.binding_id)
        .bind(&r.rule_name)
        .bind(&r.connection)
        .bind(r.attachment_id)
        .bind(&r.rel_display)
        .bind(&r.rel_lower)
        .bind(&r.dropbox_id)
        .bind(&r.rev)
        .bind(&r.content_hash)
        .bind(r.state.as_str())
        .bind(&r.last_error)
        .bind(now);
    if r.id != 0 {
        query = query.bind(r.id);
    }
    let id: Option<i64> = query.fetch_optional(executor).await?;
    id.ok_or_else(|| StoreError::Corrupt(format!("sync row {} vanished", r.id)))
}

/// Appends one sync-log entry.
/// Appends to the sync log and, in the same transaction, writes the webhook event the entry
/// is (if any subscription wants it).
async fn insert_log(conn: &mut sqlx::SqliteConnection, e: &LogEntry) -> StoreResult<()> {
    let subscribed = crate::webhooks::any_subscription(conn).await?;
    insert_log_with(conn, e, subscribed).await
}

/// [`insert_log`] when the caller already knows whether any webhook subscription exists (one
/// look per transaction, not per entry).
pub(crate) async fn insert_log_with(
    conn: &mut sqlx::SqliteConnection,
    e: &LogEntry,
    subscribed: bool,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sync_log (at, connection, binding_id, record_id, path, action, outcome, bytes, \
         duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(if e.at == 0 { now_ms() } else { e.at })
    .bind(&e.connection)
    .bind(e.binding_id)
    .bind(e.record_id)
    .bind(&e.path)
    .bind(&e.action)
    .bind(&e.outcome)
    .bind(i64::try_from(e.bytes).unwrap_or(i64::MAX))
    .bind(i64::try_from(e.duration_ms).unwrap_or(i64::MAX))
    .bind(&e.error)
    .execute(&mut *conn)
    .await?;
    if let Some(event) = crate::webhooks::event_for_log(&e.action, &e.outcome)
        && subscribed
    {
        let record: Option<(String, String)> =
            sqlx::query_as("SELECT kind, key FROM records WHERE id = ?")
                .bind(e.record_id)
                .fetch_optional(&mut *conn)
                .await?;
        crate::webhooks::emit(conn, event, crate::webhooks::log_data(e, record)).await?;
    }
    Ok(())
}

/// A transaction no `Transaction` owns any more (as a cancelled BEGIN leaves) ends with its
/// connection's release: later writes commit.
#[cfg(test)]
mod pool_tests {
    use crate::prelude::*;

    #[tokio::test]
    async fn a_leaked_transaction_ends_when_its_connection_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = super::SqliteStore::open(&path).await.unwrap();
        // On the writing connection and on a reading one.
        for pool in [&store.writer, &store.pool] {
            let mut conn = pool.acquire().await.unwrap();
            let tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
            std::mem::forget(tx);
        }
        for n in 0..16 {
            let name = format!("duty-{n}");
            assert!(store.hold_duty(&name, "p", 0, i64::MAX).await.unwrap());
            // A write transaction, on whichever pooled connection comes.
            store.release_process("nobody").await.unwrap();
        }
        // Seen by another process: committed, not held in a transaction left open.
        let other = super::SqliteStore::open(&path).await.unwrap();
        assert_eq!(other.duties().await.unwrap().len(), 16);
    }
}

/// The store contract, run on SQLite.
#[cfg(test)]
mod contract_tests {
    crate::store_contract_tests!(async {
        let dir = tempfile::tempdir().unwrap();
        let store = super::SqliteStore::open(&dir.path().join("t.db"))
            .await
            .unwrap();
        (dir, store)
    });
}
