//! Rows to values, shared by every backend: a mapper reads columns by name through [`Cols`],
//! so SQLite and PostgreSQL decode the same schema with one function per type.

use crate::{
    AdminAccount, AdminSession, ArchivedAttachment, Binding, DeliveryView, DueDelivery, Duty,
    FolderMap, LinkTarget, LogEntry, OAuthState, OffloadCandidate, PendingConnection, Priority,
    ProcessInfo, QueueEntry, RecordSummary, StoreError, StoreResult, StoredConnection, StoredLink,
    StoredWebhook, SyncCounts, SyncRow, SyncState, SyncedFileScan, Task, TreeFile, TreeFolder,
};
use ferry_core::model::{Attachment, Deletion, Record, Side};
use ferry_core::sync_plan::Direction;
use sqlx::postgres::{PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{Decode, Row, Type};

/// A value that both backends decode from a column.
pub(crate) trait Column: Sized {
    fn sqlite(row: &SqliteRow, name: &str) -> Result<Self, sqlx::Error>;
    fn postgres(row: &PgRow, name: &str) -> Result<Self, sqlx::Error>;
}

impl<T> Column for T
where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>,
{
    fn sqlite(row: &SqliteRow, name: &str) -> Result<Self, sqlx::Error> {
        row.try_get(name)
    }
    fn postgres(row: &PgRow, name: &str) -> Result<Self, sqlx::Error> {
        row.try_get(name)
    }
}

/// A result row of either backend, read by column name.
pub(crate) trait Cols {
    /// The column `name` as a `T`.
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error>;

    /// A count or size column (never negative in Ferry's schema).
    fn count(&self, name: &str) -> StoreResult<u64> {
        Ok(u64::try_from(self.col::<i64>(name)?).unwrap_or(0))
    }

    /// A 0/1 flag column.
    fn flag(&self, name: &str) -> StoreResult<bool> {
        Ok(self.col::<i64>(name)? != 0)
    }
}

impl Cols for SqliteRow {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        T::sqlite(self, name)
    }
}

impl Cols for PgRow {
    fn col<T: Column>(&self, name: &str) -> Result<T, sqlx::Error> {
        T::postgres(self, name)
    }
}

pub(crate) fn record_from_row(row: &impl Cols) -> StoreResult<Record> {
    let fields: String = row.col("fields")?;
    Ok(Record {
        id: row.col("id")?,
        kind: row.col("kind")?,
        key: row.col("key")?,
        fields: serde_json::from_str(&fields)
            .map_err(|e| StoreError::Corrupt(format!("record fields: {e}")))?,
        parent_id: row.col("parent_id")?,
        deletion: Deletion::from_code(row.col::<i64>("deleting")?),
    })
}

pub(crate) fn attachment_from_row(row: &impl Cols) -> StoreResult<Attachment> {
    let tags: String = row.col("tags")?;
    let size: i64 = row.col("size")?;
    Ok(Attachment {
        id: row.col("id")?,
        record_id: row.col("record_id")?,
        name: row.col("name")?,
        tags: serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt(format!("attachment tags: {e}")))?,
        content_hash: row.col("content_hash")?,
        size: u64::try_from(size).map_err(|_| StoreError::Corrupt("negative size".into()))?,
        origin_path: row.col("origin_path")?,
        source: side_from_row(row)?,
        offloaded: match (
            row.col::<Option<String>>("offload_connection")?,
            row.col::<Option<String>>("offload_rev")?,
            row.col::<Option<i64>>("offloaded_at")?,
        ) {
            (Some(connection), Some(rev), Some(at)) => Some(ferry_core::model::Offloaded {
                connection,
                rev,
                at,
            }),
            _ => None,
        },
    })
}

pub(crate) fn archived_from_row(r: &impl Cols) -> StoreResult<ArchivedAttachment> {
    let tags: String = r.col("tags")?;
    let size: i64 = r.col("size")?;
    Ok(ArchivedAttachment {
        id: r.col("id")?,
        record_id: r.col("record_id")?,
        name: r.col("name")?,
        tags: serde_json::from_str(&tags)
            .map_err(|e| StoreError::Corrupt(format!("archived tags: {e}")))?,
        content_hash: r.col("content_hash")?,
        size: u64::try_from(size).unwrap_or(0),
        reason: r.col("reason")?,
        archived_at: r.col("archived_at")?,
        origin_path: r.col("origin_path")?,
        source: side_from_row(r)?,
    })
}

