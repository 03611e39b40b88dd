//! Plain data passed in and out of the store.

use ferry_core::model::{AttachmentId, RecordId, Side};
use ferry_core::rules::RuleSpec;
use serde::Serialize;

/// What the application sends to create or update a record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordInput {
    /// Record kind.
    pub kind: String,
    /// Record key within the kind.
    pub key: String,
    /// Fields; must be a JSON object.
    pub fields: serde_json::Value,
    /// Parent record id, if any.
    pub parent_id: Option<RecordId>,
}

/// A new or replaced attachment (content already in the blob store).
#[derive(Debug, Clone, PartialEq)]
pub struct AttachmentInput {
    /// Owning record.
    pub record_id: RecordId,
    /// File name, unique within the record.
    pub name: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Content hash of the content.
    pub content_hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Where an imported file sits in its binding's folder.
    pub origin_path: Option<String>,
    /// Who wrote this content. Replacing a version the *other* side wrote (or a Dropbox
    /// version by a newer one) archives the replaced version in the same transaction.
    pub source: Side,
    /// `If-Match`: the write happens only if the current content hash is this one (`*`:
    /// only if the attachment exists).
    pub if_match: Option<String>,
}

/// The result of an upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Upserted<T> {
    /// The stored value.
    pub value: T,
    /// False when the stored value was already identical.
    pub changed: bool,
}

/// A Dropbox connection as stored: endpoints, root folder, encrypted token.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConnection {
    /// Unique name rules refer to.
    pub name: String,
    /// Base URL standing in for `https://api.dropboxapi.com`.
    pub api_url: String,
    /// Base URL standing in for `https://content.dropboxapi.com`.
    pub content_url: String,
    /// Base URL standing in for `https://notify.dropboxapi.com`.
    pub notify_url: String,
    /// Folder all rule paths are under (`""` or `/Something`).
    pub root: String,
    /// Access token, encrypted by [`crate::SecretCipher`] (empty for OAuth connections).
    pub token_ciphertext: Vec<u8>,
    /// OAuth refresh token, encrypted.
    pub refresh_ciphertext: Option<Vec<u8>>,
    /// OAuth app key.
    pub app_key: Option<String>,
    /// OAuth app secret, encrypted (`None` for PKCE apps).
    pub app_secret_ciphertext: Option<Vec<u8>>,
    /// Why the connection needs to be reconnected (Dropbox refused its token), if it does.
    pub needs_reconnect: Option<String>,
    /// Being disconnected (reverse sync in progress).
    pub disconnecting: bool,
    /// For a team token: the member it acts as (`dbmid:…`, `Dropbox-API-Select-User`).
    pub select_user: Option<String>,
    /// Where paths start: `root:<namespace id>` (the team space), `namespace:<id>`, or
    /// `None` for the account's home.
    pub path_root: Option<String>,
    /// The Dropbox account it was last connected to: id (`dbid:…`), display name, e-mail.
    pub account: Option<ConnectionAccount>,
    /// What its Dropbox app can reach: `full_dropbox` or `app_folder` (`None`: not known).
    pub app_access: Option<String>,
}

/// Who a connection's token belongs to, as Dropbox said when it was connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionAccount {
    /// `dbid:…`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// E-mail address.
    pub email: String,
}

/// Where a file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Dropbox holds the content Ferry wants there.
    Synced,
    /// Work is queued or running.
    Pending,
    /// The last attempt failed; see `last_error`.
    Failed,
}

impl SyncState {
    /// Database spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::Pending => "pending",
            SyncState::Failed => "failed",
        }
    }

    /// Parses the database spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "synced" => SyncState::Synced,
            "pending" => SyncState::Pending,
            "failed" => SyncState::Failed,
            _ => return None,
        })
    }
}

/// One file of a binding: its synced state (when `rev` is set) and its status; or, without a
/// binding, a file that could not be placed at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncRow {
    /// Store id; 0 before the first save.
    pub id: i64,
    /// Owning record.
    pub record_id: RecordId,
    /// The binding, if the file could be placed.
    pub binding_id: Option<i64>,
    /// Rule that placed it.
    pub rule_name: String,
    /// Connection it lives in.
    pub connection: String,
    /// Source attachment; `None` once the attachment was removed or archived.
    pub attachment_id: Option<AttachmentId>,
    /// Path relative to the binding's folder, as shown.
    pub rel_display: Option<String>,
    /// Comparison key of that path.
    pub rel_lower: Option<String>,
    /// Dropbox file id.
    pub dropbox_id: Option<String>,
    /// Revision both sides agreed on; `None` if never synced.
    pub rev: Option<String>,
    /// Content hash both sides agreed on.
    pub content_hash: Option<String>,
    /// Where it stands.
    pub state: SyncState,
    /// What went wrong last, if anything.
    pub last_error: Option<String>,
    /// Last change, ms since the epoch.
    pub updated_at: i64,
}

