//! `ferry bench`: Ferry's performance figures, each printed beside a baseline measured in the
//! same run, against the in-process emulator on 127.0.0.1 with its default contention model
//! (namespace write lock, request-rate limit). Figures are reported, never asserted; see
//! `docs/benchmarks.md` for what each scenario measures and why.
//!
//! This module holds the runner, the report, the baseline helpers (content hashing at the
//! machine's limit, `openssl dgst`), percentiles, peak RSS and the progress output; each
//! scenario lives in its own file.

mod content_hash;
mod large_files;
mod latency;
mod many_records;
mod physical_copy;
mod processes;
mod scale;
mod small_files;

pub use physical_copy::run_physical_side;
pub use scale::{ScaleChildArgs, run_scale_child};

use crate::api_client::ApiClient;
use crate::app::RunningApp;
use crate::config::Config;
use anyhow::{Context, anyhow, bail};
use ferry_core::content_hash::ContentHasher;
use ferry_core::secret::Secret;
use ferry_dropbox::{DropboxClient, Endpoints};
use ferry_emulator::{EmulatorConfig, FaultModel, RunningEmulator};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// The scenarios, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// 1. Many small files pushed into an empty Dropbox.
    SmallFiles,
    /// 2. Large files end to end.
    LargeFiles,
    /// 3. Push and pull latency.
    Latency,
    /// 4. A full reconciliation over a million synced files.
    Scale,
    /// 5. Our content hash against `openssl dgst -sha256`.
    ContentHash,
    /// 6. Several processes on one PostgreSQL database.
    Processes,
    /// 7. Many records of one small file each.
    ManyRecords,
}

impl Scenario {
    /// Every scenario, in run order.
    pub const ALL: [Scenario; 7] = [
        Scenario::SmallFiles,
        Scenario::LargeFiles,
        Scenario::Latency,
        Scenario::Scale,
        Scenario::ContentHash,
        Scenario::Processes,
        Scenario::ManyRecords,
    ];

    /// The name used in `--only` and as the prefix of figure names.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::SmallFiles => "small_files",
            Scenario::LargeFiles => "large_files",
            Scenario::Latency => "latency",
            Scenario::Scale => "scale",
            Scenario::ContentHash => "content_hash",
            Scenario::Processes => "processes",
            Scenario::ManyRecords => "many_records",
        }
    }
}

impl FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('-', "_");
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == wanted)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown scenario {s:?}; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}

/// How a bench run is set up.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Small sizes (seconds in all): proves every scenario runs; the figures mean little.
    pub quick: bool,
    /// Write the JSON report here.
    pub json: Option<PathBuf>,
    /// Run only these scenarios (empty: all).
    pub only: Vec<Scenario>,
    /// Where test files and temporary state go (large files need ~5 GiB free).
    pub work_dir: PathBuf,
    /// Records of the scale scenario (default 100,000, or 200 with `quick`); 10 files each.
    pub scale_records: Option<usize>,
    /// Records of the many-records scenario (default 10,000, or 60 with `quick`); one file
    /// each.
    pub many_records: Option<usize>,
    /// Longest the engine's full reconciliation may run before it is reported unfinished.
    pub scale_timeout: Duration,
    /// Emulator knobs on top of its default model (`lock_hold_ms=20`); empty for the
    /// documented figures.
    pub model_settings: Vec<String>,
}