pub(crate) fn side_from_row(row: &impl Cols) -> StoreResult<Side> {
    let source: String = row.col("source")?;
    Side::parse(&source).ok_or_else(|| StoreError::Corrupt(format!("unknown side {source:?}")))
}

/// A row's `state` column; an unknown value is corruption.
pub(crate) fn state_of(row: &impl Cols) -> StoreResult<SyncState> {
    let state: String = row.col("state")?;
    SyncState::parse(&state)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown sync state {state:?}")))
}

pub(crate) fn sync_row_from_row(row: &impl Cols) -> StoreResult<SyncRow> {
    Ok(SyncRow {
        id: row.col("id")?,
        record_id: row.col("record_id")?,
        binding_id: row.col("binding_id")?,
        rule_name: row.col("rule_name")?,
        connection: row.col("connection")?,
        attachment_id: row.col("attachment_id")?,
        rel_display: row.col("rel_display")?,
        rel_lower: row.col("rel_lower")?,
        dropbox_id: row.col("dropbox_id")?,
        rev: row.col("rev")?,
        content_hash: row.col("content_hash")?,
        state: state_of(row)?,
        last_error: row.col("last_error")?,
        updated_at: row.col("updated_at")?,
    })
}

/// A synced file as `synced_files_by_path` streams it.
pub(crate) fn synced_scan_from_row(row: &impl Cols) -> StoreResult<SyncedFileScan> {
    let state: String = row.col("state")?;
    Ok(SyncedFileScan {
        record_id: row.col("record_id")?,
        folder_lower: row.col("folder_lower")?,
        rel_lower: row.col::<Option<String>>("rel_lower")?.unwrap_or_default(),
        rev: row.col("rev")?,
        content_hash: row
            .col::<Option<String>>("content_hash")?
            .unwrap_or_default(),
        synced: state == "synced",
        updated_at: row.col("updated_at")?,
    })
}

pub(crate) fn binding_from_row(row: &impl Cols) -> StoreResult<Binding> {
    let confirm: i64 = row.col("confirm_deletions")?;
    Ok(Binding {
        id: row.col("id")?,
        record_id: row.col("record_id")?,
        rule_name: row.col("rule_name")?,
        connection: row.col("connection")?,
        folder_display: row.col("folder_display")?,
        folder_lower: row.col("folder_lower")?,
        paused_reason: row.col("paused_reason")?,
        confirm_deletions: confirm != 0,
        deletions_confirmed_at: row.col("deletions_confirmed_at")?,
    })
}

pub(crate) fn log_from_row(row: &impl Cols) -> StoreResult<LogEntry> {
    let bytes: i64 = row.col("bytes")?;
    let duration: i64 = row.col("duration_ms")?;
    Ok(LogEntry {
        id: row.col("id")?,
        at: row.col("at")?,
        connection: row.col("connection")?,
        binding_id: row.col("binding_id")?,
        record_id: row.col("record_id")?,
        path: row.col("path")?,
        action: row.col("action")?,
        outcome: row.col("outcome")?,
        bytes: u64::try_from(bytes).unwrap_or(0),
        duration_ms: u64::try_from(duration).unwrap_or(0),
        error: row.col("error")?,
    })
}

pub(crate) fn queue_entry_from_row(r: &impl Cols) -> StoreResult<QueueEntry> {
    let dead: i64 = r.col("dead")?;
    Ok(QueueEntry {
        record_id: r.col("record_id")?,
        dead: dead != 0,
        attempts: r.col("attempts")?,
        next_at_ms: r.col("next_at")?,
        last_error: r.col("last_error")?,
        failing_since: r.col("failing_since")?,
        claimed_by: r.col("claimed_by")?,
    })
}

pub(crate) fn connection_from_row(row: &impl Cols) -> StoreResult<StoredConnection> {
    Ok(StoredConnection {
        name: row.col("name")?,
        api_url: row.col("api_url")?,
        content_url: row.col("content_url")?,
        notify_url: row.col("notify_url")?,
        root: row.col("root")?,
        token_ciphertext: row.col("token_ciphertext")?,
        refresh_ciphertext: row.col("refresh_ciphertext")?,
        app_key: row.col("app_key")?,
        app_secret_ciphertext: row.col("app_secret_ciphertext")?,
        needs_reconnect: row.col("needs_reconnect")?,
        disconnecting: row.col::<i64>("disconnecting")? != 0,
        select_user: row.col("select_user")?,
        path_root: row.col("path_root")?,
        account: match row.col::<Option<String>>("account_id")? {
            Some(id) => Some(crate::ConnectionAccount {
                id,
                name: row
                    .col::<Option<String>>("account_name")?
                    .unwrap_or_default(),
                email: row
                    .col::<Option<String>>("account_email")?
                    .unwrap_or_default(),
            }),
            None => None,
        },
        app_access: row.col("app_access")?,
    })
}

