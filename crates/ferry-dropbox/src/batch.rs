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
    /// Puts `data` into a new upload session and closes it, ready for [`finish_batch`].
    ///
    /// [`finish_batch`]: DropboxClient::finish_batch
    pub async fn stage(&self, data: Bytes) -> Result<Staged, DropboxError> {
        let chunk = self.chunk_size;
        let first = data.slice(..chunk.min(data.len()));
        let single = first.len() == data.len();
        let start_arg = files::UploadSessionStartArg::default()
            .with_close(single)
            .with_content_hash(content_hash(&first));
        let session_id = self
            .call(|c| {
                let arg = start_arg.clone();
                let body = first.clone();
                async move {
                    let r = routes::upload_session_start(&c, &arg, body).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?
            .session_id;
        let mut offset = first.len();
        while offset < data.len() {
            let end = (offset + chunk).min(data.len());
            let part = data.slice(offset..end);
            let cursor = files::UploadSessionCursor::new(session_id.clone(), offset as u64);
            let arg = files::UploadSessionAppendArg::new(cursor)
                .with_close(end == data.len())
                .with_content_hash(content_hash(&part));
            let appended = self
                .call(|c| {
                    let arg = arg.clone();
                    let body = part.clone();
                    async move {
                        let r = routes::upload_session_append_v2(&c, &arg, body).await;
                        (r, c.retry_after_secs())
                    }
                })
                .await;
            match appended {
                Ok(()) => offset = end,
                // A lost answer after Dropbox took the data: resume where Dropbox is.
                Err(DropboxError::IncorrectOffset { correct })
                    if (correct as usize) <= data.len() =>
                {
                    offset = correct as usize;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Staged {
            session_id,
            len: data.len() as u64,
            content_hash: content_hash(&data),
        })
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
