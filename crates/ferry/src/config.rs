//! Ferry's configuration, in layers: defaults, then a TOML file, then `FERRY_<KEY>`
//! environment variables, then command-line flags ([`Config::load_layered`]). Every key can
//! be set in each layer; docs/configuration.md lists them, and a test checks that list
//! against [`KEYS`].

use anyhow::{Context, bail};
use ferry_core::secret::Secret;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// How a key's value is written in an environment variable or a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (paths, addresses, URLs, keys).
    Text,
    /// A whole number.
    Integer,
    /// A decimal number.
    Decimal,
    /// `true` or `false`.
    Switch,
}

/// Every configuration key and how it is written.
pub const KEYS: &[(&str, Kind)] = &[
    ("data_dir", Kind::Text),
    ("listen", Kind::Text),
    ("database_url", Kind::Text),
    ("api_key", Kind::Text),
    ("secret_key", Kind::Text),
    ("workers", Kind::Integer),
    ("passes_per_worker", Kind::Integer),
    ("bulk_passes_per_worker", Kind::Integer),
    ("chunk_size_mib", Kind::Integer),
    ("max_attachment_mib", Kind::Integer),
    ("give_up_after_secs", Kind::Integer),
    ("max_backoff_secs", Kind::Integer),
    ("brake_window_secs", Kind::Integer),
    ("brake_share", Kind::Decimal),
    ("brake_min", Kind::Integer),
    ("connection_brake_share", Kind::Decimal),
    ("connection_brake_min", Kind::Integer),
    ("custom_dropbox_hosts", Kind::Switch),
    ("reconcile_every_secs", Kind::Integer),
    ("upload_concurrency", Kind::Integer),
    ("transfer_memory_mib", Kind::Integer),
    ("chunks_in_flight", Kind::Integer),
    ("remote_mirror", Kind::Switch),
    ("longpoll_secs", Kind::Integer),
    ("lease_secs", Kind::Integer),
    ("heartbeat_secs", Kind::Integer),
    ("client_attempts", Kind::Integer),
    ("dropbox_requests_per_second", Kind::Integer),
    ("max_connections", Kind::Integer),
    ("header_timeout_secs", Kind::Integer),
    ("body_idle_timeout_secs", Kind::Integer),
    ("drain_secs", Kind::Integer),
    ("backup_connection", Kind::Text),
    ("backup_folder", Kind::Text),
    ("backup_every_secs", Kind::Integer),
    ("backup_cron", Kind::Text),
    ("backup_keep", Kind::Integer),
    ("backup_max_age_days", Kind::Integer),
    ("webhooks_allow_internal", Kind::Switch),
    ("links_per_second", Kind::Integer),
    ("dropbox_app_key", Kind::Text),
    ("dropbox_app_secret", Kind::Text),
    ("dropbox_app_access", Kind::Text),
    ("public_url", Kind::Text),
    ("admin_password", Kind::Text),
    ("dropbox_base_url", Kind::Text),
    ("s3_bucket", Kind::Text),
    ("s3_prefix", Kind::Text),
    ("s3_endpoint", Kind::Text),
    ("s3_region", Kind::Text),
    ("s3_access_key_id", Kind::Text),
    ("s3_secret_access_key", Kind::Text),
];

/// Keys whose values are secrets: never printed.
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "secret_key",
    "dropbox_app_secret",
    "admin_password",
    "s3_secret_access_key",
];

