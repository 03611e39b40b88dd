//! Scenario 4: scale. 100,000 records × 10 files, all synced, generated directly into the
//! store (`SqliteStore::bulk_load_synced`) and the emulator (`write_bulk_journal`), then a
//! full reconciliation that finds no change. Each measured part runs in a child process
//! (`ferry bench --scale-child MODE`), so its peak RSS (`VmHWM`) is its own and not the
//! emulator's:
//! - `engine`: the engine's full reconciliation (`Engine::reconcile_connection`, what the
//!   periodic safety net and a cursor reset run): one recursive listing of the connection
//!   root compared with the store's synced tree in one streaming query; records that differ
//!   are queued and the workers run their passes; done when the queue is empty;
//! - `idle`: the same process opening the store and the engine and doing nothing (the RSS
//!   baseline).
//!
//! The time baseline is a bare client listing the whole tree once.

use super::{Ctx, Figure, Goal, Noise, Progress, client_for, heading, peak_rss_bytes, show};
use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use ferry_core::content_hash::content_hash;
use ferry_core::names::dropbox_lower;
use ferry_emulator::{BulkFile as EmuFile, RunningEmulator, write_bulk_journal};
use ferry_engine::{Engine, EngineConfig};
use ferry_store::bulk::{BulkBinding, BulkFile, BulkRecord};
use ferry_store::prelude::*;
use ferry_store::{BlobStore, SecretCipher, SqliteStore, Store};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const FILES_PER_RECORD: usize = 10;
const FILE_SIZE: usize = 1024;
const ROOT: &str = "/Bench";

/// Arguments of a scale child process (`ferry bench --scale-child MODE ...`).
#[derive(Debug, Clone)]
pub struct ScaleChildArgs {
    /// `idle`, `engine` or `listing`.
    pub mode: String,
    /// The scenario's directory (store, blobs, key).
    pub dir: PathBuf,
    /// Longest the reconciliation may run.
    pub timeout: Duration,
}

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let records =
        ctx.options
            .scale_records
            .unwrap_or(if ctx.options.quick { 200 } else { 100_000 });
    let files = records * FILES_PER_RECORD;
    heading(&format!(
        "4. Scale: {records} records × {FILES_PER_RECORD} files = {files} synced entries, then a full reconciliation that finds no change"
    ));
    let dir = tempfile::Builder::new()
        .prefix("ferry-bench-scale-")
        .tempdir_in(&ctx.options.work_dir)
        .with_context(|| format!("temp dir in {}", ctx.options.work_dir.display()))?;
    let emulator = generate(ctx, dir.path(), records).await?;

    // Baseline: a bare client reads the whole tree once.
    let client = client_for(&emulator)?;
    let mut progress = Progress::new(
        "baseline: one client lists the whole tree",
        (files + records) as u64,
    );
    let started = Instant::now();
    let mut page = client.list_folder(ROOT, true).await?;
    let mut seen = page.entries.len() as u64;
    while page.has_more {
        page = client.list_folder_continue(&page.cursor).await?;
        seen += page.entries.len() as u64;
        progress.set(seen);
    }
    let list_secs = started.elapsed().as_secs_f64();
    progress.finish();

    let timeout = ctx.options.scale_timeout;
    let idle = child(dir.path(), "idle", timeout, 1).await?;
    let engine = child(dir.path(), "engine", timeout, 1).await?;
    emulator.shutdown().await;

    let mib = |v: &Value| v["peak_rss_bytes"].as_f64().unwrap_or(0.0) / (1024.0 * 1024.0);
    let secs = |v: &Value| v["seconds"].as_f64().unwrap_or(0.0);
    let idle_rss = mib(&idle);
    let finished = engine["finished"].as_bool().unwrap_or(false);
    let engine_name = if finished {
        "scale.reconcile_engine.seconds".to_owned()
    } else {
        let done = engine["reconciled"].as_f64().unwrap_or(0.0);
        println!(
            "  (the engine's reconciliation did not finish within {} s: {done} of {records} records; the figure is projected linearly)",
            timeout.as_secs()
        );
        "scale.reconcile_engine.seconds_projected".to_owned()
    };
    let engine_secs = if finished {
        secs(&engine)
    } else {
        let done = engine["reconciled"].as_f64().unwrap_or(0.0).max(1.0);
        secs(&engine) * records as f64 / done
    };
    println!(
        "  (engine: {} listing pages, {} files compared, {} untracked, {} written during the listing, {} records queued, {} passes retried, {} dead-lettered)",
        engine["pages"],
        engine["compared"],
        engine["untracked"],
        engine["newer"],
        engine["queued"],
        engine["retrying"],
        engine["dead"]
    );
    let list_baseline = Some(("scale.list_whole_tree_bare_client.seconds", list_secs));
    let rss_baseline = Some(("scale.idle_engine.peak_rss", idle_rss));
    let figures = vec![
        Figure::new(
            engine_name,
            engine_secs,
            "s",
            list_baseline,
            // 20 s for a million files (issue 12), in proportion for other sizes.
            Some(Goal::Below(20.0 * files as f64 / 1e6)),
        ),
        Figure::new(
            "scale.reconcile_engine.peak_rss",
            mib(&engine),
            "MiB",
            rss_baseline,
            Some(Goal::Below(256.0)),
        ),
        Figure::new(
            "scale.reconcile_engine.changes_found",
            engine["changes"].as_f64().unwrap_or(-1.0),
            "count",
            None,
            Some(Goal::AtMost(0.0)),
        ),
        Figure::new(
            "scale.reconcile_engine.files_compared",
            engine["compared"].as_f64().unwrap_or(-1.0),
            "count",
            None,
            Some(Goal::AtLeast(files as f64)),
        ),
        Figure::new(
            "scale.reconcile_engine.records_queued",
            engine["queued"].as_f64().unwrap_or(-1.0),
            "count",
            None,
            Some(Goal::AtMost(0.0)),
        ),
    ];
    show(&figures);
    Ok(figures)
}

