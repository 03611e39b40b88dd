//! The queue workers: claim a record, run a pass, finish or schedule a retry.

use crate::{Engine, EngineError, backoff_delay};
use ferry_core::model::RecordId;
use ferry_store::{Priority, QueueStats};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often an idle worker looks at the queue even without a wake-up (retries come due).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Tasks claimed together, with the rules and connections their passes share.
struct Claim {
    tasks: Vec<ferry_store::Task>,
    snapshot: Arc<crate::sync_pass::ClaimSnapshot>,
}

/// Ends a claimed pass's time in flight however the pass ends (a panic included), so that
/// the record can be claimed again.
struct EndsPass<'a>(&'a Engine, RecordId);

impl Drop for EndsPass<'_> {
    fn drop(&mut self) {
        self.0.liveness.end(self.1);
    }
}

use ferry_core::clock::now_ms;

impl Engine {
    /// Queues a record and every record whose rules can see it (parent, children, siblings).
    pub async fn enqueue_related(&self, id: RecordId) -> Result<(), EngineError> {
        let mut ids = vec![id];
        if let Some(record) = self.store.record_by_id(id).await? {
            if let Some(parent) = record.parent_id {
                ids.push(parent);
                ids.extend(self.store.children(parent).await?.iter().map(|r| r.id));
            }
            ids.extend(self.store.children(id).await?.iter().map(|r| r.id));
        }
        ids.sort_unstable();
        ids.dedup();
        self.store.enqueue(&ids, Priority::Normal).await?;
        self.wake();
        Ok(())
    }

