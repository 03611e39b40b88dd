//! `kill -9` of the real `ferry serve` binary during a sync of many small files and a few
//! large ones, then a restart on the same data dir, several times: the records the dead
//! process had claimed are picked up again within 5 s of each restart (no lease to wait
//! out), large uploads continue their sessions, and in the end every file is in Dropbox
//! exactly once with the right content hash; at the end SIGTERM stops it cleanly. `FERRY_KILL_TEST_KILLS` sets the number of
//! kills (default 3) and `FERRY_KILL_TEST_RECORDS` the number of small-file records (default
//! 40); the emulator adds 40 ms to every request, as a WAN would, so kills land mid-sync.

use crate::support::Emu;
use ferry_core::content_hash::content_hash;
use ferry_dropbox::Entry;
use ferry_emulator::FaultModel;
use ferry_store::SqliteStore;
use ferry_store::prelude::*;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SMALL_PER_RECORD: usize = 3;
const LARGE: usize = 3;
const LARGE_BYTES: usize = 12 * 1024 * 1024 + 12_345;

/// A `ferry serve` child process, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
}

impl Server {
    pub(crate) fn start(config: &Path, log: &Path) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("ferry serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        BufReader::new(stdout)
            .read_line(&mut first)
            .expect("ferry serve prints its address");
        let base = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address in {first:?}"))
            .to_owned();
        Server { child, base }
    }

    /// SIGKILL: no shutdown, no cleanup, like `kill -9`.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Api {
    pub(crate) http: reqwest::Client,
    pub(crate) base: String,
}

