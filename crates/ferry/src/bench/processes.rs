//! Scenario 6: scale-out. Two shapes — many records (one 4 KiB file each, as an ERP's
//! back-fill) and small files (100 files of 4 KiB per record) — synced by 1, 2 and 4
//! `ferry serve` processes sharing one PostgreSQL database and one data dir, each figure
//! beside one PostgreSQL process measured in the same run, and one PostgreSQL process beside
//! one SQLite process. The database is a throwaway server (`ferry_store::pg_testing`).
//! Records are loaded not ready (nothing syncs), then marked ready through every process's
//! API; the clock runs from the first mark until every file is synced.

use super::{Ctx, Figure, Noise, Progress, check_deadline, heading, show};
use crate::api_client::ApiClient;
use anyhow::{Context, anyhow, bail};
use ferry_core::secret::Secret;
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const FILE_SIZE: usize = 4 * 1024;
const API_KEY: &str = "bench-processes-key";

/// One shape of load: `records` records of `per_record` files.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    records: usize,
    per_record: usize,
}

#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let shapes = if ctx.options.quick {
        [
            Shape {
                name: "many_records",
                records: 60,
                per_record: 1,
            },
            Shape {
                name: "small_files",
                records: 3,
                per_record: 20,
            },
        ]
    } else {
        [
            Shape {
                name: "many_records",
                records: 2_000,
                per_record: 1,
            },
            Shape {
                name: "small_files",
                records: 20,
                per_record: 100,
            },
        ]
    };
    heading("6. Scale-out: 1, 2 and 4 processes on one PostgreSQL database");
    let mut figures = Vec::new();
    for shape in shapes {
        let total = shape.records * shape.per_record;
        println!(
            "  {}: {} records x {} file(s) of 4 KiB = {total} files",
            shape.name, shape.records, shape.per_record
        );
        let sqlite = sync_with(ctx, shape, Backend::Sqlite, 1).await?;
        let mut pg = Vec::new();
        for processes in [1, 2, 4] {
            pg.push((
                processes,
                sync_with(ctx, shape, Backend::Postgres, processes).await?,
            ));
        }
        let rate = |secs: f64| total as f64 / secs.max(1e-9);
        let one = pg[0].1;
        figures.push(Figure::new(
            format!("processes.{}.postgres_1", shape.name),
            rate(one),
            "files/s",
            Some((&format!("processes.{}.sqlite_1", shape.name), rate(sqlite))),
            None,
        ));
        for (processes, secs) in &pg[1..] {
            figures.push(Figure::new(
                format!("processes.{}.postgres_{processes}", shape.name),
                rate(*secs),
                "files/s",
                Some((&format!("processes.{}.postgres_1", shape.name), rate(one))),
                None,
            ));
        }
    }
    show(&figures);
    Ok(figures)
}

/// A `ferry serve` child, killed on drop.
struct Child {
    process: tokio::process::Child,
    api: ApiClient,
}

async fn start_process(config: &Path, log: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the ferry executable")?;
    let log = std::fs::File::create(log).with_context(|| format!("{}", log.display()))?;
    let mut process = tokio::process::Command::new(&exe)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let stdout = process
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from ferry serve"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .context("ferry serve did not print its address in 60 s")??
        .ok_or_else(|| anyhow!("ferry serve exited before printing its address"))?;
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .ok_or_else(|| anyhow!("no address in {first:?}"))?
        .to_owned();
    // The rest of its output is not needed, but must not block it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Child {
        process,
        api: ApiClient::new(base, Secret::new(API_KEY)),
    })
}

