//! Scenario 2: large files end to end — one of 1 GiB, and ten of 100 MiB — from the app's
//! `PUT` of the attachment until Ferry reports every file synced (Dropbox confirmed it).
//! Baseline: the physical copy (two processes writing and content-hashing each file once
//! each, `physical_copy.rs`). For reference: computing the content hash at the machine's
//! limit (every core), and `openssl dgst -sha256` on the same files.

use super::physical_copy::physical_copy_secs;
use super::{
    Ctx, Figure, Goal, Noise, Progress, best_of, check_deadline, heading, mb_per_s,
    openssl_sha256_secs, parallel_content_hash, show,
};
use anyhow::Context;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The test files, in a temporary directory that is deleted on drop.
pub(crate) struct TestFiles {
    _dir: tempfile::TempDir,
    /// The single large file.
    pub(crate) big: PathBuf,
    /// The ten medium files.
    pub(crate) medium: Vec<PathBuf>,
}

impl TestFiles {
    fn create(work_dir: &Path, big: u64, medium: u64, count: usize) -> anyhow::Result<TestFiles> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-bench-files-")
            .tempdir_in(work_dir)
            .with_context(|| format!("temp dir in {}", work_dir.display()))?;
        let total = big + medium * count as u64;
        let mut progress = Progress::new("writing test files", total);
        let mut written = 0;
        let mut write = |path: &Path, size: u64, seed: u64| -> anyhow::Result<()> {
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("create {}", path.display()))?,
            );
            let mut noise = Noise::new(seed);
            let mut buf = vec![0u8; 8 << 20];
            let mut left = size;
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64))?;
                noise.fill(&mut buf[..n]);
                out.write_all(&buf[..n])?;
                left -= n as u64;
                written += n as u64;
                progress.set(written);
            }
            out.flush()?;
            Ok(())
        };
        let big_path = dir.path().join("big.bin");
        write(&big_path, big, 100)?;
        let mut medium_paths = Vec::new();
        for i in 0..count {
            let path = dir.path().join(format!("medium-{i:02}.bin"));
            write(&path, medium, 200 + i as u64)?;
            medium_paths.push(path);
        }
        progress.finish();
        Ok(TestFiles {
            _dir: dir,
            big: big_path,
            medium: medium_paths,
        })
    }
}

/// Makes the test files once per run (1 GiB + 10 × 100 MiB; 16 MiB + 4 × 2 MiB with `quick`).
pub(crate) fn test_files(ctx: &mut Ctx) -> anyhow::Result<&TestFiles> {
    if ctx.files.is_none() {
        let (big, medium, count) = if ctx.options.quick {
            (16 << 20, 2 << 20, 4)
        } else {
            (1 << 30, 100 << 20, 10)
        };
        ctx.files = Some(TestFiles::create(
            &ctx.options.work_dir,
            big,
            medium,
            count,
        )?);
    }
    ctx.files.as_ref().context("test files were not created")
}

fn size_of(paths: &[PathBuf]) -> anyhow::Result<u64> {
    let mut total = 0;
    for p in paths {
        total += std::fs::metadata(p)
            .with_context(|| format!("stat {}", p.display()))?
            .len();
    }
    Ok(total)
}

/// The baselines over `paths`, in MB/s, best of three each.
struct Baselines {
    /// The content hash on every core (reading the files from the page cache).
    hash_limit: f64,
    /// `openssl dgst -sha256` (one process), if openssl is there.
    openssl: Option<f64>,
    /// Two processes writing and hashing each file once each ([`physical_copy_secs`]).
    physical: f64,
}

