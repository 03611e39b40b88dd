//! Batched uploads: content goes into closed upload sessions (many at once, no namespace
//! lock), then one `upload_session/finish_batch_v2` commits up to 1000 files under a single
//! lock — the way Dropbox asks integrations to write many files.

use crate::client::check_path;
use crate::types::file_info;
use crate::{DropboxClient, DropboxError, FileInfo, WriteMode};
use bytes::Bytes;
use dropbox_sdk::async_routes::files as routes;
use dropbox_sdk::files;
use ferry_core::content_hash::content_hash;

/// Most entries one `finish_batch_v2` call accepts.
pub const MAX_BATCH: usize = 1000;

/// Content waiting in a closed upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The session.
    pub session_id: String,
    /// Bytes in it.
    pub len: u64,
    /// Content hash of the whole content.
    pub content_hash: String,
}

impl DropboxClient {
    /// Opens an upload session with its first chunk; returns the session id.
    pub async fn session_start(&self, chunk: Bytes, close: bool) -> Result<String, DropboxError> {
        let arg = files::UploadSessionStartArg::default()
            .with_close(close)
            .with_content_hash(content_hash(&chunk));
        Ok(self
            .call(|c| {
                let arg = arg.clone();
                let body = chunk.clone();
                async move {
                    let r = routes::upload_session_start(&c, &arg, body).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?
            .session_id)
    }

    /// Appends a chunk at `offset` (closing the session with the last one).
    /// [`DropboxError::IncorrectOffset`] says where the session really is.
    pub async fn session_append(
        &self,
        session_id: &str,
        offset: u64,
        chunk: Bytes,
        close: bool,
    ) -> Result<(), DropboxError> {
        let cursor = files::UploadSessionCursor::new(session_id.to_owned(), offset);
        let arg = files::UploadSessionAppendArg::new(cursor)
            .with_close(close)
            .with_content_hash(content_hash(&chunk));
        self.call(|c| {
            let arg = arg.clone();
            let body = chunk.clone();
            async move {
                let r = routes::upload_session_append_v2(&c, &arg, body).await;
                (r, c.retry_after_secs())
            }
        })
        .await
    }

    /// Puts `data` into a new upload session and closes it, ready for [`finish_batch`].
    ///
    /// [`finish_batch`]: DropboxClient::finish_batch
    pub async fn stage(&self, data: Bytes) -> Result<Staged, DropboxError> {
        let first = data.slice(..self.chunk_size.min(data.len()));
        let single = first.len() == data.len();
        let session_id = self.session_start(first.clone(), single).await?;
        if !single {
            self.stage_rest(&session_id, first.len() as u64, &data, |_| async {})
                .await?;
        }
        Ok(Staged {
            session_id,
            len: data.len() as u64,
            content_hash: content_hash(&data),
        })
    }

    /// Appends `data[offset..]` to an open session in chunks and closes it, calling
    /// `progress(new_offset)` after each chunk (so a caller can persist it and resume after a
    /// restart). A lost answer is recovered from the offset Dropbox reports.
    pub async fn stage_rest<F, Fut>(
        &self,
        session_id: &str,
        mut offset: u64,
        data: &Bytes,
        mut progress: F,
    ) -> Result<(), DropboxError>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let len = data.len() as u64;
        loop {
            let start = usize::try_from(offset.min(len)).unwrap_or(data.len());
            let end = (start + self.chunk_size).min(data.len());
            let close = end == data.len();
            match self
                .session_append(session_id, offset, data.slice(start..end), close)
                .await
            {
                Ok(()) => offset = end as u64,
                Err(DropboxError::IncorrectOffset { correct }) if correct <= len => {
                    offset = correct;
                    progress(offset).await;
                    continue;
                }
                // Closed already: the data is complete.
                Err(DropboxError::SessionClosed) if offset >= len => return Ok(()),
                Err(e) => return Err(e),
            }
            progress(offset).await;
            if close {
                return Ok(());
            }
        }
    }

    /// Commits staged uploads (at most [`MAX_BATCH`]) in one call; one result per entry, in
    /// order. The outer error means the whole call failed (nothing to say per entry).
    pub async fn finish_batch(
        &self,
        entries: &[(Staged, String, WriteMode)],
    ) -> Result<Vec<Result<FileInfo, DropboxError>>, DropboxError> {
        if entries.len() > MAX_BATCH {
            return Err(DropboxError::Config(format!(
                "a batch holds at most {MAX_BATCH} entries, not {}",
                entries.len()
            )));
        }
        for (_, path, _) in entries {
            check_path(path)?;
        }
        let arg = files::UploadSessionFinishBatchArg::new(
            entries
                .iter()
                .map(|(staged, path, mode)| {
                    files::UploadSessionFinishArg::new(
                        files::UploadSessionCursor::new(staged.session_id.clone(), staged.len),
                        files::CommitInfo::new(path.clone()).with_mode(mode.into()),
                    )
                })
                .collect(),
        );
        let result = self
            .call(|c| {
                let arg = arg.clone();
                async move {
                    let r = routes::upload_session_finish_batch_v2(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        if result.entries.len() != entries.len() {
            return Err(DropboxError::Other(format!(
                "finish_batch_v2 answered {} entries for {}",
                result.entries.len(),
                entries.len()
            )));
        }
        Ok(result
            .entries
            .into_iter()
            .zip(entries)
            .map(|(entry, (staged, _, _))| match entry {
                files::UploadSessionFinishBatchResultEntry::Success(meta) => {
                    let info = file_info(meta);
                    if info.content_hash.as_deref() == Some(staged.content_hash.as_str()) {
                        Ok(info)
                    } else {
                        Err(DropboxError::Integrity(format!(
                            "Dropbox committed {} with content hash {:?}, expected {}",
                            info.path_display, info.content_hash, staged.content_hash
                        )))
                    }
                }
                files::UploadSessionFinishBatchResultEntry::Failure(e) => {
                    Err(crate::error::Classify::classify(e))
                }
            })
            .collect())
    }
}