/// Everything `ferry serve` needs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, blobs and key files live.
    pub data_dir: PathBuf,
    /// Address of the REST API.
    pub listen: SocketAddr,
    /// Database URL: `sqlite://path/to/ferry.db` (default `<data_dir>/ferry.db`) or
    /// `postgres://user:password@host:port/database`; printed without its password.
    #[serde(serialize_with = "redacted_url")]
    pub database_url: Option<String>,
    /// API key clients must send as `Authorization: Bearer <key>`; default: generated into
    /// `<data_dir>/api-key`.
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub api_key: Option<Secret>,
    /// Key for stored tokens (64 hex digits); default: generated into `<data_dir>/secret.key`.
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub secret_key: Option<Secret>,
    /// Queue workers.
    pub workers: usize,
    /// Records each worker claims at once and syncs side by side.
    pub passes_per_worker: usize,
    /// Back-fill records each worker syncs side by side besides those.
    pub bulk_passes_per_worker: usize,
    /// Upload-session chunk size in MiB (files above it use sessions).
    pub chunk_size_mib: usize,
    /// Largest attachment accepted over the API, in MiB.
    pub max_attachment_mib: usize,
    /// A record whose passes keep failing is dead-lettered after failing this many seconds
    /// (never for failures that only ask to wait: rate limits, network down).
    pub give_up_after_secs: u64,
    /// Longest wait between two attempts of a failing record, in seconds.
    pub max_backoff_secs: u64,
    /// The deletion brake counts deletions over this many seconds.
    pub brake_window_secs: u64,
    /// Pause a binding whose deletions (this pass plus the window) exceed this share…
    pub brake_share: f64,
    /// …and at least this many files.
    pub brake_min: usize,
    /// Pause a connection whose deletions over the window exceed this share of its files…
    pub connection_brake_share: f64,
    /// …and at least this many files.
    pub connection_brake_min: usize,
    /// Let connections name Dropbox hosts of their own (`base_url`: an emulator, a proxy).
    /// Off by default, so a token only ever goes to Dropbox.
    pub custom_dropbox_hosts: bool,
    /// Seconds between two full reconciliations of a connection (the safety net).
    pub reconcile_every_secs: u64,
    /// Uploads staged in parallel within one pass.
    pub upload_concurrency: usize,
    /// MiB of file content all running passes may hold in memory at once (16–65536).
    pub transfer_memory_mib: u64,
    /// Chunks of one large file sent at once (1–32), when the chunk size is a multiple of
    /// 4 MiB (Dropbox's concurrent upload sessions).
    pub chunks_in_flight: usize,
    /// Plan passes from the remote mirror when it can be trusted (off: every pass lists).
    pub remote_mirror: bool,
    /// Long-poll timeout asked of Dropbox, in seconds (30–480).
    pub longpoll_secs: u64,
    /// How long a queue claim lasts without a heartbeat (another host's crashed work is
    /// taken over after this long).
    pub lease_secs: u64,
    /// How often running passes renew their claims (well under `lease_secs`).
    pub heartbeat_secs: u64,
    /// Tries per Dropbox call before the failure goes to the queue's backoff.
    pub client_attempts: u32,
    /// Requests per second each connection sends Dropbox at most, on average (0: unpaced).
    pub dropbox_requests_per_second: u32,
    /// API connections open at once; at the limit a new one closes the oldest idle one.
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers.
    pub header_timeout_secs: u64,
    /// Longest pause inside a request body, in seconds.
    pub body_idle_timeout_secs: u64,
    /// On shutdown, seconds requests in flight get to finish.
    pub drain_secs: u64,
    /// Back up Ferry's database to this connection (`[backup] connection` in the file);
    /// unset: no backups.
    pub backup_connection: Option<String>,
    /// The backups' folder, relative to the connection's root.
    pub backup_folder: String,
    /// Seconds between scheduled backups (0: only `ferry backup now`)…
    pub backup_every_secs: u64,
    /// …or when to make them: a cron expression in UTC (`0 2 * * *`: daily at 02:00).
    pub backup_cron: Option<String>,
    /// How many backups to keep.
    pub backup_keep: usize,
    /// Delete backups older than this many days too (0: by count only; never the newest).
    pub backup_max_age_days: u64,
    /// Keep attachment content in this S3-compatible bucket (`[s3] bucket` in the file)
    /// instead of `<data dir>/blobs`.
    pub s3_bucket: Option<String>,
    /// A key prefix in the bucket.
    pub s3_prefix: String,
    /// The S3 endpoint (`https://…`, or `http://` on this network); unset: AWS's own.
    pub s3_endpoint: Option<String>,
    /// The bucket's region.
    pub s3_region: String,
    /// The access key id.
    pub s3_access_key_id: Option<String>,
    /// The secret access key.
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub s3_secret_access_key: Option<Secret>,
    /// Let webhooks go to loopback, private and link-local addresses (off: public ones only).
    pub webhooks_allow_internal: bool,
    /// Shared links asked of Dropbox per second at most (1–100).
    pub links_per_second: u32,
    /// The Dropbox app people connect with through Dropbox's page (its app key).
    pub dropbox_app_key: Option<String>,
    /// That app's secret (leave out for a PKCE-only app).
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub dropbox_app_secret: Option<Secret>,
    /// What that app can reach, as set in the Dropbox App Console: `full_dropbox` or
    /// `app_folder` (Dropbox's API does not say; the console shows it).
    pub dropbox_app_access: String,
    /// Where browsers reach Ferry (`https://ferry.example.com`); Dropbox sends people back to
    /// `<public_url>/oauth/dropbox/callback`. Default: the listen address.
    pub public_url: Option<String>,
    /// The console admin `admin`'s password, used only at a start when no admin exists
    /// (afterwards: `ferry admin set-password`).
    #[serde(deserialize_with = "secret_opt", serialize_with = "redacted")]
    pub admin_password: Option<Secret>,
    /// One base URL for every Dropbox host, for connections made in the console (an
    /// emulator; needs `custom_dropbox_hosts`). Default: the real Dropbox.
    pub dropbox_base_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("ferry-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: None,
            api_key: None,
            secret_key: None,
            workers: 4,
            passes_per_worker: 16,
            bulk_passes_per_worker: 64,
            chunk_size_mib: 8,
            max_attachment_mib: 512,
            give_up_after_secs: 24 * 3600,
            max_backoff_secs: 300,
            brake_window_secs: 600,
            brake_share: 0.5,
            brake_min: 3,
            connection_brake_share: 0.5,
            connection_brake_min: 20,
            custom_dropbox_hosts: false,
            reconcile_every_secs: 15 * 60,
            upload_concurrency: 8,
            transfer_memory_mib: 256,
            chunks_in_flight: 4,
            remote_mirror: true,
            longpoll_secs: 30,
            lease_secs: 15,
            heartbeat_secs: 3,
            client_attempts: 3,
            dropbox_requests_per_second: 100,
            max_connections: 1024,
            header_timeout_secs: 10,
            body_idle_timeout_secs: 30,
            drain_secs: 10,
            backup_connection: None,
            backup_folder: "Ferry backups".into(),
            backup_every_secs: 0,
            backup_cron: None,
            backup_keep: 7,
            backup_max_age_days: 0,
            webhooks_allow_internal: false,
            links_per_second: 10,
            dropbox_app_key: None,
            dropbox_app_secret: None,
            dropbox_app_access: "full_dropbox".into(),
            s3_bucket: None,
            s3_prefix: String::new(),
            s3_endpoint: None,
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            public_url: None,
            admin_password: None,
            dropbox_base_url: None,
        }
    }
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.map(Secret::new))
}

