//! `ferry simulate`: the deterministic simulation. Per seed: the in-process emulator, the
//! engine driven one step at a time, random operations on both sides (add, edit, delete,
//! rename, move, case-only rename, identical edits, conflicting edits, record changes) and
//! faults decided by the same seeded RNG (503, 429, a connection dropped after Dropbox applied
//! the change, a crash between any two Dropbox calls, a lost change cursor). Then faults stop,
//! the system runs to quiescence, and the invariants are checked:
//! - converged: a dry-run pass over every record has nothing left to do;
//! - no version anyone wrote is lost: it is a current attachment, an archived one, or a
//!   file in Dropbox (unless the same side replaced or deleted it on purpose);
//! - no duplicates: no Dropbox file is tracked twice;
//! - the synced tree matches both sides.
//!
//! A failing seed prints itself; `ferry simulate --seed S` replays it.

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use ferry_core::content_hash::content_hash;
use ferry_core::secret::Secret;
use ferry_core::sync_plan::Direction;
use ferry_dropbox::{
    DropboxClient, DropboxError, Endpoints, Entry, FaultInjector, Injected, Lockstep, WriteMode,
};
use ferry_emulator::{EmulatorConfig, FaultModel, RunningEmulator};
use ferry_engine::{ConnectionInput, Engine, EngineConfig};
use ferry_store::{
    BlobStore, PgStore, Priority, RecordInput, SecretCipher, SqliteStore, Store, SyncState,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

const ROOT: &str = "/Sim";
/// Where mapped folders are made (inside the root, outside every rule's folders).
const MAPPED: &str = "/Sim/Mapped";
/// Where the admin moves the connection's root to (and back from).
const MOVED_ROOT: &str = "/Sim/Moved";
const NAMES: &[&str] = &["a.txt", "b.txt", "B.txt", "é.pdf", "notes.md"];
const DROPBOX_NAMES: &[&str] = &["a.txt", "c.txt", "Report.pdf", "é.pdf", "new.txt"];

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct SeedStats {
    /// Operations made on the app side.
    pub app_ops: u32,
    /// Operations made in Dropbox.
    pub dropbox_ops: u32,
    /// Engine steps (passes and change reads).
    pub engine_steps: u32,
    /// Faults injected on Dropbox calls.
    pub faults: u32,
    /// Transient faults injected on store and blob-store calls.
    pub store_faults: u32,
    /// Simulated crashes.
    pub crashes: u32,
    /// Attachments offloaded at the end (content only in Dropbox).
    pub offloaded: u32,
    /// Offloaded content brought back during the seed.
    pub brought_back: u32,
    /// Shared links made.
    pub links: u32,
    /// Times the admin moved the connection's root (and it moved).
    pub root_moves: u32,
    /// Engine steps taken by the second engine (PostgreSQL runs), alone or beside the first.
    pub second_engine_steps: u32,
    /// Binding folders passes read from the remote mirror (no request)…
    pub mirror_reads: u64,
    /// …and by listing them.
    pub listings: u64,
}

impl SeedStats {
    /// Adds another seed's counts.
    pub fn add(&mut self, o: &SeedStats) {
        self.app_ops += o.app_ops;
        self.dropbox_ops += o.dropbox_ops;
        self.engine_steps += o.engine_steps;
        self.faults += o.faults;
        self.store_faults += o.store_faults;
        self.crashes += o.crashes;
        self.offloaded += o.offloaded;
        self.brought_back += o.brought_back;
        self.links += o.links;
        self.root_moves += o.root_moves;
        self.second_engine_steps += o.second_engine_steps;
        self.mirror_reads += o.mirror_reads;
        self.listings += o.listings;
    }
}

/// Seeded fault decisions for every Dropbox call the engine makes.
#[derive(Debug)]
struct SimInjector {
    rng: Mutex<StdRng>,
    /// Shared with the store faults: both are on during a seed's random phase only.
    enabled: Arc<AtomicBool>,
    hung: tokio::sync::Notify,
    injected: AtomicU64,
    /// Every Dropbox call the engines made, in order, with the fault it met (the transcript).
    calls: Mutex<Vec<String>>,
}

impl SimInjector {
    fn decide_fault(&self, route: &str) -> Injected {
        if !self.enabled.load(Ordering::SeqCst) {
            return Injected::Nothing;
        }
        let roll: f64 = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .r#gen();
        let injected = match roll {
            r if r < 0.05 && route == "files/list_folder/continue" => Injected::CursorReset,
            r if r < 0.04 => Injected::ServerError,
            r if r < 0.07 => Injected::RateLimited,
            r if r < 0.10 => Injected::DropAfterApply,
            r if r < 0.115 => Injected::Hang,
            r if r < 0.13 => Injected::TokenExpired,
            _ => Injected::Nothing,
        };
        if injected != Injected::Nothing {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        if injected == Injected::Hang {
            self.hung.notify_one();
        }
        injected
    }
}

impl FaultInjector for SimInjector {
    fn decide(&self, route: &str) -> Injected {
        let injected = self.decide_fault(route);
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{route} {injected:?}"));
        injected
    }
}

/// What a seed's rule does besides syncing: offload content, make shared links.
#[derive(Debug, Clone, Copy)]
struct RuleExtras {
    offload: bool,
    links: bool,
}

/// The simulation's one rule.
fn sim_rule(direction: Direction, prefix: &str, extras: RuleExtras) -> ferry_core::rules::RuleSpec {
    ferry_core::rules::RuleSpec {
        name: "jobs".into(),
        record_kind: "job".into(),
        connection: "dropbox".into(),
        condition: Some("record.fields.active".into()),
        folder: format!("{prefix}/{{{{ record.fields.folder }}}}"),
        direction,
        links: if extras.links {
            ferry_core::rules::LinkMode::Public
        } else {
            ferry_core::rules::LinkMode::Off
        },
        offload: extras.offload,
        ..Default::default()
    }
}

/// A second rule over the same records and folders as [`sim_rule`] (written differently).
/// It only pushes: the API refuses an overlap where either rule pulls, and accepts one where
/// both push (with a warning), so that is the overlap an installation can have.
fn overlapping_rule(
    _direction: Direction,
    prefix: &str,
    extras: RuleExtras,
) -> ferry_core::rules::RuleSpec {
    ferry_core::rules::RuleSpec {
        name: "jobs-again".into(),
        folder: format!("{prefix}/{{{{record.fields.folder}}}}"),
        ..sim_rule(Direction::Push, prefix, extras)
    }
}

/// A refresh token for the emulator's `ferry-app` (full Dropbox), obtained the way a person
/// would: Allow on the consent page, then the code exchange. Used by the simulation and tests.
pub async fn oauth_refresh_token(base: &str) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let redirect = "http://127.0.0.1:9/callback";
    let allowed = http
        .post(format!("{base}/oauth2/authorize"))
        .form(&[
            ("response_type", "code"),
            ("client_id", "ferry-app"),
            ("redirect_uri", redirect),
            ("token_access_type", "offline"),
            ("decision", "allow"),
        ])
        .send()
        .await?;
    let location = allowed
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("the consent page did not redirect"))?;
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .ok_or_else(|| anyhow!("no code in {location}"))?
        .to_owned();
    let tokens: serde_json::Value = http
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("client_id", "ferry-app"),
            ("client_secret", "ferry-secret"),
        ])
        .send()
        .await?
        .json()
        .await?;
    tokens["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no refresh token: {tokens}"))
}

