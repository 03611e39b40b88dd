//! The change journal: the durable log the tree is rebuilt from, and the change feed behind
//! `list_folder/continue`. One JSON line per change in `journal.jsonl`; each line carries the
//! complete new state of one path (or its deletion), so replay is a plain "set or remove".

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The content-related state of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Lowercase hex, new on every content change.
    pub rev: String,
    /// Bytes.
    pub size: u64,
    /// Dropbox content hash; also the blob's file name.
    pub content_hash: String,
    /// As supplied by the client (or the upload time).
    pub client_modified: String,
    /// When this revision was written.
    pub server_modified: String,
}

/// The state of an existing node: a folder (`file: None`) or a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// `id:` + 22 URL-safe characters; kept across moves.
    pub id: String,
    /// Present for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileInfo>,
}

/// One change: the state of `lower` after sequence number `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// 1-based, consecutive.
    pub seq: u64,
    /// The lowercased path (the key); stored so that replay never depends on case folding
    /// rules of a later version.
    pub lower: String,
    /// The display path.
    pub display: String,
    /// `None`: deleted.
    #[serde(default)]
    pub node: Option<NodeState>,
}

/// Why the journal could not be opened or replayed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, truncating or opening the journal failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A complete line is not a valid entry, or sequence numbers are not consecutive.
    #[error("journal {path}, line {line}: {reason}")]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The append-only journal file.
#[derive(Debug)]
pub struct JournalFile {
    file: File,
}

impl JournalFile {
    /// Opens (or creates) the journal and returns its entries. A torn last line (a crash in
    /// the middle of an append) is dropped and truncated away.
    pub fn open(path: &Path) -> Result<(Self, Vec<JournalEntry>), JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            tracing::warn!(path = %path.display(), "dropping a torn journal line");
            file.set_len(complete as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
        }
        let mut entries = Vec::new();
        for (index, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let corrupt = |reason: String| JournalError::Corrupt {
                path: path.to_path_buf(),
                line: index + 1,
                reason,
            };
            let entry: JournalEntry =
                serde_json::from_slice(line).map_err(|e| corrupt(e.to_string()))?;
            let expected = entries.len() as u64 + 1;
            if entry.seq != expected {
                return Err(corrupt(format!(
                    "sequence {} where {expected} was expected",
                    entry.seq
                )));
            }
            entries.push(entry);
        }
        Ok((Self { file }, entries))
    }

    /// Appends a batch of entries in one write.
    pub fn append(&mut self, entries: &[JournalEntry]) -> std::io::Result<()> {
        let mut buf = Vec::new();
        for entry in entries {
            serde_json::to_writer(&mut buf, entry)?;
            buf.push(b'\n');
        }
        self.file.write_all(&buf)?;
        self.file.flush()
    }
}

/// What a `list_folder` cursor remembers. Encoded as URL-safe base64 of compact JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The journal this cursor belongs to (a wiped data directory invalidates it).
    #[serde(rename = "j")]
    pub journal_id: String,
    /// Lowercased folder path (`""` = root).
    #[serde(rename = "p")]
    pub scope: String,
    /// List the whole subtree.
    #[serde(rename = "r")]
    pub recursive: bool,
    /// Include deleted entries in the initial listing.
    #[serde(rename = "d")]
    pub include_deleted: bool,
    /// Journal position: changes after this sequence number are still to be reported.
    #[serde(rename = "s")]
    pub seq: u64,
    /// While paging through the initial listing: the last key returned.
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Page size requested by `list_folder`.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// When the cursor was handed out (Unix seconds), for the maximum cursor age.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<u64>,
}

impl Cursor {
    /// The opaque string handed to clients.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a client's cursor; `None` for anything we did not produce.
    pub fn decode(raw: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> JournalEntry {
        JournalEntry {
            seq,
            lower: format!("/f{seq}"),
            display: format!("/F{seq}"),
            node: Some(NodeState {
                id: format!("id:{seq}"),
                file: None,
            }),
        }
    }

    #[test]
    fn append_and_reopen_drops_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        {
            let (mut journal, entries) = JournalFile::open(&path).unwrap();
            assert!(entries.is_empty());
            journal.append(&[entry(1), entry(2)]).unwrap();
        }
        // Simulate a crash in the middle of writing entry 3.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"seq\":3,\"low").unwrap();
        drop(file);
        let (mut journal, entries) = JournalFile::open(&path).unwrap();
        assert_eq!(entries, vec![entry(1), entry(2)]);
        journal.append(&[entry(3)]).unwrap();
        let (_, entries) = JournalFile::open(&path).unwrap();
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn corrupt_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, "garbage\n").unwrap();
        assert!(matches!(
            JournalFile::open(&path),
            Err(JournalError::Corrupt { line: 1, .. })
        ));
    }

    #[test]
    fn cursor_roundtrip_and_garbage() {
        let cursor = Cursor {
            journal_id: "j".into(),
            scope: "/a".into(),
            recursive: true,
            include_deleted: false,
            seq: 7,
            after: Some("/a/b".into()),
            limit: Some(10),
            issued: Some(1),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("not a cursor!"), None);
        assert_eq!(Cursor::decode("AAAA"), None);
    }
}
