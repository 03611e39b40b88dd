//! A binding's uploads, batched: content staged into closed upload sessions, then committed
//! with `finish_batch_v2` (≤ 1000 per call), one commit per connection at a time. Small files
//! are staged many per request (`start_batch` + `append_batch`), so a record's hundred files
//! cost three requests, not a hundred; large files go through resumable sessions, several
//! files at once.

use crate::binding::{Ctx, abs, content_unavailable};
use crate::sync_pass::PassOutcome;
use crate::{Engine, EngineError};
use ferry_core::sync_plan::{RelPath, UploadMode};
use ferry_dropbox::{DropboxError, MAX_BATCH, Staged, WriteMode};
use ferry_store::{LogEntry, SyncRow, SyncState};
use futures::StreamExt;
use std::time::Instant;

/// One planned upload.
pub(crate) struct PlannedUpload {
    pub(crate) attachment_id: i64,
    pub(crate) rel: RelPath,
    pub(crate) content_hash: String,
    pub(crate) size: u64,
    pub(crate) mode: UploadMode,
}

impl Engine {
    /// Logs an upload's outcome and saves what Dropbox confirmed (or the error) in the file's
    /// sync row.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_upload(
        &self,
        cx: &Ctx<'_>,
        rows: &[SyncRow],
        attachment_id: i64,
        rel: &RelPath,
        result: Result<ferry_dropbox::FileInfo, DropboxError>,
        started: Instant,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let (row, log) = upload_outcome(cx, rows, attachment_id, rel, result, started, outcome);
        self.store.save_sync_rows_logged(&[row], &[log]).await?;
        Ok(())
    }

    /// Stages every upload; one result per upload, in order.
    async fn stage_all(
        &self,
        cx: &Ctx<'_>,
        uploads: &[PlannedUpload],
    ) -> Vec<Result<Staged, DropboxError>> {
        let chunk = self.config.chunk_size as u64;
        let (small, large): (Vec<usize>, Vec<usize>) =
            (0..uploads.len()).partition(|i| uploads[*i].size <= chunk);
        let stage_small = async {
            let contents: Vec<Result<bytes::Bytes, DropboxError>> =
                futures::stream::iter(small.clone())
                    .map(|i| async move {
                        self.blobs
                            .get(&uploads[i].content_hash)
                            .await
                            .map_err(content_unavailable)
                    })
                    .buffered(16)
                    .collect()
                    .await;
            let mut out: Vec<(usize, Result<Staged, DropboxError>)> = Vec::new();
            let (mut at, mut bodies) = (Vec::new(), Vec::new());
            for (i, content) in small.iter().zip(contents) {
                match content {
                    Ok(body) => {
                        at.push(*i);
                        bodies.push(body);
                    }
                    Err(e) => out.push((*i, Err(e))),
                }
            }
            out.extend(at.into_iter().zip(cx.client.stage_many(&bodies).await));
            out
        };
        let stage_large = futures::stream::iter(large)
            .map(|i| async move {
                let u = &uploads[i];
                let staged = self
                    .stage_resumable(cx.client, &cx.binding.connection, &u.content_hash, u.size)
                    .await;
                (i, staged)
            })
            .buffered(self.config.upload_concurrency.max(1))
            .collect::<Vec<_>>();
        let (small, large) = futures::join!(stage_small, stage_large);
        let mut results: Vec<Option<Result<Staged, DropboxError>>> =
            uploads.iter().map(|_| None).collect();
        for (i, staged) in small.into_iter().chain(large) {
            results[i] = Some(staged);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DropboxError::Other("not staged".into()))))
            .collect()
    }

    /// Stages and commits several uploads (or one large one) in batches.
    pub(crate) async fn upload_batch(
        &self,
        cx: &Ctx<'_>,
        rows: &[SyncRow],
        uploads: Vec<PlannedUpload>,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        let staged = self.stage_all(cx, &uploads).await;
        let mut results: Vec<Option<Result<ferry_dropbox::FileInfo, DropboxError>>> =
            staged.iter().map(|_| None).collect();
        let ready: Vec<(usize, Staged)> = staged
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Ok(s) => Some((i, s)),
                Err(e) => {
                    results[i] = Some(Err(e));
                    None
                }
            })
            .collect();
        let lock = self.commit_lock(&cx.binding.connection);
        for chunk in ready.chunks(MAX_BATCH) {
            let entries: Vec<(Staged, String, WriteMode)> = chunk
                .iter()
                .map(|(i, s)| {
                    let u = &uploads[*i];
                    let mode = match &u.mode {
                        UploadMode::Add => WriteMode::Add,
                        UploadMode::Update(rev) => WriteMode::Update(rev.clone()),
                    };
                    (s.clone(), abs(&cx.binding.folder_display, &u.rel), mode)
                })
                .collect();
            let committed = {
                let _one_commit = lock.lock().await;
                match self.store.commit_slot(&cx.binding.connection).await {
                    Ok(slot) => {
                        let committed = cx.client.finish_batch(&entries).await;
                        slot.release().await;
                        committed
                    }
                    Err(e) => Err(crate::error::store_step("waiting to commit", e)),
                }
            };
            match committed {
                Ok(per_entry) => {
                    for ((i, _), r) in chunk.iter().zip(per_entry) {
                        results[*i] = Some(r);
                    }
                }
                Err(e) => {
                    for (i, _) in chunk {
                        results[*i] = Some(Err(e.for_each_entry()));
                    }
                }
            }
        }
        let mut saved = Vec::with_capacity(uploads.len());
        let mut log = Vec::with_capacity(uploads.len());
        for (u, result) in uploads.into_iter().zip(results) {
            let result = result.unwrap_or_else(|| Err(DropboxError::Other("not committed".into())));
            if result
                .as_ref()
                .is_ok_and(|info| info.size > self.config.chunk_size as u64)
            {
                self.store
                    .delete_upload_session(&cx.binding.connection, &u.content_hash)
                    .await?;
            }
            let (row, entry) =
                upload_outcome(cx, rows, u.attachment_id, &u.rel, result, started, outcome);
            saved.push(row);
            log.push(entry);
        }
        // One commit for the whole batch.
        self.store.save_sync_rows_logged(&saved, &log).await?;
        Ok(())
    }
}

