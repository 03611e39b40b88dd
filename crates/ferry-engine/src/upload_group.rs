//! Small uploads merged across passes. Every pass that has small files to upload on a
//! connection puts them in the connection's group and waits; one of the waiting passes leads:
//! it takes everything waiting (up to 1,000 files), stages it with one
//! `upload_session/start_batch` and `append_batch`, commits it with one `finish_batch_v2`,
//! and hands each pass its own results — a failed entry fails only its own file. A lone file
//! with nothing else waiting goes up with one `files/upload`, as before. So a back-fill of
//! many one-file records costs a few requests per batch instead of one per record, and a
//! single change keeps its one round trip.
//!
//! The leader holds the connection's commit lock and commit slot (one commit in flight per
//! namespace, across processes) only for the commit. A leader cancelled mid-batch (its pass
//! dropped) leaves its batch's passes an "interrupted" failure to retry, and lets another
//! waiting pass lead what is left.

use crate::Engine;
use bytes::Bytes;
use ferry_dropbox::{DropboxClient, DropboxError, FileInfo, MAX_BATCH, Staged, WriteMode};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, oneshot};

/// One small file to upload: its content, where, and how.
pub(crate) struct SmallUpload {
    pub(crate) content: Bytes,
    pub(crate) path: String,
    pub(crate) mode: WriteMode,
}

type Results = Vec<Result<FileInfo, DropboxError>>;

/// One pass's files, waiting for a leader.
struct Waiting {
    uploads: Vec<SmallUpload>,
    reply: oneshot::Sender<Results>,
}

/// A connection's waiting uploads and who leads them.
#[derive(Default)]
pub(crate) struct UploadGroup {
    waiting: Mutex<VecDeque<Waiting>>,
    leading: tokio::sync::Mutex<()>,
    /// Told when a leader lets go (also when it is cancelled), so a waiting pass leads next.
    freed: Notify,
}

impl UploadGroup {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whole waiting entries, up to `MAX_BATCH` files (at least one entry).
    fn take_batch(&self) -> Vec<Waiting> {
        let mut queue = self.queue();
        let mut batch = Vec::new();
        let mut files = 0;
        while let Some(next) = queue.front() {
            if !batch.is_empty() && files + next.uploads.len() > MAX_BATCH {
                break;
            }
            files += next.uploads.len();
            batch.extend(queue.pop_front());
        }
        batch
    }
}

/// Leadership, given up on drop — also when the leading pass is cancelled.
struct Leading<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    freed: &'a Notify,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.freed.notify_waiters();
    }
}

/// What a pass gets for files whose batch's leader was cancelled before it answered.
fn interrupted(n: usize) -> Results {
    (0..n)
        .map(|_| {
            Err(DropboxError::Transport(
                "the batch this file was committed in was interrupted".into(),
            ))
        })
        .collect()
}

impl Engine {
    fn upload_group(&self, connection: &str) -> Arc<UploadGroup> {
        let mut groups = self
            .upload_groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(groups.entry(connection.to_owned()).or_default())
    }

    /// Uploads small files (each at most one chunk) on `connection`, merged with those other
    /// passes upload at the same time; one result per file, in order.
    pub(crate) async fn upload_small(
        &self,
        client: &DropboxClient,
        connection: &str,
        uploads: Vec<SmallUpload>,
    ) -> Results {
        let group = self.upload_group(connection);
        let mut replies = Vec::new();
        let mut uploads = uploads.into_iter().peekable();
        while uploads.peek().is_some() {
            let chunk: Vec<SmallUpload> = uploads.by_ref().take(MAX_BATCH).collect();
            let (reply, answer) = oneshot::channel();
            replies.push((chunk.len(), answer));
            group.queue().push_back(Waiting {
                uploads: chunk,
                reply,
            });
        }
        let mut results = Vec::new();
        for (n, mut answer) in replies {
            loop {
                let freed = group.freed.notified();
                tokio::pin!(freed);
                // Registered before leading, so a leader letting go after this is seen.
                freed.as_mut().enable();
                self.lead(&group, client, connection).await;
                tokio::select! {
                    got = &mut answer => {
                        results.extend(got.unwrap_or_else(|_| interrupted(n)));
                        break;
                    }
                    _ = &mut freed => {}
                }
            }
        }
        results
    }

