//! A local emulator of the Dropbox HTTP API v2, served by axum.
//!
//! Tests start it in-process on port 0 with a temporary data directory and point a Dropbox
//! client at [`RunningEmulator::base_url`]: every host (`api.`, `content.`, `notify.`) maps to
//! the same `http://127.0.0.1:PORT/2/<route>`. State (the file tree, content, upload sessions,
//! the account) lives in the data directory and survives a restart. See the crate README for
//! the routes, the on-disk layout and the known differences from Dropbox.

#![warn(missing_docs)]

mod account;
mod approot;
mod blobs;
mod bulk;
mod config;
mod faults;
mod jobs;
mod journal;
mod links;
mod metadata;
mod oauth;
mod paths;
mod routes_batch;
mod routes_files;
mod routes_search;
mod routes_sharing;
mod routes_users;
mod server;
mod sessions;
mod space;
mod state;
mod team;
mod tls;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use bulk::{BulkFile, BulkWritten, write_bulk_journal};
pub use config::{AccountSpec, DEFAULT_QUOTA_BYTES};
pub use faults::{FaultModel, FaultsHandle};
pub use journal::JournalError;
pub use oauth::{ALL_SCOPES, AppSpec};
pub use team::TeamSpec;

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Directory holding all state (journal, blobs, upload sessions, account). Created if missing.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The Bearer token clients must send. `None`: reuse the token stored in the data
    /// directory, or generate (and store) a random one.
    pub token: Option<String>,
    /// The contention and fault model at start (changeable later through
    /// [`RunningEmulator::faults`] or `PUT /admin/model`). Default: [`FaultModel::default`]
    /// (write lock and rate limit on, faults off); [`FaultModel::off`] disables everything.
    pub model: FaultModel,
    /// Quota of the primary account in bytes (default [`DEFAULT_QUOTA_BYTES`]).
    pub quota_bytes: u64,
    /// Further accounts, each with its own namespace, token and quota (stored under
    /// `data_dir/accounts/<name>/`).
    pub accounts: Vec<AccountSpec>,
    /// Serve HTTPS with a self-signed certificate written to `data_dir/tls/cert.pem`
    /// (default: plain HTTP).
    pub tls: bool,
    /// OAuth apps (default [`AppSpec::defaults`]: `ferry-app`, full Dropbox, and
    /// `ferry-folder-app`, app folder `/Apps/Ferry`).
    pub apps: Vec<AppSpec>,
    /// Lifetime of OAuth access tokens in seconds (default 14,400 = 4 h, as Dropbox).
    pub token_lifetime_secs: u64,
    /// A team over some of the accounts: a shared root namespace, a team token used with
    /// `Dropbox-API-Select-User`, and `Dropbox-API-Path-Root` (default: none).
    pub team: Option<TeamSpec>,
    /// Draws every id, rev, token and cursor from this seed (default: none, random): with
    /// requests arriving in the same order, the emulator then answers byte for byte the
    /// same (the simulation's exact replay).
    pub seed: Option<u64>,
}

impl EmulatorConfig {
    /// A config for `data_dir`, listening on `127.0.0.1:0`, with a generated token, the
    /// default contention model and one account.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            model: FaultModel::default(),
            quota_bytes: DEFAULT_QUOTA_BYTES,
            accounts: Vec::new(),
            tls: false,
            apps: AppSpec::defaults(),
            token_lifetime_secs: 4 * 3600,
            team: None,
            seed: None,
        }
    }

    /// Applies a TOML config file (see `docs/emulator.md`): `quota_bytes`, a `[model]` table
    /// and `[[accounts]]`. Fields the file does not name keep their current values.
    pub fn apply_file(&mut self, path: &std::path::Path) -> Result<(), EmulatorError> {
        config::apply_file(self, path)
    }
}

/// An account as seen from outside: its name, token and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// `"default"` for the primary account, else the configured name.
    pub name: String,
    /// The Bearer token it accepts.
    pub token: String,
    /// `dbid:…`.
    pub account_id: String,
    /// The numeric root namespace id.
    pub namespace_id: String,
}

/// The team as seen from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamInfo {
    /// The configured name.
    pub name: String,
    /// `dbtid:…`.
    pub team_id: String,
    /// The team token (use it with `Dropbox-API-Select-User`).
    pub token: String,
    /// The shared root namespace's id (for `Dropbox-API-Path-Root`).
    pub root_namespace_id: String,
    /// `(account name, team member id)` for every member.
    pub members: Vec<(String, String)>,
}

