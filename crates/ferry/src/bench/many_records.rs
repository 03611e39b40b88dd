//! Scenario 7: many records of one small file each (10,000 × 4 KiB), as an ERP back-filling
//! its invoices: Ferry with the remote mirror, again listing every record's folder, and with
//! 64 workers (more records share each batch), beside a client uploading the files one by
//! one and a bare client batching 1,000 files per request (the least any sync of these files
//! needs), each on a fresh emulator. During the default run's back-fill the app makes live
//! changes (a new record with one file, one at a time), timed until Dropbox has the file,
//! beside the same changes on the idle engine.

use super::small_files::{Push, direct_uploads, engine_push};
use super::{Ctx, Figure, Goal, Noise, Progress, client_for, heading, percentile, show};
use anyhow::{Context, bail};
use bytes::Bytes;
use ferry_dropbox::{MAX_BATCH, Staged, WriteMode};
use std::time::{Duration, Instant};

const FILE_SIZE: usize = 4 * 1024;
/// Workers of the run beside the default's (4): a back-fill's passes in flight at once.
const WIDE_WORKERS: usize = 64;
/// Live changes made during the default run's back-fill (and as many on the idle engine).
const LIVE_CHANGES: usize = 49;

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let records = ctx
        .options
        .many_records
        .unwrap_or(if ctx.options.quick { 60 } else { 10_000 });
    heading(&format!(
        "7. Many records: {records} records of one 4 KiB file each into an empty Dropbox"
    ));
    let mut noise = Noise::new(7);
    let contents: Vec<Bytes> = (0..records)
        .map(|_| Bytes::from(noise.bytes(FILE_SIZE)))
        .collect();
    let (seq_secs, seq_retries) = direct_uploads(ctx, &contents, 1, 1).await?;
    let ideal_secs = ideal_client(ctx, &contents).await?;
    let push = Push {
        records,
        per_record: 1,
        links: false,
        remote_mirror: true,
        flip_rule: true,
        workers: None,
        live_changes: 0,
    };
    let mirrored = engine_push(
        ctx,
        &contents,
        Push {
            live_changes: if ctx.options.quick { 3 } else { LIVE_CHANGES },
            ..push
        },
    )
    .await?;
    let listing = engine_push(
        ctx,
        &contents,
        Push {
            remote_mirror: false,
            ..push
        },
    )
    .await?;
    // More passes at once, so more records share each batch.
    let wide = engine_push(
        ctx,
        &contents,
        Push {
            workers: Some(WIDE_WORKERS),
            ..push
        },
    )
    .await?;
    println!("  (sequential baseline retried after 429: {seq_retries})");
    let per_file = |requests: u64| requests as f64 / records as f64;
    println!(
        "  (requests per file: {:.2} with the mirror, {:.2} listing every folder, {:.2} with {WIDE_WORKERS} workers)",
        per_file(mirrored.requests),
        per_file(listing.requests),
        per_file(wide.requests)
    );
    let rate = |secs: f64| records as f64 / secs.max(1e-9);
    let live = |p: f64, goal: Option<Goal>| {
        Figure::new(
            format!("many_records.live_change.p{p}"),
            percentile(&mirrored.live_ms, p),
            "ms",
            Some((
                format!("many_records.live_change_idle.p{p}").as_str(),
                percentile(&mirrored.idle_ms, p),
            )),
            goal,
        )
    };
    let figures = vec![
        live(50.0, None),
        live(99.0, Some(Goal::Below(1000.0))),
        Figure::new(
            "many_records.engine",
            rate(mirrored.secs),
            "files/s",
            Some(("many_records.sequential_upload", rate(seq_secs))),
            Some(Goal::RatioAtLeast(10.0)),
        ),
        Figure::new(
            "many_records.engine",
            rate(mirrored.secs),
            "files/s",
            Some(("many_records.ideal_batch_client", rate(ideal_secs))),
            Some(Goal::RatioAtLeast(0.5)),
        ),
        Figure::new(
            "many_records.engine",
            rate(mirrored.secs),
            "files/s",
            Some(("many_records.engine_listing_folders", rate(listing.secs))),
            None,
        ),
        Figure::new(
            format!("many_records.engine_{WIDE_WORKERS}_workers"),
            rate(wide.secs),
            "files/s",
            Some(("many_records.sequential_upload", rate(seq_secs))),
            None,
        ),
    ];
    show(&figures);
    Ok(figures)
}

/// A bare client that knows it only adds files: 1,000 files staged per `start_batch` +
/// `append_batch` and committed per `finish_batch_v2`, one batch after another (one commit
/// in flight per namespace). No store, no planning: the limit on this machine.
async fn ideal_client(ctx: &Ctx, contents: &[Bytes]) -> anyhow::Result<f64> {
    let (_dir, emulator) = ctx.emulator().await?;
    let client = client_for(&emulator)?;
    let mut progress = Progress::new("bare client, 1,000 files per batch", contents.len() as u64);
    let deadline = Instant::now() + Duration::from_secs(900);
    let started = Instant::now();
    let mut done = 0;
    for (n, chunk) in contents.chunks(MAX_BATCH).enumerate() {
        let mut attempts = 0;
        loop {
            let staged: Vec<Staged> = client
                .stage_many(chunk)
                .await
                .into_iter()
                .collect::<Result<_, _>>()
                .context("staging a batch")?;
            let entries: Vec<(Staged, String, WriteMode)> = staged
                .into_iter()
                .enumerate()
                .map(|(i, s)| {
                    let record = n * MAX_BATCH + i;
                    (
                        s,
                        format!("/Bench/Ideal/R{record:05}/file-0000.bin"),
                        WriteMode::Add,
                    )
                })
                .collect();
            match client.finish_batch(&entries).await {
                Ok(results) => {
                    let failed = results.iter().filter(|r| r.is_err()).count();
                    if failed > 0 {
                        bail!("{failed} entries of a batch failed");
                    }
                    break;
                }
                Err(e) if e.is_retryable() && attempts < 20 => {
                    attempts += 1;
                    tokio::time::sleep(e.retry_after().unwrap_or(Duration::from_millis(100))).await;
                }
                Err(e) => return Err(e).context("committing a batch"),
            }
            super::check_deadline(deadline, "bare client")?;
        }
        done += chunk.len();
        progress.set(done as u64);
    }
    let secs = started.elapsed().as_secs_f64();
    progress.finish();
    println!(
        "  (bare client requests: {} in all)",
        emulator.calls_total()
    );
    emulator.shutdown().await;
    Ok(secs)
}
