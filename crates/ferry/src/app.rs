//! Wiring: store, blobs, engine workers and the REST API, started together and stopped together.

use crate::api;
use crate::config::Config;
use anyhow::Context;
use ferry_core::secret::Secret;
use ferry_engine::Engine;
use ferry_store::{BlobStore, SecretCipher, SqliteStore, Store};
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
        let blobs = BlobStore::local(&config.data_dir.join("blobs"))
            .context("cannot open the blob store")?;
        let cipher = match &config.secret_key {
            Some(key) => SecretCipher::from_hex(key.expose())?,
            None => SecretCipher::load_or_create(&config.data_dir.join("secret.key"))?,
        };
        let api_key = match &config.api_key {
            Some(key) => key.clone(),
            None => load_or_create_api_key(&config.data_dir.join("api-key"))?,
        };
        let engine = Engine::new(store, blobs, cipher, config.engine_config());
        let (shutdown, shutdown_rx) = watch::channel(false);
        // Registers this process and releases the claims of a crashed predecessor first, so
        // its records resume at once rather than when their lease runs out.
        let mut tasks = engine.spawn_workers(shutdown_rx.clone()).await?;
        tasks.extend(engine.spawn_watchers(shutdown_rx.clone()).await?);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let router = api::router(api::ApiState {
            engine: Arc::clone(&engine),
            api_key: api_key.clone(),
            max_attachment_bytes: config.max_attachment_mib * 1024 * 1024,
        });
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

    /// Stops the API and the workers, waiting for running passes to end.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
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
