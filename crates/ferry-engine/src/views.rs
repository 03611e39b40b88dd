//! What the service layer answers: typed views of records, files, rules, connections and the
//! queue. They are the REST API's response bodies (serialised as is, described in its OpenAPI
//! document), so a field added here is an API change.

use ferry_core::model::{Attachment, Side};
use ferry_core::rules::RuleSpec;
use ferry_store::{
    ArchivedAttachment, LogLine, QueueEntry, QueueStats, RecordSummary, SyncCounts, SyncState,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A record named by kind and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    /// The record's kind.
    pub kind: String,
    /// The record's key.
    pub key: String,
}

/// An attachment as the API shows it (content is downloaded separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttachmentView {
    /// File name, unique within the record.
    pub name: String,
    /// Tags the rules select on.
    pub tags: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// Dropbox content hash (also the download's `ETag`).
    pub content_hash: String,
    /// Who wrote the current content.
    pub source: Side,
    /// For a file that came from Dropbox: where it sits in the record's folder
    /// (`Drawings/Level 2/deep.pdf`), which its name alone does not say.
    pub path: Option<String>,
    /// Where to open it in Dropbox, one per place it is synced to (shown with the record).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkView>,
}

/// What kind of link a [`LinkView`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A shared link: whoever it lets in can open it.
    Shared,
    /// The item's place in Dropbox's web pages: only people signed in to the account (or a
    /// team member it is shared with) can open it. Used while the rule's `links` is off or
    /// the shared link is not made yet.
    Home,
}

/// Where to open a file or folder in Dropbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LinkView {
    /// The URL.
    pub url: String,
    /// A shared link or the item's place in Dropbox.
    pub kind: LinkKind,
    /// Who a shared link lets in (`public`, `team`), as Dropbox resolved it.
    pub audience: Option<String>,
    /// When a shared link stops working (ms since the epoch); Ferry makes a new one then.
    pub expires_at: Option<i64>,
    /// Why making the shared link failed last (retried later), if it did.
    pub error: Option<String>,
}

impl LinkView {
    /// The shared link when there is one, else the item's place in Dropbox's web pages.
    pub fn new(stored: Option<&ferry_store::StoredLink>, path: &str) -> LinkView {
        let error = stored.and_then(|l| l.error.clone());
        match stored.and_then(|l| l.url.clone().map(|url| (l, url))) {
            Some((l, url)) => LinkView {
                url,
                kind: LinkKind::Shared,
                audience: l.audience.clone(),
                expires_at: l.expires_at,
                error,
            },
            None => LinkView {
                url: home_url(path),
                kind: LinkKind::Home,
                audience: None,
                expires_at: None,
                error,
            },
        }
    }
}

/// `https://www.dropbox.com/home/<path>`, each part percent-encoded.
fn home_url(path: &str) -> String {
    let mut url = reqwest::Url::parse("https://www.dropbox.com/home").expect("a valid base URL");
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.extend(path.split('/').filter(|p| !p.is_empty()));
    }
    url.to_string()
}

impl From<Attachment> for AttachmentView {
    fn from(a: Attachment) -> Self {
        AttachmentView {
            name: a.name,
            tags: a.tags,
            size: a.size,
            content_hash: a.content_hash,
            source: a.source,
            path: a.origin_path,
            links: Vec::new(),
        }
    }
}

/// A record with its relatives and attachments.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecordView {
    /// The record's kind.
    pub kind: String,
    /// The record's key.
    pub key: String,
    /// Its fields (a JSON object).
    #[schema(value_type = Object)]
    pub fields: serde_json::Value,
    /// Its parent, if any.
    pub parent: Option<RecordRef>,
    /// Records whose parent it is, in key order.
    pub children: Vec<RecordRef>,
    /// Its attachments, in name order.
    pub attachments: Vec<AttachmentView>,
}

/// A record after an upsert.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RecordWritten {
    /// The record as stored.
    #[serde(flatten)]
    pub record: RecordView,
    /// False when nothing differed (no pass queued).
    pub changed: bool,
}

/// An attachment after a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttachmentWritten {
    /// The attachment as stored.
    #[serde(flatten)]
    pub attachment: AttachmentView,
    /// False when content and tags were already these.
    pub changed: bool,
}

/// A page of records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordPage {
    /// The records, in creation order.
    pub records: Vec<RecordSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What deleting a record did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordDeleted {
    /// The record.
    pub deleted: RecordRef,
    /// What happens to its files in Dropbox.
    pub files: crate::service::DeletePolicy,
    /// How many of its files Dropbox holds through Ferry (kept, or going away).
    pub synced_files: u64,
}

/// One record folder (binding) of a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BindingView {
    /// Binding id.
    pub id: i64,
    /// The rule that placed the folder.
    pub rule: String,
    /// The connection it lives in.
    pub connection: String,
    /// The folder in Dropbox.
    pub folder: String,
    /// Why it is paused (the deletion brake), if it is.
    pub paused: Option<String>,
    /// Where to open the folder in Dropbox (a shared link with the rule's `folder_links`).
    pub link: LinkView,
}

/// One file of a record as synced (or failing to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileView {
    /// The attachment it comes from (`None` once removed).
    pub attachment: Option<String>,
    /// The rule that placed it.
    pub rule: String,
    /// The connection.
    pub connection: String,
    /// Its path in Dropbox, once placed.
    pub path: Option<String>,
    /// Content hash both sides agreed on.
    pub content_hash: Option<String>,
    /// Dropbox revision.
    pub rev: Option<String>,
    /// Dropbox file id.
    pub dropbox_id: Option<String>,
    /// Where it stands.
    pub state: SyncState,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// Where to open it in Dropbox, once synced.
    pub link: Option<LinkView>,
}

