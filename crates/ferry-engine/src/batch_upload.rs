//! A binding's uploads, batched: content staged into closed upload sessions, then committed
//! with `finish_batch_v2` (≤ 1000 per call), one commit per connection at a time. Small files
//! go through the connection's upload group (`upload_group.rs`), staged many per request
//! (`start_batch` + `append_batch`) together with those of other passes, so a record's
//! hundred files — or a hundred one-file records — cost three requests, not a hundred; large
//! files go through resumable sessions, several files at once.

use crate::binding::{Ctx, abs, content_unavailable};
use crate::sync_pass::PassOutcome;
use crate::upload_group::SmallUpload;
use crate::{Engine, EngineError};
use ferry_core::model::Attachment;
use ferry_core::sync_plan::{Action, RelPath, UploadMode};
use ferry_dropbox::{DropboxError, MAX_APPEND_BATCH_BYTES, MAX_BATCH, Staged, WriteMode};
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

/// The uploads among `actions`, each with its attachment's size (which decides between the
/// upload group and a resumable session).
pub(crate) fn planned_uploads(
    actions: Vec<Action>,
    attachments: &[Attachment],
) -> Vec<PlannedUpload> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Upload {
                attachment_id,
                rel,
                content_hash,
                mode,
            } => Some(PlannedUpload {
                size: attachments
                    .iter()
                    .find(|a| a.id == attachment_id)
                    .map_or(0, |a| a.size),
                attachment_id,
                rel,
                content_hash,
                mode,
            }),
            _ => None,
        })
        .collect()
}