/// A record's folder in Dropbox through one rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// Store id; 0 before the first save.
    pub id: i64,
    /// The record.
    pub record_id: RecordId,
    /// The rule.
    pub rule_name: String,
    /// The connection.
    pub connection: String,
    /// Absolute Dropbox folder, as shown.
    pub folder_display: String,
    /// Its comparison key.
    pub folder_lower: String,
    /// Set while the binding is paused (mass-deletion brake), with the reason.
    pub paused_reason: Option<String>,
    /// An admin confirmed the pending deletions.
    pub confirm_deletions: bool,
    /// When an admin last confirmed deletions (ms): the brake's window starts no earlier.
    pub deletions_confirmed_at: i64,
}

/// An attachment version that left its record, content kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArchivedAttachment {
    /// Store id.
    pub id: i64,
    /// The record it belonged to.
    #[schema(value_type = i64)]
    pub record_id: RecordId,
    /// Its name.
    pub name: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its content.
    pub content_hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Why it was archived.
    pub reason: String,
    /// When, ms since the epoch.
    pub archived_at: i64,
    /// Where it sat in its binding's folder, if it came from Dropbox.
    pub origin_path: Option<String>,
    /// Who wrote it.
    pub source: Side,
}

/// One executed sync action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    /// Store id (0 when writing).
    pub id: i64,
    /// When, ms since the epoch.
    pub at: i64,
    /// Connection.
    pub connection: String,
    /// Binding.
    pub binding_id: Option<i64>,
    /// Record.
    #[schema(value_type = i64)]
    pub record_id: RecordId,
    /// Dropbox path.
    pub path: String,
    /// What was done (`upload`, `delete`, `import`, ...).
    pub action: String,
    /// `ok`, `failed` or `skipped`.
    pub outcome: String,
    /// Bytes moved.
    pub bytes: u64,
    /// How long it took.
    pub duration_ms: u64,
    /// The error, if it failed.
    pub error: Option<String>,
}

/// A file in a connection's Dropbox tree as Ferry knows it (a sync row), for browsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeFile {
    /// Full Dropbox path as created.
    pub path: String,
    /// The record it belongs to.
    #[serde(skip)]
    pub record_id: RecordId,
    /// The record's kind.
    pub kind: String,
    /// The record's key.
    pub key: String,
    /// The attachment it syncs (`None`: only in Dropbox, not yet imported).
    pub attachment: Option<String>,
    /// The attachment's size.
    pub size: Option<u64>,
    /// Where it stands.
    pub state: SyncState,
}

/// A record folder (binding) in a connection's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeFolder {
    /// Full Dropbox path.
    pub path: String,
    /// The record it belongs to.
    pub kind: String,
    /// The record's key.
    pub key: String,
}

/// An existing Dropbox folder mapped to a record by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FolderMap {
    /// Store id (its binding is `map:<id>`).
    pub id: i64,
    /// The record.
    #[serde(skip)]
    #[schema(ignore)]
    pub record_id: RecordId,
    /// The connection the folder is in.
    pub connection: String,
    /// The folder's Dropbox id (`id:…`): renames are followed by it.
    pub folder_id: String,
    /// Where the folder was last seen.
    pub path: String,
    /// Which way files flow.
    pub direction: ferry_core::sync_plan::Direction,
    /// When pulling, also files in its subfolders.
    pub pull_subfolders: bool,
}

/// What the log saw in one stretch of time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ActivityBucket {
    /// Its start, ms since the epoch.
    pub start_ms: i64,
    /// Actions that succeeded.
    pub ok: u64,
    /// Actions that failed.
    pub failed: u64,
    /// Bytes moved.
    pub bytes: u64,
}

/// Sync rows by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SyncCounts {
    /// Rows in [`SyncState::Synced`].
    pub synced: u64,
    /// Rows in [`SyncState::Pending`].
    pub pending: u64,
    /// Rows in [`SyncState::Failed`].
    pub failed: u64,
}

