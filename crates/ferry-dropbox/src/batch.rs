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

/// Most sessions one `start_batch` or `append_batch` call handles.
pub const MAX_APPEND_BATCH: usize = 1000;

/// Most bytes Ferry puts in one `append_batch` request (Dropbox allows 150 MiB; smaller
/// requests keep memory bounded and let batches overlap).
pub const MAX_APPEND_BATCH_BYTES: usize = 16 << 20;

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
    /// Opens an upload session with its first chunk; returns the session id. The chunk's
    /// content hash goes along when `check` is set (worth it for a whole small file; a large
    /// file's chunks are checked as a whole when it is committed).
    pub async fn session_start(
        &self,
        chunk: Bytes,
        close: bool,
        check: bool,
    ) -> Result<String, DropboxError> {
        let mut arg = files::UploadSessionStartArg::default().with_close(close);
        if check {
            arg = arg.with_content_hash(content_hash(&chunk));
        }
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
    /// [`DropboxError::IncorrectOffset`] says where the session really is. No per-chunk
    /// content hash is sent: the commit compares the whole file's hash.
    pub async fn session_append(
        &self,
        session_id: &str,
        offset: u64,
        chunk: Bytes,
        close: bool,
    ) -> Result<(), DropboxError> {
        let cursor = files::UploadSessionCursor::new(session_id.to_owned(), offset);
        let arg = files::UploadSessionAppendArg::new(cursor).with_close(close);
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

    /// Puts many small contents (each at most one chunk) into closed upload sessions with two
    /// requests per group: `upload_session/start_batch` opens the sessions and one
    /// `upload_session/append_batch` carries all the contents, concatenated. Groups hold at
    /// most [`MAX_APPEND_BATCH`] contents and about [`MAX_APPEND_BATCH_BYTES`].
    ///
    /// One result per content, in order. A failed group fails all its contents; a content
    /// Dropbox refused fails alone.
    pub async fn stage_many(&self, contents: &[Bytes]) -> Vec<Result<Staged, DropboxError>> {
        let mut results = Vec::with_capacity(contents.len());
        let mut start = 0;
        while start < contents.len() {
            let mut end = start;
            let mut bytes = 0usize;
            while end < contents.len()
                && end - start < MAX_APPEND_BATCH
                && (end == start || bytes + contents[end].len() <= MAX_APPEND_BATCH_BYTES)
            {
                bytes += contents[end].len();
                end += 1;
            }
            let group = &contents[start..end];
            match self.stage_group(group).await {
                Ok(staged) => results.extend(staged),
                Err(e) => results.extend(group.iter().map(|_| Err(e.for_each_entry()))),
            }
            start = end;
        }
        results
    }

    /// One `start_batch` + `append_batch` round for [`stage_many`].
    ///
    /// [`stage_many`]: DropboxClient::stage_many
    async fn stage_group(
        &self,
        group: &[Bytes],
    ) -> Result<Vec<Result<Staged, DropboxError>>, DropboxError> {
        if let Some(big) = group.iter().find(|c| c.len() > self.chunk_size) {
            return Err(DropboxError::Config(format!(
                "{} bytes do not fit one append (chunk size {})",
                big.len(),
                self.chunk_size
            )));
        }
        let n = u64::try_from(group.len()).unwrap_or(u64::MAX);
        let start = files::UploadSessionStartBatchArg::new(n);
        let ids = self
            .call(|c| {
                let arg = start.clone();
                async move {
                    let r = routes::upload_session_start_batch(&c, &arg).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?
            .session_ids;
        if ids.len() != group.len() {
            return Err(DropboxError::Other(format!(
                "start_batch opened {} sessions for {}",
                ids.len(),
                group.len()
            )));
        }
        let mut body = Vec::with_capacity(group.iter().map(Bytes::len).sum());
        for content in group {
            body.extend_from_slice(content);
        }
        let body = Bytes::from(body);
        let append = files::UploadSessionAppendBatchArg::new(
            ids.iter()
                .zip(group)
                .map(|(id, content)| {
                    files::UploadSessionAppendBatchArgEntry::new(
                        files::UploadSessionCursor::new(id.clone(), 0),
                        content.len() as u64,
                    )
                    .with_close(true)
                })
                .collect(),
        )
        .with_content_hash(content_hash(&body));
        let appended = self
            .call(|c| {
                let arg = append.clone();
                let body = body.clone();
                async move {
                    let r = routes::upload_session_append_batch(&c, &arg, body).await;
                    (r, c.retry_after_secs())
                }
            })
            .await?;
        if appended.entries.len() != group.len() {
            return Err(DropboxError::Other(format!(
                "append_batch answered {} entries for {}",
                appended.entries.len(),
                group.len()
            )));
        }
        Ok(appended
            .entries
            .into_iter()
            .zip(ids)
            .zip(group)
            .map(|((entry, session_id), content)| {
                let staged = || Staged {
                    session_id: session_id.clone(),
                    len: content.len() as u64,
                    content_hash: content_hash(content),
                };
                match entry {
                    files::UploadSessionAppendBatchResultEntry::Success => Ok(staged()),
                    files::UploadSessionAppendBatchResultEntry::Failure(e) => {
                        match crate::error::Classify::classify(e) {
                            // A retried call whose first attempt was applied: the session
                            // already holds the content (the commit checks its hash).
                            DropboxError::SessionClosed => Ok(staged()),
                            DropboxError::IncorrectOffset { correct }
                                if correct == content.len() as u64 =>
                            {
                                Ok(staged())
                            }
                            other => Err(other),
                        }
                    }
                }
            })
            .collect())
    }

    /// Puts `data` into a new upload session and closes it, ready for [`finish_batch`].
    ///
    /// [`finish_batch`]: DropboxClient::finish_batch
    pub async fn stage(&self, data: Bytes) -> Result<Staged, DropboxError> {
        let first = data.slice(..self.chunk_size.min(data.len()));
        let single = first.len() == data.len();
        let session_id = self.session_start(first.clone(), single, single).await?;
        if !single {
            let whole = &data;
            self.stage_rest(
                &session_id,
                first.len() as u64,
                data.len() as u64,
                |offset, len| async move {
                    let start = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(whole.len());
                    Ok(whole.slice(start..(start + len).min(whole.len())))
                },
                |_| async {},
            )
            .await?;
        }
        Ok(Staged {
            session_id,
            len: data.len() as u64,
            content_hash: content_hash(&data),
        })
    }

    /// Appends bytes `offset..len` to an open session in chunks and closes it. `read(offset,
    /// len)` supplies each chunk (the next one is read while the current one is on the wire);
    /// `progress(new_offset)` is called after each chunk (so a caller can persist it and resume
    /// after a restart). A lost answer is recovered from the offset Dropbox reports.
    pub async fn stage_rest<R, RFut, F, Fut>(
        &self,
        session_id: &str,
        mut offset: u64,
        len: u64,
        mut read: R,
        mut progress: F,
    ) -> Result<(), DropboxError>
    where
        R: FnMut(u64, usize) -> RFut,
        RFut: std::future::Future<Output = Result<Bytes, DropboxError>>,
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let chunk_size = self.chunk_size as u64;
        let piece = |offset: u64| usize::try_from(chunk_size.min(len - offset)).unwrap_or(0);
        if offset >= len {
            return self.close_session(session_id, len).await;
        }
        let mut chunk = read(offset, piece(offset)).await?;
        loop {
            let end = offset + chunk.len() as u64;
            if chunk.is_empty() || end > len {
                return Err(DropboxError::Other(format!(
                    "read {} bytes at offset {offset} of a {len}-byte file",
                    chunk.len()
                )));
            }
            let close = end == len;
            let send = self.session_append(session_id, offset, chunk, close);
            let (sent, next) = if close {
                (send.await, None)
            } else {
                let (sent, next) = futures::join!(send, read(end, piece(end)));
                (sent, Some(next))
            };
            match sent {
                Ok(()) => offset = end,
                Err(DropboxError::IncorrectOffset { correct }) if correct <= len => {
                    offset = correct;
                    progress(offset).await;
                    if offset == len {
                        return self.close_session(session_id, len).await;
                    }
                    chunk = read(offset, piece(offset)).await?;
                    continue;
                }
                // Closed already: the data is complete.
                Err(DropboxError::SessionClosed) if end >= len => return Ok(()),
                Err(e) => return Err(e),
            }
            progress(offset).await;
            match next {
                None => return Ok(()),
                Some(next) => chunk = next?,
            }
        }
    }

    /// Closes a session that already holds all `len` bytes.
    async fn close_session(&self, session_id: &str, len: u64) -> Result<(), DropboxError> {
        match self
            .session_append(session_id, len, Bytes::new(), true)
            .await
        {
            Ok(()) | Err(DropboxError::SessionClosed) => Ok(()),
            Err(e) => Err(e),
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
