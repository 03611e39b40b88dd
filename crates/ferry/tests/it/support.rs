//! Shared fixtures: an emulator, a Ferry app and clients for both, all torn down on drop.

#![allow(dead_code)]

use ferry::api_client::ApiClient;
use ferry::app::RunningApp;
use ferry::config::Config;
use ferry_core::secret::Secret;
use ferry_dropbox::{DropboxClient, Endpoints};
use ferry_emulator::{EmulatorConfig, RunningEmulator};
use std::net::SocketAddr;
use tempfile::TempDir;

/// An emulator in its own temp dir.
pub struct Emu {
    pub dir: TempDir,
    pub emulator: RunningEmulator,
}

impl Emu {
    pub async fn start() -> Emu {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut EmulatorConfig)) -> Emu {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = EmulatorConfig::new(dir.path().join("emulator"));
        tweak(&mut config);
        let emulator = RunningEmulator::start(config)
            .await
            .expect("emulator starts");
        Emu { dir, emulator }
    }

    /// A Dropbox client pointed at the emulator.
    pub fn client(&self) -> DropboxClient {
        client_for(&self.emulator)
    }
}

/// A Dropbox client for a running emulator.
pub fn client_for(emulator: &RunningEmulator) -> DropboxClient {
    DropboxClient::new(
        Endpoints::single(&emulator.base_url()).expect("emulator URL"),
        &Secret::new(emulator.token()),
    )
    .expect("client")
}

/// An emulator plus a Ferry app connected to it as connection `dropbox`, root `/Ferry`.
pub struct Stack {
    pub emu: Emu,
    pub app: RunningApp,
    pub api: ApiClient,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Stack {
        Self::start_on(Emu::start().await, tweak).await
    }

    pub async fn start_on(emu: Emu, tweak: impl FnOnce(&mut Config)) -> Stack {
        // Ferry's warnings and errors go to the test's output, shown when it fails
        // (`FERRY_TEST_LOG`, e.g. `ferry_engine=debug`, shows more).
        let filter = std::env::var("FERRY_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let mut config = Config {
            data_dir: emu.dir.path().join("ferry"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: 2,
            custom_dropbox_hosts: true,
            ..Config::default()
        };
        tweak(&mut config);
        let app = RunningApp::start(&config).await.expect("ferry starts");
        let api = ApiClient::new(app.base_url(), app.api_key().clone());
        api.put_json(
            "/v1/connections/dropbox",
            &serde_json::json!({
                "token": emu.emulator.token(),
                "root": "/Ferry",
                "base_url": emu.emulator.base_url(),
            }),
        )
        .await
        .expect("connection accepted");
        Stack { emu, app, api }
    }

    /// Puts a push rule `name` placing records of `kind` in `folder` (a template).
    pub async fn push_rule(&self, name: &str, kind: &str, folder: &str) {
        self.api
            .put_json(
                &format!("/v1/rules/{name}"),
                &serde_json::json!({"record_kind": kind, "connection": "dropbox", "folder": folder}),
            )
            .await
            .expect("rule accepted");
    }

    /// Upserts a record and gives it attachments `files` (content: `key/name`).
    pub async fn record_with(&self, kind: &str, key: &str, files: &[&str]) {
        self.api
            .put_json(&format!("/v1/records/{kind}/{key}"), &serde_json::json!({}))
            .await
            .expect("record accepted");
        for name in files {
            self.api
                .put_bytes(
                    &format!("/v1/records/{kind}/{key}/attachments/{name}"),
                    format!("{key}/{name}").into_bytes(),
                )
                .await
                .expect("attachment accepted");
        }
    }

    /// Polls the API at `path` until `check` holds for its answer (fails the test after 10 s).
    pub async fn eventually(
        &self,
        path: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let value = self.api.get(path).await.expect("api answers");
            if check(&value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {path}: {value}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Waits until the queue is empty (fails the test after 30 s). A retry waiting for its
    /// time is waited out: a pass planned from a remote mirror that had not seen a Dropbox
    /// change yet fails on its precondition and is retried (or queued again by the feed).
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let stats = self
                .app
                .engine()
                .wait_idle(left)
                .await
                .expect("queue readable");
            if stats.queued == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sync queue did not drain: {stats:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// A Python virtualenv holding `package==version`, under `$CARGO_TARGET_DIR` (or the temp
/// dir), created and filled from PyPI on first use; returns the venv's directory. Fails
/// loudly (never skips) when impossible.
pub fn python_with(package: &str, version: &str) -> std::path::PathBuf {
    python_with_extra(package, None, version)
}

/// [`python_with`] for `package[extra]==version` (a package's optional parts, such as
/// `moto[server]`).
pub fn python_with_extra(package: &str, extra: Option<&str>, version: &str) -> std::path::PathBuf {
    use std::process::Command;
    // Tests running at once wait for the one that makes the venv, then find it ready.
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _making = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let spec = match extra {
        Some(extra) => format!("{package}[{extra}]"),
        None => package.to_owned(),
    };
    let venv = base.join(format!(
        "ferry-pyenv-{package}{}-{version}",
        extra.map(|e| format!("-{e}")).unwrap_or_default()
    ));
    let python = venv.join("bin").join("python");
    let ready = || {
        Command::new(&python)
            .args([
                "-c",
                &format!(
                    "import importlib.metadata as m, sys; sys.exit(m.version('{package}') != '{version}')"
                ),
            ])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready() {
        return venv;
    }
    let run = |what: &str, command: &mut Command| {
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
        assert!(
            output.status.success(),
            "{what} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let system_python = std::env::var("FERRY_PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        &format!("creating a Python venv for {package}"),
        Command::new(&system_python).args(["-m", "venv"]).arg(&venv),
    );
    run(
        &format!("pip install {spec}=={version} (needs PyPI access)"),
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("{spec}=={version}"),
        ]),
    );
    assert!(
        ready(),
        "{package} {version} is still not installed in {}",
        venv.display()
    );
    venv
}

/// Connects `engine` to `emulator` with its token, as connection `dropbox` under `/Ferry`;
/// stores a rule `rule` placing `kind` records in `/Ferry/{key}`, and record `kind`/`key`.
pub async fn connect_with_record(
    engine: &std::sync::Arc<ferry_engine::Engine>,
    emulator: &RunningEmulator,
    (rule, kind, key): (&str, &str, &str),
) -> ferry_core::model::Record {
    engine
        .put_connection(ferry_engine::ConnectionInput {
            name: "dropbox".into(),
            credentials: ferry_engine::Credentials::Token(Secret::new(emulator.token())),
            root: "/Ferry".into(),
            endpoints: Endpoints::single(&emulator.base_url()).unwrap(),
            select_user: None,
            path_root: Default::default(),
            app_access: None,
        })
        .await
        .unwrap();
    let store = engine.store();
    store
        .put_rule(&ferry_core::rules::RuleSpec {
            name: rule.into(),
            record_kind: kind.into(),
            connection: "dropbox".into(),
            folder: "{{ record.key }}".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .upsert_record(&ferry_store::RecordInput {
            kind: kind.into(),
            key: key.into(),
            fields: serde_json::json!({}),
            parent_id: None,
        })
        .await
        .unwrap()
        .value
}