impl BenchOptions {
    /// Defaults: everything, full size, temporary files in the system temp dir.
    pub fn new() -> Self {
        BenchOptions {
            quick: false,
            json: None,
            only: Vec::new(),
            work_dir: std::env::temp_dir(),
            scale_records: None,
            many_records: None,
            scale_timeout: Duration::from_secs(1800),
            model_settings: Vec::new(),
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// What a figure should reach.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// `value / baseline >= x`.
    RatioAtLeast(f64),
    /// `value < x` (in the figure's unit).
    Below(f64),
    /// `value <= x`.
    AtMost(f64),
    /// `value >= x`.
    AtLeast(f64),
}

impl Goal {
    fn describe(self, unit: &str) -> String {
        match self {
            Goal::RatioAtLeast(x) => format!(">= {x}x baseline"),
            Goal::Below(x) => format!("< {x} {unit}"),
            Goal::AtMost(x) => format!("<= {x} {unit}"),
            Goal::AtLeast(x) => format!(">= {x} {unit}"),
        }
    }

    fn met(self, value: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Goal::RatioAtLeast(x) => ratio.map(|r| r >= x),
            Goal::Below(x) => Some(value < x),
            Goal::AtMost(x) => Some(value <= x),
            Goal::AtLeast(x) => Some(value >= x),
        }
    }
}

/// One reported figure, beside its baseline. The JSON report is a list of these.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// Stable name: `<scenario>.<what>`.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// Its unit (`files/s`, `MB/s` (10^6 bytes), `ms`, `s`, `MiB`, `count`).
    pub unit: String,
    /// What it is compared with, measured in the same run.
    pub baseline_name: Option<String>,
    /// The baseline's value, in the same unit.
    pub baseline_value: Option<f64>,
    /// `value / baseline_value`.
    pub ratio: Option<f64>,
    /// The goal from the issue, if there is one (`>= 10x baseline`, `< 100 ms`).
    pub goal: Option<String>,
    #[serde(skip)]
    goal_met: Option<bool>,
}

impl Figure {
    /// A figure with a baseline (`None` when the baseline could not be measured, e.g. no
    /// `openssl` on this machine) and an optional goal.
    pub fn new(
        name: impl Into<String>,
        value: f64,
        unit: &str,
        baseline: Option<(&str, f64)>,
        goal: Option<Goal>,
    ) -> Figure {
        let ratio = baseline.and_then(|(_, b)| (b > 0.0).then(|| value / b));
        Figure {
            name: name.into(),
            value,
            unit: unit.to_owned(),
            baseline_name: baseline.map(|(n, _)| n.to_owned()),
            baseline_value: baseline.map(|(_, v)| v),
            ratio,
            goal: goal.map(|g| g.describe(unit)),
            goal_met: goal.and_then(|g| g.met(value, ratio)),
        }
    }

    /// Whether the goal is met (`None`: no goal, or no baseline to judge it by).
    pub fn goal_met(&self) -> Option<bool> {
        self.goal_met
    }