pub(crate) fn pending_from_row(r: &impl Cols) -> StoreResult<PendingConnection> {
    Ok(PendingConnection {
        id: r.col("id")?,
        session_hash: r.col("session_hash")?,
        connection: r.col("connection")?,
        root: r.col("root")?,
        api_url: r.col("api_url")?,
        content_url: r.col("content_url")?,
        notify_url: r.col("notify_url")?,
        credentials_ciphertext: r.col("credentials_ciphertext")?,
        expires_at: r.col("expires_at")?,
        after_disconnect: r.col::<i64>("after_disconnect")? != 0,
    })
}

pub(crate) fn direction_text(d: Direction) -> &'static str {
    match d {
        Direction::Push => "push",
        Direction::Pull => "pull",
        Direction::Both => "both",
    }
}

pub(crate) fn map_from_row(r: &impl Cols) -> StoreResult<FolderMap> {
    let direction: String = r.col("direction")?;
    Ok(FolderMap {
        id: r.col("id")?,
        record_id: r.col("record_id")?,
        connection: r.col("connection")?,
        folder_id: r.col("folder_id")?,
        path: r.col("folder_display")?,
        direction: match direction.as_str() {
            "push" => Direction::Push,
            "pull" => Direction::Pull,
            "both" => Direction::Both,
            other => return Err(StoreError::Corrupt(format!("unknown direction {other:?}"))),
        },
        pull_subfolders: r.col::<i64>("pull_subfolders")? != 0,
    })
}

pub(crate) fn oauth_state_from_row(r: &impl Cols) -> StoreResult<OAuthState> {
    Ok(OAuthState {
        state: r.col("state")?,
        connection: r.col("connection")?,
        root: r.col("root")?,
        api_url: r.col("api_url")?,
        content_url: r.col("content_url")?,
        notify_url: r.col("notify_url")?,
        select_user: r.col("select_user")?,
        path_root: r.col("path_root")?,
        verifier_ciphertext: r.col("verifier_ciphertext")?,
        created_at: r.col("created_at")?,
        expires_at: r.col("expires_at")?,
        session_hash: r.col("session_hash")?,
    })
}

pub(crate) fn process_from_row(r: &impl Cols) -> StoreResult<ProcessInfo> {
    Ok(ProcessInfo {
        id: r.col("id")?,
        host: r.col("host")?,
        pid: r.col("pid")?,
        boot_token: r.col("boot_token")?,
        started_at: r.col("started_at")?,
        heartbeat_at: r.col("heartbeat_at")?,
    })
}

pub(crate) fn task_from_row(r: &impl Cols) -> StoreResult<Task> {
    Ok(Task {
        record_id: r.col("record_id")?,
        generation: r.col("generation")?,
        attempts: r.col("attempts")?,
        failing_since: r.col("failing_since")?,
        priority: Priority::from_stored(r.col("priority")?),
    })
}

