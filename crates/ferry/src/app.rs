//! Wiring: store, blobs, engine workers and the REST API, started together and stopped together.

use crate::api;
use crate::config::Config;
use anyhow::Context;
use ferry_core::secret::Secret;
use ferry_engine::Engine;
use ferry_store::{BlobStore, PgStore, SecretCipher, SqliteStore, Store};
use rand::Rng;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running Ferry: engine workers plus the REST API.
pub struct RunningApp {
    addr: SocketAddr,
    api_key: Secret,
    engine: Arc<Engine>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// How long shutdown waits for requests and passes in flight.
    drain: std::time::Duration,
}

impl RunningApp {
    /// Opens the store in `config.data_dir`, starts the workers and serves the API.
    pub async fn start(config: &Config) -> anyhow::Result<RunningApp> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
        // The data dir holds the database, the blobs and the keys: its owner's only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| {
                    format!("cannot restrict data dir {}", config.data_dir.display())
                })?;
        }
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) if url.starts_with("postgres") => Arc::new(
                PgStore::open_url(url)
                    .await
                    .context("cannot open the PostgreSQL database")?,
            ),
            Some(url) => Arc::new(
                SqliteStore::open_url(url)
                    .await
                    .context("cannot open the database")?,
            ),
            None => Arc::new(
                SqliteStore::open(&config.data_dir.join("ferry.db"))
                    .await
                    .context("cannot open the database")?,
            ),
        };
        let blobs = match config.s3_settings()? {
            Some(s3) => BlobStore::s3(&s3).context("cannot set up the S3 blob store")?,
            None => BlobStore::local(&config.data_dir.join("blobs"))
                .context("cannot open the blob store")?,
        };
        let cipher = match &config.secret_key {
            Some(key) => SecretCipher::from_hex(key.expose())?,
            None => SecretCipher::load_or_create(&config.data_dir.join("secret.key"))?,
        };
        let api_key = match &config.api_key {
            Some(key) => key.clone(),
            None => load_or_create_api_key(&config.data_dir.join("api-key"))?,
        };
        // Bound first: with port 0 the connect flow's callback needs the real port.
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let engine_config = ferry_engine::EngineConfig {
            oauth: config.oauth_settings(addr),
            ..config.engine_config()
        };
        let engine = Engine::new(store, blobs, cipher, engine_config);
        // The first admin, from the configuration, only while there is none.
        if let Some(password) = &config.admin_password
            && engine.admin_count().await? == 0
        {
            engine.set_admin_password("admin", password).await?;
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        // Registers this process and releases the claims of a crashed predecessor first, so
        // its records resume at once rather than when their lease runs out.
        let mut tasks = engine.spawn_workers(shutdown_rx.clone()).await?;
        tasks.extend(engine.spawn_watchers(shutdown_rx.clone()).await?);
        let router = api::router(api::ApiState {
            engine: Arc::clone(&engine),
            api_key: api_key.clone(),
            max_attachment_bytes: config.max_attachment_mib * 1024 * 1024,
            backup: config.backup_settings(),
            scratch: config.data_dir.clone(),
            console_secure_cookies: config.serves_https(),
            console_endpoints: config.console_endpoints()?,
        });
        tasks.push(engine.spawn_webhooks(shutdown_rx.clone()));
        tasks.push(engine.spawn_links(shutdown_rx.clone()));
        tasks.push(engine.spawn_offload(shutdown_rx.clone()));
        if let Some(settings) = config.backup_settings() {
            tasks.extend(engine.spawn_backups(
                settings,
                config.data_dir.clone(),
                shutdown_rx.clone(),
            ));
        }
        tasks.push(tokio::spawn(crate::http_server::serve(
            listener,
            router,
            config.server_limits(),
            shutdown_rx,
        )));
        // Anything queued before a restart is picked up right away.
        engine.wake();
        tracing::info!(%addr, "Ferry API listening");
        Ok(RunningApp {
            addr,
            api_key,
            engine,
            shutdown,
            tasks,
            drain: std::time::Duration::from_secs(config.drain_secs),
        })
    }

    /// Address of the REST API.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL of the REST API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API key clients must send.
    pub fn api_key(&self) -> &Secret {
        &self.api_key
    }

    /// The engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Stops the API and the workers, waiting for requests and running passes to end — for
    /// at most the drain time (then with one more for the HTTP server's own drain). A pass
    /// cut short is like a crash, which loses nothing; its claims are released here so other
    /// processes take the records at once.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let mut tasks = self.tasks;
        let waited = tokio::time::timeout(
            self.drain + std::time::Duration::from_secs(1),
            futures::future::join_all(tasks.iter_mut()),
        )
        .await;
        if waited.is_err() {
            tracing::warn!(
                drain_secs = self.drain.as_secs(),
                "passes still running after the drain time; stopping them"
            );
            // Cancelled at their next await; none may still run once its claim is released.
            for task in &tasks {
                task.abort();
            }
            // A task join_all already saw finish must not be polled again.
            for task in tasks.into_iter().filter(|t| !t.is_finished()) {
                let _ = task.await;
            }
        }
        let id = self.engine.process_id().to_owned();
        if let Err(e) = self.engine.store().release_process(&id).await {
            tracing::warn!(error = %e, "could not release this process's queue claims");
        }
    }
}

fn load_or_create_api_key(path: &Path) -> anyhow::Result<Secret> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let key = text.trim();
        anyhow::ensure!(!key.is_empty(), "API key file {} is empty", path.display());
        return Ok(Secret::new(key));
    }
    let key: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    ferry_store::write_private_file(path, key.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(Secret::new(key))
}