impl Api {
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth("kill-test-key");
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {value}");
        value
    }

    pub(crate) async fn put_json(&self, path: &str, body: Value) -> Value {
        self.http_json(reqwest::Method::PUT, path, body).await
    }

    async fn http_json(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth("kill-test-key")
            .json(&body)
            .send()
            .await
            .expect("api answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }
}

/// What the test put into Ferry: the files expected in Dropbox (path → content hash) and
/// their bytes, drawn from one seeded generator.
struct Load {
    rng: rand::rngs::StdRng,
    expected: BTreeMap<String, String>,
    minimum_bytes: u64,
}

impl Load {
    /// Creates records `keys` with their files: small ones, or one large file each below
    /// `LARGE`.
    async fn add(&mut self, client: &Api, keys: std::ops::Range<usize>) {
        let Load {
            rng,
            expected,
            minimum_bytes,
        } = self;
        for n in keys {
            let key = format!("R{n:03}");
            client
                .put_json(&format!("/v1/records/job/{key}"), json!({"fields": {}}))
                .await;
            let files: Vec<(String, Vec<u8>)> = if n >= LARGE {
                (0..SMALL_PER_RECORD)
                    .map(|f| {
                        let len = rng.gen_range(10..20_000);
                        (format!("f{f}.bin"), (0..len).map(|_| rng.r#gen()).collect())
                    })
                    .collect()
            } else {
                vec![(
                    "large.bin".to_owned(),
                    (0..LARGE_BYTES).map(|_| rng.r#gen()).collect(),
                )]
            };
            for (name, content) in files {
                *minimum_bytes += content.len() as u64;
                expected.insert(
                    format!("/ferry/jobs/{}/{name}", key.to_lowercase()),
                    content_hash(&content),
                );
                client
                    .send(
                        reqwest::Method::PUT,
                        &format!("/v1/records/job/{key}/attachments/{name}"),
                        Some(content),
                    )
                    .await;
            }
        }
    }
}

/// Records whose queue entry names a claiming process (read while no server runs).
async fn claimed_records(db: &Path, records: usize) -> BTreeMap<String, String> {
    let store = SqliteStore::open(db).await.expect("database opens");
    let mut claimed = BTreeMap::new();
    for n in 0..records + LARGE {
        let key = format!("R{n:03}");
        let Some(record) = store.record("job", &key).await.unwrap() else {
            continue;
        };
        if let Some(owner) = store
            .queue_entry(record.id)
            .await
            .unwrap()
            .and_then(|e| e.claimed_by)
        {
            claimed.insert(key, owner);
        }
    }
    claimed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_during_a_sync_then_restart_loses_nothing_and_resumes_at_once() {
    let kills: usize = std::env::var("FERRY_KILL_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let records: usize = std::env::var("FERRY_KILL_TEST_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let emu = Emu::start_with(|c| {
        c.model = FaultModel {
            latency_ms: 40,
            ..FaultModel::off()
        }
    })
    .await;
    let dir: PathBuf = emu.dir.path().join("ferry");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ferry.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\napi_key = \"kill-test-key\"\nworkers = 2\nchunk_size_mib = 1\ncustom_dropbox_hosts = true\n",
            dir.join("data")
        ),
    )
    .unwrap();
    let log = dir.join("serve.log");
    let mut server = Server::start(&config, &log);
    let api = |s: &Server| Api {
        http: reqwest::Client::new(),
        base: s.base.clone(),
    };
    let client = api(&server);
    client
        .put_json(
            "/v1/connections/dropbox",
            json!({"token": emu.emulator.token(), "root": "/Ferry", "base_url": emu.emulator.base_url()}),
        )
        .await;
    client
        .put_json(
            "/v1/rules/jobs",
            json!({"record_kind": "job", "connection": "dropbox", "folder": "Jobs/{{ record.key }}"}),
        )
        .await;

    let mut load = Load {
        rng: rand::rngs::StdRng::seed_from_u64(9),
        expected: BTreeMap::new(),
        minimum_bytes: 0,
    };
    load.add(&client, LARGE..records + LARGE).await;
    let db = dir.join("data").join("ferry.db");
    for round in 0..kills {
        if round + 1 == kills {
            // Kill in the middle of a large upload: the large records (R000..) come now,
            // so their uploads run in this round however fast the small ones went; the
            // kill comes once one of them is claimed and its session has begun.
            let client = api(&server);
            load.add(&client, 0..LARGE).await;
            let deadline = Instant::now() + Duration::from_secs(60);
            'wait: loop {
                for n in 0..LARGE {
                    let state = client.get(&format!("/v1/records/job/R{n:03}/sync")).await;
                    if state["queue"]["claimed_by"].is_string() {
                        break 'wait;
                    }
                }
                assert!(Instant::now() < deadline, "no large upload started");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        } else {
            // Let the sync get going, then kill it hard.
            tokio::time::sleep(Duration::from_millis(load.rng.gen_range(200..800))).await;
        }
        server.kill();
        let claimed = claimed_records(&db, records).await;
        let restarted = Instant::now();
        server = Server::start(&config, &log);
        let client = api(&server);
        // Every record the dead process held is taken up again (finished, or claimed by
        // the new process) within 5 s: its claim was released at start.
        let mut waiting = claimed.clone();
        while !waiting.is_empty() {
            let mut done = Vec::new();
            for (key, old_owner) in &waiting {
                let state = client.get(&format!("/v1/records/job/{key}/sync")).await;
                let owner = state["queue"]["claimed_by"].as_str();
                if !state["queued"].as_bool().unwrap_or(true) || owner != Some(old_owner) {
                    done.push(key.clone());
                }
            }
            for key in done {
                waiting.remove(&key);
            }
            assert!(
                restarted.elapsed() < Duration::from_secs(5) || waiting.is_empty(),
                "round {round}: records still held by the dead process {:.1}s after the restart: {waiting:?}",
                restarted.elapsed().as_secs_f64()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "round {round}: claimed {:?} resumed within {:.2}s",
            claimed.keys().collect::<Vec<_>>(),
            restarted.elapsed().as_secs_f64()
        );
    }

    // Let the last process finish.
    let client = api(&server);
    if kills == 0 {
        load.add(&client, 0..LARGE).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status = client.get("/v1/status").await;
        if status["queue"]["queued"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sync never finished: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = client.get("/v1/status").await;
    assert_eq!(status["files"]["failed"], 0, "{status}");
    assert_eq!(status["files"]["pending"], 0, "{status}");

    // Every file exactly once, with the right content; nothing else.
    let (entries, _) = emu
        .client()
        .list_all("/Ferry/Jobs", true)
        .await
        .expect("listing");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        if let Entry::File(f) = entry {
            assert!(
                seen.insert(
                    f.path_lower.clone(),
                    f.content_hash.clone().unwrap_or_default()
                )
                .is_none(),
                "{} listed twice",
                f.path_lower
            );
        }
    }
    assert_eq!(
        seen, load.expected,
        "Dropbox holds exactly the expected files"
    );
    // SIGTERM (what a service manager sends) stops the server cleanly, and soon.
    let pid = server.child.id().to_string();
    let stopped = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "ferry serve did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit after SIGTERM: {status}");
    // Everything the server wrote — database, WAL, keys, blobs — is its owner's only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![dir.join("data")];
        let mut checked = 0;
        while let Some(path) = stack.pop() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{} is mode {:o}",
                path.display(),
                mode & 0o777
            );
            checked += 1;
            if path.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
        }
        assert!(checked > 5, "only {checked} paths in the data dir");
    }
    // Small files may be staged in sessions closed at start; only chunked ones count here.
    let sessions = emu.emulator.open_sessions_started();
    let sent = emu.emulator.upload_bytes();
    eprintln!(
        "{kills} kill(s); upload sessions started: {sessions} for {LARGE} large files; bytes uploaded {sent} for a minimum of {} ({:.3}x)",
        load.minimum_bytes,
        sent as f64 / load.minimum_bytes as f64
    );
    assert!(
        sessions >= LARGE as u64,
        "each large file goes up in a session of its own: {sessions} sessions"
    );
    // A session is restarted only when a kill came before its first chunk was recorded.
    assert!(
        sessions <= (LARGE + 2 * kills) as u64,
        "large uploads were restarted rather than resumed: {sessions} sessions"
    );
}
