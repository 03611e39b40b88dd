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