struct Sim {
    /// Runs the seed's I/O (`ferry_dropbox::Lockstep`).
    lockstep: Lockstep,
    rng: StdRng,
    _dir: tempfile::TempDir,
    emulator: RunningEmulator,
    human: DropboxClient,
    store: Arc<dyn Store>,
    blobs: BlobStore,
    injector: Arc<SimInjector>,
    engine: Arc<Engine>,
    /// A second engine on the same store, as a second process would be (PostgreSQL runs).
    second: Option<Arc<Engine>>,
    /// The seed's database on the test PostgreSQL server, dropped at the end.
    database: Option<ferry_store::pg_testing::TestDatabase>,
    /// An engine was restarted and has not announced itself yet (a restarted process does
    /// at start, releasing the dead one's claims).
    restarted: bool,
    /// What the engine sees of the store and the blob store (with injected faults).
    engine_store: Arc<dyn Store>,
    engine_blobs: BlobStore,
    store_faults: Arc<crate::sim_faults::StoreFaults>,
    /// Whether a second rule renders the same folders.
    overlapping: bool,
    /// Offload and links on the seed's rules.
    extras: RuleExtras,
    records: Vec<(String, i64)>,
    direction: Direction,
    /// The rule's top folder ("Jobs" or "Work"); a rule change switches it.
    prefix: &'static str,
    /// The connection's root ([`ROOT`] or [`MOVED_ROOT`]); the admin moves it in seeds
    /// without a mapped folder (which would then be outside the root).
    root: String,
    mapped: bool,
    /// Records an engine claims and runs side by side in one step.
    passes: usize,
    counter: u64,
    /// Versions someone wrote that must survive: content hash → where it was written (the
    /// origin starts with the side: `app` or `dropbox`).
    at_risk: BTreeMap<String, String>,
    /// Versions their own side replaced or deleted: no longer owed.
    superseded: BTreeSet<String>,
    stats: SeedStats,
    trace: Vec<String>,
}

fn engine_config(injector: &Arc<SimInjector>, lockstep: &Lockstep) -> EngineConfig {
    EngineConfig {
        lockstep: Some(lockstep.clone()),
        workers: 1,
        // A real lease: a crash leaves the dead engine's claim in the queue, and only the
        // restarted engine's release of dead processes' claims lets the work go on.
        lease: Duration::from_secs(600),
        max_backoff: Duration::ZERO,
        client_attempts: 1,
        custom_dropbox_hosts: true,
        links_per_second: 100,
        injector: Some(Arc::clone(injector) as Arc<dyn FaultInjector>),
        ..EngineConfig::default()
    }
}

/// Which engine a step ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    First,
    Second,
    Both,
}

/// The store a simulation runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimBackend {
    /// One engine on SQLite.
    #[default]
    Sqlite,
    /// Two engines sharing one PostgreSQL database (a throwaway server, one database per
    /// seed), as two processes would; either crashes.
    Postgres,
}

