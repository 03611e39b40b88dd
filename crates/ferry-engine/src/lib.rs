//! Ferry's sync engine: turns records, attachments and rules into files in Dropbox.
//!
//! The queue (in the store) says which records need a pass; a pass recomputes the plan from
//! state ([`ferry_core::sync_plan::plan`]) and executes it, so any crash is recovered by the
//! next pass.

#![warn(missing_docs)]

pub mod account_switch;
mod backoff;
pub mod backup;
mod batch_upload;
mod binding;
pub mod connect_flow;
mod connections;
pub mod console_auth;
mod duties;
mod error;
pub mod file_manager;
pub mod folder_map;
mod folder_moves;
mod import;
mod liveness;
pub mod metrics;
mod mirror;
mod offload;
mod own_writes;
mod placement;
mod reconcile;
mod record_archive;
mod resumable;
mod reverse_sync;
mod rounds;
mod rule_overlaps;
pub mod service;
mod shared_links;
mod subfolders;
mod sync_pass;
pub mod team_members;
mod transfer_budget;
mod upload_group;
pub mod views;
mod watcher;
pub mod webhooks;
mod worker;

pub use backoff::backoff_delay;
pub use connections::{AppAccess, ConnectionInput, Credentials, PathRootChoice};
pub use error::EngineError;
pub use reconcile::ReconcileReport;
pub use rule_overlaps::RuleOverlap;
pub use service::{DeletePolicy, LogQuery, RecordQuery};
pub use sync_pass::PassOutcome;