    fn print(&self) {
        let mut line = format!(
            "  {:<44} {:>12} {}",
            self.name,
            fmt_num(self.value),
            self.unit
        );
        if let (Some(name), Some(value)) = (&self.baseline_name, self.baseline_value) {
            line.push_str(&format!("   vs {name} {} {}", fmt_num(value), self.unit));
        }
        if let Some(ratio) = self.ratio {
            line.push_str(&format!("   ratio {ratio:.2}x"));
        }
        if let Some(goal) = &self.goal {
            let verdict = match self.goal_met {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "not judged",
            };
            line.push_str(&format!("   goal {goal}: {verdict}"));
        }
        println!("{line}");
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Progress of a long step: a redrawn bar on a terminal, a plain line every few seconds
/// otherwise (logs, CI).
pub struct Progress {
    label: String,
    total: u64,
    done: u64,
    tty: bool,
    started: Instant,
    last: Option<Instant>,
}

impl Progress {
    /// Starts showing progress of `total` units of work.
    pub fn new(label: impl Into<String>, total: u64) -> Progress {
        let mut progress = Progress {
            label: label.into(),
            total: total.max(1),
            done: 0,
            tty: std::io::stdout().is_terminal(),
            started: Instant::now(),
            last: None,
        };
        progress.draw(true);
        progress
    }

    /// Records how much is done so far.
    pub fn set(&mut self, done: u64) {
        self.done = done.min(self.total);
        self.draw(false);
    }

    /// Ends the bar (a final line either way).
    pub fn finish(mut self) {
        self.done = self.total;
        self.draw(true);
        if self.tty {
            println!();
        }
    }

    fn draw(&mut self, force: bool) {
        let every = if self.tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if !force && self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let share = self.done as f64 / self.total as f64;
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.tty {
            let width = 30;
            let filled = ((share * width as f64) as usize).min(width);
            print!(
                "\r  {} [{}{}] {}/{} ({:.0}%) {elapsed:.1} s ",
                self.label,
                "#".repeat(filled),
                "-".repeat(width - filled),
                self.done,
                self.total,
                share * 100.0
            );
        } else {
            println!(
                "  progress: {} {}/{} ({:.0}%) after {elapsed:.1} s",
                self.label,
                self.done,
                self.total,
                share * 100.0
            );
        }
        let _ = std::io::stdout().flush();
    }
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples; 0 when empty.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// This process's peak resident set size in bytes (`VmHWM`), if the OS tells.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// MB/s (10^6 bytes per second).
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// SHA-256 digests of some 4 MiB blocks, by block index.
type BlockDigests = Vec<(usize, [u8; 32])>;

/// The content hash of a file at the fastest speed this machine allows: 4 MiB blocks read
/// with positioned reads and hashed on every core at once, then the digests combined.
/// Returns the hash and the seconds it took.
pub fn parallel_content_hash(path: &Path) -> anyhow::Result<(String, f64)> {
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = ferry_core::content_hash::BLOCK_SIZE;
    let started = Instant::now();
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let len = file.metadata()?.len();
    let blocks = usize::try_from(len.div_ceil(BLOCK as u64))?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(blocks.max(1));
    let digests: Vec<anyhow::Result<BlockDigests>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let file = &file;
                scope.spawn(move || -> anyhow::Result<BlockDigests> {
                    let mut buf = vec![0u8; BLOCK];
                    let mut out = Vec::new();
                    for i in (t..blocks).step_by(threads) {
                        let offset = (i * BLOCK) as u64;
                        let n = usize::try_from((len - offset).min(BLOCK as u64))?;
                        file.read_exact_at(&mut buf[..n], offset)?;
                        out.push((i, Sha256::digest(&buf[..n]).into()));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("hash thread panicked")))
            })
            .collect()
    });
    let mut all = vec![[0u8; 32]; blocks];
    for part in digests {
        for (i, d) in part? {
            all[i] = d;
        }
    }
    let mut overall = Sha256::new();
    for d in &all {
        overall.update(d);
    }
    Ok((
        hex::encode(overall.finalize()),
        started.elapsed().as_secs_f64(),
    ))
}

/// Our content hash ([`ContentHasher`], which hashes full blocks on one thread per core) over
/// a file read in 4 MiB pieces, as Ferry hashes. Returns the hash and the seconds it took.
pub fn sequential_content_hash(path: &Path) -> anyhow::Result<(String, f64)> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut hasher = ContentHasher::new();
    let mut buf = vec![0u8; ferry_core::content_hash::BLOCK_SIZE];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((hasher.finish(), started.elapsed().as_secs_f64()))
}

/// Seconds `openssl dgst -sha256` takes over `paths` (one process); `None` when openssl is
/// not installed or fails.
pub fn openssl_sha256_secs(paths: &[PathBuf]) -> Option<f64> {
    let started = Instant::now();
    let output = std::process::Command::new("openssl")
        .arg("dgst")
        .arg("-sha256")
        .args(paths)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| started.elapsed().as_secs_f64())
}

/// The best (shortest) of `runs` timings of `f`.
pub fn best_of<T>(
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<(T, f64)>,
) -> anyhow::Result<(T, f64)> {
    let mut best: Option<(T, f64)> = None;
    for _ in 0..runs.max(1) {
        let (value, secs) = f()?;
        if best.as_ref().is_none_or(|(_, b)| secs < *b) {
            best = Some((value, secs));
        }
    }
    best.ok_or_else(|| anyhow!("no run"))
}

