//! Three `ferry serve` processes on one PostgreSQL database and one blob directory, sharing
//! the work: `kill -9` of any of them, again and again during a sync, loses nothing and
//! duplicates nothing; the queue is worked by more than one process; the connection's change
//! watcher runs in exactly one process and moves to another within seconds when its holder
//! dies for good. `FERRY_MULTI_TEST_KILLS` sets the kills (default 5).

use crate::kill_restart::{Api, Server};
use crate::support::Emu;
use bytes::Bytes;
use ferry_core::content_hash::content_hash;
use ferry_dropbox::{Entry, WriteMode};
use ferry_emulator::FaultModel;
use ferry_store::prelude::*;
use ferry_store::{PgStore, pg_testing};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const PROCESSES: usize = 3;
const RECORDS: usize = 120;
const FILES_PER_RECORD: usize = 2;

fn api(server: &Server) -> Api {
    Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
    }
}

/// Who holds the watch duty of connection `dropbox` now, if anyone.
async fn watcher_of(store: &PgStore) -> Option<String> {
    let now = chrono::Utc::now().timestamp_millis();
    store
        .duties()
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.name == "watch:dropbox" && d.until_ms >= now)
        .map(|d| d.holder)
}

/// Samples which processes hold queue claims (the evidence that the work is shared).
async fn note_claimers(store: &PgStore, ids: &[i64], seen: &mut BTreeSet<String>) {
    for id in ids {
        if let Some(owner) = store
            .queue_entry(*id)
            .await
            .unwrap()
            .and_then(|e| e.claimed_by)
        {
            seen.insert(owner);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_postgres_share_the_work_and_survive_kill_nine() {
    let kills: usize = std::env::var("FERRY_MULTI_TEST_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let db = pg_testing::database().await;
    let emu = Emu::start_with(|c| {
        c.model = FaultModel {
            latency_ms: 50,
            ..FaultModel::off()
        }
    })
    .await;
    let dir = emu.dir.path().join("ferry");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ferry.toml");
    // One data dir on one machine, as a shared volume would be: the blobs are shared, and
    // the keys come from the config, so every process reads the same tokens.
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\napi_key = \"kill-test-key\"\n\
             secret_key = \"{}\"\ndatabase_url = {:?}\nworkers = 2\nchunk_size_mib = 1\n\
             lease_secs = 5\nheartbeat_secs = 1\ncustom_dropbox_hosts = true\n",
            dir.join("data"),
            "ab".repeat(32),
            db.url()
        ),
    )
    .unwrap();
    let log = |n: usize| dir.join(format!("serve-{n}.log"));
    let mut servers: Vec<Server> = (0..PROCESSES)
        .map(|n| Server::start(&config, &log(n)))
        .collect();
    let store = PgStore::open_url(db.url()).await.unwrap();

    let client = api(&servers[0]);
    client
        .put_json(
            "/v1/connections/dropbox",
            json!({"token": emu.emulator.token(), "root": "/Ferry", "base_url": emu.emulator.base_url()}),
        )
        .await;
    client
        .put_json(
            "/v1/rules/jobs",
            json!({"record_kind": "job", "connection": "dropbox",
                   "folder": "Jobs/{{ record.key }}", "direction": "both"}),
        )
        .await;
    // Records go in through every process's API (any of them serves the installation).
    let mut expected: BTreeMap<String, String> = BTreeMap::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut ids = Vec::new();
    for n in 0..RECORDS {
        let key = format!("R{n:03}");
        let client = api(&servers[n % PROCESSES]);
        client
            .put_json(&format!("/v1/records/job/{key}"), json!({"fields": {}}))
            .await;
        ids.push(store.record("job", &key).await.unwrap().expect("stored").id);
        for f in 0..FILES_PER_RECORD {
            let content: Vec<u8> = (0..rng.gen_range(10..30_000))
                .map(|_| rng.r#gen())
                .collect();
            let name = format!("f{f}.bin");
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

    // Kill any of them, hard, again and again while the sync runs; start it again.
    let mut claimers = BTreeSet::new();
    for round in 0..kills {
        let wait = Instant::now() + Duration::from_millis(rng.gen_range(100..400));
        while Instant::now() < wait {
            note_claimers(&store, &ids, &mut claimers).await;
        }
        let victim = rng.gen_range(0..PROCESSES);
        let queued = store.queue_stats().await.unwrap().queued;
        let dead = std::mem::replace(&mut servers[victim], Server::start(&config, &log(victim)));
        dead.kill();
        eprintln!(
            "round {round}: killed process {victim} with {queued} records queued, started it again"
        );
        if round == 0 {
            assert!(queued > 0, "the first kill must land mid-sync");
        }
    }
    let last_kill = Instant::now();

    // Every process keeps working until the queue is empty.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        note_claimers(&store, &ids, &mut claimers).await;
        let status = api(&servers[0]).get("/v1/status").await;
        if status["queue"]["queued"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sync never finished: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "queue empty {:.1}s after the last kill; claims seen from {} processes",
        last_kill.elapsed().as_secs_f64(),
        claimers.len()
    );
    let status = api(&servers[1]).get("/v1/status").await;
    assert_eq!(status["files"]["failed"], 0, "{status}");
    assert_eq!(status["files"]["pending"], 0, "{status}");
    assert!(
        claimers.len() >= 2,
        "the queue was worked by one process only: {claimers:?}"
    );

    // Every file exactly once, with the right content; nothing else (no conflicted copies).
    let (entries, _) = emu
        .client()
        .list_all("/Ferry/Jobs", true)
        .await
        .expect("listing");
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for entry in entries {
        if let Entry::File(f) = entry {
            let hash = f.content_hash.clone().unwrap_or_default();
            assert!(
                seen.insert(f.path_lower.clone(), hash).is_none(),
                "{} twice",
                f.path_lower
            );
        }
    }
    assert_eq!(seen, expected, "Dropbox holds exactly the expected files");

    // One process watches the connection; kill it for good and another takes over.
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = loop {
        if let Some(holder) = watcher_of(&store).await {
            break holder;
        }
        assert!(
            Instant::now() < deadline,
            "no process watches the connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pids: BTreeMap<String, i64> = store
        .processes()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.pid))
        .collect();
    let holder_pid = pids[&holder];
    let victim = servers
        .iter()
        .position(|s| i64::from(s.child.id()) == holder_pid)
        .expect("the watcher is one of ours");
    servers.remove(victim).kill();
    let killed = Instant::now();
    let successor = loop {
        if let Some(next) = watcher_of(&store).await.filter(|h| *h != holder) {
            break next;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "the watch duty did not move within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "watch duty moved from {holder} to {successor} {:.1}s after its holder died",
        killed.elapsed().as_secs_f64()
    );
    // The new watcher sees a file someone adds in Dropbox.
    emu.client()
        .upload(
            "/Ferry/Jobs/R007/from the site.txt",
            Bytes::from_static(b"added in Dropbox"),
            &WriteMode::Add,
        )
        .await
        .unwrap();
    let client = api(&servers[0]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = client.get("/v1/records/job/R007").await;
        let names: Vec<&str> = record["attachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["name"].as_str())
            .collect();
        if names.contains(&"from the site.txt") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file added in Dropbox never arrived: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One process on PostgreSQL end to end: a record syncs, the status names the process and
/// the duties it holds, and a backup is a `pg_dump` that `pg_restore` loads into an empty
/// database which then reads as Ferry's.
#[tokio::test]
async fn on_postgres_a_backup_is_a_dump_that_restores() {
    let db = pg_testing::database().await;
    let url = db.url().to_owned();
    let stack = crate::support::Stack::start_with(|c| {
        c.database_url = Some(url);
        c.backup_connection = Some("dropbox".into());
    })
    .await;
    stack
        .push_rule("tickets", "ticket", "Tickets/{{ record.key }}")
        .await;
    stack.record_with("ticket", "B-1", &["a.txt"]).await;
    stack.settle().await;
    let status = stack.api.get("/v1/status").await.unwrap();
    assert_eq!(status["files"]["synced"], 1, "{status}");
    let me = status["processes"][0]["id"]
        .as_str()
        .expect("a process")
        .to_owned();
    let duties = status["duties"].as_array().expect("duties");
    assert!(
        duties
            .iter()
            .any(|d| d["name"] == "watch:dropbox" && d["holder"] == me.as_str()),
        "{status}"
    );

    let (code, report) = stack
        .api
        .raw(reqwest::Method::POST, "/v1/backups", None)
        .await
        .unwrap();
    assert_eq!(code, 200, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    let path = report["backup"]["path"].as_str().unwrap();
    let (_, compressed) = stack.emu.client().download(path).await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dump = scratch.path().join("ferry.dump");
    ferry_engine::backup::decompress_backup(compressed, &dump)
        .await
        .unwrap();
    assert_eq!(
        &std::fs::read(&dump).unwrap()[..5],
        b"PGDMP",
        "a pg_dump archive"
    );

    let restored = pg_testing::database().await;
    let out = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--dbname", restored.url()])
        .arg(&dump)
        .output()
        .expect("pg_restore runs");
    assert!(
        out.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = PgStore::open_url(restored.url()).await.unwrap();
    let record = store
        .record("ticket", "B-1")
        .await
        .unwrap()
        .expect("restored");
    assert_eq!(store.attachments(record.id).await.unwrap()[0].name, "a.txt");
}