impl Sim {
    async fn new(seed: u64, backend: SimBackend, lockstep: Lockstep) -> anyhow::Result<Sim> {
        let mut rng = StdRng::seed_from_u64(seed);
        let temp = tempfile::Builder::new().prefix("ferry-sim-").tempdir()?;
        let dir = temp.path().to_path_buf();
        let mut config = EmulatorConfig::new(dir.join("emulator"));
        config.model = FaultModel::off();
        config.seed = Some(rng.r#gen());
        let emulator = lockstep.run(RunningEmulator::start(config))?;
        let human = DropboxClient::new(
            Endpoints::single(&emulator.base_url())?,
            &Secret::new(emulator.token()),
        )?
        .with_max_attempts(1)
        .with_lockstep(lockstep.clone());
        let (store, database): (Arc<dyn Store>, _) = match backend {
            SimBackend::Sqlite => {
                let store = lockstep.run(SqliteStore::open(&dir.join("ferry.db")))?;
                (Arc::new(store) as Arc<dyn Store>, None)
            }
            SimBackend::Postgres => {
                let database = lockstep.run(ferry_store::pg_testing::database());
                let store = lockstep.run(PgStore::open_url(database.url()))?;
                (Arc::new(store) as Arc<dyn Store>, Some(database))
            }
        };
        // The simulation's own reads and writes never fail, but they too run in lockstep.
        let never = || {
            Arc::new(crate::sim_faults::StoreFaults::new(
                StdRng::seed_from_u64(0),
                Arc::new(AtomicBool::new(false)),
                0.0,
            ))
        };
        let raw_store = store;
        let store: Arc<dyn Store> = Arc::new(crate::sim_faults::FaultyStore {
            inner: Arc::clone(&raw_store),
            faults: never(),
            lockstep: lockstep.clone(),
        });
        std::fs::create_dir_all(dir.join("blobs"))?;
        let blobs = BlobStore::new(Arc::new(crate::sim_faults::FaultyBlobs {
            inner: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
                dir.join("blobs"),
            )?),
            faults: never(),
            lockstep: lockstep.clone(),
        }));
        let enabled = Arc::new(AtomicBool::new(false));
        let injector = Arc::new(SimInjector {
            rng: Mutex::new(StdRng::seed_from_u64(rng.r#gen())),
            enabled: Arc::clone(&enabled),
            hung: tokio::sync::Notify::new(),
            injected: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
        });
        // The engine sees a store and a blob store that fail now and then (transient errors);
        // the simulation's own reads and writes go to the real ones.
        let store_faults = Arc::new(crate::sim_faults::StoreFaults::new(
            StdRng::seed_from_u64(rng.r#gen()),
            enabled,
            0.01,
        ));
        let engine_store: Arc<dyn Store> = Arc::new(crate::sim_faults::FaultyStore {
            inner: raw_store,
            faults: Arc::clone(&store_faults),
            lockstep: lockstep.clone(),
        });
        let engine_blobs = BlobStore::new(Arc::new(crate::sim_faults::FaultyBlobs {
            inner: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
                dir.join("blobs"),
            )?),
            faults: Arc::clone(&store_faults),
            lockstep: lockstep.clone(),
        }));
        let engine = Engine::new(
            Arc::clone(&engine_store),
            engine_blobs.clone(),
            SecretCipher::from_key(&[7; 32]),
            engine_config(&injector, &lockstep),
        );
        engine
            .put_connection(ConnectionInput {
                name: "dropbox".into(),
                // Through OAuth, so that injected token expiry exercises real refreshes.
                credentials: ferry_engine::Credentials::Refresh(ferry_dropbox::Refresh {
                    refresh_token: Secret::new(
                        lockstep.run(oauth_refresh_token(&emulator.base_url()))?,
                    ),
                    app_key: "ferry-app".into(),
                    app_secret: Some(Secret::new("ferry-secret")),
                }),
                root: ROOT.into(),
                endpoints: Endpoints::single(&emulator.base_url())?,
                select_user: None,
                path_root: Default::default(),
                app_access: None,
            })
            .await?;
        let direction = match rng.gen_range(0..3) {
            0 => Direction::Push,
            1 => Direction::Pull,
            _ => Direction::Both,
        };
        // Some seeds carry a second rule rendering the very same folders (an admin's
        // overlapping rules): no Dropbox file may then be tracked twice.
        let overlapping = rng.gen_bool(0.25);
        // Some seeds offload content to Dropbox, some make shared links.
        let extras = RuleExtras {
            offload: rng.gen_bool(0.3),
            links: rng.gen_bool(0.2),
        };
        store.put_rule(&sim_rule(direction, "Jobs", extras)).await?;
        if overlapping {
            store
                .put_rule(&overlapping_rule(direction, "Jobs", extras))
                .await?;
        }
        // Some seeds map an existing folder (with a file people put there) to J1 by hand;
        // Dropbox ops then also write into it and rename it.
        let mapped = rng.gen_bool(0.2);
        // Half the seeds claim one record per step, the others several, run side by side
        // as a worker does (their uploads then share batches).
        let passes = if rng.gen_bool(0.5) {
            1
        } else {
            rng.gen_range(2..=4)
        };
        let mut sim = Sim {
            lockstep: lockstep.clone(),
            passes,
            rng,
            _dir: temp,
            emulator,
            human,
            store,
            blobs,
            second: database.is_some().then(|| {
                Engine::new(
                    Arc::clone(&engine_store),
                    engine_blobs.clone(),
                    SecretCipher::from_key(&[7; 32]),
                    engine_config(&injector, &lockstep),
                )
            }),
            database,
            restarted: false,
            injector,
            engine,
            records: Vec::new(),
            engine_store,
            engine_blobs,
            store_faults,
            overlapping,
            extras,
            direction,
            prefix: "Jobs",
            root: ROOT.to_owned(),
            mapped,
            counter: 0,
            at_risk: BTreeMap::new(),
            superseded: BTreeSet::new(),
            stats: SeedStats::default(),
            trace: vec![format!(
                "direction {direction:?}, overlapping rules {overlapping}, mapped folder {mapped}, {extras:?}"
            )],
        };
        for key in ["J1", "J2", "J3"] {
            let upserted = sim
                .store
                .upsert_record(&RecordInput {
                    kind: "job".into(),
                    key: key.into(),
                    fields: json!({"folder": key, "active": true}),
                    parent_id: None,
                })
                .await?;
            sim.records.push((key.to_owned(), upserted.value.id));
        }
        if mapped {
            let data = sim.content("dropbox");
            let hash = content_hash(&data);
            sim.human
                .upload(&format!("{MAPPED}/J1/existing.txt"), data, &WriteMode::Add)
                .await?;
            sim.at_risk.insert(hash, "dropbox existing.txt".into());
            sim.engine
                .map_folder(
                    "job",
                    "J1",
                    ferry_engine::folder_map::MapRequest {
                        connection: "dropbox".into(),
                        path: format!("{MAPPED}/J1"),
                        direction: Direction::Both,
                        pull_subfolders: false,
                    },
                )
                .await?;
        }
        Ok(sim)
    }

    /// `side` replaced or deleted a version: it is no longer owed if that same side wrote it
    /// (the documented guarantee); a version the other side wrote stays owed.
    fn supersede(&mut self, hash: &str, side: &str) {
        if self
            .at_risk
            .get(hash)
            .is_some_and(|origin| origin.starts_with(side))
        {
            self.superseded.insert(hash.to_owned());
        }
    }

    fn content(&mut self, side: &str) -> Bytes {
        self.counter += 1;
        Bytes::from(format!("{side} version {}", self.counter))
    }

    async fn folder_of(&self, record: i64) -> anyhow::Result<Option<String>> {
        let Some(r) = self.store.record_by_id(record).await? else {
            return Ok(None);
        };
        Ok(r.fields["folder"]
            .as_str()
            .map(|f| format!("{}/{}/{f}", self.root, self.prefix)))
    }

    /// The content currently at `path` in Dropbox, if a file.
    async fn dropbox_hash(&self, path: &str) -> Option<String> {
        match self.human.metadata(path).await {
            Ok(Entry::File(f)) => f.content_hash,
            _ => None,
        }
    }

