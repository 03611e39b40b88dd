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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

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

    /// Queues every record of a kind (a rule for it changed: back-fill) at `priority`.
    pub async fn enqueue_kind(&self, kind: &str, priority: Priority) -> Result<usize, EngineError> {
        let ids = self.store.record_ids_of_kind(kind).await?;
        self.store.enqueue(&ids, priority).await?;
        self.wake();
        Ok(ids.len())
    }

    /// Starts `config.workers` workers; they stop when `shutdown` turns true.
    pub fn spawn_workers(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        (0..self.config.workers.max(1))
            .map(|n| {
                let engine = Arc::clone(self);
                let shutdown = shutdown.clone();
                tokio::spawn(async move { engine.worker_loop(n, shutdown).await })
            })
            .collect()
    }

    async fn worker_loop(&self, n: usize, mut shutdown: watch::Receiver<bool>) {
        tracing::debug!(worker = n, "sync worker started");
        while !*shutdown.borrow() {
            let woke = self.wake.notified();
            let worked = match self.run_one().await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::error!(error = %e, "sync queue unavailable");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    _ = woke => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        tracing::debug!(worker = n, "sync worker stopped");
    }

    /// Claims and runs one due task. Returns false if none was due.
    pub async fn run_one(&self) -> Result<bool, EngineError> {
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let Some(task) = self.store.claim_task(now_ms(), lease).await? else {
            return Ok(false);
        };
        let attempts = u32::try_from(task.attempts).unwrap_or(u32::MAX);
        let (error, retry_after) = match self.sync_record(task.record_id).await {
            Ok(outcome) if outcome.retryable == 0 => {
                tracing::info!(record = task.record_id, ?outcome, "sync pass done");
                self.store.finish_task(&task).await?;
                return Ok(true);
            }
            Ok(outcome) => (
                format!("{} file(s) failed and will be retried", outcome.retryable),
                outcome.retry_after,
            ),
            Err(EngineError::NeedsReconnect(name, reason)) => {
                // Paused, not failed: try again later, without counting an attempt.
                let next = now_ms() + 60_000;
                self.store
                    .defer_task(
                        &task,
                        &format!("connection {name:?} needs a reconnect: {reason}"),
                        next,
                    )
                    .await?;
                return Ok(true);
            }
            Err(e) if e.is_retryable() => (e.to_string(), None),
            Err(e) => {
                // Retrying cannot help until something changes; the change re-queues it.
                tracing::error!(record = task.record_id, error = %e, "sync pass failed");
                self.store.finish_task(&task).await?;
                return Ok(true);
            }
        };
        let delay = backoff_delay(attempts, self.config.max_backoff, retry_after);
        let dead = attempts + 1 >= self.config.max_attempts;
        if dead {
            tracing::error!(record = task.record_id, attempts = attempts + 1, %error, "sync pass dead-lettered");
        } else {
            tracing::warn!(record = task.record_id, attempts = attempts + 1, ?delay, %error, "sync pass will be retried");
        }
        let next = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        self.store.retry_task(&task, &error, next, dead).await?;
        Ok(true)
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