    /// Registers this process (releasing the claims of dead ones), then starts its heartbeat
    /// and `config.workers` workers; they stop when `shutdown` turns true.
    pub async fn spawn_workers(
        self: &Arc<Self>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Vec<JoinHandle<()>>, EngineError> {
        self.announce().await?;
        // A confirmed account switch whose connect a stop interrupted is finished first.
        if let Err(e) = self.resume_switches().await {
            tracing::error!(error = %e, "cannot resume account switches");
        }
        let mut tasks = vec![self.spawn_heartbeat(shutdown.clone())];
        tasks.extend((0..self.config.workers.max(1)).map(|n| {
            let engine = Arc::clone(self);
            let shutdown = shutdown.clone();
            tokio::spawn(engine.worker_loop(n, shutdown))
        }));
        Ok(tasks)
    }

    /// How many sync workers are running now (for readiness).
    pub fn running_workers(&self) -> usize {
        self.running_workers
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// One worker: keeps up to `passes_per_worker` live passes and `bulk_passes_per_worker`
    /// back-fill passes in flight, each a task of its own. It claims more once half of them
    /// have ended, or at once when woken. The two windows are apart so a back-fill can keep
    /// many passes waiting on Dropbox (their small files share each batch) while a record's
    /// own change still finds a free live slot: with the back-fill window full, it claims
    /// live work only. On shutdown it lets the passes in flight end.
    async fn worker_loop(self: Arc<Self>, n: usize, mut shutdown: watch::Receiver<bool>) {
        tracing::debug!(worker = n, "sync worker started");
        /// Counts the worker as running until its loop ends, however it ends.
        struct Running<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            }
        }
        self.running_workers
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let _running = Running(&self.running_workers);
        let mut window = PassWindow::new(
            self.config.passes_per_worker,
            self.config.bulk_passes_per_worker,
        );
        let mut passes = tokio::task::JoinSet::new();
        // Woken (or just started) since the last claim: claim whatever room there is.
        let mut eager = true;
        while !*shutdown.borrow() {
            // Made before the claim reads the queue, so a wake-up during it is kept
            // (`notify_waiters` reaches every `Notified` that exists).
            let woke = self.wake.notified();
            tokio::pin!(woke);
            while let Some(ended) = passes.try_join_next_with_id() {
                Self::pass_ended(&mut window, ended);
            }
            let mut claimed = 0;
            if let Some((limit, up_to)) = window.claim(eager) {
                eager = false;
                match self.claim(limit, up_to).await {
                    Ok(Some(claim)) => {
                        claimed = claim.tasks.len();
                        for task in claim.tasks {
                            let engine = Arc::clone(&self);
                            let snapshot = Arc::clone(&claim.snapshot);
                            let priority = task.priority;
                            let pass = passes.spawn(async move {
                                let _end = EndsPass(&engine, task.record_id);
                                engine.run_task(&task, &snapshot).await
                            });
                            window.began(pass.id(), priority);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "sync queue unavailable"),
                }
            }
            if claimed == 0 || window.more_than_half_full() {
                tokio::select! {
                    _ = &mut woke => eager = true,
                    Some(ended) = passes.join_next_with_id(), if !passes.is_empty() => Self::pass_ended(&mut window, ended),
                    _ = tokio::time::sleep(IDLE_POLL) => eager = true,
                    _ = shutdown.changed() => {}
                }
            }
        }
        while let Some(ended) = passes.join_next_with_id().await {
            Self::pass_ended(&mut window, ended);
        }
        tracing::debug!(worker = n, "sync worker stopped");
    }

    /// Logs how a spawned pass ended, if badly (its task's end is already recorded, or will
    /// be retried when its lease lapses).
    fn pass_ended(
        window: &mut PassWindow,
        ended: Result<(tokio::task::Id, Result<(), EngineError>), tokio::task::JoinError>,
    ) {
        match ended {
            Ok((id, passed)) => {
                window.ended(id);
                if let Err(e) = passed {
                    tracing::error!(error = %e, "sync queue unavailable");
                }
            }
            Err(e) => {
                window.ended(e.id());
                tracing::error!(error = %e, "a sync pass panicked or was cancelled");
            }
        }
    }

    /// Claims and runs one due task. Returns false if none was due.
    pub async fn run_one(&self) -> Result<bool, EngineError> {
        Ok(self.run_some(1).await? > 0)
    }

    /// Claims up to `limit` due tasks in one go and runs their passes side by side (their
    /// small files then share upload batches). Returns how many ran; a store error of one
    /// pass is returned once all of them have ended.
    pub async fn run_some(&self, limit: usize) -> Result<usize, EngineError> {
        let Some(claim) = self.claim(limit, Priority::Bulk).await? else {
            return Ok(0);
        };
        let snapshot = &claim.snapshot;
        let ended = futures::future::join_all(claim.tasks.iter().map(|task| async move {
            let _end = EndsPass(self, task.record_id);
            self.run_task(task, snapshot).await
        }))
        .await;
        ended.into_iter().collect::<Result<Vec<()>, _>>()?;
        Ok(claim.tasks.len())
    }

    /// Claims up to `limit` due tasks and reads the rules and connections their passes share;
    /// `None` if none was due. The tasks count as in flight here until their passes end
    /// ([`EndsPass`]).
    async fn claim(&self, limit: usize, up_to: Priority) -> Result<Option<Claim>, EngineError> {
        self.announce().await?;
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let tasks = {
            let _one_claim_at_a_time = self.liveness.claiming.lock().await;
            let running = self.liveness.in_flight();
            let tasks = self
                .store
                .claim_tasks(
                    self.process_id(),
                    &running,
                    now_ms(),
                    lease,
                    limit.max(1),
                    up_to,
                )
                .await?;
            for task in &tasks {
                self.liveness.begin(task.record_id);
            }
            tasks
        };
        if tasks.is_empty() {
            return Ok(None);
        }
        match self.claim_snapshot().await {
            Ok(snapshot) => Ok(Some(Claim {
                tasks,
                snapshot: Arc::new(snapshot),
            })),
            Err(e) => {
                // The claims go back at once for a retry (if the store cannot take even
                // that, they lapse with the lease).
                let error = format!("cannot read the rules and connections: {e}");
                for task in &tasks {
                    self.liveness.end(task.record_id);
                    if let Err(e) = self
                        .store
                        .retry_task(task, &error, now_ms() + 1_000, false)
                        .await
                    {
                        tracing::warn!(record = task.record_id, error = %e, "cannot give back a claim");
                    }
                }
                Err(e)
            }
        }
    }

    async fn run_task(
        &self,
        task: &ferry_store::Task,
        claim: &crate::sync_pass::ClaimSnapshot,
    ) -> Result<(), EngineError> {
        use crate::metrics::PassEnd;
        use tracing::Instrument;
        let attempts = u32::try_from(task.attempts).unwrap_or(u32::MAX);
        let started = std::time::Instant::now();
        let span = tracing::info_span!("pass", record = task.record_id, attempt = attempts + 1);
        let lane = crate::upload_group::Lane::of(task.priority);
        let passed = crate::upload_group::LANE
            .scope(
                lane,
                self.sync_queued_record(task.record_id, attempts > 0, claim)
                    .instrument(span),
            )
            .await;
        if passed.is_ok() {
            // Files or folders this pass made may want shared links.
            self.wake_links.notify_one();
            self.wake_offload.notify_one();
        }
        let counted = |end| self.metrics.pass(end, started.elapsed());
        let (error, retry, retry_after) = match passed {
            Ok(outcome) if outcome.retryable == 0 => {
                counted(PassEnd::Ok);
                tracing::info!(record = task.record_id, ?outcome, "sync pass done");
                let log = if outcome.failed == 0 && outcome.changed_anything() {
                    self.record_synced_log(task.record_id, started).await?
                } else {
                    Vec::new()
                };
                self.store.finish_task_logged(task, &log).await?;
                return Ok(());
            }
            Ok(outcome) => (
                format!("{} file(s) failed and will be retried", outcome.retryable),
                outcome.retry(),
                outcome.retry_after,
            ),
            Err(EngineError::NeedsReconnect(name, reason)) => {
                counted(PassEnd::Deferred);
                // Paused, not failed: try again later, without counting an attempt.
                let next = now_ms() + 60_000;
                self.store
                    .defer_task(
                        task,
                        &format!("connection {name:?} needs a reconnect: {reason}"),
                        next,
                    )
                    .await?;
                return Ok(());
            }
            Err(e) if e.is_retryable() => (e.to_string(), e.retry(), e.retry().after()),
            Err(e) => {
                counted(PassEnd::Failed);
                // Retrying cannot help until something changes; the change re-queues it.
                tracing::error!(record = task.record_id, error = %e, "sync pass failed");
                self.store.finish_task(task).await?;
                return Ok(());
            }
        };
        let now = now_ms();
        let delay = backoff_delay(attempts, self.config.max_backoff, retry_after);
        // Giving up is by time spent failing, and never for a failure that only says "wait".
        let failing_for = now.saturating_sub(task.failing_since.unwrap_or(now));
        let budget = i64::try_from(self.config.give_up_after.as_millis()).unwrap_or(i64::MAX);
        let dead = !retry.is_wait() && failing_for >= budget;
        counted(if dead { PassEnd::Dead } else { PassEnd::Retry });
        if dead {
            tracing::error!(record = task.record_id, attempts = attempts + 1, failing_for_ms = failing_for, %error, "sync pass dead-lettered");
        } else {
            tracing::warn!(record = task.record_id, attempts = attempts + 1, ?delay, %error, "sync pass will be retried");
        }
        let next = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.store.retry_task(task, &error, next, dead).await?;
        Ok(())
    }

    /// The log entries saying that a pass left all of a record's files in step, one per
    /// connection it is bound on (the `record.synced` webhook). Written with the task's end,
    /// in one transaction: a crash cannot leave one without the other.
    async fn record_synced_log(
        &self,
        record_id: RecordId,
        started: std::time::Instant,
    ) -> Result<Vec<ferry_store::LogEntry>, EngineError> {
        let bindings = self.store.bindings_for_record(record_id).await?;
        let mut seen = std::collections::BTreeSet::new();
        let mut log = Vec::new();
        for binding in bindings {
            if !seen.insert(binding.connection.clone()) {
                continue;
            }
            log.push(ferry_store::LogEntry {
                id: 0,
                at: 0,
                connection: binding.connection,
                binding_id: Some(binding.id),
                record_id,
                path: binding.folder_display,
                action: "record_synced".into(),
                outcome: "ok".into(),
                bytes: 0,
                duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                error: None,
            });
        }
        Ok(log)
    }

    /// Puts every dead-lettered record back in the queue (due now, with a fresh failure
    /// budget) and wakes the workers. Returns how many.
    pub async fn requeue_dead(&self) -> Result<u64, EngineError> {
        let n = self.store.requeue_dead().await?;
        self.wake();
        Ok(n)
    }

    /// Waits until the queue is empty, or only holds tasks waiting for a retry, or `timeout`
    /// passes. Returns the queue as it was last seen.
    pub async fn wait_idle(&self, timeout: Duration) -> Result<QueueStats, EngineError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.store.queue_stats().await?;
            // Settled: nothing due now (only retries waiting for later, or dead letters).
            let settled = stats.queued == 0
                || (stats.queued == stats.retrying + stats.dead
                    && stats.next_due_ms.is_none_or(|t| t > now_ms()));
            if settled || tokio::time::Instant::now() >= deadline {
                return Ok(stats);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A worker's passes in flight, live and back-fill (bulk) apart, each class with a window
/// of its own.
struct PassWindow {
    live: usize,
    bulk: usize,
    /// The class of each pass in flight, by its task.
    running: std::collections::HashMap<tokio::task::Id, bool>,
    live_in_flight: usize,
    bulk_in_flight: usize,
}

impl PassWindow {
    fn new(live: usize, bulk: usize) -> PassWindow {
        PassWindow {
            live: live.max(1),
            bulk: bulk.max(1),
            running: std::collections::HashMap::new(),
            live_in_flight: 0,
            bulk_in_flight: 0,
        }
    }

    /// What to claim now, if anything: how many tasks, and of which classes. Room in the
    /// back-fill window claims any class (the most urgent come first, so a live task may
    /// take a slot of it); with that window full, only live work is claimed. Outside a
    /// wake-up, a claim waits until half of the passes have ended, so claims come in
    /// batches.
    fn claim(&self, eager: bool) -> Option<(usize, Priority)> {
        let live_room = self.live.saturating_sub(self.live_in_flight);
        let bulk_room = self.bulk.saturating_sub(self.bulk_in_flight);
        if live_room + bulk_room == 0 || (!eager && self.more_than_half_full()) {
            return None;
        }
        if bulk_room == 0 {
            Some((live_room, Priority::Normal))
        } else {
            Some((live_room + bulk_room, Priority::Bulk))
        }
    }

    fn more_than_half_full(&self) -> bool {
        self.live_in_flight + self.bulk_in_flight > (self.live + self.bulk) / 2
    }

    fn began(&mut self, id: tokio::task::Id, priority: Priority) {
        let bulk = priority == Priority::Bulk;
        self.running.insert(id, bulk);
        if bulk {
            self.bulk_in_flight += 1;
        } else {
            self.live_in_flight += 1;
        }
    }

    fn ended(&mut self, id: tokio::task::Id) {
        match self.running.remove(&id) {
            Some(true) => self.bulk_in_flight -= 1,
            Some(false) => self.live_in_flight -= 1,
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Task ids of `n` finished tasks (a `tokio::task::Id` cannot be made any other way).
    async fn ids(n: usize) -> Vec<tokio::task::Id> {
        let mut set = tokio::task::JoinSet::new();
        let ids = (0..n).map(|_| set.spawn(async {}).id()).collect();
        while set.join_next().await.is_some() {}
        ids
    }

    #[tokio::test]
    async fn a_full_back_fill_window_still_claims_live_work() {
        let mut window = PassWindow::new(2, 4);
        assert_eq!(
            window.claim(false),
            Some((6, Priority::Bulk)),
            "empty: any class"
        );
        let ids = ids(6).await;
        for id in &ids[..4] {
            window.began(*id, Priority::Bulk);
        }
        // The back-fill window is full: only live work, and only as much as fits.
        assert_eq!(window.claim(true), Some((2, Priority::Normal)));
        window.began(ids[4], Priority::Normal);
        window.began(ids[5], Priority::Blocking);
        assert_eq!(window.claim(true), None, "both windows full");
        // One live pass ends: room for one live claim, once woken (5 of 6 still run).
        window.ended(ids[5]);
        assert_eq!(
            window.claim(false),
            None,
            "more than half full: wait for a batch"
        );
        assert_eq!(window.claim(true), Some((1, Priority::Normal)));
        // Back-fill passes end: the claim may take any class again.
        window.ended(ids[0]);
        window.ended(ids[1]);
        assert_eq!(window.claim(false), Some((3, Priority::Bulk)));
        // An unknown or repeated end changes nothing.
        window.ended(ids[0]);
        assert_eq!(window.claim(false), Some((3, Priority::Bulk)));
    }
}
