//! Large uploads that survive a restart: the session id and the offset Dropbox confirmed are
//! saved after every chunk, and a new attempt continues from there. Chunks are read from the
//! blob store one at a time (the next while the current one is sent), never the whole file,
//! and the file is not hashed again: its blob is addressed by its content hash.

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
        // A chunk on its way and the next one read ahead (`stage_rest`).
        let _held = self
            .transfer_budget
            .hold(2 * self.config.chunk_size as u64)
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
            .map_err(store_err)?;
        for resume in [persisted.clone(), None] {
            let resuming = resume.is_some();
            if !resuming && persisted.is_some() {
                // The saved session expired: forget it and start over.
                self.store
                    .delete_upload_session(connection, content_hash)
                    .await
                    .map_err(store_err)?;
            }
            let (session_id, offset) = match resume {
                Some(saved) => {
                    tracing::info!(%content_hash, offset = saved.1, "resuming an upload session");
                    saved
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
            let staged = client
                .stage_rest(&session_id, offset, size, read, |offset| {
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
                })
                .await;
            match staged {
                Ok(()) => {
                    return Ok(Staged {
                        session_id,
                        len: size,
                        content_hash: content_hash.to_owned(),
                    });
                }
                Err(DropboxError::NotFound(_)) if resuming => continue,
                Err(e) => return Err(e),
            }
        }
        Err(DropboxError::Other(
            "the upload session could not be restarted".into(),
        ))
    }
}
