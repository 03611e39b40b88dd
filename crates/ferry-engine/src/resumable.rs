//! Large uploads that survive a restart: the session id and the offset Dropbox confirmed are
//! saved after every chunk, and a new attempt continues from there. Chunks are read from the
//! blob store as they are sent, never the whole file, and the file is not hashed again: its
//! blob is addressed by its content hash.
//!
//! With a chunk size that is a multiple of 4 MiB (the default 8 MiB is), the session is a
//! `concurrent` one and `chunks_in_flight` chunks go up at once; the offset saved is the one
//! below which every chunk is confirmed. Otherwise the session is sequential: one chunk on
//! its way, the next read ahead. A saved session that does not fit the way this run uploads
//! (the chunk size changed) starts over.

use crate::Engine;
use ferry_dropbox::{DropboxClient, DropboxError, Staged};

impl Engine {
    /// Stages the blob `content_hash` (`size` bytes, more than one chunk) for a commit,
    /// resuming a persisted session when there is one (an expired session starts over).
    pub(crate) async fn stage_resumable(
        &self,
        client: &DropboxClient,
        connection: &str,
        content_hash: &str,
        size: u64,
    ) -> Result<Staged, DropboxError> {
        let concurrent = client.chunks_fit_concurrent_sessions();
        let in_flight = if concurrent {
            self.config.chunks_in_flight.max(1)
        } else {
            // A chunk on its way and the next one read ahead (`stage_rest`).
            2
        };
        let _held = self
            .transfer_budget
            .hold((in_flight * self.config.chunk_size) as u64)
            .await;
        let read = |offset: u64, len: usize| async move {
            self.blobs
                .get_range(content_hash, offset, len)
                .await
                .map_err(crate::binding::content_unavailable)
        };
        let store_err =
            |e: ferry_store::StoreError| crate::error::store_step("saving upload progress", e);
        let persisted = self
            .store
            .upload_session(connection, content_hash)
            .await
            .map_err(store_err)?
            // A concurrent session goes on only from a chunk boundary.
            .filter(|(_, offset)| !concurrent || offset % self.config.chunk_size as u64 == 0);
        for resume in [persisted.clone(), None] {
            let resuming = resume.is_some();
            if !resuming {
                // A saved session that expired, did not fit, or failed: start over.
                self.store
                    .delete_upload_session(connection, content_hash)
                    .await
                    .map_err(store_err)?;
            }
            let (session_id, offset) = match resume {
                Some(saved) => {
                    tracing::info!(%content_hash, offset = saved.1, concurrent, "resuming an upload session");
                    saved
                }
                None if concurrent => {
                    let id = client.concurrent_session_start().await?;
                    self.store
                        .save_upload_session(connection, content_hash, &id, 0)
                        .await
                        .map_err(store_err)?;
                    (id, 0)
                }
                None => {
                    let first = read(0, self.config.chunk_size).await?;
                    let id = client.session_start(first.clone(), false, false).await?;
                    self.store
                        .save_upload_session(connection, content_hash, &id, first.len() as u64)
                        .await
                        .map_err(store_err)?;
                    (id, first.len() as u64)
                }
            };
            let store = std::sync::Arc::clone(&self.store);
            let save = |offset| {
                let store = std::sync::Arc::clone(&store);
                let (connection, hash, id) = (
                    connection.to_owned(),
                    content_hash.to_owned(),
                    session_id.clone(),
                );
                async move {
                    // Progress is an optimisation: if it cannot be saved, a restart re-sends more.
                    if let Err(e) = store
                        .save_upload_session(&connection, &hash, &id, offset)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot save upload progress");
                    }
                }
            };
            let staged = if concurrent {
                client
                    .stage_concurrent(&session_id, offset, size, in_flight, read, save)
                    .await
            } else {
                client
                    .stage_rest(&session_id, offset, size, read, save)
                    .await
            };
            match staged {
                Ok(()) => {
                    return Ok(Staged {
                        session_id,
                        len: size,
                        content_hash: content_hash.to_owned(),
                    });
                }
                Err(DropboxError::NotFound(_)) if resuming => continue,
                // A saved session this run cannot go on with (say, sequential where this
                // run sends concurrently): a new one costs only the bytes sent again.
                Err(e) if resuming && !e.is_retryable() => {
                    tracing::info!(%content_hash, error = %e, "the saved upload session cannot go on; starting over");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(DropboxError::Other(
            "the upload session could not be restarted".into(),
        ))
    }
}
