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
    let (ferry_secs, _) = engine_push(ctx, &contents, records, per_record, false).await?;
    // The same push with shared links on: links are made beside the sync, so the files
    // should arrive as fast.
    let (linked_secs, links_made) = engine_push(ctx, &contents, records, per_record, true).await?;
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
async fn direct_uploads(
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

/// Loads the records (not yet ready, so nothing syncs), then marks them ready and times the
/// engine until every file is synced.
async fn engine_push(
    ctx: &Ctx,
    contents: &[Bytes],
    records: usize,
    per_record: usize,
    links: bool,
) -> anyhow::Result<(f64, u64)> {
    let stack = ctx.stack().await?;
    stack
        .api
        .put_json(
            "/v1/rules/small",
            &json!({
                "record_kind": "batch",
                "connection": "dropbox",
                "condition": "record.fields.ready",
                "folder": "Small/{{ record.key }}",
                "links": if links { "public" } else { "off" },
            }),
        )
        .await?;
    let mut progress = Progress::new("loading records into Ferry", contents.len() as u64);
    for r in 0..records {
        stack
            .api
            .put_json(
                &format!("/v1/records/batch/R{r:04}"),
                &json!({"fields": {"ready": false}}),
            )
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for f in 0..per_record {
            let api = stack.api.clone();
            let data = contents[r * per_record + f].to_vec();
            tasks.spawn(async move {
                api.put_bytes(
                    &format!("/v1/records/batch/R{r:04}/attachments/file-{f:04}.bin"),
                    data,
                )
                .await
            });
            if tasks.len() >= 8
                && let Some(joined) = tasks.join_next().await
            {
                joined.context("load task panicked")??;
            }
        }
        while let Some(joined) = tasks.join_next().await {
            joined.context("load task panicked")??;
        }
        progress.set(((r + 1) * per_record) as u64);
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

    let total = contents.len() as u64;
    let mut progress = Progress::new("Ferry engine pushing", total);
    let started = Instant::now();
    for r in 0..records {
        stack
            .api
            .put_json(
                &format!("/v1/records/batch/R{r:04}"),
                &json!({"fields": {"ready": true}}),
            )
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let counts = store.sync_counts().await?;
        progress.set(counts.synced);
        if counts.synced >= total {
            break;
        }
        check_deadline(
            deadline,
            &format!("engine push ({} of {total} synced)", counts.synced),
        )?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
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
    println!(
        "  (engine requests: {sessions} upload_session/start, {batches} finish_batch_v2, {uploads} files/upload)"
    );
    stack.shutdown().await;
    Ok((secs, links_made))
}