/// A deterministic pseudo-random byte generator (xorshift64*), fast enough to fill test files.
pub(crate) struct Noise(u64);

impl Noise {
    pub(crate) fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }
}

/// Shared state of one bench run.
pub(crate) struct Ctx {
    pub(crate) options: BenchOptions,
    pub(crate) model: FaultModel,
    /// The large test files, made once for scenarios 2 and 5 and deleted at the end.
    pub(crate) files: Option<large_files::TestFiles>,
}

impl Ctx {
    /// A fresh emulator (own temp dir) with the run's model.
    pub(crate) async fn emulator(&self) -> anyhow::Result<(tempfile::TempDir, RunningEmulator)> {
        let dir = tempfile::Builder::new()
            .prefix("ferry-bench-emu-")
            .tempdir_in(&self.options.work_dir)
            .with_context(|| format!("temp dir in {}", self.options.work_dir.display()))?;
        let mut config = EmulatorConfig::new(dir.path().join("emulator"));
        config.model = self.model.clone();
        let emulator = RunningEmulator::start(config)
            .await
            .context("cannot start the emulator")?;
        Ok((dir, emulator))
    }

    /// An emulator plus a Ferry app connected to it as `dropbox`, root `/Bench`.
    pub(crate) async fn stack(&self) -> anyhow::Result<Stack> {
        self.stack_with(|_| {}).await
    }