    async fn app_op(&mut self) -> anyhow::Result<()> {
        self.stats.app_ops += 1;
        let (key, id) = self.records[self.rng.gen_range(0..self.records.len())].clone();
        let attachments = self.store.attachments(id).await?;
        match self.rng.gen_range(0..11) {
            10 if !self.mapped && self.rng.gen_bool(0.25) => {
                // The admin moves the connection's root: every record's folder follows it.
                let to = if self.root == ROOT { MOVED_ROOT } else { ROOT };
                let engine = Arc::clone(&self.engine);
                let hung = self.injector.hung.notified();
                let outcome = tokio::select! {
                    biased;
                    r = engine.change_root("dropbox", to) => Some(r),
                    _ = hung => None,
                };
                let said = match &outcome {
                    Some(Ok(())) => "done".to_owned(),
                    Some(Err(e)) => format!("failed ({e})"),
                    None => "interrupted by a hung Dropbox call".to_owned(),
                };
                if outcome.is_none() {
                    self.crash(Which::First);
                }
                // What the store holds is the truth (a write can fail after it committed).
                if let Some(c) = self.store.connection("dropbox").await?
                    && c.root != self.root
                {
                    self.root = c.root;
                    self.stats.root_moves += 1;
                }
                self.trace.push(format!(
                    "admin: root to {to}: {said}, root now {}",
                    self.root
                ));
                return Ok(());
            }
            10 => {
                // The admin edits the rule: another direction, or another top folder.
                if self.rng.gen_bool(0.5) {
                    self.direction = match self.rng.gen_range(0..3) {
                        0 => Direction::Push,
                        1 => Direction::Pull,
                        _ => Direction::Both,
                    };
                } else {
                    self.prefix = if self.prefix == "Jobs" {
                        "Work"
                    } else {
                        "Jobs"
                    };
                }
                self.store
                    .put_rule(&sim_rule(self.direction, self.prefix, self.extras))
                    .await?;
                if self.overlapping {
                    self.store
                        .put_rule(&overlapping_rule(self.direction, self.prefix, self.extras))
                        .await?;
                }
                let ids: Vec<i64> = self.records.iter().map(|(_, id)| *id).collect();
                self.store.enqueue(&ids, Priority::Normal).await?;
                self.trace.push(format!(
                    "admin: rule now {:?} under {}",
                    self.direction, self.prefix
                ));
                return Ok(());
            }
            0..=5 => {
                // Often the app writes a file that just came from Dropbox, without having
                // seen that version: the Dropbox version must still be kept.
                let imported: Vec<&str> = attachments
                    .iter()
                    .filter(|a| a.source == ferry_core::model::Side::Dropbox)
                    .map(|a| a.name.as_str())
                    .collect();
                let name = if !imported.is_empty() && self.rng.gen_bool(0.4) {
                    imported[self.rng.gen_range(0..imported.len())].to_owned()
                } else {
                    NAMES[self.rng.gen_range(0..NAMES.len())].to_owned()
                };
                let old = attachments.iter().find(|a| a.name == name);
                let data = if self.rng.gen_bool(0.1) {
                    // Identical content to what Dropbox already holds, if anything.
                    match old {
                        // (Unless it is offloaded: then Ferry no longer holds it.)
                        Some(a) if self.blobs.contains(&a.content_hash).await? => {
                            self.blobs.get(&a.content_hash).await?
                        }
                        _ => self.content("app"),
                    }
                } else {
                    self.content("app")
                };
                let hash = self.blobs.put(data.clone()).await?;
                let record = self
                    .store
                    .record_by_id(id)
                    .await?
                    .ok_or_else(|| anyhow!("record vanished"))?;
                // Through the engine's service, as the REST API does: it brings offloaded
                // content back first, and that may fail like any call (the app retries).
                // (Injected Dropbox faults stay with the engine's own steps: a hang there is
                // a crash the step handles; here it would stall the app.)
                let was = self.injector.enabled.swap(false, Ordering::SeqCst);
                let written = self
                    .engine
                    .put_attachment(
                        &record,
                        &name,
                        vec![],
                        hash.clone(),
                        data.len() as u64,
                        None,
                    )
                    .await;
                self.injector.enabled.store(was, Ordering::SeqCst);
                match written {
                    Ok(_) => {
                        if let Some(a) = old {
                            self.supersede(&a.content_hash, "app");
                        }
                        self.at_risk
                            .insert(hash.clone(), format!("app {key}/{name}"));
                        self.superseded.remove(&hash);
                        self.trace.push(format!("app: put {key}/{name}"));
                    }
                    Err(e) if e.is_retryable() => {
                        self.trace
                            .push(format!("app: put {key}/{name} failed, to retry: {e}"));
                    }
                    Err(e) => bail!("app write refused: {e}"),
                }
            }
            6 | 7 => {
                if let Some(a) = attachments.get(self.rng.gen_range(0..attachments.len().max(1))) {
                    let was = self.injector.enabled.swap(false, Ordering::SeqCst);
                    let removed = self.engine.remove_attachment("job", &key, &a.name).await;
                    self.injector.enabled.store(was, Ordering::SeqCst);
                    match removed {
                        Ok(_) => {
                            self.supersede(&a.content_hash, "app");
                            self.trace.push(format!("app: delete {key}/{}", a.name));
                        }
                        Err(e) if e.is_retryable() => {
                            self.trace.push(format!(
                                "app: delete {key}/{} failed, to retry: {e}",
                                a.name
                            ));
                        }
                        Err(e) => bail!("app delete refused: {e}"),
                    }
                }
            }
            8 => {
                let record = self
                    .store
                    .record_by_id(id)
                    .await?
                    .ok_or_else(|| anyhow!("record vanished"))?;
                let folder = record.fields["folder"].as_str().unwrap_or(&key).to_owned();
                let new = if self.rng.gen_bool(0.5) {
                    // Case-only rename.
                    if folder.chars().any(char::is_lowercase) {
                        folder.to_uppercase()
                    } else {
                        folder.to_lowercase()
                    }
                } else {
                    format!("{key}-{}", self.rng.gen_range(0..100))
                };
                let mut fields = record.fields.clone();
                fields["folder"] = json!(new);
                self.store
                    .upsert_record(&RecordInput {
                        kind: "job".into(),
                        key: key.clone(),
                        fields,
                        parent_id: None,
                    })
                    .await?;
                self.trace
                    .push(format!("app: rename folder of {key} to {new}"));
            }
            _ => {
                let record = self
                    .store
                    .record_by_id(id)
                    .await?
                    .ok_or_else(|| anyhow!("record vanished"))?;
                let mut fields = record.fields.clone();
                let active = !record.fields["active"].as_bool().unwrap_or(true);
                fields["active"] = json!(active);
                self.store
                    .upsert_record(&RecordInput {
                        kind: "job".into(),
                        key: key.clone(),
                        fields,
                        parent_id: None,
                    })
                    .await?;
                self.trace.push(format!("app: {key} active={active}"));
            }
        }
        // The store queued the record (and its relatives) with each change.
        Ok(())
    }

