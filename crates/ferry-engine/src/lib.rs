//! Ferry's sync engine: turns records, attachments and rules into files in Dropbox.
//!
//! The queue (in the store) says which records need a pass; a pass recomputes the plan from
//! state ([`ferry_core::plan::plan_push`]) and executes it, so any crash is recovered by the
//! next pass.

mod backoff;
mod batch_upload;
mod binding;
mod connections;
mod error;
mod folder_moves;
mod import;
mod placement;
mod reconcile;
mod resumable;
mod reverse_sync;
mod sync_pass;
mod watcher;
mod worker;

pub use backoff::backoff_delay;
pub use connections::{ConnectionInput, Credentials};
pub use error::EngineError;
pub use reconcile::ReconcileReport;
pub use sync_pass::PassOutcome;

use ferry_store::{BlobStore, SecretCipher, Store};
use std::sync::Arc;
use std::time::Duration;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Records synced in parallel.
    pub workers: usize,
    /// Files above this size use upload sessions, in chunks of this size.
    pub chunk_size: usize,
    /// Longest wait between two attempts of a failing record.
    pub max_backoff: Duration,
    /// How long a worker owns a claimed task before another may take it.
    pub lease: Duration,
    /// Failed passes before a record is dead-lettered (it then waits for an admin).
    pub max_attempts: u32,
    /// Mass-deletion brake: pause a binding when one pass would delete more than this share…
    pub brake_share: f64,
    /// …and at least this many files.
    pub brake_min: usize,
    /// How often every bound record gets a full pass anyway (the safety net).
    pub reconcile_every: Duration,
    /// Long-poll timeout asked of Dropbox (30–480 s).
    pub longpoll_secs: u64,
    /// Uploads staged in parallel within one pass.
    pub upload_concurrency: usize,
    /// Tries per Dropbox call before the failure goes to the queue's backoff (≥ 1).
    pub client_attempts: u32,
    /// Fault injection for the deterministic simulation; `None` in production.
    pub injector: Option<std::sync::Arc<dyn ferry_dropbox::FaultInjector>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 4,
            chunk_size: ferry_dropbox::DEFAULT_CHUNK_SIZE,
            max_backoff: Duration::from_secs(300),
            lease: Duration::from_secs(600),
            max_attempts: 10,
            brake_share: 0.5,
            brake_min: 3,
            reconcile_every: Duration::from_secs(15 * 60),
            longpoll_secs: 30,
            upload_concurrency: 8,
            client_attempts: 3,
            injector: None,
        }
    }
}

/// The sync engine. Cheap to share behind an `Arc`.
pub struct Engine {
    store: Arc<dyn Store>,
    blobs: BlobStore,
    connections: connections::Connections,
    config: EngineConfig,
    wake: tokio::sync::Notify,
    /// One commit in flight per connection (Dropbox locks the namespace per commit).
    commit_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Set once watchers run, so connections added later get one too.
    watch_shutdown: std::sync::Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish()
    }
}

impl Engine {
    /// An engine over a store, a blob store and the cipher for stored tokens.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: BlobStore,
        cipher: SecretCipher,
        config: EngineConfig,
    ) -> Arc<Self> {
        Arc::new(Engine {
            connections: connections::Connections::new(Arc::clone(&store), cipher, &config),
            store,
            blobs,
            config,
            wake: tokio::sync::Notify::new(),
            commit_locks: std::sync::Mutex::new(std::collections::HashMap::new()),
            watch_shutdown: std::sync::Mutex::new(None),
        })
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The blob store holding attachment content.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The commit lock of a connection.
    pub(crate) fn commit_lock(&self, connection: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .commit_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(locks.entry(connection.to_owned()).or_default())
    }

    /// Tells idle workers that work was queued.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }
}
