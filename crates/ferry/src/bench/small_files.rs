//! Scenario 1: many small files (10,000 × 4 KiB over 100 records) pushed into an empty
//! Dropbox. Ferry's engine against two baselines on fresh emulators: one `files/upload` per
//! file one after another (what most integrations do), and 16 at a time.

use super::{Ctx, Figure, Goal, Noise, Progress, check_deadline, client_for, heading, show};
use anyhow::{Context, bail};
use bytes::Bytes;
use ferry_dropbox::{DropboxError, WriteMode};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const FILE_SIZE: usize = 4 * 1024;

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let (records, per_record) = if ctx.options.quick {
        (4, 25)
    } else {
        (100, 100)
    };
    let total = records * per_record;
    heading(&format!(
        "1. Many small files: {total} files of 4 KiB over {records} records into an empty Dropbox"
    ));
    let mut noise = Noise::new(1);
    let contents: Vec<Bytes> = (0..total)
        .map(|_| Bytes::from(noise.bytes(FILE_SIZE)))
        .collect();

    let (seq_secs, seq_retries) = direct_uploads(ctx, &contents, per_record, 1).await?;
    let (par_secs, par_retries) = direct_uploads(ctx, &contents, per_record, 16).await?;
    let plain = Push {
        records,
        per_record,
        links: false,
        remote_mirror: true,
        flip_rule: false,
        workers: None,
        live_changes: 0,
    };
    let ferry_secs = engine_push(ctx, &contents, plain).await?.secs;
    // The same push with shared links on: links are made beside the sync, so the files
    // should arrive as fast.
    let linked = engine_push(
        ctx,
        &contents,
        Push {
            links: true,
            ..plain
        },
    )
    .await?;
    let (linked_secs, links_made) = (linked.secs, linked.links_made);
    println!("  (with links: {links_made} links made by the time the last file was synced)");
    println!(
        "  (baselines retried after 429: sequential {seq_retries}, 16 at a time {par_retries})"
    );

    let rate = |secs: f64| total as f64 / secs.max(1e-9);
    let figures = vec![
        Figure::new(
            "small_files.engine",
            rate(ferry_secs),
            "files/s",
            Some(("small_files.sequential_upload", rate(seq_secs))),
            Some(Goal::RatioAtLeast(10.0)),
        ),
        Figure::new(
            "small_files.engine",
            rate(ferry_secs),
            "files/s",
            Some(("small_files.upload_16_at_a_time", rate(par_secs))),
            None,
        ),
        Figure::new(
            "small_files.engine_with_links",
            rate(linked_secs),
            "files/s",
            Some(("small_files.engine", rate(ferry_secs))),
            Some(Goal::RatioAtLeast(0.8)),
        ),
    ];
    show(&figures);
    Ok(figures)
}

