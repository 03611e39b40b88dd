//! What both backends' writes decide the same way, without SQL: whether a conditional write
//! holds, when replacing a version archives it first, a shared link's columns and event,
//! the folders that may hold a path. Each backend keeps only its SQL.

use crate::{AttachmentInput, LinkResult, LinkTarget, LogEntry, StoreError, StoreResult};
use ferry_core::model::{Attachment, Side};
use serde_json::{Value, json};

/// `If-Match` on an attachment write: `*` needs one to exist, a hash needs that content.
pub(crate) fn check_if_match(
    input: &AttachmentInput,
    existing: Option<&Attachment>,
) -> StoreResult<()> {
    let Some(expected) = &input.if_match else {
        return Ok(());
    };
    let current = existing.map(|a| a.content_hash.clone());
    let holds = match &current {
        Some(hash) => expected == "*" || expected == hash,
        None => false,
    };
    if holds {
        Ok(())
    } else {
        Err(StoreError::PreconditionFailed { current })
    }
}

/// The write would change nothing stored.
pub(crate) fn unchanged(existing: &Attachment, input: &AttachmentInput) -> bool {
    existing.content_hash == input.content_hash
        && existing.tags == input.tags
        && existing.origin_path == input.origin_path
}

/// Why the version `old` goes to the archive before `input` replaces it, if it does: a
/// version only one side has seen is never dropped — replacing Dropbox's version (by the
/// app's or a newer Dropbox one) or the app's by Dropbox's archives it first. The app
/// replacing its own version is its own business.
pub(crate) fn replaced_version_reason(
    old: &Attachment,
    input: &AttachmentInput,
) -> Option<&'static str> {
    if old.content_hash == input.content_hash
        || (old.source != Side::Dropbox && input.source != Side::Dropbox)
    {
        return None;
    }
    Some(match (old.source, input.source) {
        (Side::Dropbox, Side::App) => "a Dropbox version replaced by the application",
        (Side::Dropbox, Side::Dropbox) => "replaced by a newer version from Dropbox",
        _ => "an application version replaced by a version from Dropbox",
    })
}

/// `path_lower`, each folder above it, and the root (`""`): the folders whose bindings may
/// hold it.
pub(crate) fn folder_and_ancestors(path_lower: &str) -> Vec<&str> {
    let mut folders = vec![path_lower];
    let mut rest = path_lower;
    while let Some(i) = rest.rfind('/') {
        rest = &rest[..i];
        folders.push(rest);
    }
    if !path_lower.is_empty() && !folders.contains(&"") {
        folders.push("");
    }
    folders
}

/// A shared link's row as one attempt leaves it.
pub(crate) struct LinkColumns<'a> {
    pub url: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub expires_at: Option<i64>,
    pub error: Option<&'a str>,
    pub attempts: i64,
    pub next_at: i64,
    pub duration_ms: u64,
}

impl<'a> LinkColumns<'a> {
    pub(crate) fn of(target: &LinkTarget, result: &'a LinkResult) -> LinkColumns<'a> {
        match result {
            LinkResult::Made {
                url,
                audience,
                expires_at,
                duration_ms,
            } => LinkColumns {
                url: Some(url.as_str()),
                audience: audience.as_deref(),
                expires_at: *expires_at,
                error: None,
                attempts: 0,
                next_at: 0,
                duration_ms: *duration_ms,
            },
            LinkResult::Failed {
                error,
                retry_at_ms,
                duration_ms,
            } => LinkColumns {
                url: None,
                audience: None,
                expires_at: None,
                error: Some(error.as_str()),
                attempts: i64::from(target.attempts) + 1,
                next_at: *retry_at_ms,
                duration_ms: *duration_ms,
            },
        }
    }

    /// The sync-log entry of the attempt.
    pub(crate) fn log_entry(&self, target: &LinkTarget, now: i64) -> LogEntry {
        LogEntry {
            id: 0,
            at: now,
            connection: target.connection.clone(),
            binding_id: Some(target.binding_id),
            record_id: target.record_id,
            path: target.path(),
            action: "link".into(),
            outcome: if self.url.is_some() { "ok" } else { "failed" }.into(),
            bytes: 0,
            duration_ms: self.duration_ms,
            error: self.error.map(str::to_owned),
        }
    }

    /// The webhook event of the attempt and its `data`.
    pub(crate) fn event(
        &self,
        target: &LinkTarget,
        record: Option<(String, String)>,
    ) -> (&'static str, Value) {
        let data = json!({
            "connection": target.connection,
            "record": record.map(|(kind, key)| json!({"kind": kind, "key": key})),
            "path": target.path(),
            "folder": target.rel.is_none(),
            "url": self.url,
            "audience": self.audience,
            "expires_at": self.expires_at,
            "error": self.error,
        });
        let event = if self.url.is_some() {
            "link.created"
        } else {
            "link.failed"
        };
        (event, data)
    }
}
