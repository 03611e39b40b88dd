//! Small uploads merged across passes. Every pass that has a few small files to upload on a
//! connection (fewer than 32: more fill a batch of their own) puts them in the connection's
//! group and waits; one of the waiting passes leads:
//! it takes everything waiting (up to 1,000 files), stages it with one
//! `upload_session/start_batch` and `append_batch`, commits it with one `finish_batch_v2`,
//! and hands each pass its own results — a failed entry fails only its own file. A lone file
//! with nothing else waiting goes up with one `files/upload`, as before. So a back-fill of
//! many one-file records costs a few requests per batch instead of one per record, and a
//! single change keeps its one round trip.
//!
//! Each connection has two lanes of these, live and bulk (`Lane`): a back-fill's files
//! batch among themselves, apart from a record's own change, whose commit goes before a
//! waiting bulk commit (`CommitGate`). Live files never wait behind another pass's staging:
//! a live pass stages each of its files in a closed session of its own, all at once (one
//! round trip), and only the commit merges with the other live passes' (`finish_batch_v2`).
//! A live pass alone with one file still uses one `files/upload`.
//!
//! Staging and committing are two batchers, so the next batch is staged while one commits.
//! The commit's leader holds the connection's commit lock and commit slot (one commit in
//! flight per namespace, across processes) only for the commit. A leader cancelled mid-batch
//! (its pass dropped) leaves its batch's passes an "interrupted" failure to retry, and lets
//! another waiting pass lead what is left.

use crate::Engine;
use bytes::Bytes;
use ferry_dropbox::{DropboxClient, DropboxError, FileInfo, MAX_BATCH, Staged, WriteMode};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, oneshot};

/// One small file to upload: its content, where, and how.
pub(crate) struct SmallUpload {
    pub(crate) content: Bytes,
    pub(crate) path: String,
    pub(crate) mode: WriteMode,
    /// The content's share of the transfer budget, given back once it is staged.
    pub(crate) _held: Option<crate::transfer_budget::Held>,
}

type Uploaded = Result<FileInfo, DropboxError>;

/// Files a pass uploads in a batch of its own rather than through the group.
const OWN_BATCH: usize = 32;

/// A file after staging: staged and waiting for its commit, or done already (it went up
/// alone with `files/upload`, or staging failed).
enum Staging {
    Staged(Staged, String, WriteMode),
    Done(Uploaded),
}

/// One caller's items, waiting for a leader.
struct Waiting<T, R> {
    items: Vec<T>,
    reply: oneshot::Sender<Vec<R>>,
}

/// Items of concurrent callers run in shared batches, each led by one of the waiting callers.
pub(crate) struct Batcher<T, R> {
    waiting: Mutex<VecDeque<Waiting<T, R>>>,
    leading: tokio::sync::Mutex<()>,
    /// Told when a leader lets go (also when it is cancelled), so a waiting caller leads next.
    freed: Notify,
}

impl<T, R> Default for Batcher<T, R> {
    fn default() -> Self {
        Batcher {
            waiting: Mutex::new(VecDeque::new()),
            leading: tokio::sync::Mutex::new(()),
            freed: Notify::new(),
        }
    }
}

/// Leadership, given up on drop — also when the leading caller is cancelled.
struct Leading<'a> {
    _guard: tokio::sync::MutexGuard<'a, ()>,
    freed: &'a Notify,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.freed.notify_waiters();
    }
}

impl<T, R> Batcher<T, R> {
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting<T, R>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whole waiting entries, up to `MAX_BATCH` items (at least one entry).
    fn take_batch(&self) -> Vec<Waiting<T, R>> {
        let mut queue = self.queue();
        let mut batch = Vec::new();
        let mut items = 0;
        while let Some(next) = queue.front() {
            if !batch.is_empty() && items + next.items.len() > MAX_BATCH {
                break;
            }
            items += next.items.len();
            batch.extend(queue.pop_front());
        }
        batch
    }