/// Uploads every file with one `files/upload` each, `concurrency` at a time, into a fresh
/// emulator. Returns the seconds and how many uploads had to be retried after a 429 the
/// client's own retries did not absorb.
pub(super) async fn direct_uploads(
    ctx: &Ctx,
    contents: &[Bytes],
    per_record: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, u64)> {
    let (_dir, emulator) = ctx.emulator().await?;
    let client = client_for(&emulator)?;
    let items: Arc<Vec<(String, Bytes)>> = Arc::new(
        contents
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    format!(
                        "/Bench/Direct/R{:04}/file-{:04}.bin",
                        i / per_record,
                        i % per_record
                    ),
                    c.clone(),
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let label = if concurrency == 1 {
        "sequential files/upload".to_owned()
    } else {
        format!("files/upload, {concurrency} at a time")
    };
    let mut progress = Progress::new(label, items.len() as u64);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, items, next, done, retries) = (
            client.clone(),
            Arc::clone(&items),
            Arc::clone(&next),
            Arc::clone(&done),
            Arc::clone(&retries),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, data)) = items.get(i) else {
                    return Ok::<(), DropboxError>(());
                };
                let mut attempts = 0;
                loop {
                    match client.upload(path, data.clone(), &WriteMode::Add).await {
                        Ok(_) => break,
                        Err(e) if e.is_retryable() && attempts < 20 => {
                            attempts += 1;
                            retries.fetch_add(1, Ordering::Relaxed);
                            let wait = e.retry_after().unwrap_or(Duration::from_millis(100));
                            tokio::time::sleep(wait).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => {
                if let Some(joined) = joined {
                    joined.context("upload task panicked")?.context("direct upload failed")?;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        progress.set(done.load(Ordering::Relaxed));
        check_deadline(deadline, "direct uploads")?;
    }
    let secs = started.elapsed().as_secs_f64();
    progress.finish();
    let uploaded = emulator.route_calls("files/upload");
    if uploaded < items.len() as u64 {
        bail!(
            "the emulator saw {uploaded} uploads for {} files",
            items.len()
        );
    }
    emulator.shutdown().await;
    Ok((secs, retries.load(Ordering::Relaxed)))
}

/// The rule of the pushes, syncing records where `condition` holds.
fn rule(links: bool, condition: &str) -> serde_json::Value {
    json!({
        "record_kind": "batch",
        "connection": "dropbox",
        "condition": condition,
        "folder": "Small/{{ record.key }}",
        "links": if links { "public" } else { "off" },
    })
}

/// One timed push through Ferry.
#[derive(Clone, Copy)]
pub(super) struct Push {
    /// Records, each with `per_record` of the contents (in order).
    pub(super) records: usize,
    pub(super) per_record: usize,
    /// Shared links on the rule.
    pub(super) links: bool,
    /// Ferry's `remote_mirror` setting.
    pub(super) remote_mirror: bool,
    /// Start the push by one rule change (every record at once) instead of marking each
    /// record ready.
    pub(super) flip_rule: bool,
    /// Ferry's `workers` (`None`: the default).
    pub(super) workers: Option<usize>,
    /// Live changes made while the push runs, spread evenly over it (and as many again on
    /// the idle engine afterwards, the baseline): a new record with one file each, timed
    /// from its upload into Ferry returning until Dropbox confirmed the file.
    pub(super) live_changes: usize,
}

/// What a push took.
pub(super) struct Pushed {
    pub(super) secs: f64,
    /// Shared links made by the time the last file was synced.
    pub(super) links_made: u64,
    /// Requests the emulator saw while the clock ran.
    pub(super) requests: u64,
    /// Each live change's latency during the push, in ms.
    pub(super) live_ms: Vec<f64>,
    /// The same once the push is over (the engine idle), in ms.
    pub(super) idle_ms: Vec<f64>,
}

/// Makes live change `n` (record `L{n}` with one file) and times it until its file is synced.
async fn live_change(
    api: crate::api_client::ApiClient,
    store: Arc<dyn ferry_store::Store>,
    n: usize,
) -> anyhow::Result<f64> {
    let key = format!("L{n:04}");
    api.put_json(
        &format!("/v1/records/batch/{key}"),
        &json!({"fields": {"ready": true}}),
    )
    .await?;
    api.put_bytes(
        &format!("/v1/records/batch/{key}/attachments/live.bin"),
        format!("live change {n}").into_bytes(),
    )
    .await?;
    let made = Instant::now();
    let record = store
        .record("batch", &key)
        .await?
        .context("the live record is gone")?;
    let deadline = made + Duration::from_secs(300);
    loop {
        let rows = store.sync_rows(record.id).await?;
        if rows
            .iter()
            .any(|r| r.state == ferry_store::SyncState::Synced)
        {
            return Ok(made.elapsed().as_secs_f64() * 1000.0);
        }
        check_deadline(deadline, &format!("live change {key}"))?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Loads the records (not yet ready, so nothing syncs), then marks them ready and times the
/// engine until every file is synced.
pub(super) async fn engine_push(
    ctx: &Ctx,
    contents: &[Bytes],
    push: Push,
) -> anyhow::Result<Pushed> {
    let Push {
        records,
        per_record,
        links,
        remote_mirror,
        ..
    } = push;
    let stack = ctx
        .stack_with(|c| {
            c.remote_mirror = remote_mirror;
            c.workers = push.workers.unwrap_or(c.workers);
        })
        .await?;
    stack
        .api
        .put_json("/v1/rules/small", &rule(links, "record.fields.ready"))
        .await?;
    let mut progress = Progress::new("loading records into Ferry", contents.len() as u64);
    // Records load 16 at a time, each record's files one after another.
    let mut tasks = tokio::task::JoinSet::new();
    let mut loaded = 0u64;
    for r in 0..records {
        let api = stack.api.clone();
        let files: Vec<Bytes> = contents[r * per_record..(r + 1) * per_record].to_vec();
        tasks.spawn(async move {
            api.put_json(
                &format!("/v1/records/batch/R{r:05}"),
                &json!({"fields": {"ready": false}}),
            )
            .await?;
            for (f, data) in files.into_iter().enumerate() {
                api.put_bytes(
                    &format!("/v1/records/batch/R{r:05}/attachments/file-{f:04}.bin"),
                    data.to_vec(),
                )
                .await?;
            }
            anyhow::Ok(())
        });
        while tasks.len() >= 16
            && let Some(joined) = tasks.join_next().await
        {
            joined.context("load task panicked")??;
            loaded += per_record as u64;
            progress.set(loaded);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("load task panicked")??;
    }
    progress.finish();
    stack
        .app
        .engine()
        .wait_idle(Duration::from_secs(120))
        .await?;
    let store = Arc::clone(stack.app.engine().store());
    if store.sync_counts().await?.synced != 0 {
        bail!("files synced before their records were ready");
    }

    let total = (records * per_record) as u64;
    let label = match (remote_mirror, push.workers) {
        (false, _) => "Ferry engine pushing, listing every folder".to_owned(),
        (true, Some(n)) => format!("Ferry engine pushing, {n} workers"),
        (true, None) => "Ferry engine pushing".to_owned(),
    };
    let mut progress = Progress::new(label, total);
    let requests_before = stack.emulator.calls_total();
    let passes_before = stack.app.engine().metrics().passes_total();
    let limited_before = stack.app.engine().metrics().rate_limited_total();
    let started = Instant::now();
    if push.flip_rule {
        // One change starts every record: the rule syncs them all.
        stack
            .api
            .put_json("/v1/rules/small", &rule(links, "true"))
            .await?;
    } else {
        for r in 0..records {
            stack
                .api
                .put_json(
                    &format!("/v1/records/batch/R{r:05}"),
                    &json!({"fields": {"ready": true}}),
                )
                .await?;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    // Live change k starts once k/(n+1) of the push is synced.
    let marks: Vec<u64> = (1..=push.live_changes as u64)
        .map(|k| total * k / (push.live_changes as u64 + 1))
        .collect();
    let mut live = tokio::task::JoinSet::new();
    loop {
        let counts = store.sync_counts().await?;
        progress.set(counts.synced);
        while live.len() < marks.len() && counts.synced >= marks[live.len()] {
            live.spawn(live_change(
                stack.api.clone(),
                Arc::clone(&store),
                live.len(),
            ));
        }
        if counts.synced >= total + live.len() as u64 && live.len() == marks.len() {
            break;
        }
        check_deadline(
            deadline,
            &format!("engine push ({} of {total} synced)", counts.synced),
        )?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let requests = stack.emulator.calls_total() - requests_before;
    progress.finish();
    let links_made = store
        .log_entries(&ferry_store::LogFilter {
            action: Some("link".into()),
            limit: u32::MAX,
            ..Default::default()
        })
        .await?
        .len() as u64;
    let (sessions, batches, uploads) = (
        stack.emulator.route_calls("files/upload_session/start"),
        stack
            .emulator
            .route_calls("files/upload_session/finish_batch_v2"),
        stack.emulator.route_calls("files/upload"),
    );
    let listings = stack.emulator.route_calls("files/list_folder");
    let passes = stack.app.engine().metrics().passes_total() - passes_before;
    let limited = stack.app.engine().metrics().rate_limited_total() - limited_before;
    let mut live_ms = Vec::with_capacity(marks.len());
    while let Some(joined) = live.join_next().await {
        live_ms.push(joined.context("live change panicked")??);
    }
    let mut idle_ms = Vec::with_capacity(marks.len());
    for n in 0..marks.len() {
        idle_ms.push(live_change(stack.api.clone(), Arc::clone(&store), marks.len() + n).await?);
    }
    println!(
        "  (engine requests: {requests} in all, {:.2} per file: {sessions} upload_session/start, {batches} finish_batch_v2, {uploads} files/upload, {listings} list_folder; {passes} passes, {:.2} per record; {limited} answers 429)",
        requests as f64 / total.max(1) as f64,
        passes as f64 / records.max(1) as f64
    );
    stack.shutdown().await;
    Ok(Pushed {
        secs,
        links_made,
        requests,
        live_ms,
        idle_ms,
    })
}