/// Queue priority classes, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Bringing files back before a connection or rule changes target.
    Reverse = 0,
    /// Work others wait for (changes seen in Dropbox, parents before children).
    Blocking = 1,
    /// A record's own change (the app wrote it or its files), and everything else.
    Normal = 2,
    /// Many records queued at once by one change (a rule or a connection added or changed,
    /// a reconciliation's finds): a back-fill, which a record's own change overtakes.
    Bulk = 3,
}

impl Priority {
    /// The class stored as `value` (a value no class has reads as [`Priority::Normal`]).
    pub fn from_stored(value: i64) -> Priority {
        match value {
            0 => Priority::Reverse,
            1 => Priority::Blocking,
            3 => Priority::Bulk,
            _ => Priority::Normal,
        }
    }
}

/// A claimed queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The record to sync.
    pub record_id: RecordId,
    /// Bumped on every enqueue; tells whether the task was re-queued while it ran.
    pub generation: i64,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When the current run of failures began (ms), if the task is failing.
    pub failing_since: Option<i64>,
    /// The queue class it was claimed in.
    pub priority: Priority,
}

/// A process that runs an engine on this database and may hold queue claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProcessInfo {
    /// Unique per engine instance.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Operating-system process id.
    pub pid: i64,
    /// Unique per operating-system process (tells a reused pid apart).
    pub boot_token: String,
    /// When it started, ms since the epoch.
    pub started_at: i64,
    /// Its last heartbeat, ms since the epoch.
    pub heartbeat_at: i64,
}

/// Queue summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueStats {
    /// Queued records.
    pub queued: u64,
    /// Of those, how many failed at least once.
    pub retrying: u64,
    /// Tasks that failed too often and wait for an admin.
    pub dead: u64,
    /// Earliest due time, ms since the epoch.
    pub next_due_ms: Option<i64>,
}

/// A record's place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QueueEntry {
    /// The record.
    #[schema(value_type = i64)]
    pub record_id: RecordId,
    /// Dead-lettered: no more attempts until re-queued.
    pub dead: bool,
    /// Failed attempts so far.
    pub attempts: i64,
    /// When the next attempt is due, ms since the epoch.
    pub next_at_ms: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Since when its passes have been failing (ms), if they are.
    pub failing_since: Option<i64>,
    /// The process running it now, if claimed.
    pub claimed_by: Option<String>,
}

/// One synced file of a connection, with the attachment it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedFileScan {
    /// The record.
    pub record_id: RecordId,
    /// The binding's folder (comparison key).
    pub folder_lower: String,
    /// The file's path inside it (comparison key).
    pub rel_lower: String,
    /// Revision both sides agreed on.
    pub rev: String,
    /// Content hash both sides agreed on.
    pub content_hash: String,
    /// Whether the row is in the `synced` state.
    pub synced: bool,
    /// When the row was last written (ms since the epoch).
    pub updated_at: i64,
}

/// What saving or deleting a rule did: the rule it replaced (or removed), and how many
/// records it queued in the same transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    /// The stored rule of that name before the change, if there was one.
    pub previous: Option<RuleSpec>,
    /// Records queued for a pass.
    pub queued: u64,
}

/// Which records a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only keys containing this text (case-insensitive).
    pub key_contains: Option<String>,
    /// Only records in this state.
    pub state: Option<RecordState>,
    /// Only records with an id above this one (the previous page's last id).
    pub after_id: RecordId,
    /// At most this many.
    pub limit: u32,
}

/// A record's state as a listing filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordState {
    /// Every file synced and nothing queued.
    Synced,
    /// Queued for a pass, or a file is pending.
    Pending,
    /// A file failed, or the record is dead-lettered.
    Failed,
    /// Dead-lettered: waits for an admin.
    Dead,
}

/// One record of a listing, with its sync summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecordSummary {
    /// Store id (the paging cursor).
    #[serde(skip)]
    #[schema(ignore)]
    pub id: RecordId,
    /// Its kind.
    pub kind: String,
    /// Its key.
    pub key: String,
    /// How many attachments it has.
    pub attachments: u64,
    /// Its files by state.
    pub files: SyncCounts,
    /// Whether a pass is queued.
    pub queued: bool,
    /// Whether it is dead-lettered.
    pub dead: bool,
}

/// Which log entries to return, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only this connection.
    pub connection: Option<String>,
    /// Only this record.
    pub record_id: Option<RecordId>,
    /// Only this action (`upload`, `delete`, ...).
    pub action: Option<String>,
    /// Only this outcome (`ok`, `failed`, `skipped`).
    pub outcome: Option<String>,
    /// Only entries at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Only entries before this time (ms).
    pub until_ms: Option<i64>,
    /// Only entries with an id below this one (the previous page's last id).
    pub before_id: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// A log entry with the record it concerns named by kind and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    /// The entry.
    #[serde(flatten)]
    pub entry: LogEntry,
    /// The record's kind (`None` once the record was deleted).
    pub kind: Option<String>,
    /// The record's key.
    pub key: Option<String>,
}