    /// Runs `items` in batches of up to `MAX_BATCH` with those of other callers; `run` does
    /// one batch (one result per item, in order), `lost(n)` stands for the results of `n`
    /// items whose leader was cancelled before answering.
    async fn submit<F, Fut>(&self, items: Vec<T>, run: &F, lost: fn(usize) -> Vec<R>) -> Vec<R>
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Vec<R>>,
    {
        let mut replies = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<T> = items.by_ref().take(MAX_BATCH).collect();
            let (reply, answer) = oneshot::channel();
            replies.push((chunk.len(), answer));
            self.queue().push_back(Waiting {
                items: chunk,
                reply,
            });
        }
        let mut results = Vec::new();
        for (n, mut answer) in replies {
            loop {
                let freed = self.freed.notified();
                tokio::pin!(freed);
                // Registered before leading, so a leader letting go after this is seen.
                freed.as_mut().enable();
                self.lead(run).await;
                tokio::select! {
                    biased;
                    got = &mut answer => {
                        results.extend(got.unwrap_or_else(|_| lost(n)));
                        break;
                    }
                    _ = &mut freed => {}
                }
            }
        }
        results
    }

    /// Runs what waits while no one else leads; after letting go, looks again, so items put
    /// in just as the last leader finished are never left without one.
    async fn lead<F, Fut>(&self, run: &F)
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: std::future::Future<Output = Vec<R>>,
    {
        loop {
            let Ok(guard) = self.leading.try_lock() else {
                return;
            };
            let leading = Leading {
                _guard: guard,
                freed: &self.freed,
            };
            loop {
                let batch = self.take_batch();
                if batch.is_empty() {
                    break;
                }
                let mut counts = Vec::with_capacity(batch.len());
                let mut replies = Vec::with_capacity(batch.len());
                let mut items = Vec::new();
                for w in batch {
                    counts.push(w.items.len());
                    replies.push(w.reply);
                    items.extend(w.items);
                }
                let mut results = run(items).await.into_iter();
                for (n, reply) in counts.into_iter().zip(replies) {
                    // A caller that went away meanwhile (cancelled) no longer waits: its
                    // next pass finds the file in Dropbox and records it.
                    let _ = reply.send(results.by_ref().take(n).collect());
                }
            }
            drop(leading);
            if self.queue().is_empty() {
                return;
            }
        }
    }
}

/// Which of a connection's two upload lanes a pass's small files take. A back-fill's files
/// (queued in bulk) batch among themselves; everything else — a record's own change, a
/// change seen in Dropbox — batches apart from them, so it never waits for a back-fill's
/// batch to be staged, and goes up alone (one `files/upload`) when nothing else live is
/// waiting. It still waits for the commit in flight: one per namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Changes someone waits to see in Dropbox.
    Live,
    /// A back-fill (a rule or connection change, a reconciliation's finds).
    Bulk,
}

impl Lane {
    /// The lane of a pass claimed from the queue in `priority`.
    pub(crate) fn of(priority: ferry_store::Priority) -> Lane {
        match priority {
            ferry_store::Priority::Bulk => Lane::Bulk,
            _ => Lane::Live,
        }
    }
}

tokio::task_local! {
    /// The lane of the pass this task runs (the worker sets it from the task's queue
    /// class); a pass run directly (the API, a test) is live.
    pub(crate) static LANE: Lane;
}

/// A lane's two batchers: staging (start_batch + append_batch) and committing
/// (`finish_batch_v2`). They are apart so the next batch is staged while one commits.
#[derive(Default)]
struct LaneBatchers {
    stage: Batcher<SmallUpload, Staging>,
    commit: Batcher<(Staged, String, WriteMode), Uploaded>,
}

/// A connection's upload lanes.
#[derive(Default)]
pub(crate) struct UploadGroup {
    live: LaneBatchers,
    bulk: LaneBatchers,
    /// Live passes uploading small files now.
    live_uploading: std::sync::atomic::AtomicUsize,
}

/// Counts a live pass as uploading until dropped.
struct LiveUploading<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for LiveUploading<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The lane of the pass running in this task.
fn current_lane() -> Lane {
    LANE.try_with(|lane| *lane).unwrap_or(Lane::Live)
}

impl UploadGroup {
    /// The batchers of the lane the current pass takes.
    fn current(&self) -> &LaneBatchers {
        match current_lane() {
            Lane::Live => &self.live,
            Lane::Bulk => &self.bulk,
        }
    }
}

/// A connection's commit lock (one commit in flight per namespace) that live commits enter
/// before any waiting bulk commit: a live change then waits for at most the commit in flight.
#[derive(Default)]
pub(crate) struct CommitGate {
    lock: tokio::sync::Mutex<()>,
    /// Live commits waiting for the lock.
    live_waiting: std::sync::atomic::AtomicUsize,
    /// Told when no live commit waits any more.
    no_live: Notify,
}

/// Counts a live commit as waiting until it holds the lock (or is cancelled).
struct WaitingLive<'a>(&'a CommitGate);

impl Drop for WaitingLive<'_> {
    fn drop(&mut self) {
        if self.0.live_waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.no_live.notify_waiters();
        }
    }
}