use ferry_store::{BlobStore, SecretCipher, Store};
use std::sync::Arc;
use std::time::Duration;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Queue workers.
    pub workers: usize,
    /// Passes each worker keeps in flight, side by side: a back-fill's one-file records then
    /// share upload batches, and one claim serves many passes.
    pub passes_per_worker: usize,
    /// Back-fill (bulk) passes each worker keeps in flight besides those: many passes
    /// waiting on Dropbox at once fill each upload batch, and live work keeps its own window.
    pub bulk_passes_per_worker: usize,
    /// Files above this size use upload sessions, in chunks of this size.
    pub chunk_size: usize,
    /// Longest wait between two attempts of a failing record.
    pub max_backoff: Duration,
    /// How long a claim lasts without a heartbeat: after a crash on another host, its work
    /// is taken over after this long (on the same host, at once).
    pub lease: Duration,
    /// How often a running engine renews the claims of its running passes (well under `lease`).
    pub heartbeat: Duration,
    /// A record whose passes keep failing is dead-lettered (it then waits for an admin) after
    /// failing this long — never for failures that only ask to wait (rate limits, `503` with
    /// `Retry-After`, network down).
    pub give_up_after: Duration,
    /// Mass-deletion brake: pause a binding when the deletions of one pass, plus those of
    /// the last `brake_window`, would remove more than this share of its files…
    pub brake_share: f64,
    /// …and at least this many files.
    pub brake_min: usize,
    /// How far back the brake counts deletions (file by file deletions add up).
    pub brake_window: Duration,
    /// Connection-wide brake: pause when the connection's deletions over `brake_window`
    /// would exceed this share of its synced files…
    pub connection_brake_share: f64,
    /// …and at least this many files.
    pub connection_brake_min: usize,
    /// How often every bound record gets a full pass anyway (the safety net).
    pub reconcile_every: Duration,
    /// Long-poll timeout asked of Dropbox (30–480 s).
    pub longpoll_secs: u64,
    /// Uploads staged in parallel within one pass.
    pub upload_concurrency: usize,
    /// File content all running passes may hold in memory at once, in bytes: reads of
    /// content wait for their share (`transfer_budget.rs`).
    pub transfer_memory: u64,
    /// Chunks of one large file sent at once, when the chunk size is a multiple of 4 MiB
    /// (a `concurrent` upload session; `resumable.rs`).
    pub chunks_in_flight: usize,
    /// Whether passes plan from the remote mirror when they can trust it (see
    /// docs/sync.md); off, every pass lists its folders, as before the mirror.
    pub remote_mirror: bool,
    /// Requests per second each connection sends Dropbox at most, on average (0: unpaced);
    /// a rate-limit answer's `Retry-After` then holds all of the connection's requests.
    pub dropbox_requests_per_second: u32,
    /// Tries per Dropbox call before the failure goes to the queue's backoff (≥ 1).
    pub client_attempts: u32,
    /// Whether connections may use Dropbox hosts other than Dropbox's own (an emulator, a
    /// proxy). Off by default: a connection's token then only ever goes to Dropbox.
    pub custom_dropbox_hosts: bool,
    /// Whether webhooks may go to loopback, private and link-local addresses (off: only to
    /// public ones, so a webhook cannot probe the network Ferry runs in).
    pub webhooks_allow_internal: bool,
    /// Shared links asked of Dropbox per second at most (they are made off the sync path).
    pub links_per_second: u32,
    /// The Dropbox app and callback for connecting through Dropbox's page (`None`: only
    /// pasted tokens and refresh tokens).
    pub oauth: Option<connect_flow::OAuthSettings>,
    /// Fault injection for the deterministic simulation; `None` in production.
    pub injector: Option<std::sync::Arc<dyn ferry_dropbox::FaultInjector>>,
    /// Runs every Dropbox request in lockstep (the simulation's exact replay); `None` in
    /// production.
    pub lockstep: Option<ferry_dropbox::Lockstep>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 4,
            passes_per_worker: 16,
            bulk_passes_per_worker: 64,
            chunk_size: ferry_dropbox::DEFAULT_CHUNK_SIZE,
            max_backoff: Duration::from_secs(300),
            lease: Duration::from_secs(15),
            heartbeat: Duration::from_secs(3),
            give_up_after: Duration::from_secs(24 * 3600),
            brake_share: 0.5,
            brake_min: 3,
            brake_window: Duration::from_secs(600),
            connection_brake_share: 0.5,
            connection_brake_min: 20,
            reconcile_every: Duration::from_secs(15 * 60),
            longpoll_secs: 30,
            upload_concurrency: 8,
            transfer_memory: 256 << 20,
            chunks_in_flight: 4,
            remote_mirror: true,
            client_attempts: 3,
            dropbox_requests_per_second: 100,
            custom_dropbox_hosts: false,
            webhooks_allow_internal: false,
            links_per_second: 10,
            oauth: None,
            injector: None,
            lockstep: None,
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
    commit_locks:
        std::sync::Mutex<std::collections::HashMap<String, Arc<upload_group::CommitGate>>>,
    /// Small uploads of concurrent passes merged into shared batches, per connection.
    upload_groups:
        std::sync::Mutex<std::collections::HashMap<String, Arc<upload_group::UploadGroup>>>,
    /// Uploads whose passes have not saved them yet (so the feed does not take them for news).
    own_writes: own_writes::OwnWrites,
    /// Content bytes the running passes hold in memory, bounded across all of them.
    transfer_budget: transfer_budget::TransferBudget,
    /// Set once watchers run, so connections added later get one too.
    watch_shutdown: std::sync::Mutex<Option<tokio::sync::watch::Receiver<bool>>>,
    /// Connections this process runs a watcher task for (holding the duty or waiting for it).
    watching: std::sync::Mutex<std::collections::HashSet<String>>,
    /// One reconciliation at a time in this process: each drops the scratch mirrors it finds
    /// (a crashed one's), which must not be another's that is still running.
    reconciling: tokio::sync::Mutex<()>,
    /// This engine's process identity, and the passes its heartbeat keeps claimed.
    liveness: liveness::Liveness,
    /// Sync workers running now.
    running_workers: std::sync::atomic::AtomicUsize,
    /// What Prometheus scrapes.
    metrics: Arc<metrics::Metrics>,
    /// Tells the webhook sender that a delivery may be due.
    wake_webhooks: tokio::sync::Notify,
    /// Tells the link maker that files were synced.
    wake_links: tokio::sync::Notify,
    /// Tells the offloader that files were synced.
    wake_offload: tokio::sync::Notify,
    /// Paces link requests.
    link_pacer: shared_links::Pacer,
    /// Connections whose link making waits (rate limited, unreachable) until then.
    links_paused: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    /// When stale links were last forgotten.
    links_pruned_at: std::sync::Mutex<Option<std::time::Instant>>,
    /// Failed console sign-ins, per name.
    login_throttle: console_auth::LoginThrottle,
    /// The engine itself, for work that outlives a borrowed `&self` (a confirmed account
    /// switch connects the new account when the old connection's last pass ends).
    me: std::sync::Weak<Engine>,
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
        let metrics = Arc::new(metrics::Metrics::default());
        Arc::new_cyclic(|me| Engine {
            me: me.clone(),
            connections: connections::Connections::new(
                Arc::clone(&store),
                cipher,
                &config,
                Arc::clone(&metrics) as Arc<dyn ferry_dropbox::CallObserver>,
            ),
            metrics,
            wake_webhooks: tokio::sync::Notify::new(),
            wake_links: tokio::sync::Notify::new(),
            wake_offload: tokio::sync::Notify::new(),
            link_pacer: shared_links::Pacer::new(config.links_per_second),
            transfer_budget: transfer_budget::TransferBudget::new(config.transfer_memory),
            links_paused: std::sync::Mutex::new(std::collections::HashMap::new()),
            links_pruned_at: std::sync::Mutex::new(None),
            login_throttle: console_auth::LoginThrottle::default(),
            store,
            blobs,
            config,
            wake: tokio::sync::Notify::new(),
            commit_locks: std::sync::Mutex::new(std::collections::HashMap::new()),
            upload_groups: std::sync::Mutex::new(std::collections::HashMap::new()),
            own_writes: own_writes::OwnWrites::default(),
            watch_shutdown: std::sync::Mutex::new(None),
            watching: std::sync::Mutex::new(std::collections::HashSet::new()),
            reconciling: tokio::sync::Mutex::new(()),
            liveness: liveness::Liveness::new(),
            running_workers: std::sync::atomic::AtomicUsize::new(0),
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
    pub(crate) fn commit_lock(&self, connection: &str) -> Arc<upload_group::CommitGate> {
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
