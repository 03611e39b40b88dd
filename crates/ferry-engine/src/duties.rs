//! Duties: jobs one process runs for the whole installation while several Ferry processes
//! share a database — each connection's change watcher, the periodic reconciliation, the
//! webhook sender, the link maker, the offloader, scheduled backups. A process takes a duty
//! in the store (`QueueStore::hold_duty`) for one lease; its heartbeat renews every duty it
//! holds, so a duty stays with a live process and moves to another within a lease (15 s by
//! default) plus one retry after the holder dies — or at once when the dead holder is on
//! the same host, since an engine releases the processes it can tell are dead. With one
//! process, it holds them all.

use crate::Engine;
use std::time::Duration;

/// How often a process that does not hold a duty asks for it again.
pub(crate) const DUTY_RETRY: Duration = Duration::from_secs(3);

/// The duty of watching connection `connection`'s changes.
pub(crate) fn watch_duty(connection: &str) -> String {
    format!("watch:{connection}")
}

impl Engine {
    /// Whether this process holds `duty` now (taking it when it is free or lapsed). A store
    /// that cannot answer means no: the duty waits rather than runs twice.
    pub(crate) async fn holds_duty(&self, duty: &str) -> bool {
        let now = ferry_core::clock::now_ms();
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .hold_duty(duty, self.process_id(), now, now.saturating_add(lease))
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(duty, error = %e, "cannot tell who holds a duty; waiting");
                false
            }
        }
    }

    /// Waits until this process holds `duty` (`false`: `shutdown` came first).
    pub(crate) async fn await_duty(
        &self,
        duty: &str,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> bool {
        loop {
            if *shutdown.borrow() {
                return false;
            }
            if self.holds_duty(duty).await {
                return true;
            }
            tokio::select! {
                _ = tokio::time::sleep(DUTY_RETRY) => {}
                _ = shutdown.wait_for(|s| *s) => return false,
            }
        }
    }
}
