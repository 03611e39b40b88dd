//! The records and attachments applications tell Ferry about.

use serde::{Deserialize, Serialize};

/// Store identifier of a record.
pub type RecordId = i64;
/// Store identifier of an attachment.
pub type AttachmentId = i64;

/// A business record (an order, an item, a ticket...): identified by `kind` + `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Store id.
    pub id: RecordId,
    /// What the record is, e.g. `order`.
    pub kind: String,
    /// The application's key for it, unique within `kind`.
    pub key: String,
    /// Free-form fields; always a JSON object.
    pub fields: serde_json::Value,
    /// The record this one belongs to (an order for an item).
    pub parent_id: Option<RecordId>,
    /// Being deleted, and what happens to its Dropbox files first; it is forgotten once
    /// they are gone (or moved).
    #[serde(default, skip_serializing)]
    pub deletion: Option<Deletion>,
}

/// How a deleted record's Dropbox files go before the record is forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deletion {
    /// Deleted from Dropbox (under the deletion brake).
    Delete,
    /// Moved, folder by folder, under the connection root's archive folder.
    Archive,
}

impl Deletion {
    /// Database spelling (the `records.deleting` column: 0 is none).
    pub fn code(self) -> i64 {
        match self {
            Deletion::Delete => 1,
            Deletion::Archive => 2,
        }
    }

    /// Parses [`Deletion::code`] (0 and unknown codes: none).
    pub fn from_code(code: i64) -> Option<Deletion> {
        match code {
            1 => Some(Deletion::Delete),
            2 => Some(Deletion::Archive),
            _ => None,
        }
    }
}

/// A file attached to a record. Content lives in the blob store under `content_hash`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// Store id.
    pub id: AttachmentId,
    /// The record it belongs to.
    pub record_id: RecordId,
    /// File name, unique within the record.
    pub name: String,
    /// Flags the rules select on (`final`, `source`, `alternate`, `worksheet`...).
    pub tags: Vec<String>,
    /// Dropbox content hash of the content.
    pub content_hash: String,
    /// Size in bytes.
    pub size: u64,
    /// For files imported from Dropbox: their place relative to the binding's folder, which
    /// wins over the rule's file-path template.
    pub origin_path: Option<String>,
    /// Who wrote the current content.
    #[serde(default)]
    pub source: Side,
    /// Set when Ferry dropped its own copy of the content (the rule offloads): where Dropbox
    /// holds it.
    #[serde(default)]
    pub offloaded: Option<Offloaded>,
}

/// Where an offloaded attachment's content is: one revision in one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offloaded {
    /// The connection.
    pub connection: String,
    /// The Dropbox revision holding exactly this content.
    pub rev: String,
    /// When it was offloaded, ms since the epoch.
    pub at: i64,
}

/// Which side wrote a version of a file.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The application, through Ferry's API.
    #[default]
    App,
    /// Someone in Dropbox (imported by Ferry).
    Dropbox,
}

impl Side {
    /// Database and API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::App => "app",
            Side::Dropbox => "dropbox",
        }
    }

    /// Parses [`Side::as_str`]'s spelling.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "app" => Some(Side::App),
            "dropbox" => Some(Side::Dropbox),
            _ => None,
        }
    }
}

/// Checks a record kind or key: non-empty, printable, at most 200 characters.
pub fn validate_record_ident(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if value.chars().count() > 200 {
        return Err(format!("{what} must be at most 200 characters"));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

/// Checks an attachment tag: non-empty, at most 64 characters, no control characters.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.trim().is_empty() || tag.chars().count() > 64 || tag.chars().any(char::is_control) {
        return Err(format!("tag {tag:?} must be 1 to 64 printable characters"));
    }
    Ok(())
}
