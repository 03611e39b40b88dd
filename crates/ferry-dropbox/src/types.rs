//! The small, SDK-independent view of Dropbox entries the rest of Ferry works with.

use dropbox_sdk::files;

/// How an upload treats an existing file at the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Never replace different content (identical content is not a conflict).
    Add,
    /// Replace whatever is there.
    Overwrite,
    /// Replace only the given revision; anything newer is a conflict.
    Update(String),
}

impl From<&WriteMode> for files::WriteMode {
    fn from(mode: &WriteMode) -> Self {
        match mode {
            WriteMode::Add => files::WriteMode::Add,
            WriteMode::Overwrite => files::WriteMode::Overwrite,
            WriteMode::Update(rev) => files::WriteMode::Update(rev.clone()),
        }
    }
}

/// A file in Dropbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Stable Dropbox id (`id:...`).
    pub id: String,
    /// Name with its casing.
    pub name: String,
    /// Path for display.
    pub path_display: String,
    /// Lower-cased path.
    pub path_lower: String,
    /// Revision.
    pub rev: String,
    /// Size in bytes.
    pub size: u64,
    /// Dropbox content hash.
    pub content_hash: Option<String>,
}

/// A folder in Dropbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderInfo {
    /// Stable Dropbox id.
    pub id: String,
    /// Name with its casing.
    pub name: String,
    /// Path for display.
    pub path_display: String,
    /// Lower-cased path.
    pub path_lower: String,
}

/// One entry of a listing or a metadata call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A file.
    File(FileInfo),
    /// A folder.
    Folder(FolderInfo),
    /// Something that was at this path is gone.
    Deleted {
        /// Last component.
        name: String,
        /// Path for display.
        path_display: String,
        /// Lower-cased path.
        path_lower: String,
    },
}

impl Entry {
    /// Lower-cased path of the entry.
    pub fn path_lower(&self) -> &str {
        match self {
            Entry::File(f) => &f.path_lower,
            Entry::Folder(f) => &f.path_lower,
            Entry::Deleted { path_lower, .. } => path_lower,
        }
    }

    /// Display path of the entry.
    pub fn path_display(&self) -> &str {
        match self {
            Entry::File(f) => &f.path_display,
            Entry::Folder(f) => &f.path_display,
            Entry::Deleted { path_display, .. } => path_display,
        }
    }
}

/// A page of `list_folder` results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Entries in the order Dropbox gave them (apply in order).
    pub entries: Vec<Entry>,
    /// Cursor for the next page or the next changes.
    pub cursor: String,
    /// True if another page follows right away.
    pub has_more: bool,
}

/// Who the token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// `dbid:...`.
    pub account_id: String,
    /// Display name.
    pub display_name: String,
    /// E-mail address.
    pub email: String,
    /// A Dropbox Business (team) account.
    pub business: bool,
    /// The member id within its team, if any.
    pub team_member_id: Option<String>,
    /// The namespace at the top of what the account sees (a team's space for team members
    /// in a team space).
    pub root_namespace_id: String,
    /// The account's own home namespace.
    pub home_namespace_id: String,
}

/// An account's storage: bytes used and allocated (`users/get_space_usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceUsage {
    /// Bytes used.
    pub used: u64,
    /// Bytes allocated, if Dropbox said (a newer kind of allocation: `None`).
    pub allocated: Option<u64>,
    /// The allocation is the team's, shared by its members.
    pub team: bool,
}

/// Where paths start (`Dropbox-API-Path-Root`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRoot {
    /// The member's home (the default).
    Home,
    /// Everything the member sees from the team's root namespace (the team space).
    Root(String),
    /// One namespace the member can reach (a team folder, a shared folder).
    Namespace(String),
}

impl PathRoot {
    /// As stored: `root:<id>` or `namespace:<id>`; `None` for home.
    pub fn to_stored(&self) -> Option<String> {
        match self {
            PathRoot::Home => None,
            PathRoot::Root(ns) => Some(format!("root:{ns}")),
            PathRoot::Namespace(ns) => Some(format!("namespace:{ns}")),
        }
    }

    /// Reads what [`PathRoot::to_stored`] wrote (`None` for anything else).
    pub fn from_stored(text: &str) -> Option<PathRoot> {
        match text.split_once(':') {
            Some(("root", ns)) => Some(PathRoot::Root(ns.to_owned())),
            Some(("namespace", ns)) => Some(PathRoot::Namespace(ns.to_owned())),
            _ => None,
        }
    }

    /// The header value: the serialised `common.PathRoot` union.
    pub fn header(&self) -> String {
        match self {
            PathRoot::Home => r#"{".tag":"home"}"#.to_owned(),
            PathRoot::Root(ns) => serde_json::json!({".tag": "root", "root": ns}).to_string(),
            PathRoot::Namespace(ns) => {
                serde_json::json!({".tag": "namespace_id", "namespace_id": ns}).to_string()
            }
        }
    }
}

pub(crate) fn file_info(m: files::FileMetadata) -> FileInfo {
    FileInfo {
        path_display: m.path_display.unwrap_or_else(|| m.name.clone()),
        path_lower: m.path_lower.unwrap_or_default(),
        id: m.id,
        name: m.name,
        rev: m.rev,
        size: m.size,
        content_hash: m.content_hash,
    }
}

pub(crate) fn folder_info(m: files::FolderMetadata) -> FolderInfo {
    FolderInfo {
        path_display: m.path_display.unwrap_or_else(|| m.name.clone()),
        path_lower: m.path_lower.unwrap_or_default(),
        id: m.id,
        name: m.name,
    }
}

pub(crate) fn entry(m: files::Metadata) -> Entry {
    match m {
        files::Metadata::File(f) => Entry::File(file_info(f)),
        files::Metadata::Folder(f) => Entry::Folder(folder_info(f)),
        files::Metadata::Deleted(d) => Entry::Deleted {
            path_display: d.path_display.unwrap_or_else(|| d.name.clone()),
            path_lower: d.path_lower.unwrap_or_default(),
            name: d.name,
        },
    }
}