fn redacted<S: serde::Serializer>(value: &Option<Secret>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("<redacted>"),
        None => s.serialize_none(),
    }
}

fn redacted_url<S: serde::Serializer>(value: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(url) => s.serialize_some(&ferry_store::redact_database_url(url)),
        None => s.serialize_none(),
    }
}

/// A value for `key` written as text (an environment variable, a flag), typed by its kind.
fn typed(key: &str, kind: Kind, text: &str, source: &str) -> anyhow::Result<toml::Value> {
    let bad = |what: &str| anyhow::anyhow!("{source}: {key} must be {what}, not {text:?}");
    Ok(match kind {
        Kind::Text => toml::Value::String(text.to_owned()),
        Kind::Integer => {
            toml::Value::Integer(text.trim().parse().map_err(|_| bad("a whole number"))?)
        }
        Kind::Decimal => toml::Value::Float(text.trim().parse().map_err(|_| bad("a number"))?),
        Kind::Switch => toml::Value::Boolean(match text.trim() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => return Err(bad("true or false")),
        }),
    })
}

impl Config {
    /// The engine's settings.
    pub fn engine_config(&self) -> ferry_engine::EngineConfig {
        use std::time::Duration;
        ferry_engine::EngineConfig {
            workers: self.workers,
            passes_per_worker: self.passes_per_worker,
            bulk_passes_per_worker: self.bulk_passes_per_worker,
            chunk_size: self.chunk_size_mib * 1024 * 1024,
            give_up_after: Duration::from_secs(self.give_up_after_secs),
            max_backoff: Duration::from_secs(self.max_backoff_secs),
            brake_window: Duration::from_secs(self.brake_window_secs),
            brake_share: self.brake_share,
            brake_min: self.brake_min,
            connection_brake_share: self.connection_brake_share,
            connection_brake_min: self.connection_brake_min,
            custom_dropbox_hosts: self.custom_dropbox_hosts,
            reconcile_every: Duration::from_secs(self.reconcile_every_secs),
            upload_concurrency: self.upload_concurrency,
            transfer_memory: self.transfer_memory_mib << 20,
            chunks_in_flight: self.chunks_in_flight,
            remote_mirror: self.remote_mirror,
            longpoll_secs: self.longpoll_secs,
            lease: Duration::from_secs(self.lease_secs),
            heartbeat: Duration::from_secs(self.heartbeat_secs),
            client_attempts: self.client_attempts,
            dropbox_requests_per_second: self.dropbox_requests_per_second,
            webhooks_allow_internal: self.webhooks_allow_internal,
            links_per_second: self.links_per_second,
            ..ferry_engine::EngineConfig::default()
        }
    }