/// Claimed tasks, most urgent first: `RETURNING` keeps no order, so the rows carry their
/// sort key (`priority`, `next_at`, `enqueued_at`, `record_id`).
pub(crate) fn claimed_in_order<R: Cols>(rows: &[R]) -> StoreResult<Vec<Task>> {
    let mut keyed = rows
        .iter()
        .map(|r| {
            let key: (i64, i64, i64) =
                (r.col("priority")?, r.col("next_at")?, r.col("enqueued_at")?);
            Ok((key, task_from_row(r)?))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    keyed.sort_by_key(|(key, task)| (*key, task.record_id));
    Ok(keyed.into_iter().map(|(_, task)| task).collect())
}

pub(crate) fn record_summary_from_row(r: &impl Cols) -> StoreResult<RecordSummary> {
    Ok(RecordSummary {
        id: r.col("id")?,
        kind: r.col("kind")?,
        key: r.col("key")?,
        attachments: r.count("attachments")?,
        files: SyncCounts {
            synced: r.count("synced")?,
            pending: r.count("pending")?,
            failed: r.count("failed")?,
        },
        queued: r.flag("queued")?,
        dead: r.flag("dead")?,
    })
}

pub(crate) fn tree_file_from_row(r: &impl Cols) -> StoreResult<TreeFile> {
    Ok(TreeFile {
        path: r.col("path")?,
        record_id: r.col("record_id")?,
        kind: r.col("kind")?,
        key: r.col("key")?,
        attachment: r.col("attachment")?,
        size: r.col::<Option<i64>>("size")?.map(|s| s as u64),
        state: state_of(r)?,
    })
}

pub(crate) fn tree_folder_from_row(r: &impl Cols) -> StoreResult<TreeFolder> {
    Ok(TreeFolder {
        path: r.col("path")?,
        kind: r.col("kind")?,
        key: r.col("key")?,
    })
}

pub(crate) fn admin_from_row(r: &impl Cols) -> StoreResult<AdminAccount> {
    Ok(AdminAccount {
        name: r.col("name")?,
        password_hash: r.col("password_hash")?,
        created_at: r.col("created_at")?,
        updated_at: r.col("updated_at")?,
    })
}

pub(crate) fn session_from_row(r: &impl Cols) -> StoreResult<AdminSession> {
    Ok(AdminSession {
        id_hash: r.col("id_hash")?,
        admin: r.col("admin")?,
        csrf: r.col("csrf")?,
        created_at: r.col("created_at")?,
        expires_at: r.col("expires_at")?,
    })
}

/// The `events` column: `*` or `,a,b,` (so `LIKE '%,a,%'` finds a subscriber).
pub(crate) fn events_column(events: &[String]) -> String {
    if events.iter().any(|e| e == "*") {
        "*".to_owned()
    } else {
        format!(",{},", events.join(","))
    }
}

fn events_from_column(column: &str) -> Vec<String> {
    if column == "*" {
        return vec!["*".to_owned()];
    }
    column
        .split(',')
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn webhook_from_row(r: &impl Cols) -> StoreResult<StoredWebhook> {
    Ok(StoredWebhook {
        id: r.col("id")?,
        url: r.col("url")?,
        events: events_from_column(&r.col::<String>("events")?),
        secret_ciphertext: r.col("secret_ciphertext")?,
        created_at: r.col("created_at")?,
    })
}

pub(crate) fn due_delivery_from_row(r: &impl Cols) -> StoreResult<DueDelivery> {
    Ok(DueDelivery {
        id: r.col("id")?,
        subscription_id: r.col("subscription_id")?,
        url: r.col("url")?,
        secret_ciphertext: r.col("secret_ciphertext")?,
        event_id: r.col("event_id")?,
        payload: r.col("payload")?,
        attempts: r.col("attempts")?,
    })
}

pub(crate) fn delivery_from_row(r: &impl Cols) -> StoreResult<DeliveryView> {
    let state: String = r.col("state")?;
    Ok(DeliveryView {
        id: r.col("id")?,
        event_id: r.col("event_id")?,
        event_type: r.col("event_type")?,
        next_at: (state == "pending").then(|| r.col("next_at")).transpose()?,
        state,
        attempts: r.col("attempts")?,
        last_status: r.col("last_status")?,
        last_error: r.col("last_error")?,
        delivered_at: r.col("delivered_at")?,
    })
}

pub(crate) fn link_target_from_row(connection: &str, r: &impl Cols) -> StoreResult<LinkTarget> {
    Ok(LinkTarget {
        connection: connection.to_owned(),
        item: r.col("item")?,
        record_id: r.col("record_id")?,
        binding_id: r.col("binding_id")?,
        folder: r.col("folder_display")?,
        rel: r.col("rel_display")?,
        attempts: u32::try_from(r.col::<i64>("attempts")?).unwrap_or(u32::MAX),
    })
}

pub(crate) fn stored_link_from_row(r: &impl Cols) -> StoreResult<StoredLink> {
    Ok(StoredLink {
        connection: r.col("connection")?,
        item: r.col("item")?,
        url: r.col("url")?,
        audience: r.col("audience")?,
        expires_at: r.col("expires_at")?,
        error: r.col("error")?,
    })
}

pub(crate) fn offload_candidate_from_row(
    connection: &str,
    r: &impl Cols,
) -> StoreResult<OffloadCandidate> {
    Ok(OffloadCandidate {
        attachment_id: r.col("id")?,
        record_id: r.col("record_id")?,
        content_hash: r.col("content_hash")?,
        size: r.count("size")?,
        connection: connection.to_owned(),
        rev: r.col("rev")?,
    })
}

pub(crate) fn duty_from_row(r: &impl Cols) -> StoreResult<Duty> {
    Ok(Duty {
        name: r.col("name")?,
        holder: r.col("holder")?,
        until_ms: r.col("until_ms")?,
    })
}
