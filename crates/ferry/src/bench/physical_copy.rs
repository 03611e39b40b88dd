//! The large-file scenario's physical baseline: what any sync of a file must do on one
//! machine — write it twice and content-hash it twice, once on each side — done by two
//! processes as Ferry and Dropbox would be. The first reads the source (the app's copy),
//! hashes it and writes it, and passes the bytes through a pipe to the second, which hashes
//! and writes them too. Nothing else happens: no HTTP, no store, no upload sessions.

use anyhow::{Context, bail};
use ferry_core::content_hash::ContentHasher;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One side (`ferry bench --physical-side OUT`): reads standard input to its end, writes it
/// to `out` and content-hashes it; with `forward`, also passes every byte on to standard
/// output. Prints the content hash on standard error.
pub fn run_physical_side(out: &Path, forward: bool) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut input = std::io::stdin().lock();
    let mut output = std::io::stdout().lock();
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read standard input"),
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("write {}", out.display()))?;
        if forward {
            output
                .write_all(&buf[..n])
                .context("write standard output")?;
        }
    }
    file.flush()?;
    output.flush()?;
    eprintln!("{}", hasher.finish());
    Ok(())
}

/// Copies `source` through the two sides into `dir` and returns the seconds until both have
/// ended, after checking that each side computed `expected_hash`.
pub(super) fn physical_copy_secs(
    source: &Path,
    dir: &Path,
    expected_hash: &str,
) -> anyhow::Result<f64> {
    let exe = std::env::current_exe().context("cannot find the ferry executable")?;
    let side = |out: &str, forward: bool| {
        let mut command = Command::new(&exe);
        command
            .arg("bench")
            .arg("--physical-side")
            .arg(dir.join(out))
            .stderr(Stdio::piped());
        if forward {
            command.arg("--physical-forward");
        }
        command
    };
    let input =
        std::fs::File::open(source).with_context(|| format!("open {}", source.display()))?;
    let started = Instant::now();
    let mut first = side("ferry-side.bin", true)
        .stdin(input)
        .stdout(Stdio::piped())
        .spawn()
        .context("start the first side")?;
    let pipe = first.stdout.take().context("the first side's output")?;
    let second = side("dropbox-side.bin", false)
        .stdin(pipe)
        .stdout(Stdio::null())
        .spawn()
        .context("start the second side")?;
    let (first, second) = (first.wait_with_output()?, second.wait_with_output()?);
    let secs = started.elapsed().as_secs_f64();
    for (name, output) in [("first", &first), ("second", &second)] {
        let said = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() || said.trim() != expected_hash {
            bail!(
                "the physical baseline's {name} side failed ({}): {}",
                output.status,
                said.trim()
            );
        }
    }
    for out in ["ferry-side.bin", "dropbox-side.bin"] {
        let _ = std::fs::remove_file(dir.join(out));
    }
    Ok(secs)
}