fn key(i: usize) -> String {
    format!("R{i:06}")
}

/// Writes the emulator's journal and the store directly, starts the emulator and checks
/// that a pass over a few records has nothing to do.
async fn generate(ctx: &Ctx, dir: &Path, records: usize) -> anyhow::Result<RunningEmulator> {
    let started = Instant::now();
    let mut noise = Noise::new(4);
    let contents: Vec<Vec<u8>> = (0..FILES_PER_RECORD)
        .map(|_| noise.bytes(FILE_SIZE))
        .collect();
    let hashes: Vec<String> = contents.iter().map(|c| content_hash(c)).collect();
    let folder = |i: usize| format!("{ROOT}/Scale/{}", key(i));
    let name = |j: usize| format!("file-{j:02}.dat");

    println!("  generating the emulator's journal ...");
    let emu_files: Vec<EmuFile> = (0..records)
        .flat_map(|i| {
            let hashes = &hashes;
            (0..FILES_PER_RECORD).map(move |j| EmuFile {
                path: format!("{}/{}", folder(i), name(j)),
                content_hash: hashes[j].clone(),
                size: FILE_SIZE as u64,
            })
        })
        .collect();
    let written = tokio::task::spawn_blocking({
        let emu_dir = dir.join("emulator");
        let contents = contents.clone();
        move || {
            let refs: Vec<&[u8]> = contents.iter().map(Vec::as_slice).collect();
            write_bulk_journal(&emu_dir, &emu_files, &refs)
        }
    })
    .await??;
    let replay = Instant::now();
    let (_, emulator) = {
        let mut config = ferry_emulator::EmulatorConfig::new(dir.join("emulator"));
        config.model = ctx.model.clone();
        let emulator = RunningEmulator::start(config)
            .await
            .context("cannot start the emulator on the generated journal")?;
        ((), emulator)
    };
    println!(
        "  (emulator replayed its journal in {:.1} s)",
        replay.elapsed().as_secs_f64()
    );

    // Ferry: the connection and the rule, through the REST API of an app on the same data
    // directory (database, blobs and key where the child processes look for them).
    let db = dir.join("ferry.db");
    {
        let config = crate::config::Config {
            data_dir: dir.to_path_buf(),
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            custom_dropbox_hosts: true,
            ..crate::config::Config::default()
        };
        let app = crate::app::RunningApp::start(&config).await?;
        let api = crate::api_client::ApiClient::new(app.base_url(), app.api_key().clone());
        api.put_json(
            "/v1/connections/dropbox",
            &json!({"token": emulator.token(), "root": ROOT, "base_url": emulator.base_url()}),
        )
        .await?;
        api.put_json(
            "/v1/rules/scale",
            &json!({"record_kind": "item", "connection": "dropbox", "folder": "Scale/{{ record.key }}"}),
        )
        .await?;
        app.shutdown().await;
    }
    let blobs = BlobStore::local(&dir.join("blobs"))?;
    for c in &contents {
        blobs.put(Bytes::from(c.clone())).await?;
    }
    let bulk: Vec<BulkRecord> = (0..records)
        .map(|i| {
            let folder_display = folder(i);
            BulkRecord {
                kind: "item".into(),
                key: key(i),
                fields: json!({"n": i}),
                binding: BulkBinding {
                    rule_name: "scale".into(),
                    connection: "dropbox".into(),
                    folder_lower: dropbox_lower(&folder_display),
                    folder_display,
                },
                files: (0..FILES_PER_RECORD)
                    .map(|j| {
                        let w = &written[i * FILES_PER_RECORD + j];
                        BulkFile {
                            name: name(j),
                            tags: Vec::new(),
                            content_hash: hashes[j].clone(),
                            size: FILE_SIZE as u64,
                            rel_display: name(j),
                            rel_lower: dropbox_lower(&name(j)),
                            dropbox_id: w.id.clone(),
                            rev: w.rev.clone(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    drop(written);
    let mut progress = Progress::new("loading the store", records as u64);
    SqliteStore::bulk_load_synced(&db, &bulk, |n| progress.set(n)).await?;
    progress.finish();
    drop(bulk);

    // The generated state must be "all synced": a dry run over some records plans nothing.
    let store = Arc::new(SqliteStore::open(&db).await?);
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        blobs,
        SecretCipher::load_or_create(&dir.join("secret.key"))?,
        EngineConfig {
            custom_dropbox_hosts: true,
            ..EngineConfig::default()
        },
    );
    for i in [0, records / 2, records - 1] {
        let record = store
            .record("item", &key(i))
            .await?
            .ok_or_else(|| anyhow!("generated record {} is missing", key(i)))?;
        let pending = engine.pending_actions(record.id).await?;
        if !pending.is_empty() {
            bail!(
                "generated state is not synced: {} would do {pending:?}",
                key(i)
            );
        }
    }
    println!("  (generated in {:.1} s)", started.elapsed().as_secs_f64());
    Ok(emulator)
}

/// Runs `ferry bench --scale-child MODE` and relays its progress; returns its result.
async fn child(dir: &Path, mode: &str, timeout: Duration, total: u64) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("cannot find the ferry executable")?;
    let mut command = tokio::process::Command::new(&exe);
    command
        .arg("bench")
        .arg("--scale-child")
        .arg(mode)
        .arg("--scale-dir")
        .arg(dir)
        .arg("--scale-timeout")
        .arg(timeout.as_secs().to_string())
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut process = command
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let stdout = process
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from the child"))?;
    let label = match mode {
        "engine" => "engine: full reconciliation",
        _ => "idle engine process",
    };
    let mut progress = Progress::new(label, total);
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut result = None;
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("progress ") {
            if let Some(done) = rest.split_whitespace().next().and_then(|d| d.parse().ok()) {
                progress.set(done);
            }
        } else if let Some(rest) = line.strip_prefix("result ") {
            result = Some(serde_json::from_str::<Value>(rest)?);
        } else {
            println!("  [{mode}] {line}");
        }
    }
    let status = process.wait().await?;
    progress.finish();
    if !status.success() {
        bail!("the {mode} child process failed ({status})");
    }
    result.ok_or_else(|| anyhow!("the {mode} child process reported nothing"))
}

/// The child process: opens the scenario's store and runs one mode; prints `progress D T`
/// lines and one `result {json}` line.
pub async fn run_scale_child(args: ScaleChildArgs) -> anyhow::Result<()> {
    let db = args.dir.join("ferry.db");
    let store = Arc::new(SqliteStore::open(&db).await?);
    let engine = Engine::new(
        Arc::clone(&store) as Arc<dyn Store>,
        BlobStore::local(&args.dir.join("blobs"))?,
        SecretCipher::load_or_create(&args.dir.join("secret.key"))?,
        EngineConfig {
            custom_dropbox_hosts: true,
            ..EngineConfig::default()
        },
    );
    let mut result = match args.mode.as_str() {
        "idle" => {
            engine.client("dropbox").await?;
            json!({"seconds": 0.0})
        }
        "engine" => reconcile_engine(&engine, args.timeout).await?,
        other => bail!("unknown --scale-child mode {other:?} (idle, engine)"),
    };
    result["peak_rss_bytes"] = json!(peak_rss_bytes());
    println!("result {result}");
    Ok(())
}

/// The engine's full reconciliation, then the passes for whatever it queued.
async fn reconcile_engine(engine: &Arc<Engine>, timeout: Duration) -> anyhow::Result<Value> {
    let store = engine.store();
    let last_log = store
        .log_entries(&ferry_store::LogFilter {
            limit: 1,
            ..Default::default()
        })
        .await?
        .first()
        .map_or(0, |l| l.entry.id);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let report = engine.reconcile_connection("dropbox").await?;
    let listed = started.elapsed().as_secs_f64();
    let workers = engine.spawn_workers(stopped).await?;
    let mut finished = false;
    let mut stats;
    loop {
        stats = store.queue_stats().await?;
        if stats.queued == 0 {
            finished = true;
            break;
        }
        if started.elapsed() > timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("progress 1 1");
    let _ = stop.send(true);
    for w in workers {
        let _ = w.await;
    }
    let changes = store
        .log_entries(&ferry_store::LogFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await?
        .iter()
        .filter(|l| l.entry.id > last_log)
        .count();
    let total = report.queued.len() as u64;
    Ok(json!({
        "seconds": seconds,
        "listing_seconds": listed,
        "finished": finished,
        "reconciled": total.saturating_sub(stats.queued),
        "queued": total,
        "compared": report.compared,
        "untracked": report.untracked,
        "newer": report.newer,
        "pages": report.pages,
        "retrying": stats.retrying,
        "dead": stats.dead,
        "changes": changes,
    }))
}
