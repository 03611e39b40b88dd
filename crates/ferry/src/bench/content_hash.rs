//! Scenario 5: our content hash (the one Ferry computes for every attachment) against
//! `openssl dgst -sha256` over the same 1 GiB file. The Dropbox content hash is SHA-256 over
//! every byte plus one SHA-256 per 4 MiB; its blocks are independent, so `ContentHasher`
//! hashes them on one thread per core, and one-threaded SHA-256 is the speed to beat.

use super::large_files::test_files;
use super::{
    Ctx, Figure, Goal, best_of, heading, mb_per_s, openssl_sha256_secs, sequential_content_hash,
    show,
};
use anyhow::Context;

pub(super) async fn run(ctx: &mut Ctx) -> anyhow::Result<Vec<Figure>> {
    let path = test_files(ctx)?.big.clone();
    let bytes = std::fs::metadata(&path)
        .with_context(|| format!("stat {}", path.display()))?
        .len();
    heading(&format!(
        "5. Content hash: ours vs openssl dgst -sha256 on the same {} MiB file (best of 3 each)",
        bytes >> 20
    ));
    let (ours_secs, openssl_secs) = tokio::task::spawn_blocking(move || {
        // Warm the page cache so that both read from memory.
        let _ = sequential_content_hash(&path)?;
        let (_, ours) = best_of(3, || sequential_content_hash(&path))?;
        let openssl = (0..3)
            .filter_map(|_| openssl_sha256_secs(std::slice::from_ref(&path)))
            .min_by(|a, b| a.total_cmp(b));
        anyhow::Ok((ours, openssl))
    })
    .await??;
    if openssl_secs.is_none() {
        println!("  (openssl not found: the figure has no baseline)");
    }
    let figures = vec![Figure::new(
        "content_hash.ours",
        mb_per_s(bytes, ours_secs),
        "MB/s",
        openssl_secs.map(|s| ("content_hash.openssl_sha256", mb_per_s(bytes, s))),
        Some(Goal::RatioAtLeast(1.6)),
    )];
    show(&figures);
    Ok(figures)
}
