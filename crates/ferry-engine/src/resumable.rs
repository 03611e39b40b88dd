//! Large uploads that survive a restart: the session id and the offset Dropbox confirmed are
//! saved after every chunk, and a new attempt continues from there.

use crate::Engine;
use bytes::Bytes;
use ferry_dropbox::{DropboxClient, DropboxError, Staged};

impl Engine {
    /// Stages `data` for a commit. Small content goes in one request; larger content resumes
    /// a persisted session when there is one (an expired session starts over).
    pub(crate) async fn stage_resumable(
        &self,
        client: &DropboxClient,
        connection: &str,
        content_hash: &str,
        data: Bytes,
    ) -> Result<Staged, DropboxError> {
        if data.len() <= self.config.chunk_size {
            return client.stage(data).await;
        }
        let store_err = |e: ferry_store::StoreError| DropboxError::Other(format!("store: {e}"));
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
                    let first = data.slice(..self.config.chunk_size);
                    let id = client.session_start(first.clone(), false).await?;
                    self.store
                        .save_upload_session(connection, content_hash, &id, first.len() as u64)
                        .await
                        .map_err(store_err)?;
                    (id, first.len() as u64)
                }
            };
            let store = std::sync::Arc::clone(&self.store);
            let staged = client
                .stage_rest(&session_id, offset, &data, |offset| {
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
                        len: data.len() as u64,
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
