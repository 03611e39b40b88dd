//! Importing a Dropbox file: streamed into the blob store, checked against the hash Dropbox
//! listed, then made an attachment (the old content archived when it replaces one).

use crate::Engine;
use crate::binding::{Ctx, abs, unique_name};
use ferry_core::names::dropbox_lower;
use ferry_core::sync_plan::RemoteFile;
use ferry_dropbox::DropboxError;
use ferry_store::AttachmentInput;
use futures::AsyncReadExt;
use std::collections::HashSet;

impl Engine {
    /// Downloads a Dropbox file into the blob store and makes it an attachment (a new one, or
    /// new content for `attachment_id`, whose old content is archived). Returns the attachment
    /// id and the bytes moved.
    pub(crate) async fn import(
        &self,
        cx: &Ctx<'_>,
        remote: &RemoteFile,
        attachment_id: Option<i64>,
    ) -> Result<(i64, u64), DropboxError> {
        let store_err =
            |e: ferry_store::StoreError| crate::error::store_step("storing an imported file", e);
        // Streamed into the blob store: memory stays bounded whatever the file's size.
        let (info, mut body) = cx
            .client
            .download_stream(&abs(&cx.binding.folder_display, &remote.rel))
            .await?;
        if info.content_hash.as_deref() != Some(remote.content_hash.as_str()) {
            // Changed since it was listed: the next pass sees the new version.
            return Err(DropboxError::Conflict(
                "the file changed in Dropbox while it was imported".into(),
            ));
        }
        // Held until the attachment row is committed, so the new blob cannot be dropped.
        let _hold = self.blobs.hold().await;
        let mut writer = self.blobs.writer().await.map_err(store_err)?;
        if let Err(e) = fill(&mut writer, &mut body).await {
            writer.abort().await;
            return Err(e);
        }
        let (hash, size) = writer
            .finish(Some(&remote.content_hash))
            .await
            .map_err(|e| DropboxError::Integrity(e.to_string()))?;
        let attachments = self
            .store
            .attachments(cx.record.id)
            .await
            .map_err(store_err)?;
        // The replaced version is archived by the store, in the same transaction; one only
        // Dropbox holds comes back first.
        let (name, tags) =
            match attachment_id.and_then(|id| attachments.iter().find(|a| a.id == id)) {
                Some(old) => {
                    self.bring_back(old).await.map_err(|e| match e {
                        crate::EngineError::Dropbox(d) => d,
                        crate::EngineError::Store(s) => store_err(s),
                        other => DropboxError::Other(other.to_string()),
                    })?;
                    (old.name.clone(), old.tags.clone())
                }
                None => {
                    let taken: HashSet<String> =
                        attachments.iter().map(|a| dropbox_lower(&a.name)).collect();
                    let file_name = remote
                        .rel
                        .display
                        .rsplit('/')
                        .next()
                        .unwrap_or(&remote.rel.display);
                    (unique_name(file_name, &taken), vec!["dropbox".to_owned()])
                }
            };
        let stored = self
            .store
            .put_attachment(&AttachmentInput {
                record_id: cx.record.id,
                name,
                tags,
                content_hash: hash,
                size,
                origin_path: Some(remote.rel.display.clone()),
                source: ferry_core::model::Side::Dropbox,
                if_match: None,
            })
            .await
            .map_err(store_err)?;
        Ok((stored.value.id, size))
    }
}

/// Streams a download into a blob writer, 1 MiB at a time (memory stays bounded).
pub(crate) async fn fill(
    writer: &mut ferry_store::BlobWriter,
    body: &mut (dyn futures::AsyncRead + Send + Unpin),
) -> Result<(), DropboxError> {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = body
            .read(&mut buffer)
            .await
            .map_err(|e| DropboxError::Transport(format!("download interrupted: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        writer
            .write(&buffer[..n])
            .await
            .map_err(|e| crate::error::store_step("storing downloaded content", e))?;
    }
}
