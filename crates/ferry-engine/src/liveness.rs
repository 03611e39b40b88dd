//! Queue claims belong to live processes. Each engine registers itself (host, pid, a token
//! unique to its operating-system process) and beats a heartbeat that renews the claims of
//! the passes it is running, so a long pass (a 5 GiB upload) is never claimed twice. When an
//! engine starts, it releases at once the claims of processes it can tell are dead — on the
//! same host, a pid that no longer runs, or its own pid under another token (a restarted
//! container) — so a restart after `kill -9` resumes work in seconds, not after the lease.
//! Processes it cannot judge (another host) lose their claims when their lease runs out
//! without a heartbeat.

use crate::{Engine, EngineError};
use ferry_core::model::RecordId;
use ferry_store::ProcessInfo;
use rand::Rng;
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Engines alive in this operating-system process, by process id (their rows are judged by
/// this set, not by the pid, since they share it).
fn live_here() -> &'static Mutex<HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// A token unique to this operating-system process.
fn boot_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(random_id)
}

fn random_id() -> String {
    hex::encode(rand::thread_rng().r#gen::<[u8; 16]>())
}

/// This machine's name, or `None` when it cannot be read (then no claim is judged by pid).
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Whether process `pid` runs on this machine; `None` when that cannot be told.
fn pid_running(pid: i64) -> Option<bool> {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return None;
    }
    Some(proc.join(pid.to_string()).exists())
}

/// What this process can tell about another process's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Alive,
    Dead,
    /// Only its heartbeat (lease expiry) can tell.
    Unknown,
}

/// The identity an engine registers, and the in-flight passes its heartbeat renews.
#[derive(Debug)]
pub(crate) struct Liveness {
    pub(crate) me: ProcessInfo,
    in_flight: Mutex<HashSet<RecordId>>,
    started: tokio::sync::OnceCell<()>,
    /// Held from a claim until its pass is recorded as running, so that a worker never takes
    /// a claim of ours that another worker has just made (see `Store::claim_task`).
    pub(crate) claiming: tokio::sync::Mutex<()>,
}

impl Liveness {
    pub(crate) fn new() -> Liveness {
        let now = ferry_core::clock::now_ms();
        let me = ProcessInfo {
            id: random_id(),
            host: host_name().unwrap_or_default(),
            pid: i64::from(std::process::id()),
            boot_token: boot_token().to_owned(),
            started_at: now,
            heartbeat_at: now,
        };
        live_here()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(me.id.clone());
        Liveness {
            me,
            in_flight: Mutex::new(HashSet::new()),
            started: tokio::sync::OnceCell::new(),
            claiming: tokio::sync::Mutex::new(()),
        }
    }

    /// Judges another process's row from here.
    pub(crate) fn judge(&self, other: &ProcessInfo) -> Verdict {
        if other.id == self.me.id {
            return Verdict::Alive;
        }
        if self.me.host.is_empty() || other.host != self.me.host {
            return Verdict::Unknown;
        }
        if other.pid == self.me.pid {
            if other.boot_token != self.me.boot_token {
                return Verdict::Dead; // an earlier process that had our pid
            }
            let alive = live_here()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&other.id);
            return if alive { Verdict::Alive } else { Verdict::Dead };
        }
        match pid_running(other.pid) {
            Some(false) => Verdict::Dead,
            // Running: the same process, or another one that reused its pid.
            Some(true) | None => Verdict::Unknown,
        }
    }

    pub(crate) fn begin(&self, id: RecordId) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id);
    }

    pub(crate) fn end(&self, id: RecordId) {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }

    pub(crate) fn in_flight(&self) -> Vec<RecordId> {
        let mut ids: Vec<RecordId> = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        live_here()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.me.id);
    }
}

impl Engine {
    /// This engine's process id in the store (what its claims are recorded under).
    pub fn process_id(&self) -> &str {
        &self.liveness.me.id
    }

    /// Registers this engine's process and releases the claims of every process it can tell
    /// is dead. Runs once per engine (the first claim or the workers' start calls it).
    pub async fn announce(&self) -> Result<(), EngineError> {
        self.liveness
            .started
            .get_or_try_init(|| async {
                self.beat().await?;
                self.release_dead().await.map(|_| ())
            })
            .await?;
        Ok(())
    }

    /// Releases the claims of processes known dead, and forgets processes whose heartbeat
    /// stopped long ago. Returns the claims released.
    pub async fn release_dead(&self) -> Result<u64, EngineError> {
        let now = ferry_core::clock::now_ms();
        let forgotten =
            i64::try_from(self.config.lease.as_millis().saturating_mul(10)).unwrap_or(i64::MAX);
        let mut released = 0;
        for process in self.store.processes().await? {
            let verdict = self.liveness.judge(&process);
            let silent = now.saturating_sub(process.heartbeat_at) > forgotten.max(60_000);
            if verdict == Verdict::Dead || (verdict == Verdict::Unknown && silent) {
                let n = self.store.release_process(&process.id).await?;
                if n > 0 {
                    tracing::info!(process = %process.id, pid = process.pid, claims = n, "released the claims of a dead process");
                }
                released += n;
            }
        }
        Ok(released)
    }

    /// One heartbeat: this process is alive, and its running passes keep their claims.
    async fn beat(&self) -> Result<(), EngineError> {
        let now = ferry_core::clock::now_ms();
        let mut me = self.liveness.me.clone();
        me.heartbeat_at = now;
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        self.store
            .heartbeat(&me, &self.liveness.in_flight(), now.saturating_add(lease))
            .await?;
        Ok(())
    }

    /// Beats the heartbeat every `config.heartbeat` until `shutdown`.
    pub(crate) fn spawn_heartbeat(
        self: &std::sync::Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let engine = std::sync::Arc::clone(self);
        tokio::spawn(async move {
            let every = engine.config.heartbeat.max(Duration::from_millis(10));
            while !*shutdown.borrow() {
                if let Err(e) = engine.beat().await {
                    tracing::warn!(error = %e, "heartbeat failed; claims may lapse");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => {}
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, host: &str, pid: i64, token: &str) -> ProcessInfo {
        ProcessInfo {
            id: id.into(),
            host: host.into(),
            pid,
            boot_token: token.into(),
            started_at: 0,
            heartbeat_at: 0,
        }
    }

    #[test]
    fn verdicts() {
        let l = Liveness::new();
        let me = l.me.clone();
        if me.host.is_empty() {
            return; // nothing can be judged by pid on a machine without a name
        }
        assert_eq!(l.judge(&me), Verdict::Alive);
        // Another engine of this process, alive, then gone.
        let other = Liveness::new();
        let other_row = other.me.clone();
        assert_eq!(l.judge(&other_row), Verdict::Alive);
        drop(other);
        assert_eq!(l.judge(&other_row), Verdict::Dead);
        // Our pid under another token: an earlier process (a restarted container).
        assert_eq!(l.judge(&row("x", &me.host, me.pid, "old")), Verdict::Dead);
        // Another host: only its heartbeat can tell.
        assert_eq!(l.judge(&row("y", "elsewhere", 1, "t")), Verdict::Unknown);
        if pid_running(1).is_some() {
            // A pid that cannot exist (above Linux's pid_max).
            assert_eq!(l.judge(&row("z", &me.host, 9_999_999, "t")), Verdict::Dead);
        }
    }
}