    async fn dropbox_op(&mut self) -> anyhow::Result<()> {
        self.stats.dropbox_ops += 1;
        let (key, id) = self.records[self.rng.gen_range(0..self.records.len())].clone();
        let mapped = match self.store.folder_maps(id).await?.first() {
            Some(m) if self.rng.gen_bool(0.5) => Some(m.path.clone()),
            _ => None,
        };
        let folder = match &mapped {
            Some(path) => path.clone(),
            None => match self.folder_of(id).await? {
                Some(f) => f,
                None => return Ok(()),
            },
        };
        let files: Vec<ferry_dropbox::FileInfo> = match self.human.list_all(&folder, true).await {
            Ok((entries, _)) => entries
                .into_iter()
                .filter_map(|e| {
                    if let Entry::File(f) = e {
                        Some(f)
                    } else {
                        None
                    }
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let pick = |rng: &mut StdRng| files.get(rng.gen_range(0..files.len().max(1))).cloned();
        match self.rng.gen_range(0..10) {
            0..=3 => {
                let name = DROPBOX_NAMES[self.rng.gen_range(0..DROPBOX_NAMES.len())];
                let path = format!("{folder}/{name}");
                let data = self.content("dropbox");
                if let Some(old) = self.dropbox_hash(&path).await {
                    self.supersede(&old, "dropbox");
                }
                let hash = content_hash(&data);
                if self
                    .human
                    .upload(&path, data, &WriteMode::Overwrite)
                    .await
                    .is_ok()
                {
                    self.at_risk.insert(hash.clone(), format!("dropbox {path}"));
                    self.superseded.remove(&hash);
                    self.trace.push(format!("dropbox: write {path}"));
                }
            }
            4 | 5 => {
                if let Some(f) = pick(&mut self.rng) {
                    let data = self.content("dropbox");
                    let hash = content_hash(&data);
                    if let Some(old) = f.content_hash.clone() {
                        self.supersede(&old, "dropbox");
                    }
                    if self
                        .human
                        .upload(&f.path_display, data, &WriteMode::Update(f.rev.clone()))
                        .await
                        .is_ok()
                    {
                        self.at_risk
                            .insert(hash.clone(), format!("dropbox edit {}", f.path_display));
                        self.superseded.remove(&hash);
                        self.trace.push(format!("dropbox: edit {}", f.path_display));
                    }
                }
            }
            6 => {
                if let Some(f) = pick(&mut self.rng) {
                    if let Some(old) = f.content_hash.clone() {
                        self.supersede(&old, "dropbox");
                    }
                    let _ = self.human.delete(&f.path_display, None).await;
                    self.trace
                        .push(format!("dropbox: delete {}", f.path_display));
                }
            }
            7 | 8 => {
                if let Some(f) = pick(&mut self.rng) {
                    let to = if self.rng.gen_bool(0.5) {
                        format!("{folder}/{}", f.name.to_uppercase())
                    } else {
                        format!("{folder}/moved {}", self.counter)
                    };
                    self.counter += 1;
                    let _ = self.human.move_entry(&f.path_display, &to).await;
                    self.trace
                        .push(format!("dropbox: move {} -> {to}", f.path_display));
                }
            }
            _ if mapped.is_some() => {
                // Someone renames the mapped folder: Ferry follows it by id.
                self.counter += 1;
                let to = format!("{MAPPED}/J1 renamed {}", self.counter);
                if self.human.move_entry(&folder, &to).await.is_ok() {
                    self.trace
                        .push(format!("dropbox: rename mapped {folder} -> {to}"));
                }
            }
            _ => {
                // Someone deletes the record's whole folder.
                if self.rng.gen_bool(0.3) {
                    for f in &files {
                        if let Some(h) = f.content_hash.clone() {
                            self.supersede(&h, "dropbox");
                        }
                    }
                    let _ = self.human.delete(&folder, None).await;
                    self.trace.push(format!("dropbox: delete folder of {key}"));
                }
            }
        }
        Ok(())
    }

    fn new_engine(&self) -> Arc<Engine> {
        Engine::new(
            Arc::clone(&self.engine_store),
            self.engine_blobs.clone(),
            SecretCipher::from_key(&[7; 32]),
            engine_config(&self.injector, &self.lockstep),
        )
    }

    /// One pass by whichever engine has one to run: both live engines work the queue, and
    /// a claim one of them left after a failed store write is its own to take back.
    async fn run_any(&self) -> Result<bool, ferry_engine::EngineError> {
        if self.engine.run_some(self.passes).await? > 0 {
            return Ok(true);
        }
        match &self.second {
            Some(second) => Ok(second.run_some(self.passes).await? > 0),
            None => Ok(false),
        }
    }

    /// Restarted engines start as a restarted process does: they register and release the
    /// claims of the dead one. Beside a second engine that may not step again for a while,
    /// this cannot wait for the new engine's first pass. A store fault leaves it for later.
    async fn announce_restarted(&mut self) {
        if !self.restarted {
            return;
        }
        let first = self.engine.announce().await.is_ok();
        let second = match &self.second {
            Some(second) => second.announce().await.is_ok(),
            None => true,
        };
        self.restarted = !(first && second);
    }

    /// An engine process dies (a hung Dropbox call): a new one starts on the same store.
    /// `which`: the first engine, the second, or both (they were running side by side).
    fn crash(&mut self, which: Which) {
        self.stats.crashes += 1;
        self.restarted = true;
        self.trace.push(format!("crash {which:?}"));
        if which != Which::Second {
            let engine = self.new_engine();
            let old = std::mem::replace(&mut self.engine, engine);
            self.count_trees(&old);
        }
        if which != Which::First
            && let Some(second) = self.second.replace(self.new_engine())
        {
            self.count_trees(&second);
        }
    }

    /// Adds how an engine's passes read their folders to the seed's counts.
    fn count_trees(&mut self, engine: &Engine) {
        let (mirror, listings) = engine.metrics().remote_tree_counts();
        self.stats.mirror_reads += mirror;
        self.stats.listings += listings;
    }

    /// Runs one engine future; a hung Dropbox call is a crash: the pass is dropped and the
    /// engine restarts on the same store. With a second engine, either runs the step, or for
    /// a pass both run one side by side.
    async fn engine_step(&mut self, what: u32) -> anyhow::Result<bool> {
        self.stats.engine_steps += 1;
        self.announce_restarted().await;
        let which = match &self.second {
            None => Which::First,
            Some(_) => match self.rng.gen_range(0..10) {
                0..=3 => Which::First,
                4..=7 => Which::Second,
                _ if what == 0 => Which::Both,
                _ => Which::First,
            },
        };
        if which != Which::First {
            self.stats.second_engine_steps += 1;
        }
        let engine = match (which, &self.second) {
            (Which::Second, Some(second)) => Arc::clone(second),
            _ => Arc::clone(&self.engine),
        };
        let beside = match (which, &self.second) {
            (Which::Both, Some(second)) => Some(Arc::clone(second)),
            _ => None,
        };
        let hung = self.injector.hung.notified();
        let passes = self.passes;
        let result: Result<bool, ferry_engine::EngineError> = tokio::select! {
            biased;
            r = async {
                match (what, beside) {
                    (0, Some(beside)) => {
                        let (a, b) =
                            tokio::join!(engine.run_some(passes), beside.run_some(passes));
                        Ok(a? + b? > 0)
                    }
                    (0, None) => Ok(engine.run_some(passes).await? > 0),
                    (1, _) => engine.drain_changes("dropbox").await.map(|_| true),
                    (2, _) => engine.offload_round().await.map(|n| n > 0),
                    _ => engine.make_links().await.map(|n| n > 0),
                }
            } => r,
            _ = hung => {
                self.crash(which);
                return Ok(true);
            }
        };
        match result {
            Ok(worked) => Ok(worked),
            // The pass could not run (a fault while reading changes); the queue and cursor
            // are untouched, so nothing is lost.
            Err(e) if e.is_retryable() || matches!(e, ferry_engine::EngineError::Dropbox(_)) => {
                Ok(true)
            }
            Err(e) => Err(anyhow!("engine failed: {e}")),
        }
    }

    /// The change feed lost some notifications (the cursor jumps to now, and the remote
    /// mirror misses what it skipped); a full reconciliation must then queue every record
    /// that has work pending and is not queued already (the pass's own dry run is the
    /// ground truth), and correct the mirror so that their passes see the changes.
    async fn lose_changes_then_reconcile(&mut self) -> anyhow::Result<()> {
        let was = self.injector.enabled.swap(false, Ordering::SeqCst);
        let result = async {
            let root = self
                .store
                .connection("dropbox")
                .await?
                .context("the connection")?
                .root;
            // No cursor yet: no feed to lose changes from.
            if let Some(from) = self.store.connection_cursor("dropbox").await? {
                let latest = self.human.latest_cursor(&root, true).await?;
                self.store
                    .apply_feed_page(&ferry_store::FeedPage {
                        connection: "dropbox",
                        root: &root,
                        from: &from,
                        to: &latest,
                        changes: &[],
                        records: &[],
                        live_until_ms: chrono::Utc::now().timestamp_millis() + 600_000,
                    })
                    .await?;
            }
            let mut needy = BTreeMap::new();
            for (key, id) in &self.records {
                // Records never placed are not the reconciliation's business (their first
                // pass comes from the queue).
                if self.store.bindings_for_record(*id).await?.is_empty() {
                    continue;
                }
                let pending = self.unpaused_pending(*id).await?;
                if !pending.is_empty() && self.store.queue_entry(*id).await?.is_none() {
                    needy.insert(*id, format!("{key}: {pending:?}"));
                }
            }
            let report = self.engine.reconcile_connection("dropbox").await?;
            self.trace.push(format!(
                "reconcile after lost changes: queued {:?}",
                report.queued
            ));
            for (id, pending) in needy {
                if !report.queued.contains(&id) {
                    bail!("the reconciliation missed pending work: {pending}");
                }
            }
            Ok(())
        }
        .await;
        self.injector.enabled.store(was, Ordering::SeqCst);
        result
    }

    /// After quiescence, reconciliations raise no recurring false alarm: a first one may
    /// queue records whose last pass imported files (their attachments are newer than the
    /// pass), but once those passes ran, the next one queues nothing, except records with
    /// files that failed for good (their rows are not `synced`).
    async fn reconcile_finds_nothing(&mut self) -> anyhow::Result<()> {
        self.engine.reconcile_connection("dropbox").await?;
        let mut steps = 0;
        while self.run_any().await? {
            steps += 1;
            if steps > 200 {
                bail!("the queue never drains after a reconciliation");
            }
        }
        let report = self.engine.reconcile_connection("dropbox").await?;
        for id in &report.queued {
            let rows = self.store.sync_rows(*id).await?;
            if rows.iter().all(|r| r.state == SyncState::Synced) {
                // What the reconciliation compared, to tell which side it thought differed.
                let changed = self.store.records_changed_since_pass("dropbox").await?;
                let synced: Vec<String> = rows
                    .iter()
                    .map(|r| format!("{:?} rev {:?}", r.rel_lower, r.rev))
                    .collect();
                let mut listed = Vec::new();
                for b in self.store.bindings_for_record(*id).await? {
                    if let Ok((entries, _)) = self.human.list_all(&b.folder_display, true).await {
                        for e in entries {
                            if let Entry::File(f) = e {
                                listed.push(format!("{} rev {}", f.path_lower, f.rev));
                            }
                        }
                    }
                }
                bail!(
                    "a reconciliation after quiescence queued record {id}, whose files are all synced \
                     (changed since its pass: {}; untracked files: {}; synced: {synced:?}; in Dropbox: {listed:?})",
                    changed.contains(id),
                    report.untracked
                );
            }
        }
        Ok(())
    }

    async fn quiesce(&mut self) -> anyhow::Result<()> {
        self.injector.enabled.store(false, Ordering::SeqCst);
        self.announce_restarted().await;
        if self.restarted {
            bail!("a restarted engine could not announce itself with faults off");
        }
        self.nothing_dropped().await?;
        for _round in 0..12 {
            let _ = self.engine.drain_changes("dropbox").await;
            // The admin confirms whatever the brake paused.
            for (_, id) in &self.records {
                for mut b in self.store.bindings_for_record(*id).await? {
                    if b.paused_reason.is_some() {
                        b.confirm_deletions = true;
                        self.store.save_binding(&b).await?;
                    }
                }
            }
            let ids: Vec<i64> = self.records.iter().map(|(_, id)| *id).collect();
            self.store.enqueue(&ids, Priority::Normal).await?;
            let mut steps = 0;
            while self.run_any().await? {
                steps += 1;
                if steps > 200 {
                    bail!("the queue never drains");
                }
            }
            let mut pending = Vec::new();
            for (key, id) in &self.records {
                for p in self.engine.pending_actions(*id).await? {
                    pending.push(format!("{key}: {p}"));
                }
            }
            if pending.is_empty() {
                // What may be offloaded is, so the checks see Ferry holding the least.
                self.engine.offload_round().await?;
                return Ok(());
            }
        }
        let mut pending = Vec::new();
        for (key, id) in &self.records {
            for p in self.engine.pending_actions(*id).await? {
                pending.push(format!("{key}: {p}"));
            }
        }
        let failed: Vec<String> = self
            .store
            .log_entries(&ferry_store::LogFilter {
                record_id: None,
                limit: 200,
                ..Default::default()
            })
            .await?
            .into_iter()
            .map(|l| l.entry)
            .filter(|e| e.outcome == "failed")
            .take(8)
            .map(|e| format!("{} {}: {}", e.action, e.path, e.error.unwrap_or_default()))
            .collect();
        bail!(
            "no quiescence after 12 rounds; still pending: {pending:?}; last failures: {failed:?}"
        )
    }

    /// What a pass over the record would do now, but for bindings the brake paused (they
    /// wait for an admin, not for another pass).
    async fn unpaused_pending(&self, id: i64) -> anyhow::Result<Vec<String>> {
        Ok(self
            .engine
            .pending_actions(id)
            .await?
            .into_iter()
            .filter(|p| !p.starts_with("paused: "))
            .collect())
    }

    /// With faults off, the queue and the change feed alone leave no work behind: a failure
    /// that may heal (a store error, a 503) is retried, and a crash's claim is released, never
    /// forgotten. Only what the brake holds for an admin may wait.
    async fn nothing_dropped(&mut self) -> anyhow::Result<()> {
        self.engine
            .drain_changes("dropbox")
            .await
            .context("reading changes with faults off")?;
        // Run the queue dry, waiting out retries that Dropbox asked to delay (Retry-After).
        // The feed is read again once the queue is dry, as a watcher would go on reading it:
        // the passes' own writes (a folder moved along with its parent's) may show a record
        // files its pass did not see, planned from the mirror before the feed brought them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut steps = 0;
        loop {
            while self.run_any().await? {
                steps += 1;
                if steps > 400 {
                    bail!("the queue never drains");
                }
            }
            if self.store.queue_stats().await?.queued == 0 {
                self.engine
                    .drain_changes("dropbox")
                    .await
                    .context("reading changes with faults off")?;
                if self.store.queue_stats().await?.queued == 0 {
                    break;
                }
                continue;
            }
            if tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut dropped = Vec::new();
        for (key, id) in &self.records {
            if self.store.queue_entry(*id).await?.is_some() {
                continue; // still queued: not dropped
            }
            let pending = self.unpaused_pending(*id).await?;
            if !pending.is_empty() {
                // The record's sync log, oldest first: what its passes did, in order.
                let mut log: Vec<String> = self
                    .store
                    .log_entries(&ferry_store::LogFilter {
                        record_id: Some(*id),
                        limit: 50,
                        ..Default::default()
                    })
                    .await?
                    .into_iter()
                    .map(|l| l.entry)
                    .map(|e| {
                        let error = e.error.map(|e| format!(": {e}")).unwrap_or_default();
                        format!("{} {} {}{error}", e.action, e.path, e.outcome)
                    })
                    .collect();
                log.reverse();
                dropped.push(format!("{key}: {pending:?}; its sync log: {log:?}"));
            }
        }
        if !dropped.is_empty() {
            bail!("work was dropped (pending, but nothing queued): {dropped:?}");
        }
        // No Dropbox file is tracked twice, here too (not only once an admin confirmed
        // whatever the brake held).
        let mut tracked = HashSet::new();
        for (key, id) in &self.records {
            for row in self.store.sync_rows(*id).await? {
                if let (Some(dropbox_id), Some(_)) = (&row.dropbox_id, &row.rev)
                    && !tracked.insert(dropbox_id.clone())
                {
                    bail!("{key}: Dropbox file {dropbox_id} is tracked twice before quiescence");
                }
            }
        }
        Ok(())
    }

    /// What offload and links did in this seed (so a run shows they were exercised).
    async fn count_extras(&mut self) -> anyhow::Result<()> {
        let engines: Vec<Arc<Engine>> = std::iter::once(Arc::clone(&self.engine))
            .chain(self.second.clone())
            .collect();
        for engine in engines {
            self.count_trees(&engine);
        }
        let count = |action: &str| {
            let store = Arc::clone(&self.store);
            let action = action.to_owned();
            async move {
                let entries = store
                    .log_entries(&ferry_store::LogFilter {
                        action: Some(action),
                        outcome: Some("ok".into()),
                        limit: u32::MAX,
                        ..Default::default()
                    })
                    .await?;
                anyhow::Ok(u32::try_from(entries.len()).unwrap_or(u32::MAX))
            }
        };
        self.stats.links = count("link").await?;
        self.stats.brought_back = count("bring_back").await?;
        self.stats.offloaded =
            u32::try_from(self.store.content_totals().await?.offloaded_files).unwrap_or(u32::MAX);
        Ok(())
    }

    /// The seed's transcript (see [`SeedRun::transcript`]).
    async fn transcript(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for line in &self.trace {
            let _ = writeln!(out, "trace {line}");
        }
        for call in self
            .injector
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(out, "call {call}");
        }
        let log = self
            .store
            .log_entries(&ferry_store::LogFilter {
                record_id: None,
                limit: 100_000,
                ..Default::default()
            })
            .await;
        match log {
            Ok(lines) => {
                for l in lines.iter().rev() {
                    let e = &l.entry;
                    let _ = writeln!(
                        out,
                        "log {} {} record {} {} {:?} {} {} bytes {:?}",
                        e.id,
                        e.connection,
                        e.record_id,
                        e.action,
                        e.path,
                        e.outcome,
                        e.bytes,
                        e.error
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(out, "log unreadable: {e}");
            }
        }
        out
    }

    async fn check(&self) -> anyhow::Result<()> {
        // Everything retrievable: attachments, archives, files in Dropbox.
        let mut retrievable: HashSet<String> = HashSet::new();
        let mut tracked_ids: HashSet<String> = HashSet::new();
        for (key, id) in &self.records {
            // Every version Ferry keeps can be read: from the blob store, or — offloaded —
            // from the very revision in Dropbox; an archived version always from here.
            for a in self.store.attachments(*id).await? {
                if !self.blobs.contains(&a.content_hash).await? {
                    let Some(off) = &a.offloaded else {
                        bail!("{key}: the content of {} is gone from Ferry", a.name);
                    };
                    let (info, data) = self.human.download(&format!("rev:{}", off.rev)).await?;
                    if info.content_hash.as_deref() != Some(a.content_hash.as_str())
                        || ferry_core::content_hash::content_hash(&data) != a.content_hash
                    {
                        bail!("{key}: offloaded {} is not at revision {}", a.name, off.rev);
                    }
                }
                retrievable.insert(a.content_hash);
            }
            for a in self.store.archived_attachments(*id).await? {
                if !self.blobs.contains(&a.content_hash).await? {
                    bail!("{key}: the archived version {} of {} is gone", a.id, a.name);
                }
                retrievable.insert(a.content_hash);
            }
            let bindings = self.store.bindings_for_record(*id).await?;
            for row in self.store.sync_rows(*id).await? {
                let (Some(dropbox_id), Some(rel), Some(hash)) =
                    (&row.dropbox_id, &row.rel_display, &row.content_hash)
                else {
                    continue;
                };
                if !tracked_ids.insert(dropbox_id.clone()) {
                    bail!("{key}: Dropbox file {dropbox_id} is tracked twice");
                }
                let Some(b) = bindings.iter().find(|b| Some(b.id) == row.binding_id) else {
                    bail!("{key}: sync row {} has no binding", row.id);
                };
                let path = format!("{}/{rel}", b.folder_display);
                match self.human.metadata(&path).await {
                    Ok(Entry::File(f)) if f.content_hash.as_deref() == Some(hash.as_str()) => {}
                    other => bail!("{key}: synced {path} ({hash}) but Dropbox has {other:?}"),
                }
                // Pull-only bindings keep app-side edits in the app: only Dropbox must match.
                // A mapped folder syncs both ways.
                let pushes = row.rule_name.starts_with("map:") || self.direction.pushes();
                if let (Some(att), true) = (row.attachment_id, pushes) {
                    let a = self
                        .store
                        .attachments(*id)
                        .await?
                        .into_iter()
                        .find(|a| a.id == att);
                    match a {
                        Some(a) if &a.content_hash == hash => {}
                        other => {
                            bail!("{key}: synced {path} ({hash}) but the attachment is {other:?}")
                        }
                    }
                }
            }
        }
        match self.human.list_all(ROOT, true).await {
            Ok((entries, _)) => {
                for e in entries {
                    if let Entry::File(f) = e
                        && let Some(h) = f.content_hash
                    {
                        retrievable.insert(h);
                    }
                }
            }
            Err(DropboxError::NotFound(_)) => {}
            Err(e) => bail!("cannot list Dropbox: {e}"),
        }
        for (hash, origin) in &self.at_risk {
            if !self.superseded.contains(hash) && !retrievable.contains(hash) {
                bail!("lost a version written by {origin} ({hash})");
            }
        }
        Ok(())
    }
}

/// How long one seed may take (they take about a second); longer is a stall, reported
/// with the seed's trace.
const SEED_DEADLINE: Duration = Duration::from_secs(120);

/// What one seed did, and its transcript.
#[derive(Debug)]
pub struct SeedRun {
    /// The seed's counts, or how it failed (with its trace).
    pub outcome: anyhow::Result<SeedStats>,
    /// Everything that decides a replay, in order: the simulation's trace, every Dropbox
    /// call the engines made with the fault it met, and the sync log without its times.
    /// The same seed gives the same transcript byte for byte.
    pub transcript: String,
}

impl SeedRun {
    /// A seed that could not run at all (no transcript).
    fn failed(error: anyhow::Error) -> SeedRun {
        SeedRun {
            outcome: Err(error),
            transcript: String::new(),
        }
    }
}

/// The runtime the seeds' I/O runs on (sockets, database and file threads, the emulator):
/// one for the process, apart from the seeds' own.
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ferry-sim-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("the simulation's I/O runtime cannot start: {e}"))
    })
}

/// Runs one seed exactly, on the calling thread (which it blocks): a single-threaded runtime
/// with a paused clock runs the seed, and all its I/O runs in lockstep on an I/O runtime of
/// its own, so the order of everything it does, and virtual time, follow from the seed alone.
pub fn run_seed_exact(seed: u64, steps: u32, backend: SimBackend) -> SeedRun {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return SeedRun::failed(anyhow!("the seed's runtime cannot start: {e}")),
    };
    let lockstep = Lockstep::new(io_runtime().handle().clone());
    // The engines' and the store's clock is the seed's virtual time, from the wall clock at
    // the seed's start: a retry due in a second comes due after the same steps in every run.
    let base = ferry_core::clock::now_ms();
    let start = runtime.block_on(async { tokio::time::Instant::now() });
    ferry_core::clock::simulate_on_this_thread(move || {
        let passed = tokio::time::Instant::now().saturating_duration_since(start);
        base.saturating_add(i64::try_from(passed.as_millis()).unwrap_or(i64::MAX))
    });
    struct RealClock;
    impl Drop for RealClock {
        fn drop(&mut self) {
            ferry_core::clock::stop_simulating();
        }
    }
    let _real = RealClock;
    runtime.block_on(run_seed_in(seed, steps, backend, lockstep))
}