    /// [`Ctx::stack`], with Ferry's configuration changed by `tweak`.
    pub(crate) async fn stack_with(
        &self,
        tweak: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Stack> {
        let (dir, emulator) = self.emulator().await?;
        let mut config = Config {
            data_dir: dir.path().join("ferry"),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_attachment_mib: 2048,
            custom_dropbox_hosts: true,
            ..Config::default()
        };
        tweak(&mut config);
        let app = RunningApp::start(&config).await?;
        let api = ApiClient::new(app.base_url(), app.api_key().clone());
        api.put_json(
            "/v1/connections/dropbox",
            &json!({"token": emulator.token(), "root": "/Bench", "base_url": emulator.base_url()}),
        )
        .await?;
        let human = client_for(&emulator)?;
        Ok(Stack {
            app,
            api,
            human,
            emulator,
            _dir: dir,
        })
    }
}

/// A Dropbox client for an emulator.
pub(crate) fn client_for(emulator: &RunningEmulator) -> anyhow::Result<DropboxClient> {
    Ok(DropboxClient::new(
        Endpoints::single(&emulator.base_url())?,
        &Secret::new(emulator.token()),
    )?)
}

/// Emulator + Ferry, torn down in order.
pub(crate) struct Stack {
    pub(crate) app: RunningApp,
    pub(crate) api: ApiClient,
    /// A person (or another program) working in the same Dropbox.
    pub(crate) human: DropboxClient,
    pub(crate) emulator: RunningEmulator,
    _dir: tempfile::TempDir,
}

impl Stack {
    pub(crate) async fn shutdown(self) {
        self.app.shutdown().await;
        self.emulator.shutdown().await;
    }
}

/// Runs the selected scenarios, prints every figure beside its baseline, writes the JSON
/// report if asked, and returns the figures.
pub async fn run(options: BenchOptions) -> anyhow::Result<Vec<Figure>> {
    std::fs::create_dir_all(&options.work_dir)
        .with_context(|| format!("cannot create {}", options.work_dir.display()))?;
    let mut model = FaultModel::default();
    for setting in &options.model_settings {
        model = model
            .with_setting(setting)
            .map_err(|e| anyhow!("--set {setting}: {e}"))?;
    }
    let selected: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| options.only.is_empty() || options.only.contains(s))
        .collect();
    println!(
        "ferry bench{} — emulator on 127.0.0.1, {} model{}; {} core(s)",
        if options.quick { " --quick" } else { "" },
        if options.model_settings.is_empty() {
            "default contention"
        } else {
            "MODIFIED contention"
        },
        if options.model_settings.is_empty() {
            String::new()
        } else {
            format!(" ({})", options.model_settings.join(", "))
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut ctx = Ctx {
        options,
        model,
        files: None,
    };
    let mut figures = Vec::new();
    for scenario in selected {
        let started = Instant::now();
        let result = match scenario {
            Scenario::SmallFiles => small_files::run(&mut ctx).await,
            Scenario::LargeFiles => large_files::run(&mut ctx).await,
            Scenario::Latency => latency::run(&mut ctx).await,
            Scenario::Scale => scale::run(&mut ctx).await,
            Scenario::ContentHash => content_hash::run(&mut ctx).await,
            Scenario::Processes => processes::run(&mut ctx).await,
            Scenario::ManyRecords => many_records::run(&mut ctx).await,
        };
        let got = result.with_context(|| format!("scenario {}", scenario.name()))?;
        println!(
            "  ({} done in {:.1} s)\n",
            scenario.name(),
            started.elapsed().as_secs_f64()
        );
        figures.extend(got);
    }
    // Deletes the large test files.
    drop(ctx.files.take());
    println!("Summary:");
    for figure in &figures {
        figure.print();
    }
    let missed: Vec<&str> = figures
        .iter()
        .filter(|f| f.goal_met == Some(false))
        .map(|f| f.name.as_str())
        .collect();
    println!(
        "{} figures; goals missed: {}",
        figures.len(),
        if missed.is_empty() {
            "none".to_owned()
        } else {
            missed.join(", ")
        }
    );
    if let Some(path) = &ctx.options.json {
        let text = serde_json::to_string_pretty(&figures)?;
        std::fs::write(path, text + "\n")
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        println!("report written to {}", path.display());
    }
    Ok(figures)
}

/// Prints a scenario's heading.
pub(crate) fn heading(text: &str) {
    println!("== {text}");
}

/// Prints figures as they are measured.
pub(crate) fn show(figures: &[Figure]) {
    for f in figures {
        f.print();
    }
}

/// Fails with `what` when `deadline` has passed.
pub(crate) fn check_deadline(deadline: Instant, what: &str) -> anyhow::Result<()> {
    if Instant::now() > deadline {
        bail!("timed out: {what}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&samples, 50.0), 50.0);
        assert_eq!(percentile(&samples, 95.0), 95.0);
        assert_eq!(percentile(&samples, 99.0), 99.0);
        assert_eq!(percentile(&[3.0], 99.0), 3.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn figures_judge_their_goals() {
        let f = Figure::new(
            "x",
            30.0,
            "files/s",
            Some(("b", 10.0)),
            Some(Goal::RatioAtLeast(10.0)),
        );
        assert_eq!(f.ratio, Some(3.0));
        assert_eq!(f.goal_met(), Some(false));
        let g = Figure::new("y", 50.0, "ms", None, Some(Goal::Below(100.0)));
        assert_eq!(g.goal_met(), Some(true));
        assert_eq!(g.goal.as_deref(), Some("< 100 ms"));
    }

    #[test]
    fn parallel_hash_matches_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data = Noise::new(1).bytes(ferry_core::content_hash::BLOCK_SIZE * 2 + 12345);
        std::fs::write(&path, &data).unwrap();
        let (a, _) = parallel_content_hash(&path).unwrap();
        let (b, _) = sequential_content_hash(&path).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, ferry_core::content_hash::content_hash(&data));
    }

    #[test]
    fn scenario_names_parse() {
        assert_eq!("small-files".parse::<Scenario>(), Ok(Scenario::SmallFiles));
        assert!("nope".parse::<Scenario>().is_err());
    }
}
