//! One emulated account: its namespace (tree + journal), content, upload sessions, shared
//! links, async jobs, token, quota, write lock and rate limiter. The primary account lives at
//! the root of the data directory; further accounts under `accounts/<name>/`.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::account::Account;
use crate::blobs::Blobs;
use crate::faults::{FaultModel, RateLimiter};
use crate::jobs::Jobs;
use crate::journal::JournalFile;
use crate::links::Links;
use crate::sessions::Sessions;
use crate::state::Tree;
use crate::wire::ApiError;
use crate::{EmulatorError, io_error};

/// An account and its namespace.
pub struct Space {
    /// The account's name in the config (`"default"` for the primary one).
    pub name: String,
    /// The Bearer token this account accepts.
    pub token: String,
    /// Persistent account facts.
    pub account: Account,
    /// Content store.
    pub blobs: Blobs,
    /// Upload sessions.
    pub sessions: Sessions,
    /// Shared links.
    pub links: Links,
    /// Async batch jobs.
    pub jobs: Jobs,
    /// Bytes the account may store.
    pub quota: u64,
    /// Journal head after each commit (wakes long-polls).
    pub changes: watch::Receiver<u64>,
    /// Request-rate limiter.
    pub(crate) limiter: RateLimiter,
    tree: Mutex<Tree>,
    write_lock: tokio::sync::Mutex<()>,
}

impl Space {
    /// Opens (or creates) an account's state in `dir`.
    pub fn open(
        name: &str,
        dir: &Path,
        token: Option<&str>,
        quota: u64,
    ) -> Result<Space, EmulatorError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let (account, token) = Account::load_or_create(dir, token)?;
        let blobs = Blobs::open(dir.join("blobs")).map_err(io_error(&dir.join("blobs")))?;
        let sessions =
            Sessions::open(dir.join("sessions")).map_err(io_error(&dir.join("sessions")))?;
        let links = Links::open(dir.join("links.json"))?;
        let (file, entries) = JournalFile::open(&dir.join("journal.jsonl"))?;
        let (notify, changes) = watch::channel(0);
        let tree = Tree::replay(account.namespace_id.clone(), file, entries, quota, notify);
        Ok(Space {
            name: name.to_string(),
            token,
            account,
            blobs,
            sessions,
            links,
            jobs: Jobs::default(),
            quota,
            changes,
            limiter: RateLimiter::new(),
            tree: Mutex::new(tree),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The tree, recovering from a poisoned lock (the tree is only changed after the
    /// journal write succeeded, so it is consistent even if a holder panicked).
    pub fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the namespace write lock for one commit of `entries` entries (1 for a single
    /// write), or fails with 429 `too_many_write_operations` when it stays taken longer than
    /// the model's wait.
    pub async fn lock_writes(
        &self,
        model: &FaultModel,
        entries: usize,
    ) -> Result<WriteGuard<'_>, ApiError> {
        if !model.write_lock {
            return Ok(WriteGuard {
                guard: None,
                until: Instant::now(),
            });
        }
        let wait = Duration::from_millis(model.lock_wait_ms);
        match tokio::time::timeout(wait, self.write_lock.lock()).await {
            Ok(guard) => Ok(WriteGuard {
                guard: Some(guard),
                until: Instant::now() + model.lock_hold(entries),
            }),
            Err(_) => Err(ApiError::TooManyWriteOperations(
                model.lock_retry_after_secs.max(1),
            )),
        }
    }
}

/// A held namespace write lock. [`WriteGuard::release`] keeps it until the commit's hold
/// time has passed; dropping it releases at once (used when a commit fails early).
pub struct WriteGuard<'a> {
    guard: Option<tokio::sync::MutexGuard<'a, ()>>,
    until: Instant,
}

impl WriteGuard<'_> {
    /// Waits out the rest of the hold time, then releases the lock.
    pub async fn release(self) {
        if self.guard.is_some() {
            tokio::time::sleep_until(self.until.into()).await;
        }
    }
}