fn baselines(paths: &[PathBuf], dir: &Path) -> anyhow::Result<Baselines> {
    let bytes = size_of(paths)?;
    let mut hashes = Vec::new();
    let (_, limit_secs) = best_of(3, || {
        hashes.clear();
        let mut secs = 0.0;
        for p in paths {
            let (hash, took) = parallel_content_hash(p)?;
            hashes.push(hash);
            secs += took;
        }
        Ok(((), secs))
    })?;
    let openssl = (0..3)
        .filter_map(|_| openssl_sha256_secs(paths))
        .min_by(|a, b| a.total_cmp(b));
    let (_, physical_secs) = best_of(3, || {
        let mut secs = 0.0;
        for (p, hash) in paths.iter().zip(&hashes) {
            secs += physical_copy_secs(p, dir, hash)?;
        }
        Ok(((), secs))
    })?;
    Ok(Baselines {
        hash_limit: mb_per_s(bytes, limit_secs),
        openssl: openssl.map(|s| mb_per_s(bytes, s)),
        physical: mb_per_s(bytes, physical_secs),
    })
}

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let files = test_files(ctx)?;
    let big = vec![files.big.clone()];
    let medium = files.medium.clone();
    let (big_bytes, medium_bytes) = (size_of(&big)?, size_of(&medium)?);
    heading(&format!(
        "2. Large files end to end: one of {} MiB, and {} of {} MiB",
        big_bytes >> 20,
        medium.len(),
        (medium_bytes / medium.len().max(1) as u64) >> 20
    ));

    let work_dir = ctx.options.work_dir.clone();
    let big_base = tokio::task::spawn_blocking({
        let (big, dir) = (big.clone(), work_dir.clone());
        move || baselines(&big, &dir)
    })
    .await??;
    let medium_base = tokio::task::spawn_blocking({
        let (medium, dir) = (medium.clone(), work_dir);
        move || baselines(&medium, &dir)
    })
    .await??;
    let (big_limit, big_openssl) = (big_base.hash_limit, big_base.openssl);
    let (medium_limit, medium_openssl) = (medium_base.hash_limit, medium_base.openssl);

    let stack = ctx.stack().await?;
    put_large_rule(&stack).await?;
    let (big_e2e, big_put) = push_files(&stack, "one", &big).await?;
    let (medium_e2e, _) = push_files(&stack, "ten", &medium).await?;
    stack.shutdown().await;
    // The same 1 GiB file with one chunk at a time, in a sequential session (a chunk size that
    // is no multiple of 4 MiB), and as configured again, each on a fresh stack: what
    // concurrent sessions add, with the order of the runs (the disk still writing back the
    // runs before) the same for all three.
    let configured = crate::config::Config::default();
    let mut variants = Vec::new();
    for (name, tweak) in [
        ("one_chunk_at_a_time", (8, 1)),
        ("sequential_session", (10, 1)),
        (
            "as_configured_again",
            (configured.chunk_size_mib, configured.chunks_in_flight),
        ),
    ] {
        let stack = ctx
            .stack_with(|c| {
                c.chunk_size_mib = tweak.0;
                c.chunks_in_flight = tweak.1;
            })
            .await?;
        put_large_rule(&stack).await?;
        let (secs, put) = push_files(&stack, name, &big).await?;
        stack.shutdown().await;
        variants.push((name, secs, put));
    }

    let big_rate = mb_per_s(big_bytes, big_e2e);
    let medium_rate = mb_per_s(medium_bytes, medium_e2e);
    let mut figures = vec![
        Figure::new(
            "large_files.1gib.end_to_end",
            big_rate,
            "MB/s",
            Some(("large_files.1gib.physical_copy", big_base.physical)),
            Some(Goal::RatioAtLeast(0.5)),
        ),
        Figure::new(
            "large_files.10x100mib.end_to_end",
            medium_rate,
            "MB/s",
            Some(("large_files.10x100mib.physical_copy", medium_base.physical)),
            Some(Goal::RatioAtLeast(0.5)),
        ),
        Figure::new(
            "large_files.1gib.end_to_end",
            big_rate,
            "MB/s",
            Some(("large_files.1gib.content_hash_limit", big_limit)),
            None,
        ),
        Figure::new(
            "large_files.10x100mib.end_to_end",
            medium_rate,
            "MB/s",
            Some(("large_files.10x100mib.content_hash_limit", medium_limit)),
            None,
        ),
    ];
    if let Some(o) = big_openssl {
        figures.push(Figure::new(
            "large_files.1gib.end_to_end",
            big_rate,
            "MB/s",
            Some(("large_files.1gib.openssl_sha256", o)),
            None,
        ));
    }
    if let Some(o) = medium_openssl {
        figures.push(Figure::new(
            "large_files.10x100mib.end_to_end",
            medium_rate,
            "MB/s",
            Some(("large_files.10x100mib.openssl_sha256", o)),
            None,
        ));
    }
    // Where the time of the single large file goes: into Ferry, then out to Dropbox.
    let big_out = mb_per_s(big_bytes, (big_e2e - big_put).max(1e-9));
    figures.push(Figure::new(
        "large_files.1gib.put_into_ferry",
        mb_per_s(big_bytes, big_put),
        "MB/s",
        Some(("large_files.1gib.content_hash_limit", big_limit)),
        None,
    ));
    figures.push(Figure::new(
        "large_files.1gib.ferry_to_dropbox",
        big_out,
        "MB/s",
        Some(("large_files.1gib.content_hash_limit", big_limit)),
        None,
    ));
    for (name, secs, put) in variants {
        figures.push(Figure::new(
            "large_files.1gib.ferry_to_dropbox",
            big_out,
            "MB/s",
            Some((
                &format!("large_files.1gib.ferry_to_dropbox_{name}"),
                mb_per_s(big_bytes, (secs - put).max(1e-9)),
            )),
            None,
        ));
    }
    if big_openssl.is_none() {
        println!("  (openssl not found: its reference figures are left out)");
    }
    show(&figures);
    Ok(figures)
}