/// A record's sync state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordSyncView {
    /// The record's kind.
    pub kind: String,
    /// The record's key.
    pub key: String,
    /// Whether a pass is queued.
    pub queued: bool,
    /// Its queue entry.
    pub queue: Option<QueueEntry>,
    /// Its files by state.
    pub summary: SyncCounts,
    /// Its folders.
    pub bindings: Vec<BindingView>,
    /// Its files.
    pub files: Vec<FileView>,
}

/// A record's archived versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ArchiveList {
    /// Newest first.
    pub archived: Vec<ArchivedAttachment>,
}

/// What restoring an archived version did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Restored {
    /// The attachment it became.
    pub restored: AttachmentView,
    /// False when the current attachment already had that content.
    pub changed: bool,
}

/// Deletions confirmed for one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConfirmedBindings {
    /// Paused bindings that may now run their deletions.
    pub confirmed_bindings: u64,
}

/// Deletions confirmed for a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConfirmedRecords {
    /// Records queued to run them.
    pub confirmed_records: u64,
}

/// A pass was queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Queued {
    /// Always true.
    pub queued: bool,
}

/// A rule after it was saved (or would be, for a dry run).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleSaved {
    /// The rule.
    pub rule: RuleSpec,
    /// Records queued for a pass (0 for a dry run).
    pub queued_records: u64,
    /// Overlaps with other rules that were accepted.
    pub warnings: Vec<String>,
    /// True when nothing was stored.
    pub dry_run: bool,
}

/// All rules.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RuleList {
    /// By name.
    pub rules: Vec<RuleSpec>,
}

/// A rule was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RuleRemoved {
    /// Its name.
    pub removed: String,
    /// Records queued (their files placed by it leave Dropbox).
    pub queued_records: u64,
}

/// What a rule would do for one existing record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordPreview {
    /// The record.
    pub record: RecordRef,
    /// Whether the rule's condition holds for it.
    pub applies: bool,
    /// The record's folder in Dropbox (when it applies).
    pub folder: Option<String>,
    /// Its files' paths in Dropbox.
    pub files: Vec<String>,
    /// What a pass would do now (`upload …`, `move folder … -> …`, `delete …`).
    pub actions: Vec<String>,
    /// Why the rule cannot place the record or one of its files.
    pub errors: Vec<String>,
}

/// A rule's preview over existing records; nothing is stored or synced.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RulePreview {
    /// The rule as previewed.
    pub rule: RuleSpec,
    /// Records of its kind.
    pub total_records: u64,
    /// The first records of its kind, in creation order.
    pub records: Vec<RecordPreview>,
    /// Overlaps with other rules.
    pub warnings: Vec<String>,
}

/// A connection as the API shows it (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Its name.
    pub name: String,
    /// Root folder for rule paths.
    pub root: String,
    /// Dropbox API host.
    pub api_url: String,
    /// Dropbox content host.
    pub content_url: String,
    /// Set when Dropbox refused the token: why.
    pub needs_reconnect: Option<String>,
    /// Being disconnected (reverse sync running).
    pub disconnecting: bool,
    /// The team member a team token acts as.
    pub select_user: Option<String>,
    /// Where `root` is: `home`, or the namespace (`root:<id>` for the team space,
    /// `namespace:<id>`).
    pub path_root: String,
    /// The Dropbox account it was last connected to (none for connections saved before
    /// Ferry kept it).
    pub account: Option<AccountView>,
    /// Connected through OAuth (a refresh token Ferry renews) rather than a pasted token.
    pub oauth: bool,
    /// What its Dropbox app can reach (absent when nobody said: a pasted token, or a
    /// connection saved before Ferry kept it).
    pub app_access: Option<crate::connections::AppAccess>,
}

/// All connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConnectionList {
    /// By name.
    pub connections: Vec<ConnectionView>,
}

/// The Dropbox account behind a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccountView {
    /// Dropbox account id.
    pub account_id: String,
    /// The account holder's name.
    pub display_name: String,
    /// Their email.
    pub email: String,
}

/// A connection after it was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConnectionSaved {
    /// Its name.
    pub name: String,
    /// Its root.
    pub root: String,
    /// The account the token belongs to.
    pub account: AccountView,
}

/// A connection is being disconnected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Disconnecting {
    /// Its name.
    pub disconnecting: String,
    /// Records whose Dropbox-only files come back first.
    pub records_to_bring_back: u64,
}

/// Queue and file counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusView {
    /// The queue.
    pub queue: QueueStats,
    /// Files by state.
    pub files: SyncCounts,
    /// Attachment content held by Ferry and offloaded to Dropbox.
    pub content: ferry_store::ContentTotals,
    /// The Ferry processes working on this database (several share one PostgreSQL).
    pub processes: Vec<ferry_store::ProcessInfo>,
    /// The jobs one process runs for the whole installation, and which process holds each.
    pub duties: Vec<ferry_store::Duty>,
}

/// A page of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LogPage {
    /// Newest first.
    pub entries: Vec<LogLine>,
    /// Pass as `cursor` for older entries; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Dead-lettered records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeadList {
    /// Their queue entries.
    pub dead: Vec<QueueEntry>,
}

/// Dead letters re-queued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Requeued {
    /// How many.
    pub requeued: u64,
}

/// Something was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Removed {
    /// Its name.
    pub removed: String,
}
