//! Upload sessions on disk: `sessions/<id>.data` holds the bytes received so far and
//! `sessions/<id>.json` the committed offset and the closed flag. The metadata is written
//! (temp file + rename) after the data, and the data is truncated back to the recorded offset
//! before each append, so a crash between the two steps loses nothing that was acknowledged.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::wire::{now_timestamp, random_token};

/// Largest file a session may build: 2^41 − 2^22 bytes.
pub const MAX_SESSION_BYTES: u64 = (1 << 41) - (1 << 22);

/// Why a session operation was refused (maps to `UploadSessionLookupError` /
/// `UploadSessionAppendError` members).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionErr {
    /// `not_found`.
    NotFound,
    /// `incorrect_offset` with the offset the session is at.
    IncorrectOffset(u64),
    /// `closed`.
    Closed,
    /// `too_large`.
    TooLarge,
}

/// A failed session operation.
#[derive(Debug)]
pub enum SessionFailure {
    /// The client's fault; a 409.
    Refused(SessionErr),
    /// Disk trouble; a 500.
    Io(std::io::Error),
}

impl From<std::io::Error> for SessionFailure {
    fn from(err: std::io::Error) -> Self {
        SessionFailure::Io(err)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionMeta {
    offset: u64,
    closed: bool,
    created: String,
}

/// The session directory. Callers serialise operations with [`Sessions::lock`].
#[derive(Debug)]
pub struct Sessions {
    dir: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl Sessions {
    /// Uses (and creates) `dir`.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Serialises session operations (held across the file I/O of one request).
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    /// The data file of a session (for hashing at finish).
    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.data"))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    async fn read_meta(&self, id: &str) -> Result<SessionMeta, SessionFailure> {
        // Ids are ours: anything else cannot name a session (and must not reach the file system).
        let plausible = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plausible {
            return Err(SessionFailure::Refused(SessionErr::NotFound));
        }
        match tokio::fs::read(self.meta_path(id)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| SessionFailure::Io(std::io::Error::other(e))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(SessionFailure::Refused(SessionErr::NotFound))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn write_meta(&self, id: &str, meta: &SessionMeta) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("{id}.json.tmp"));
        let json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        tokio::fs::write(&tmp, json).await?;
        tokio::fs::rename(&tmp, self.meta_path(id)).await
    }

    /// Creates a session holding `data`.
    pub async fn start(&self, data: &[u8], close: bool) -> std::io::Result<String> {
        let id = random_token(32);
        tokio::fs::write(self.data_path(&id), data).await?;
        let meta = SessionMeta {
            offset: data.len() as u64,
            closed: close,
            created: now_timestamp(),
        };
        self.write_meta(&id, &meta).await?;
        Ok(id)
    }

    /// Appends `data` at `offset`; returns the new offset.
    pub async fn append(
        &self,
        id: &str,
        offset: u64,
        data: &[u8],
        close: bool,
    ) -> Result<u64, SessionFailure> {
        let mut meta = self.read_meta(id).await?;
        if meta.closed {
            return Err(SessionFailure::Refused(SessionErr::Closed));
        }
        if offset != meta.offset {
            return Err(SessionFailure::Refused(SessionErr::IncorrectOffset(
                meta.offset,
            )));
        }
        let end = meta.offset.saturating_add(data.len() as u64);
        if end > MAX_SESSION_BYTES {
            return Err(SessionFailure::Refused(SessionErr::TooLarge));
        }
        if !data.is_empty() {
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(self.data_path(id))
                .await?;
            // Drop bytes of an append whose metadata update never happened.
            file.set_len(meta.offset).await?;
            let mut file = tokio::fs::OpenOptions::new()
                .append(true)
                .open(self.data_path(id))
                .await?;
            file.write_all(data).await?;
            file.flush().await?;
        }
        meta.offset = end;
        meta.closed = close;
        self.write_meta(id, &meta).await?;
        Ok(end)
    }

    /// The finish step before committing: checks the offset and appends the last chunk
    /// (refused on a closed session unless empty). Returns the total size.
    pub async fn append_final(
        &self,
        id: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, SessionFailure> {
        let meta = self.read_meta(id).await?;
        if offset != meta.offset {
            return Err(SessionFailure::Refused(SessionErr::IncorrectOffset(
                meta.offset,
            )));
        }
        if data.is_empty() {
            return Ok(meta.offset);
        }
        // Keep the session open: if the commit fails the client retries with the new offset.
        self.append(id, offset, data, false).await
    }

    /// Forgets a finished session.
    pub async fn remove(&self, id: &str) {
        let _ = tokio::fs::remove_file(self.meta_path(id)).await;
        let _ = tokio::fs::remove_file(self.data_path(id)).await;
    }
}