impl CommitGate {
    /// Holds the lock for one commit in `lane`.
    pub(crate) async fn enter(&self, lane: Lane) -> tokio::sync::MutexGuard<'_, ()> {
        if lane == Lane::Live {
            self.live_waiting.fetch_add(1, Ordering::AcqRel);
            let _waiting = WaitingLive(self);
            return self.lock.lock().await;
        }
        loop {
            let no_live = self.no_live.notified();
            tokio::pin!(no_live);
            // Registered before looking, so the last live waiter leaving after this is seen.
            no_live.as_mut().enable();
            if self.live_waiting.load(Ordering::Acquire) == 0 {
                let held = self.lock.lock().await;
                // A live commit that came while this one waited goes first.
                if self.live_waiting.load(Ordering::Acquire) == 0 {
                    return held;
                }
                drop(held);
                continue;
            }
            no_live.await;
        }
    }
}

/// Results for files whose batch's leader was cancelled before it answered.
fn interrupted(n: usize) -> Vec<Uploaded> {
    (0..n)
        .map(|_| {
            Err(DropboxError::Transport(
                "the batch this file was committed in was interrupted".into(),
            ))
        })
        .collect()
}

fn interrupted_staging(n: usize) -> Vec<Staging> {
    interrupted(n).into_iter().map(Staging::Done).collect()
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
    ) -> Vec<Uploaded> {
        let groups = self.upload_group(connection);
        let group = groups.current();
        let stage = |batch: Vec<SmallUpload>| self.stage_batch(client, connection, batch);
        // A pass with many files fills a batch of its own: it stages them beside the other
        // passes (not after them) and commits them alone.
        let own = uploads.len() >= OWN_BATCH;
        let staged = if own {
            self.stage_batch(client, connection, uploads).await
        } else if current_lane() == Lane::Live {
            let before = groups.live_uploading.fetch_add(1, Ordering::AcqRel);
            let _uploading = LiveUploading(&groups.live_uploading);
            if let ([one], 0) = (uploads.as_slice(), before) {
                // Alone: one `files/upload` carries the content and its commit.
                let upload = client.upload(&one.path, one.content.clone(), &one.mode);
                return vec![self.committing(connection, upload).await];
            }
            // Live work does not wait for another pass's staging: each file goes into a
            // closed session of its own, all at once (one round trip), and the commits
            // merge with the other live passes'.
            futures::future::join_all(uploads.into_iter().map(|u| async move {
                match client.stage(u.content.clone()).await {
                    Ok(staged) => Staging::Staged(staged, u.path, u.mode),
                    Err(e) => Staging::Done(Err(e)),
                }
            }))
            .await
        } else {
            group
                .stage
                .submit(uploads, &stage, interrupted_staging)
                .await
        };
        let mut results: Vec<Option<Uploaded>> = Vec::with_capacity(staged.len());
        let mut at = Vec::new();
        let mut commits = Vec::new();
        for (i, s) in staged.into_iter().enumerate() {
            match s {
                Staging::Done(r) => results.push(Some(r)),
                Staging::Staged(staged, path, mode) => {
                    results.push(None);
                    at.push(i);
                    commits.push((staged, path, mode));
                }
            }
        }
        if !commits.is_empty() {
            let commit = |batch: Vec<(Staged, String, WriteMode)>| {
                self.commit_staged(client, connection, batch)
            };
            let committed = if own {
                let mut committed = Vec::with_capacity(commits.len());
                let mut commits = commits.into_iter().peekable();
                while commits.peek().is_some() {
                    let batch: Vec<_> = commits.by_ref().take(MAX_BATCH).collect();
                    committed.extend(commit(batch).await);
                }
                committed
            } else {
                group.commit.submit(commits, &commit, interrupted).await
            };
            for (i, r) in at.into_iter().zip(committed) {
                results[i] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DropboxError::Other("not committed".into()))))
            .collect()
    }

    /// Stages one batch; a lone file (nothing else waiting) goes up with one `files/upload`
    /// instead, carrying its content and its commit.
    async fn stage_batch(
        &self,
        client: &DropboxClient,
        connection: &str,
        batch: Vec<SmallUpload>,
    ) -> Vec<Staging> {
        if let [one] = batch.as_slice() {
            let uploaded = self
                .committing(
                    connection,
                    client.upload(&one.path, one.content.clone(), &one.mode),
                )
                .await;
            return vec![Staging::Done(uploaded)];
        }
        let bodies: Vec<Bytes> = batch.iter().map(|u| u.content.clone()).collect();
        let staged = client.stage_many(&bodies).await;
        batch
            .into_iter()
            .zip(staged)
            .map(|(u, s)| match s {
                Ok(s) => Staging::Staged(s, u.path, u.mode),
                Err(e) => Staging::Done(Err(e)),
            })
            .collect()
    }

    /// Commits one batch of staged files with one `finish_batch_v2`.
    async fn commit_staged(
        &self,
        client: &DropboxClient,
        connection: &str,
        entries: Vec<(Staged, String, WriteMode)>,
    ) -> Vec<Uploaded> {
        match self
            .committing(connection, client.finish_batch(&entries))
            .await
        {
            Ok(per_entry) => per_entry,
            Err(e) => entries.iter().map(|_| Err(e.for_each_entry())).collect(),
        }
    }

    /// Runs `commit` holding the connection's commit lock and commit slot: one commit in
    /// flight per namespace, across every process.
    pub(crate) async fn committing<T>(
        &self,
        connection: &str,
        commit: impl std::future::Future<Output = Result<T, DropboxError>>,
    ) -> Result<T, DropboxError> {
        let lock = self.commit_lock(connection);
        let _one_commit = lock.enter(current_lane()).await;
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

    fn waiting(items: usize) -> (Waiting<u32, u32>, oneshot::Receiver<Vec<u32>>) {
        let (reply, answer) = oneshot::channel();
        let items = (0..items as u32).collect();
        (Waiting { items, reply }, answer)
    }

    #[test]
    fn a_batch_takes_whole_entries_up_to_a_thousand_items() {
        let batcher = Batcher::<u32, u32>::default();
        let mut answers = Vec::new();
        for items in [600, 300, 200, 1000] {
            let (w, a) = waiting(items);
            batcher.queue().push_back(w);
            answers.push(a);
        }
        let sizes = |b: Vec<Waiting<u32, u32>>| b.iter().map(|w| w.items.len()).collect::<Vec<_>>();
        assert_eq!(sizes(batcher.take_batch()), [600, 300]);
        assert_eq!(sizes(batcher.take_batch()), [200]);
        assert_eq!(sizes(batcher.take_batch()), [1000]);
        assert!(batcher.take_batch().is_empty());
    }

    /// Callers at once share batches, and each gets exactly its own results back, also when
    /// one caller's items span several batches.
    #[tokio::test]
    async fn concurrent_callers_share_batches_and_get_their_own_results() {
        let batcher = Arc::new(Batcher::<u32, u32>::default());
        let batches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut callers = tokio::task::JoinSet::new();
        for caller in 0..20u32 {
            let (batcher, batches) = (Arc::clone(&batcher), Arc::clone(&batches));
            callers.spawn(async move {
                let items: Vec<u32> = (0..if caller == 7 { 1500 } else { 3 })
                    .map(|i| caller * 10_000 + i)
                    .collect();
                let run = |batch: Vec<u32>| {
                    let batches = Arc::clone(&batches);
                    async move {
                        batches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                        batch.into_iter().map(|x| x + 1).collect::<Vec<u32>>()
                    }
                };
                let got = batcher.submit(items.clone(), &run, |n| vec![0; n]).await;
                let want: Vec<u32> = items.iter().map(|x| x + 1).collect();
                assert_eq!(got, want, "caller {caller}");
            });
        }
        while let Some(done) = callers.join_next().await {
            done.unwrap();
        }
        let batches = batches.load(std::sync::atomic::Ordering::SeqCst);
        // 1,557 items: at least two batches, far fewer than the 20 callers' 21 chunks.
        assert!((2..21).contains(&batches), "{batches} batches");
        assert!(batcher.queue().is_empty());
    }

    /// While a commit holds the lock, a bulk commit waits, then a live one comes: the live
    /// one goes next, the bulk one after it. A live commit cancelled while waiting does not
    /// keep the bulk one waiting.
    #[tokio::test]
    async fn a_live_commit_goes_before_a_waiting_bulk_one() {
        let gate = Arc::new(CommitGate::default());
        let order = Arc::new(Mutex::new(Vec::new()));
        let held = gate.enter(Lane::Bulk).await;
        let enter = |lane: Lane, name: &'static str| {
            let (gate, order) = (Arc::clone(&gate), Arc::clone(&order));
            tokio::spawn(async move {
                let _held = gate.enter(lane).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            })
        };
        let bulk = enter(Lane::Bulk, "bulk");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let live = enter(Lane::Live, "live");
        while gate.live_waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        bulk.await.unwrap();
        live.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["live", "bulk"]);

        let held = gate.enter(Lane::Bulk).await;
        let cancelled = enter(Lane::Live, "cancelled");
        while gate.live_waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        cancelled.abort();
        let _ = cancelled.await;
        drop(held);
        let bulk = enter(Lane::Bulk, "bulk again");
        tokio::time::timeout(std::time::Duration::from_secs(5), bulk)
            .await
            .expect("the bulk commit is not kept waiting")
            .unwrap();
    }
}