/// A webhook subscription as stored (its secret encrypted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    /// Store id.
    pub id: i64,
    /// Where events are POSTed.
    pub url: String,
    /// Event types it receives (`["*"]`: all).
    pub events: Vec<String>,
    /// The signing secret, encrypted.
    pub secret_ciphertext: Vec<u8>,
    /// When it was created, ms since the epoch.
    pub created_at: i64,
}

/// A delivery due to be sent, with what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    /// Delivery id.
    pub id: i64,
    /// Its subscription.
    pub subscription_id: i64,
    /// Where to send it.
    pub url: String,
    /// The subscription's signing secret, encrypted.
    pub secret_ciphertext: Vec<u8>,
    /// The event's id (`webhook-id`).
    pub event_id: String,
    /// The event as JSON (the request body).
    pub payload: String,
    /// Attempts made so far.
    pub attempts: i64,
}

/// A delivery as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryView {
    /// Delivery id (for redelivery).
    pub id: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (given up; redeliver to try again).
    pub state: String,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (ms), while pending.
    pub next_at: Option<i64>,
    /// The receiver's last HTTP status.
    pub last_status: Option<i64>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// When it was delivered (ms).
    pub delivered_at: Option<i64>,
}

/// A file or record folder that wants a shared link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The connection.
    pub connection: String,
    /// A file's Dropbox id, or `binding:<id>` for a record folder.
    pub item: String,
    /// The record.
    pub record_id: RecordId,
    /// Its binding.
    pub binding_id: i64,
    /// The record folder in Dropbox.
    pub folder: String,
    /// The file's path inside it (`None`: the folder itself).
    pub rel: Option<String>,
    /// Failed tries so far.
    pub attempts: u32,
}

impl LinkTarget {
    /// The item's path in Dropbox.
    pub fn path(&self) -> String {
        match &self.rel {
            Some(rel) => format!("{}/{rel}", self.folder.trim_end_matches('/')),
            None => self.folder.clone(),
        }
    }
}

/// What making a link gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkResult {
    /// The link.
    Made {
        /// The link.
        url: String,
        /// Who it lets in, as Dropbox resolved it.
        audience: Option<String>,
        /// When it stops working, ms since the epoch.
        expires_at: Option<i64>,
        /// How long the call took.
        duration_ms: u64,
    },
    /// Dropbox refused or failed; try again at `retry_at_ms`.
    Failed {
        /// Why.
        error: String,
        /// When to try again.
        retry_at_ms: i64,
        /// How long the call took.
        duration_ms: u64,
    },
}

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct StoredLink {
    /// The connection.
    pub connection: String,
    /// A file's Dropbox id, or `binding:<id>` for a record folder.
    pub item: String,
    /// The link, once made.
    pub url: Option<String>,
    /// Who it lets in (`public`, `team`…), as Dropbox resolved it.
    pub audience: Option<String>,
    /// When it stops working, ms since the epoch.
    pub expires_at: Option<i64>,
    /// Why the last try failed.
    pub error: Option<String>,
}

/// An attachment Dropbox holds exactly (see [`crate::OffloadStore::offload_candidates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffloadCandidate {
    /// The attachment.
    pub attachment_id: AttachmentId,
    /// Its record.
    pub record_id: RecordId,
    /// Its content.
    pub content_hash: String,
    /// Its size.
    pub size: u64,
    /// The connection holding it.
    pub connection: String,
    /// The revision holding it.
    pub rev: String,
}

/// Content held by Ferry and offloaded to Dropbox, over current attachments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ContentTotals {
    /// Attachments whose content Ferry holds.
    pub stored_files: u64,
    /// Their bytes.
    pub stored_bytes: u64,
    /// Attachments whose content only Dropbox holds (offloaded).
    pub offloaded_files: u64,
    /// Their bytes.
    pub offloaded_bytes: u64,
}

