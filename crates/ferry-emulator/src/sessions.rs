//! Upload sessions on disk: `sessions/<id>.data` holds the bytes received so far and
//! `sessions/<id>.json` the committed offset and the closed flag. The metadata is written
//! (temp file + rename) after the data, and the data is truncated back to the recorded offset
//! before each append, so a crash between the two steps loses nothing that was acknowledged.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::wire::{now_timestamp, random_token};

/// Largest file a session may build: 2^41 − 2^22 bytes.
pub const MAX_SESSION_BYTES: u64 = (1 << 41) - (1 << 22);

/// Appends to concurrent sessions must start at, and (except the closing one) be a multiple
/// of, 4 MiB.
pub const CONCURRENT_BLOCK: u64 = 1 << 22;

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
    /// `not_closed`: a batch finish of a session that was never closed.
    NotClosed,
    /// `concurrent_session_invalid_offset`: not a multiple of 4 MiB.
    ConcurrentInvalidOffset,
    /// `concurrent_session_invalid_data_size`: not a multiple of 4 MiB (and not closing).
    ConcurrentInvalidDataSize,
    /// `concurrent_session_data_not_allowed`: data in start or finish of a concurrent session.
    ConcurrentDataNotAllowed,
    /// `concurrent_session_close_not_allowed`: `close` in start of a concurrent session.
    ConcurrentCloseNotAllowed,
    /// `concurrent_session_not_closed`: finishing an open concurrent session.
    ConcurrentNotClosed,
    /// `concurrent_session_missing_data`: gaps remain in a closed concurrent session.
    ConcurrentMissingData,
}

impl SessionErr {
    /// Whether the error is a member of the route's own union (rather than of the nested
    /// `UploadSessionLookupError` in `finish`'s `lookup_failed`).
    pub fn is_top_level(self) -> bool {
        matches!(
            self,
            SessionErr::ConcurrentDataNotAllowed
                | SessionErr::ConcurrentCloseNotAllowed
                | SessionErr::ConcurrentNotClosed
                | SessionErr::ConcurrentMissingData
        )
    }
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
    /// `session_type: concurrent`.
    #[serde(default)]
    concurrent: bool,
    /// Concurrent sessions: the byte ranges received, `[start, end)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ranges: Vec<(u64, u64)>,
    /// Concurrent sessions: the total length, known once closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length: Option<u64>,
    /// Concurrent sessions: found complete by a commit, after which no append may change
    /// them (so the commit can link the data file into the blob store, not copy it).
    #[serde(default)]
    sealed: bool,
}

fn refused<T>(err: SessionErr) -> Result<T, SessionFailure> {
    Err(SessionFailure::Refused(err))
}