/// Loads `shape` through `processes` processes on a fresh database and emulator, and
/// returns the seconds from marking the records ready to the last file synced.
async fn sync_with(
    ctx: &Ctx,
    shape: Shape,
    backend: Backend,
    processes: usize,
) -> anyhow::Result<f64> {
    let (dir, emulator) = ctx.emulator().await?;
    let data = dir.path().join("ferry");
    std::fs::create_dir_all(&data)?;
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(ferry_store::pg_testing::database().await.url().to_owned()),
    };
    let config = dir.path().join("ferry.toml");
    let mut text = format!(
        "data_dir = {:?}\nlisten = \"127.0.0.1:0\"\napi_key = {API_KEY:?}\nsecret_key = \"{}\"\n\
         custom_dropbox_hosts = true\n",
        data,
        "cd".repeat(32)
    );
    if let Some(url) = &database_url {
        text.push_str(&format!("database_url = {url:?}\n"));
    }
    std::fs::write(&config, text)?;
    let mut children = Vec::new();
    for n in 0..processes {
        children.push(start_process(&config, &dir.path().join(format!("serve-{n}.log"))).await?);
    }
    let api = children[0].api.clone();
    api.put_json(
        "/v1/connections/dropbox",
        &json!({"token": emulator.token(), "root": "/Bench", "base_url": emulator.base_url()}),
    )
    .await?;
    api.put_json(
        "/v1/rules/out",
        &json!({
            "record_kind": "batch",
            "connection": "dropbox",
            "condition": "record.fields.ready",
            "folder": "Out/{{ record.key }}",
        }),
    )
    .await?;
    let total = (shape.records * shape.per_record) as u64;
    let label = format!(
        "{} {} x{processes}: loading",
        shape.name,
        match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    );
    let mut progress = Progress::new(label.clone(), total);
    let mut noise = Noise::new(6);
    let mut loaded = 0u64;
    for r in 0..shape.records {
        let api = &children[r % processes].api;
        api.put_json(
            &format!("/v1/records/batch/R{r:05}"),
            &json!({"fields": {"ready": false}}),
        )
        .await?;
        let mut uploads = tokio::task::JoinSet::new();
        for f in 0..shape.per_record {
            let api = api.clone();
            let data = noise.bytes(FILE_SIZE);
            uploads.spawn(async move {
                api.put_bytes(
                    &format!("/v1/records/batch/R{r:05}/attachments/f{f:03}.bin"),
                    data,
                )
                .await
            });
            if uploads.len() >= 8
                && let Some(done) = uploads.join_next().await
            {
                done.context("load task panicked")??;
            }
        }
        while let Some(done) = uploads.join_next().await {
            done.context("load task panicked")??;
        }
        loaded += shape.per_record as u64;
        progress.set(loaded);
    }
    progress.finish();
    let status = api.get("/v1/status").await?;
    if status["files"]["synced"].as_u64() != Some(0) {
        bail!("files synced before their records were ready: {status}");
    }

    let mut progress = Progress::new(label.replace("loading", "syncing"), total);
    let requests_before = emulator.calls_total();
    let started = Instant::now();
    let mut marks = tokio::task::JoinSet::new();
    for r in 0..shape.records {
        let api = children[r % processes].api.clone();
        marks.spawn(async move {
            api.put_json(
                &format!("/v1/records/batch/R{r:05}"),
                &json!({"fields": {"ready": true}}),
            )
            .await
        });
        if marks.len() >= 8
            && let Some(done) = marks.join_next().await
        {
            done.context("mark task panicked")??;
        }
    }
    while let Some(done) = marks.join_next().await {
        done.context("mark task panicked")??;
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let status = api.get("/v1/status").await?;
        let synced = status["files"]["synced"].as_u64().unwrap_or(0);
        progress.set(synced);
        if synced >= total && status["queue"]["queued"].as_u64() == Some(0) {
            break;
        }
        if status["files"]["failed"].as_u64().unwrap_or(0) > 0 {
            bail!("files failed: {status}");
        }
        check_deadline(deadline, &format!("{label} ({synced} of {total} synced)"))?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    progress.finish();
    let commits = emulator.route_calls("files/upload_session/finish_batch_v2");
    let uploads = emulator.route_calls("files/upload");
    // The requests of the timed part: against the account's request rate (the emulator's
    // default model allows 200/s), they tell whether Dropbox's limit is what is measured.
    let requests = emulator.calls_total() - requests_before;
    println!(
        "    {processes} process(es): {secs:.1} s ({commits} finish_batch_v2, {uploads} files/upload; \
         {requests} requests in all, {:.2} per file, {:.0}/s)",
        requests as f64 / total as f64,
        requests as f64 / secs
    );
    for mut child in children {
        let _ = child.process.kill().await;
    }
    emulator.shutdown().await;
    Ok(secs)
}