impl Engine {
    /// Small files through the connection's upload group (merged with other passes'),
    /// large ones through resumable sessions committed together; then every file's row and
    /// log entry in one transaction.
    pub(crate) async fn upload_batch(
        &self,
        cx: &Ctx<'_>,
        rows: &[SyncRow],
        uploads: Vec<PlannedUpload>,
        outcome: &mut PassOutcome,
    ) -> Result<(), EngineError> {
        let started = Instant::now();
        // Until the rows below are saved, the feed may bring these files back first.
        let _own = self.own_writes.hold(uploads.iter().map(|u| {
            (
                abs(&cx.binding.folder_display, &u.rel),
                u.content_hash.clone(),
            )
        }));
        let chunk = self.config.chunk_size as u64;
        let (small, large): (Vec<usize>, Vec<usize>) =
            (0..uploads.len()).partition(|i| uploads[*i].size <= chunk);
        let (small, large) = futures::join!(
            self.upload_small_files(cx, &uploads, small),
            self.upload_large_files(cx, &uploads, large)
        );
        let mut results: Vec<Option<Result<ferry_dropbox::FileInfo, DropboxError>>> =
            uploads.iter().map(|_| None).collect();
        for (i, result) in small.into_iter().chain(large) {
            results[i] = Some(result);
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

impl Engine {
    /// Reads the small files' contents and uploads them through the upload group, a group
    /// of them at a time, each group's bytes held from the transfer budget until staged.
    async fn upload_small_files(
        &self,
        cx: &Ctx<'_>,
        uploads: &[PlannedUpload],
        small: Vec<usize>,
    ) -> Vec<(usize, Result<ferry_dropbox::FileInfo, DropboxError>)> {
        let mut out = Vec::with_capacity(small.len());
        for group in read_groups(uploads, &small) {
            out.extend(self.upload_small_group(cx, uploads, group).await);
        }
        out
    }

    async fn upload_small_group(
        &self,
        cx: &Ctx<'_>,
        uploads: &[PlannedUpload],
        group: Vec<usize>,
    ) -> Vec<(usize, Result<ferry_dropbox::FileInfo, DropboxError>)> {
        let bytes = group.iter().map(|i| uploads[*i].size).sum();
        let held = self.transfer_budget.hold(bytes).await;
        let contents: Vec<Result<bytes::Bytes, DropboxError>> =
            futures::stream::iter(group.clone())
                .map(|i| async move {
                    self.blobs
                        .get(&uploads[i].content_hash)
                        .await
                        .map_err(content_unavailable)
                })
                .buffered(16)
                .collect()
                .await;
        let mut out = Vec::with_capacity(group.len());
        let (mut at, mut batch) = (Vec::new(), Vec::new());
        for (i, content) in group.into_iter().zip(contents) {
            match content {
                Ok(content) => {
                    let u = &uploads[i];
                    at.push(i);
                    batch.push(SmallUpload {
                        content,
                        path: abs(&cx.binding.folder_display, &u.rel),
                        mode: write_mode(&u.mode),
                        _held: held.clone(),
                    });
                }
                Err(e) => out.push((i, Err(e))),
            }
        }
        drop(held);
        let uploaded = self
            .upload_small(cx.client, &cx.binding.connection, batch)
            .await;
        out.extend(at.into_iter().zip(uploaded));
        out
    }

    /// Stages the large files through resumable sessions, several at once, and commits
    /// them in batches of up to 1,000.
    async fn upload_large_files(
        &self,
        cx: &Ctx<'_>,
        uploads: &[PlannedUpload],
        large: Vec<usize>,
    ) -> Vec<(usize, Result<ferry_dropbox::FileInfo, DropboxError>)> {
        let staged: Vec<(usize, Result<Staged, DropboxError>)> = futures::stream::iter(large)
            .map(|i| async move {
                let u = &uploads[i];
                let staged = self
                    .stage_resumable(cx.client, &cx.binding.connection, &u.content_hash, u.size)
                    .await;
                (i, staged)
            })
            .buffered(self.config.upload_concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::with_capacity(staged.len());
        let mut ready = Vec::new();
        for (i, s) in staged {
            match s {
                Ok(s) => ready.push((i, s)),
                Err(e) => out.push((i, Err(e))),
            }
        }
        for chunk in ready.chunks(MAX_BATCH) {
            let entries: Vec<(Staged, String, WriteMode)> = chunk
                .iter()
                .map(|(i, s)| {
                    let u = &uploads[*i];
                    (
                        s.clone(),
                        abs(&cx.binding.folder_display, &u.rel),
                        write_mode(&u.mode),
                    )
                })
                .collect();
            match self
                .committing(&cx.binding.connection, cx.client.finish_batch(&entries))
                .await
            {
                Ok(per_entry) => out.extend(chunk.iter().map(|(i, _)| *i).zip(per_entry)),
                Err(e) => out.extend(chunk.iter().map(|(i, _)| (*i, Err(e.for_each_entry())))),
            }
        }
        out
    }
}

/// Bytes of small files a pass reads before it uploads them (four append requests' worth).
const GROUP_BYTES: u64 = 4 * MAX_APPEND_BATCH_BYTES as u64;

/// The small uploads (indices into `uploads`) in the groups a pass reads and uploads
/// together: at most a batch of files and [`GROUP_BYTES`] each (a larger file alone).
fn read_groups(uploads: &[PlannedUpload], small: &[usize]) -> Vec<Vec<usize>> {
    let mut groups = Vec::new();
    let (mut group, mut bytes) = (Vec::new(), 0u64);
    for &i in small {
        let size = uploads[i].size;
        if !group.is_empty() && (group.len() == MAX_BATCH || bytes + size > GROUP_BYTES) {
            groups.push(std::mem::take(&mut group));
            bytes = 0;
        }
        bytes += size;
        group.push(i);
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

/// The Dropbox write mode of a planned upload.
fn write_mode(mode: &UploadMode) -> WriteMode {
    match mode {
        UploadMode::Add => WriteMode::Add,
        UploadMode::Update(rev) => WriteMode::Update(rev.clone()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(size: u64) -> PlannedUpload {
        PlannedUpload {
            attachment_id: 1,
            rel: RelPath::new("a".to_owned()),
            content_hash: String::new(),
            size,
            mode: UploadMode::Add,
        }
    }

    #[test]
    fn small_files_are_read_in_groups_bounded_by_count_and_bytes() {
        let mib = 1 << 20;
        let uploads: Vec<PlannedUpload> = [8 * mib, 8 * mib, 60 * mib, 1, 70 * mib, 2]
            .into_iter()
            .map(upload)
            .collect();
        let groups = read_groups(&uploads, &[0, 1, 2, 3, 4, 5]);
        assert_eq!(groups, vec![vec![0, 1], vec![2, 3], vec![4], vec![5]]);
        let many: Vec<PlannedUpload> = (0..2500).map(|_| upload(10)).collect();
        let all: Vec<usize> = (0..many.len()).collect();
        let sizes: Vec<usize> = read_groups(&many, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![MAX_BATCH, MAX_BATCH, 500]);
    }
}