/// The session directory. Each session has its own lock (taken inside these methods), so
/// different sessions upload in parallel; appends to one concurrent session are accepted in
/// any order and in parallel, and written one at a time.
#[derive(Debug)]
pub struct Sessions {
    dir: PathBuf,
    locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The metadata as last written (the files stay the truth across restarts; this saves
    /// re-reading them on every call).
    metas: std::sync::Mutex<std::collections::HashMap<String, SessionMeta>>,
}

impl Sessions {
    /// Uses (and creates) `dir`.
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            locks: std::sync::Mutex::new(std::collections::HashMap::new()),
            metas: std::sync::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// The lock of one session.
    async fn lock_id(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(id.to_string()).or_default())
        };
        lock.lock_owned().await
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
        if let Some(meta) = self.cached(id) {
            return Ok(meta);
        }
        match tokio::fs::read(self.meta_path(id)).await {
            Ok(bytes) => {
                let meta: SessionMeta = serde_json::from_slice(&bytes)
                    .map_err(|e| SessionFailure::Io(std::io::Error::other(e)))?;
                self.cache(id, &meta);
                Ok(meta)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Err(SessionFailure::Refused(SessionErr::NotFound))
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn write_meta(&self, id: &str, meta: &SessionMeta) -> std::io::Result<()> {
        let (dir, owned_id, owned) = (self.dir.clone(), id.to_owned(), meta.clone());
        blocking(move || write_meta_sync(&dir, &owned_id, &owned)).await?;
        self.cache(id, meta);
        Ok(())
    }

    fn cached(&self, id: &str) -> Option<SessionMeta> {
        let metas = self.metas.lock().unwrap_or_else(|p| p.into_inner());
        metas.get(id).cloned()
    }

    fn cache(&self, id: &str, meta: &SessionMeta) {
        let mut metas = self.metas.lock().unwrap_or_else(|p| p.into_inner());
        metas.insert(id.to_owned(), meta.clone());
    }

    /// Creates a session holding `data`.
    pub async fn start(&self, data: &[u8], close: bool) -> std::io::Result<String> {
        self.start_typed(data, close, false)
            .await
            .map_err(|e| match e {
                SessionFailure::Io(e) => e,
                SessionFailure::Refused(e) => std::io::Error::other(format!("{e:?}")),
            })
    }

    /// Creates a sequential or concurrent session. Concurrent sessions take no data and no
    /// `close` at start.
    pub async fn start_typed(
        &self,
        data: &[u8],
        close: bool,
        concurrent: bool,
    ) -> Result<String, SessionFailure> {
        if concurrent && !data.is_empty() {
            return refused(SessionErr::ConcurrentDataNotAllowed);
        }
        if concurrent && close {
            return refused(SessionErr::ConcurrentCloseNotAllowed);
        }
        let id = random_token(32);
        let meta = SessionMeta {
            offset: data.len() as u64,
            closed: close,
            created: now_timestamp(),
            concurrent,
            ranges: Vec::new(),
            length: None,
            sealed: false,
        };
        // Data, then metadata, in one blocking job (one thread hand-off, not four).
        let (dir, owned_id, owned, bytes) =
            (self.dir.clone(), id.clone(), meta.clone(), data.to_vec());
        let data_path = self.data_path(&id);
        blocking(move || {
            std::fs::write(&data_path, bytes)?;
            write_meta_sync(&dir, &owned_id, &owned)
        })
        .await?;
        self.cache(&id, &meta);
        Ok(id)
    }

    /// A concurrent append: any order, 4 MiB-aligned offsets, 4 MiB multiples except the
    /// closing append (which fixes the total length).
    async fn append_concurrent(
        &self,
        id: &str,
        offset: u64,
        data: &[u8],
        close: bool,
    ) -> Result<u64, SessionFailure> {
        if !offset.is_multiple_of(CONCURRENT_BLOCK) {
            return refused(SessionErr::ConcurrentInvalidOffset);
        }
        if !close && !(data.len() as u64).is_multiple_of(CONCURRENT_BLOCK) {
            return refused(SessionErr::ConcurrentInvalidDataSize);
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > MAX_SESSION_BYTES {
            return refused(SessionErr::TooLarge);
        }
        // Parallel appends may land after the closing one: they may still fill gaps below the
        // closed length, nothing beyond it.
        let beyond_close = |meta: &SessionMeta| {
            meta.sealed || (meta.closed && (close || meta.length.is_none_or(|length| end > length)))
        };
        // Under the session's lock, data too: writers of one file queue on its inode lock in
        // the kernel anyway, and there they spin on a core instead of sleeping.
        let _lock = self.lock_id(id).await;
        if beyond_close(&self.read_meta(id).await?) {
            return refused(SessionErr::Closed);
        }
        if !data.is_empty() {
            // One positioned write in one blocking job (tokio's file writes 2 MiB per job).
            let (path, data) = (self.data_path(id), data.to_vec());
            blocking(move || {
                use std::os::unix::fs::FileExt;
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)?
                    .write_all_at(&data, offset)
            })
            .await?;
        }
        let mut meta = self.read_meta(id).await?;
        if !data.is_empty() {
            meta.ranges.push((offset, end));
        }
        meta.offset = meta.offset.max(end);
        if close {
            meta.closed = true;
            meta.length = Some(end);
        }
        self.write_meta(id, &meta).await?;
        Ok(end)
    }

    /// Appends `data` at `offset`; returns the new offset.
    pub async fn append(
        &self,
        id: &str,
        offset: u64,
        data: &[u8],
        close: bool,
    ) -> Result<u64, SessionFailure> {
        if self.read_meta(id).await?.concurrent {
            return self.append_concurrent(id, offset, data, close).await;
        }
        let _lock = self.lock_id(id).await;
        self.append_sequential(id, offset, data, close).await
    }

    /// A sequential append; the caller holds the session's lock.
    async fn append_sequential(
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
        meta.offset = end;
        meta.closed = close;
        // Drop bytes of an append whose metadata update never happened, append, then record
        // the new offset: one blocking job.
        let (dir, owned_id, owned, bytes) =
            (self.dir.clone(), id.to_owned(), meta.clone(), data.to_vec());
        let data_path = self.data_path(id);
        let committed = meta.offset - data.len() as u64;
        blocking(move || {
            if !bytes.is_empty() {
                use std::io::Write;
                let mut file = std::fs::OpenOptions::new().write(true).open(&data_path)?;
                file.set_len(committed)?;
                use std::io::Seek;
                file.seek(std::io::SeekFrom::End(0))?;
                file.write_all(&bytes)?;
            }
            write_meta_sync(&dir, &owned_id, &owned)
        })
        .await?;
        self.cache(id, &meta);
        Ok(end)
    }

    /// Checks that a session can be committed with a final chunk `data` at `offset`, appends
    /// it (sequential sessions), and returns the total size. A batch finish (`batch`)
    /// requires the session to be closed.
    pub async fn prepare_finish(
        &self,
        id: &str,
        offset: u64,
        data: &[u8],
        batch: bool,
    ) -> Result<u64, SessionFailure> {
        self.read_meta(id).await?;
        let _lock = self.lock_id(id).await;
        let meta = self.read_meta(id).await?;
        if meta.concurrent {
            if !data.is_empty() {
                return refused(SessionErr::ConcurrentDataNotAllowed);
            }
            let Some(length) = meta.length.filter(|_| meta.closed) else {
                return refused(SessionErr::ConcurrentNotClosed);
            };
            if offset != length {
                return refused(SessionErr::IncorrectOffset(length));
            }
            let mut ranges = meta.ranges.clone();
            ranges.sort_unstable();
            let mut covered = 0u64;
            for (start, end) in ranges {
                if start > covered {
                    break;
                }
                covered = covered.max(end);
            }
            if covered < length {
                return refused(SessionErr::ConcurrentMissingData);
            }
            let file = tokio::fs::OpenOptions::new()
                .write(true)
                .open(self.data_path(id))
                .await?;
            file.set_len(length).await?;
            let mut meta = meta;
            meta.sealed = true;
            self.write_meta(id, &meta).await?;
            return Ok(length);
        }
        if batch && !meta.closed {
            return refused(SessionErr::NotClosed);
        }
        if offset != meta.offset {
            return Err(SessionFailure::Refused(SessionErr::IncorrectOffset(
                meta.offset,
            )));
        }
        if data.is_empty() {
            return Ok(meta.offset);
        }
        // Keep the session open: if the commit fails the client retries with the new offset.
        self.append_sequential(id, offset, data, false).await
    }

    /// Forgets a finished session.
    pub async fn remove(&self, id: &str) {
        self.metas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let (meta, data) = (self.meta_path(id), self.data_path(id));
        let _ = blocking(move || {
            let _ = std::fs::remove_file(meta);
            let _ = std::fs::remove_file(data);
            Ok(())
        })
        .await;
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.remove(id);
    }

    /// Whether a session's data can no longer change (a closed sequential session, or a
    /// concurrent one a commit found complete), so the file may be shared (hard-linked)
    /// rather than copied.
    pub async fn is_sealed(&self, id: &str) -> bool {
        self.read_meta(id)
            .await
            .is_ok_and(|m| m.closed && (!m.concurrent || m.sealed))
    }
}

/// Writes a session's metadata: a temporary file renamed over the old one.
fn write_meta_sync(dir: &std::path::Path, id: &str, meta: &SessionMeta) -> std::io::Result<()> {
    let tmp = dir.join(format!("{id}.json.tmp"));
    let json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dir.join(format!("{id}.json")))
}

/// Runs file work on the blocking pool (one thread hand-off for several file operations).
pub(crate) async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| std::io::Error::other(format!("file job: {e}")))?
}