    /// The Dropbox hosts the console connects new connections to.
    pub fn console_endpoints(&self) -> anyhow::Result<ferry_dropbox::Endpoints> {
        match &self.dropbox_base_url {
            Some(url) => Ok(ferry_dropbox::Endpoints::single(url)?),
            None => Ok(ferry_dropbox::Endpoints::dropbox()),
        }
    }

    /// Whether browsers reach Ferry over https (the session cookie is then `Secure`).
    pub fn serves_https(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }

    /// The connect-through-Dropbox settings, for a server reached at `listen` (used when
    /// `public_url` is not set).
    pub fn oauth_settings(
        &self,
        listen: std::net::SocketAddr,
    ) -> Option<ferry_engine::connect_flow::OAuthSettings> {
        let key = self.dropbox_app_key.clone()?;
        let base = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if listen.ip().is_unspecified() => format!("http://127.0.0.1:{}", listen.port()),
            None => format!("http://{listen}"),
        };
        Some(ferry_engine::connect_flow::OAuthSettings {
            app: ferry_dropbox::OAuthApp {
                app_key: key,
                app_secret: self.dropbox_app_secret.clone(),
            },
            redirect_uri: format!("{base}/oauth/dropbox/callback"),
            // Checked when the config is read.
            access: ferry_engine::AppAccess::parse(&self.dropbox_app_access)
                .unwrap_or(ferry_engine::AppAccess::FullDropbox),
        })
    }

    /// Where backups go, if they are configured.
    pub fn backup_settings(&self) -> Option<ferry_engine::backup::BackupSettings> {
        self.backup_connection
            .as_ref()
            .map(|connection| ferry_engine::backup::BackupSettings {
                connection: connection.clone(),
                folder: self.backup_folder.clone(),
                keep: self.backup_keep,
                max_age: (self.backup_max_age_days > 0)
                    .then(|| std::time::Duration::from_secs(self.backup_max_age_days * 86_400)),
                every: (self.backup_every_secs > 0)
                    .then(|| std::time::Duration::from_secs(self.backup_every_secs)),
                cron: self.backup_cron.clone(),
            })
    }

    /// The S3 bucket for attachment content, if one is configured.
    pub fn s3_settings(&self) -> anyhow::Result<Option<ferry_store::S3Settings>> {
        let Some(bucket) = &self.s3_bucket else {
            return Ok(None);
        };
        let (Some(access_key_id), Some(secret_access_key)) =
            (&self.s3_access_key_id, &self.s3_secret_access_key)
        else {
            bail!("s3_bucket needs s3_access_key_id and s3_secret_access_key");
        };
        Ok(Some(ferry_store::S3Settings {
            bucket: bucket.clone(),
            prefix: self.s3_prefix.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: access_key_id.clone(),
            secret_access_key: secret_access_key.clone(),
        }))
    }

    /// The limits of the API's HTTP server.
    pub fn server_limits(&self) -> crate::http_server::ServerLimits {
        crate::http_server::ServerLimits {
            max_connections: self.max_connections,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            body_idle_timeout: std::time::Duration::from_secs(self.body_idle_timeout_secs),
            drain: std::time::Duration::from_secs(self.drain_secs),
        }
    }

    /// Defaults, overlaid with the TOML file at `path` if given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        Config::load_layered(path, std::iter::empty(), &[])
    }

    /// Defaults, then the TOML file at `path`, then `FERRY_<KEY>` variables from `env`, then
    /// `flags` (key, value as text); validated. Unknown keys in the file are an error; other
    /// `FERRY_` variables (`FERRY_CONFIG`, ...) are not configuration keys and are ignored.
    pub fn load_layered(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: &[(&str, String)],
    ) -> anyhow::Result<Config> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        // `[backup] connection = …` is `backup_connection = …`; `[s3]` likewise.
        for name in ["backup", "s3"] {
            if let Some(section) = table.remove(name) {
                let toml::Value::Table(section) = section else {
                    bail!("[{name}] must be a table");
                };
                for (key, value) in section {
                    table.insert(format!("{name}_{key}"), value);
                }
            }
        }
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        for (key, kind) in KEYS {
            let var = format!("FERRY_{}", key.to_ascii_uppercase());
            if let Some(text) = env.get(&var) {
                table.insert((*key).to_owned(), typed(key, *kind, text, &var)?);
            }
        }
        for (key, text) in flags {
            let kind = KEYS
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, kind)| *kind)
                .with_context(|| format!("no configuration key {key:?}"))?;
            table.insert(
                (*key).to_owned(),
                typed(key, kind, text, &format!("--{}", key.replace('_', "-")))?,
            );
        }
        let config: Config =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    anyhow::anyhow!(
                        "invalid configuration{}: {}",
                        path.map(|p| format!(" (file {})", p.display()))
                            .unwrap_or_default(),
                        e.message()
                    )
                })?;
        config.validate()?;
        Ok(config)
    }

    /// The effective configuration as TOML, secrets redacted (`ferry config check`).
    pub fn to_redacted_toml(&self) -> String {
        let mut text = toml::to_string(self).unwrap_or_else(|e| format!("# cannot print: {e}\n"));
        for (key, _) in KEYS {
            if !text.lines().any(|l| l.starts_with(&format!("{key} ="))) {
                let default = if SECRET_KEYS.contains(key) {
                    "generated into the data dir"
                } else {
                    "the default"
                };
                text.push_str(&format!("# {key}: not set ({default})\n"));
            }
        }
        text
    }

    /// Checks value ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(key) = &self.api_key
            && key.expose().trim().is_empty()
        {
            bail!("api_key must not be empty (leave it out to have one generated)");
        }
        if let Some(url) = &self.database_url
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            bail!(
                "database_url must be an SQLite URL (sqlite://path/to/ferry.db) or a PostgreSQL one \
                 (postgres://user:password@host:5432/database), not {:?}",
                ferry_store::redact_database_url(url)
            );
        }
        if !(1..=64).contains(&self.workers) {
            bail!("workers must be between 1 and 64, not {}", self.workers);
        }
        if !(1..=64).contains(&self.passes_per_worker) {
            bail!(
                "passes_per_worker must be between 1 and 64, not {}",
                self.passes_per_worker
            );
        }
        if !(1..=1000).contains(&self.bulk_passes_per_worker) {
            bail!(
                "bulk_passes_per_worker must be between 1 and 1000, not {}",
                self.bulk_passes_per_worker
            );
        }
        if !(1..=150).contains(&self.chunk_size_mib) {
            bail!(
                "chunk_size_mib must be between 1 and 150 (Dropbox's per-request limit), not {}",
                self.chunk_size_mib
            );
        }
        for (name, share) in [
            ("brake_share", self.brake_share),
            ("connection_brake_share", self.connection_brake_share),
        ] {
            if !(share > 0.0 && share <= 1.0) {
                bail!("{name} must be above 0 and at most 1, not {share}");
            }
        }
        if !(1..=3600).contains(&self.max_backoff_secs) {
            bail!(
                "max_backoff_secs must be between 1 and 3600, not {}",
                self.max_backoff_secs
            );
        }
        if self.give_up_after_secs > 365 * 24 * 3600 || self.brake_window_secs > 7 * 24 * 3600 {
            bail!("give_up_after_secs is at most a year and brake_window_secs at most a week");
        }
        if !(1..=65_536).contains(&self.max_connections) {
            bail!(
                "max_connections must be between 1 and 65536, not {}",
                self.max_connections
            );
        }
        for (name, secs) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("body_idle_timeout_secs", self.body_idle_timeout_secs),
        ] {
            if !(1..=3600).contains(&secs) {
                bail!("{name} must be between 1 and 3600, not {secs}");
            }
        }
        if !(30..=480).contains(&self.longpoll_secs) {
            bail!(
                "longpoll_secs must be between 30 and 480 (Dropbox's range), not {}",
                self.longpoll_secs
            );
        }
        if let Some(url) = &self.public_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| anyhow::anyhow!("public_url {url:?} is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.query().is_some() {
                bail!("public_url must be an http(s) base URL without a query, not {url:?}");
            }
        }
        if let Some(url) = &self.dropbox_base_url {
            ferry_dropbox::Endpoints::single(url)
                .map_err(|e| anyhow::anyhow!("dropbox_base_url: {e}"))?;
            if !self.custom_dropbox_hosts {
                bail!("dropbox_base_url needs custom_dropbox_hosts = true");
            }
        }
        if self.admin_password.as_ref().is_some_and(|p| {
            p.expose().chars().count() < ferry_engine::console_auth::MIN_PASSWORD_CHARS
        }) {
            bail!(
                "admin_password must have at least {} characters",
                ferry_engine::console_auth::MIN_PASSWORD_CHARS
            );
        }
        if self.dropbox_app_secret.is_some() && self.dropbox_app_key.is_none() {
            bail!("dropbox_app_secret needs dropbox_app_key");
        }
        if let Err(e) = ferry_engine::AppAccess::parse(&self.dropbox_app_access) {
            bail!("dropbox_{e}");
        }
        self.s3_settings()?;
        if self.s3_bucket.is_none()
            && (self.s3_access_key_id.is_some() || self.s3_secret_access_key.is_some())
        {
            bail!("s3_access_key_id and s3_secret_access_key need s3_bucket");
        }
        if let Some(endpoint) = &self.s3_endpoint {
            let url = reqwest::Url::parse(endpoint)
                .with_context(|| format!("s3_endpoint {endpoint:?} is not a URL"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                bail!("s3_endpoint must be http(s)://host[:port], not {endpoint:?}");
            }
        }
        if !(1..=100).contains(&self.links_per_second) {
            bail!(
                "links_per_second must be between 1 and 100, not {}",
                self.links_per_second
            );
        }
        if !(16..=65536).contains(&self.transfer_memory_mib) {
            bail!(
                "transfer_memory_mib must be between 16 and 65536, not {}",
                self.transfer_memory_mib
            );
        }
        if !(1..=32).contains(&self.chunks_in_flight) {
            bail!(
                "chunks_in_flight must be between 1 and 32, not {}",
                self.chunks_in_flight
            );
        }
        if !(1..=64).contains(&self.upload_concurrency) {
            bail!(
                "upload_concurrency must be between 1 and 64, not {}",
                self.upload_concurrency
            );
        }
        if self.dropbox_requests_per_second > 10_000 {
            bail!(
                "dropbox_requests_per_second must be at most 10000 (0: unpaced), not {}",
                self.dropbox_requests_per_second
            );
        }
        if !(1..=10).contains(&self.client_attempts) {
            bail!(
                "client_attempts must be between 1 and 10, not {}",
                self.client_attempts
            );
        }
        if !(60..=7 * 24 * 3600).contains(&self.reconcile_every_secs) {
            bail!(
                "reconcile_every_secs must be between 60 and a week, not {}",
                self.reconcile_every_secs
            );
        }
        if self.heartbeat_secs == 0
            || self.lease_secs < 3 * self.heartbeat_secs
            || self.lease_secs > 3600
        {
            bail!(
                "heartbeat_secs must be at least 1 and lease_secs at least three heartbeats and at most 3600 (now {} and {})",
                self.heartbeat_secs,
                self.lease_secs
            );
        }
        if !(1..=1000).contains(&self.backup_keep) {
            bail!(
                "backup_keep must be between 1 and 1000, not {}",
                self.backup_keep
            );
        }
        if let Some(expr) = &self.backup_cron {
            if self.backup_every_secs != 0 {
                bail!("give backup_every_secs or backup_cron, not both");
            }
            ferry_engine::backup::parse_cron(expr)
                .map_err(|e| anyhow::anyhow!("backup_cron: {e}"))?;
        }
        if self.backup_max_age_days > 36_500 {
            bail!(
                "backup_max_age_days must be at most 36500, not {}",
                self.backup_max_age_days
            );
        }
        if self.backup_every_secs != 0 && self.backup_every_secs < 60 {
            bail!(
                "backup_every_secs must be 0 (no schedule) or at least 60, not {}",
                self.backup_every_secs
            );
        }
        if self.backup_folder.split('/').any(|p| p == "." || p == "..") {
            bail!("backup_folder must be a plain path below the connection's root");
        }
        if self.drain_secs > 600 {
            bail!("drain_secs must be at most 600, not {}", self.drain_secs);
        }
        if !(1..=4096).contains(&self.max_attachment_mib) {
            bail!(
                "max_attachment_mib must be between 1 and 4096, not {}",
                self.max_attachment_mib
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nworkers = 2\napi_key = \"k\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.workers, 2);
        assert_eq!(format!("{:?}", c.api_key), "Some(Secret(***))");
        std::fs::write(&path, "listne = 1\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "workers = 0\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        std::fs::write(&path, "api_key = \" \"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err(), "an empty API key");
        for url in ["garbage", "mysql://ferry:hunter2@localhost/ferry"] {
            std::fs::write(&path, format!("database_url = {url:?}\n")).unwrap();
            let e = Config::load(Some(&path)).unwrap_err().to_string();
            assert!(
                e.contains("SQLite") && e.contains("PostgreSQL"),
                "{url}: {e}"
            );
            assert!(!e.contains("hunter2"), "no password in the error: {e}");
        }
        std::fs::write(
            &path,
            "database_url = \"postgres://ferry:hunter2@db:5432/ferry\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        let printed = c.to_redacted_toml();
        assert!(
            printed.contains("postgres://ferry:***@db:5432/ferry") && !printed.contains("hunter2"),
            "{printed}"
        );
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
    }

    /// Each layer overrides the one before: file, then `FERRY_<KEY>`, then flags; every key
    /// is settable from the environment, typed by its kind; secrets never print.
    #[test]
    fn layers_override_in_order_and_every_key_is_settable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, "workers = 2\nbrake_min = 5\n").unwrap();
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let c = Config::load_layered(
            Some(&path),
            env(&[
                ("FERRY_WORKERS", "3"),
                ("FERRY_API_KEY", "007"),
                ("FERRY_CONFIG", "x"),
                ("FERRY_BLESS", "1"),
            ]),
            &[("workers", "4".into())],
        )
        .unwrap();
        assert_eq!((c.workers, c.brake_min), (4, 5));
        assert_eq!(
            c.api_key.as_ref().map(|k| k.expose()),
            Some("007"),
            "text stays text"
        );
        let printed = c.to_redacted_toml();
        assert!(
            printed.contains("api_key = \"<redacted>\"") && !printed.contains("007"),
            "{printed}"
        );
        // A sample value of each kind for every key: all accepted from the environment.
        let sample = |key: &str, kind: Kind| match (key, kind) {
            ("listen", _) => "127.0.0.1:1".to_owned(),
            ("database_url", _) => "sqlite://x.db".to_owned(),
            ("secret_key", _) => "00".repeat(32),
            ("longpoll_secs", _) => "60".to_owned(),
            ("lease_secs", _) => "30".to_owned(),
            ("reconcile_every_secs", _) => "600".to_owned(),
            ("backup_every_secs", _) => "0".to_owned(),
            ("backup_cron", _) => "0 2 * * *".to_owned(),
            ("public_url", _) => "https://ferry.example.com".to_owned(),
            ("dropbox_base_url", _) => "http://127.0.0.1:1".to_owned(),
            ("admin_password", _) => "a long enough password".to_owned(),
            ("links_per_second", _) => "10".to_owned(),
            ("transfer_memory_mib", _) => "64".to_owned(),
            ("dropbox_app_access", _) => "app_folder".to_owned(),
            ("s3_endpoint", _) => "http://127.0.0.1:9000".to_owned(),
            (_, Kind::Text) => "text".to_owned(),
            (_, Kind::Integer) => "2".to_owned(),
            (_, Kind::Decimal) => "0.25".to_owned(),
            (_, Kind::Switch) => "true".to_owned(),
        };
        let all: Vec<(String, String)> = KEYS
            .iter()
            .map(|(k, kind)| {
                (
                    format!("FERRY_{}", k.to_ascii_uppercase()),
                    sample(k, *kind),
                )
            })
            .collect();
        let c = Config::load_layered(None, all, &[]).unwrap();
        let printed = c.to_redacted_toml();
        for (key, _) in KEYS {
            assert!(
                printed.lines().any(|l| l.starts_with(&format!("{key} ="))),
                "{key} not set: {printed}"
            );
        }
        let e = Config::load_layered(None, env(&[("FERRY_BRAKE_SHARE", "half")]), &[]).unwrap_err();
        assert!(e.to_string().contains("FERRY_BRAKE_SHARE"), "{e}");
        let e = Config::load_layered(None, env(&[("FERRY_DROPBOX_APP_ACCESS", "all")]), &[])
            .unwrap_err();
        assert!(
            e.to_string().contains("dropbox_app_access must be"),
            "{e:#}"
        );
    }

    /// An `[s3]` table is the `s3_*` keys; the bucket needs its credentials, and the secret
    /// is never printed.
    #[test]
    fn the_s3_section_is_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "[s3]\nbucket = \"b\"\nprefix = \"ferry/\"\nendpoint = \"https://s3.example.com\"\naccess_key_id = \"AK\"\nsecret_access_key = \"very-secret\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        let s3 = c.s3_settings().unwrap().unwrap();
        assert_eq!(
            (
                s3.bucket.as_str(),
                s3.prefix.as_str(),
                s3.endpoint.as_deref()
            ),
            ("b", "ferry/", Some("https://s3.example.com"))
        );
        assert_eq!(s3.secret_access_key.expose(), "very-secret");
        assert!(!c.to_redacted_toml().contains("very-secret"));
        assert!(Config::default().s3_settings().unwrap().is_none());
        for bad in [
            "[s3]\nbucket = \"b\"\n",
            "[s3]\naccess_key_id = \"AK\"\nsecret_access_key = \"x\"\n",
            "[s3]\nbucket = \"b\"\naccess_key_id = \"AK\"\nsecret_access_key = \"x\"\nendpoint = \"s3.example.com\"\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert!(Config::load(Some(&path)).is_err(), "{bad}");
        }
    }

    /// A `[backup]` table is the `backup_*` keys.
    #[test]
    fn the_backup_section_is_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "[backup]\nconnection = \"dropbox\"\nevery_secs = 3600\nkeep = 3\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        let settings = c.backup_settings().unwrap();
        assert_eq!(settings.connection, "dropbox");
        assert_eq!(settings.keep, 3);
        assert_eq!(settings.every, Some(std::time::Duration::from_secs(3600)));
        std::fs::write(&path, "[backup]\nconection = \"x\"\n").unwrap();
        assert!(
            Config::load(Some(&path)).is_err(),
            "a misspelt key in [backup]"
        );
        std::fs::write(
            &path,
            "[backup]\nconnection = \"d\"\ncron = \"0 2 * * *\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(
            c.backup_settings().unwrap().cron.as_deref(),
            Some("0 2 * * *")
        );
        for bad in [
            "cron = \"daily\"",
            "cron = \"0 2 * * *\"\nevery_secs = 3600",
        ] {
            std::fs::write(&path, format!("[backup]\nconnection = \"d\"\n{bad}\n")).unwrap();
            assert!(Config::load(Some(&path)).is_err(), "{bad}");
        }
        assert!(Config::default().backup_settings().is_none());
    }

    /// docs/configuration.md lists exactly the keys the loader knows.
    #[test]
    fn the_docs_list_every_key() {
        let docs = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/configuration.md"
        ))
        .unwrap();
        let documented: std::collections::BTreeSet<&str> = docs
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        let known: std::collections::BTreeSet<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(documented, known);
        // And every field of Config is a key (a field missing from KEYS could not be set
        // from the environment).
        let fields: toml::Table =
            toml::from_str(&toml::to_string(&Config::default()).unwrap()).unwrap();
        for field in fields.keys() {
            assert!(known.contains(field.as_str()), "{field} is not in KEYS");
        }
    }
}