    /// Commits what waits while no one else leads; after letting go, looks again, so files
    /// put in just as the last leader finished are never left without one.
    async fn lead(&self, group: &UploadGroup, client: &DropboxClient, connection: &str) {
        loop {
            let Ok(guard) = group.leading.try_lock() else {
                return;
            };
            let leading = Leading {
                _guard: guard,
                freed: &group.freed,
            };
            loop {
                let batch = group.take_batch();
                if batch.is_empty() {
                    break;
                }
                self.commit_batch(client, connection, batch).await;
            }
            drop(leading);
            if group.queue().is_empty() {
                return;
            }
        }
    }

    /// Uploads one batch and answers each waiting pass.
    async fn commit_batch(&self, client: &DropboxClient, connection: &str, batch: Vec<Waiting>) {
        let mut counts = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut uploads = Vec::new();
        for w in batch {
            counts.push(w.uploads.len());
            replies.push(w.reply);
            uploads.extend(w.uploads);
        }
        let mut results = if let [one] = uploads.as_slice() {
            // Nothing to merge with: one request carries the content and the commit.
            let uploaded = self
                .committing(
                    connection,
                    client.upload(&one.path, one.content.clone(), &one.mode),
                )
                .await;
            vec![uploaded]
        } else {
            self.stage_and_commit(client, connection, &uploads).await
        }
        .into_iter();
        for (n, reply) in counts.into_iter().zip(replies) {
            let mine: Results = results.by_ref().take(n).collect();
            // A pass that went away meanwhile (cancelled) no longer waits: its next pass
            // finds the file in Dropbox and records it.
            let _ = reply.send(mine);
        }
    }

    /// Stages every file (start_batch + append_batch), then commits those staged with one
    /// `finish_batch_v2`.
    async fn stage_and_commit(
        &self,
        client: &DropboxClient,
        connection: &str,
        uploads: &[SmallUpload],
    ) -> Results {
        let bodies: Vec<Bytes> = uploads.iter().map(|u| u.content.clone()).collect();
        let staged = client.stage_many(&bodies).await;
        let mut results: Vec<Option<Result<FileInfo, DropboxError>>> =
            uploads.iter().map(|_| None).collect();
        let mut at = Vec::new();
        let mut entries: Vec<(Staged, String, WriteMode)> = Vec::new();
        for (i, s) in staged.into_iter().enumerate() {
            match s {
                Ok(s) => {
                    at.push(i);
                    entries.push((s, uploads[i].path.clone(), uploads[i].mode.clone()));
                }
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if !entries.is_empty() {
            match self
                .committing(connection, client.finish_batch(&entries))
                .await
            {
                Ok(per_entry) => {
                    for (i, r) in at.into_iter().zip(per_entry) {
                        results[i] = Some(r);
                    }
                }
                Err(e) => {
                    for i in at {
                        results[i] = Some(Err(e.for_each_entry()));
                    }
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DropboxError::Other("not committed".into()))))
            .collect()
    }

    /// Runs `commit` holding the connection's commit lock and commit slot: one commit in
    /// flight per namespace, across every process.
    pub(crate) async fn committing<T>(
        &self,
        connection: &str,
        commit: impl std::future::Future<Output = Result<T, DropboxError>>,
    ) -> Result<T, DropboxError> {
        let lock = self.commit_lock(connection);
        let _one_commit = lock.lock().await;
        match self.store.commit_slot(connection).await {
            Ok(slot) => {
                let done = commit.await;
                slot.release().await;
                done
            }
            Err(e) => Err(crate::error::store_step("waiting to commit", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(files: usize) -> (Waiting, oneshot::Receiver<Results>) {
        let (reply, answer) = oneshot::channel();
        let uploads = (0..files)
            .map(|i| SmallUpload {
                content: Bytes::new(),
                path: format!("/f{i}"),
                mode: WriteMode::Add,
            })
            .collect();
        (Waiting { uploads, reply }, answer)
    }

    #[test]
    fn a_batch_takes_whole_entries_up_to_a_thousand_files() {
        let group = UploadGroup::default();
        let mut answers = Vec::new();
        for files in [600, 300, 200, 1000] {
            let (w, a) = waiting(files);
            group.queue().push_back(w);
            answers.push(a);
        }
        let sizes = |b: Vec<Waiting>| b.iter().map(|w| w.uploads.len()).collect::<Vec<_>>();
        assert_eq!(sizes(group.take_batch()), [600, 300]);
        assert_eq!(sizes(group.take_batch()), [200]);
        assert_eq!(sizes(group.take_batch()), [1000]);
        assert!(group.take_batch().is_empty());
    }
}