/// The sync row and log entry an upload's outcome leads to.
fn upload_outcome(
    cx: &Ctx<'_>,
    rows: &[SyncRow],
    attachment_id: i64,
    rel: &RelPath,
    result: Result<ferry_dropbox::FileInfo, DropboxError>,
    started: Instant,
    outcome: &mut PassOutcome,
) -> (SyncRow, LogEntry) {
    let path = abs(&cx.binding.folder_display, rel);
    let mut row = rows
        .iter()
        .find(|r| r.rel_lower.as_deref() == Some(rel.lower.as_str()))
        .cloned()
        .unwrap_or_else(|| cx.new_row(rel));
    row.attachment_id = Some(attachment_id);
    row.rel_display = Some(rel.display.clone());
    let bytes = result.as_ref().map(|i| i.size).unwrap_or(0);
    let log = crate::binding::log_entry(
        cx.binding,
        cx.record,
        &path,
        "upload",
        bytes,
        started,
        result.as_ref().err(),
    );
    match result {
        Ok(info) => {
            outcome.uploaded += 1;
            row.dropbox_id = Some(info.id);
            row.rev = Some(info.rev);
            row.content_hash = info.content_hash;
            row.state = SyncState::Synced;
            row.last_error = None;
        }
        Err(e) => {
            outcome.failure(&e);
            row.state = SyncState::Failed;
            row.last_error = Some(crate::binding::describe(&e));
        }
    }
    (row, log)
}