/// `map_err` helper: an I/O error on `path` as [`EmulatorError::DataDir`].
pub(crate) fn io_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> EmulatorError + '_ {
    move |source| EmulatorError::DataDir {
        path: path.to_path_buf(),
        source,
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The data directory (or a file in it) could not be created or read.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `account.json` exists but is not valid.
    #[error("invalid account file {path}: {source}")]
    Account {
        /// The account file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The change journal could not be replayed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The config (file or values) is invalid.
    #[error("invalid emulator config: {0}")]
    Config(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Per-route request counters, shared between the server and the handle.
pub(crate) type RouteCalls = Arc<Mutex<HashMap<String, u64>>>;

/// A running emulator. Dropping it stops the server (without waiting);
/// [`RunningEmulator::shutdown`] stops it and waits.
pub struct RunningEmulator {
    addr: SocketAddr,
    token: String,
    accounts: Vec<AccountInfo>,
    team: Option<TeamInfo>,
    /// `key (full Dropbox | /Apps/<name>)` per OAuth app, for the banner.
    apps: Vec<String>,
    faults: FaultsHandle,
    cert_path: Option<PathBuf>,
    calls: RouteCalls,
    upload_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    open_sessions: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl RunningEmulator {
    /// Opens (or creates) the data directory, replays the journal, binds the socket and starts
    /// serving in a background task.
    pub async fn start(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
        config.model.validate().map_err(EmulatorError::Config)?;
        let mut app = server::App::open(&config)?;
        app.tls = config.tls;
        let accounts = app.account_infos();
        let token = accounts
            .first()
            .map(|a| a.token.clone())
            .unwrap_or_default();
        let calls = app.calls.clone();
        let upload_bytes = app.upload_bytes.clone();
        let open_sessions = app.open_sessions.clone();
        let faults = app.faults.clone();
        let team = app.team.as_ref().map(|t| TeamInfo {
            name: t.name.clone(),
            team_id: t.team_id.clone(),
            token: t.token.clone(),
            root_namespace_id: t.root.account.namespace_id.clone(),
            members: t
                .members
                .iter()
                .map(|m| (m.space.name.clone(), m.member_id.clone()))
                .collect(),
        });
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.bind,
                source,
            })?;
        let router = server::router(Arc::new(app));
        let (stop, stopped) = oneshot::channel::<()>();
        let tls = if config.tls {
            Some(tls::Tls::load_or_create(
                &config.data_dir,
                config.bind.ip(),
            )?)
        } else {
            None
        };
        let cert_path = tls.as_ref().map(|t| t.cert_path.clone());
        let task = tokio::spawn(async move {
            if let Some(tls) = tls {
                tls.serve(listener, router, stopped).await;
                return;
            }
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    // Either an explicit stop or the handle being dropped.
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::warn!(%err, "emulator server stopped with an error");
            }
        });
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "Dropbox emulator listening");
        Ok(RunningEmulator {
            addr,
            token,
            accounts,
            team,
            apps: config
                .apps
                .iter()
                .map(|a| {
                    let access = if a.app_folder {
                        format!("/Apps/{}", a.name)
                    } else {
                        "full Dropbox".into()
                    };
                    format!("{} ({access})", a.key)
                })
                .collect(),
            faults,
            cert_path,
            calls,
            upload_bytes,
            open_sessions,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (`https://` with TLS; no trailing slash); routes live under
    /// `{base_url}/2/`.
    pub fn base_url(&self) -> String {
        let scheme = if self.cert_path.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// With TLS: the self-signed certificate (PEM) clients must trust.
    pub fn cert_path(&self) -> Option<&std::path::Path> {
        self.cert_path.as_deref()
    }

    /// The Bearer token of the primary account.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Every account (the primary one first) with its token and ids.
    pub fn accounts(&self) -> &[AccountInfo] {
        &self.accounts
    }

    /// The token of the account called `name` (`"default"` is the primary one).
    pub fn token_for(&self, name: &str) -> Option<&str> {
        self.accounts
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.token.as_str())
    }

    /// What a standalone emulator prints on start: address, data directory, each account's
    /// token, the certificate, and how to point the Python SDK at it.
    pub fn banner(&self) -> String {
        let mut out = format!("Dropbox emulator on {}\n", self.base_url());
        for account in &self.accounts {
            out.push_str(&format!(
                "account {:<10} token {}\n",
                account.name, account.token
            ));
        }
        if let Some(team) = &self.team {
            out.push_str(&format!(
                "team {} token {} (root namespace {})\n",
                team.name, team.token, team.root_namespace_id
            ));
            for (name, member_id) in &team.members {
                out.push_str(&format!("  member {name} {member_id}\n"));
            }
        }
        if let Some(cert) = &self.cert_path {
            let host = format!("localhost:{}", self.addr.port());
            out.push_str(&format!("certificate {}\n", cert.display()));
            out.push_str(&format!(
                "Python SDK: DROPBOX_API_HOST={host} DROPBOX_API_CONTENT_HOST={host} \
                 DROPBOX_API_NOTIFY_HOST={host} REQUESTS_CA_BUNDLE={}\n",
                cert.display()
            ));
        }
        out.push_str(&format!(
            "OAuth: {}/oauth2/authorize, apps {}\n",
            self.base_url(),
            self.apps.join(", ")
        ));
        out.push_str(&format!(
            "fault model: {}/admin/model (GET, PUT)\n",
            self.base_url()
        ));
        out
    }

    /// The team, if one is configured.
    pub fn team(&self) -> Option<&TeamInfo> {
        self.team.as_ref()
    }

    /// The live contention and fault model.
    pub fn faults(&self) -> FaultsHandle {
        self.faults.clone()
    }

    /// Replaces the contention and fault model (shorthand for `faults().set_model(..)`).
    pub fn set_model(&self, model: FaultModel) {
        self.faults.set_model(model);
    }

    /// How many requests `route` (e.g. `"files/upload"`) has received since this start,
    /// whatever their outcome.
    pub fn route_calls(&self, route: &str) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.get(route).copied().unwrap_or(0)
    }

    /// Requests of every route since this start, whatever their outcome.
    pub fn calls_total(&self) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.values().sum()
    }

    /// Content bytes clients have sent to upload routes since this start (uploads, session
    /// chunks, batch appends), whatever became of them.
    pub fn upload_bytes(&self) -> u64 {
        self.upload_bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `upload_session/start` calls since this start that left their session open for
    /// appends (a file sent in chunks), not counting those closed at start (a whole small
    /// file staged for a batch commit).
    pub fn open_sessions_started(&self) -> u64 {
        self.open_sessions
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 5 seconds) and
    /// waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