/// Runs one seed exactly (see [`run_seed_exact`]) on a thread of its own.
pub async fn run_seed(seed: u64, steps: u32, backend: SimBackend) -> anyhow::Result<SeedStats> {
    replay(seed, steps, backend).await.outcome
}

/// [`run_seed_exact`] on a thread of its own, with the transcript.
pub async fn replay(seed: u64, steps: u32, backend: SimBackend) -> SeedRun {
    tokio::task::spawn_blocking(move || run_seed_exact(seed, steps, backend))
        .await
        .unwrap_or_else(|e| SeedRun::failed(anyhow!("the seed panicked: {e}")))
}

/// Runs one seed: `steps` random operations, then quiescence and the invariant checks.
async fn run_seed_in(seed: u64, steps: u32, backend: SimBackend, lockstep: Lockstep) -> SeedRun {
    let mut sim = match Sim::new(seed, backend, lockstep).await {
        Ok(sim) => sim,
        Err(e) => return SeedRun::failed(e.context("simulation setup")),
    };
    sim.injector.enabled.store(true, Ordering::SeqCst);
    let outcome = tokio::time::timeout(SEED_DEADLINE, async {
        for _ in 0..steps {
            match sim.rng.gen_range(0..100) {
                0..=29 => sim.app_op().await?,
                30..=54 => sim.dropbox_op().await?,
                55..=81 => {
                    sim.engine_step(0).await?;
                }
                82..=83 => {
                    sim.engine_step(2).await?;
                }
                84 => {
                    sim.engine_step(3).await?;
                }
                85..=95 => {
                    sim.engine_step(1).await?;
                }
                _ => sim.lose_changes_then_reconcile().await?,
            }
        }
        sim.quiesce().await?;
        sim.check().await?;
        sim.count_extras().await?;
        sim.reconcile_finds_nothing().await
    })
    .await
    .unwrap_or_else(|_| {
        Err(anyhow!(
            "stalled: the seed did not finish in {} s of virtual time (nothing may wait forever)",
            SEED_DEADLINE.as_secs()
        ))
    });
    sim.stats.faults =
        u32::try_from(sim.injector.injected.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
    sim.stats.store_faults =
        u32::try_from(sim.store_faults.injected.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
    let stats = sim.stats.clone();
    let trace = sim.trace.join("\n  ");
    let transcript = sim.transcript().await;
    sim.lockstep.run(sim.emulator.shutdown());
    if let Some(database) = sim.database.take() {
        sim.lockstep.run(database.remove());
    }
    SeedRun {
        outcome: outcome
            .map(|()| stats)
            .map_err(|e| anyhow!("{e:#}\n  trace:\n  {trace}")),
        transcript,
    }
}

/// What a run over many seeds found.
#[derive(Debug, Default)]
pub struct Report {
    /// Seeds run.
    pub seeds: u64,
    /// Failing seeds with their failure.
    pub failures: Vec<(u64, String)>,
    /// Totals over all passing seeds.
    pub totals: SeedStats,
}

impl Report {
    /// Adds another run's results.
    pub fn merge(&mut self, other: Report) {
        self.seeds += other.seeds;
        self.failures.extend(other.failures);
        self.totals.add(&other.totals);
    }
}

/// Runs `seeds`, `parallel` at a time, on `backend`.
pub async fn run_seeds(
    seeds: Vec<u64>,
    steps: u32,
    parallel: usize,
    backend: SimBackend,
) -> Report {
    let mut report = Report::default();
    let mut running = tokio::task::JoinSet::new();
    let mut queue = seeds.into_iter();
    loop {
        while running.len() < parallel.max(1) {
            let Some(seed) = queue.next() else { break };
            running.spawn(async move { (seed, run_seed(seed, steps, backend).await) });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        report.seeds += 1;
        match done {
            Ok((_, Ok(stats))) => report.totals.add(&stats),
            Ok((seed, Err(e))) => report.failures.push((seed, format!("{e:#}"))),
            Err(e) => report
                .failures
                .push((u64::MAX, format!("simulation task panicked: {e}"))),
        }
    }
    report.failures.sort_by_key(|f| f.0);
    report
}