/// Puts the rule that places `media` records under `Large/`.
async fn put_large_rule(stack: &super::Stack) -> anyhow::Result<()> {
    stack
        .api
        .put_json(
            "/v1/rules/large",
            &json!({"record_kind": "media", "connection": "dropbox", "folder": "Large/{{ record.key }}"}),
        )
        .await?;
    Ok(())
}

/// Puts each file as an attachment of record `media/<key>` through the REST API, one after
/// another, and waits until all are synced. Returns the seconds from the first `PUT` to
/// "all synced", and how long the `PUT`s took.
async fn push_files(
    stack: &super::Stack,
    key: &str,
    paths: &[PathBuf],
) -> anyhow::Result<(f64, f64)> {
    stack
        .api
        .put_json(&format!("/v1/records/media/{key}"), &json!({"fields": {}}))
        .await?;
    stack
        .app
        .engine()
        .wait_idle(Duration::from_secs(30))
        .await?;
    let total = size_of(paths)?;
    let mut progress = Progress::new(
        format!("{} file(s) app → Ferry → Dropbox", paths.len()),
        total,
    );
    let started = Instant::now();
    let mut put_secs = 0.0;
    for (i, path) in paths.iter().enumerate() {
        // The app's copy is in memory, as when it forwards an upload it received.
        let data = tokio::fs::read(path)
            .await
            .with_context(|| format!("read {}", path.display()))?;
        let put_started = Instant::now();
        stack
            .api
            .put_bytes(
                &format!("/v1/records/media/{key}/attachments/file-{i:02}.bin"),
                data,
            )
            .await?;
        put_secs += put_started.elapsed().as_secs_f64();
    }
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut last_error: Option<String> = None;
    loop {
        let state = stack
            .api
            .get(&format!("/v1/records/media/{key}/sync"))
            .await?;
        let files = state["files"].as_array().cloned().unwrap_or_default();
        let synced: Vec<_> = files.iter().filter(|f| f["state"] == "synced").collect();
        let bytes: u64 = synced.len() as u64 * (total / paths.len().max(1) as u64);
        progress.set(bytes);
        if synced.len() == paths.len() {
            break;
        }
        if let Some(failed) = files
            .iter()
            .find(|f| f["state"] == "failed" && f["last_error"].is_string())
        {
            let error = failed["last_error"].to_string();
            if last_error.as_deref() != Some(error.as_str()) {
                println!("  (a file failed and will be retried: {error})");
                last_error = Some(error);
            }
        }
        check_deadline(deadline, "large files to sync")?;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    progress.finish();
    Ok((secs, put_secs))
}