/// A connect flow in progress: where the authorize link was for, and the PKCE verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthState {
    /// The `state` sent to Dropbox (random, single use).
    pub state: String,
    /// The connection it connects.
    pub connection: String,
    /// Its root folder.
    pub root: String,
    /// Dropbox hosts.
    pub api_url: String,
    /// Dropbox hosts.
    pub content_url: String,
    /// Dropbox hosts.
    pub notify_url: String,
    /// Team member to act as.
    pub select_user: Option<String>,
    /// `home`, `team` or a namespace id.
    pub path_root: Option<String>,
    /// The PKCE code verifier, encrypted.
    pub verifier_ciphertext: Vec<u8>,
    /// When the link was made, ms.
    pub created_at: i64,
    /// When it stops working, ms.
    pub expires_at: i64,
    /// SHA-256 (hex) of the console session that started it, if one did: the callback then
    /// needs that same session (a link started from the API or CLI carries none).
    pub session_hash: Option<String>,
}

/// An admin who signs in to the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccount {
    /// Login name.
    pub name: String,
    /// Argon2id hash in PHC string form.
    pub password_hash: String,
    /// When the account was made, ms.
    pub created_at: i64,
    /// When its password last changed, ms.
    pub updated_at: i64,
}

/// Credentials waiting in the console: a team token for its member to be picked, or another
/// account's for a confirmed account switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConnection {
    /// Random id (in the picker's URL).
    pub id: String,
    /// The console session it belongs to (SHA-256 of its token).
    pub session_hash: String,
    /// The connection's name.
    pub connection: String,
    /// Its root folder.
    pub root: String,
    /// Dropbox hosts.
    pub api_url: String,
    /// Dropbox hosts.
    pub content_url: String,
    /// Dropbox hosts.
    pub notify_url: String,
    /// The credentials (token or refresh token), encrypted.
    pub credentials_ciphertext: Vec<u8>,
    /// When it is forgotten, ms.
    pub expires_at: i64,
    /// A confirmed account switch: connect once the old account's connection is gone.
    pub after_disconnect: bool,
}

/// A signed-in console session, found by the SHA-256 of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSession {
    /// SHA-256 (hex) of the session token the browser holds.
    pub id_hash: String,
    /// Who is signed in.
    pub admin: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// When it began, ms.
    pub created_at: i64,
    /// When it ends, ms.
    pub expires_at: i64,
}

/// A job one process runs for the whole installation, and its holder (see
/// [`QueueStore::hold_duty`](crate::QueueStore::hold_duty)).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Duty {
    /// The job: `watch:<connection>`, `reconcile`, `webhooks`, `shared links`, `offload`,
    /// `backups`.
    pub name: String,
    /// The process holding it (a process id of `GET /v1/status`'s processes).
    pub holder: String,
    /// When its lease ends unless the holder's heartbeat renews it (Unix ms).
    pub until_ms: i64,
}

/// A file in a connection's mirror of its Dropbox tree (paths absolute, as Dropbox gives them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorFile {
    /// Lower-cased path (the key).
    pub path_lower: String,
    /// Path with its casing.
    pub path_display: String,
    /// Stable Dropbox id.
    pub id: String,
    /// Revision.
    pub rev: String,
    /// Size in bytes.
    pub size: u64,
    /// Dropbox content hash.
    pub content_hash: Option<String>,
}

/// One entry of a full listing or of the change feed, as the mirror applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorChange {
    /// A file is at this path now.
    File(MirrorFile),
    /// A folder is at this path: no file is.
    Folder {
        /// Lower-cased path.
        path_lower: String,
    },
    /// Nothing is at this path or under it any more.
    Deleted {
        /// Lower-cased path.
        path_lower: String,
    },
}

/// One page of the change feed, applied to the mirror with its cursor and the records it
/// concerns in one transaction.
#[derive(Debug, Clone, Copy)]
pub struct FeedPage<'a> {
    /// The connection.
    pub connection: &'a str,
    /// The root the cursor was read under.
    pub root: &'a str,
    /// The cursor the page was read from.
    pub from: &'a str,
    /// The cursor after the page.
    pub to: &'a str,
    /// The page's entries, in the feed's order.
    pub changes: &'a [MirrorChange],
    /// Records whose folders the page touches: queued (as [`Priority::Blocking`]).
    pub records: &'a [RecordId],
    /// Until when (ms) the mirror counts as followed.
    pub live_until_ms: i64,
}

/// What a listing read at one path, to correct the mirror with only if the mirror still holds
/// what the listing's reader knew there (so a newer entry from the feed is never undone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorCorrection {
    /// Lower-cased path.
    pub path_lower: String,
    /// The revision the mirror is expected to hold there (`None`: no file).
    pub was_rev: Option<String>,
    /// What the listing found there (`None`: no file).
    pub now: Option<MirrorFile>,
}
