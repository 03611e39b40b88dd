//! The `ferry` command: `demo`, `serve`, `config`, the admin commands (`status`, `records`,
//! `rules`, `log`, `connections`, `dead`), `completions`, `simulate`, `bench`, `emulator`.
//! Thin: parses flags and calls the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ferry::config::Config;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "A first-class Dropbox integration for any business application"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the print-shop demo on the built-in Dropbox emulator.
    Demo {
        /// Exit when synced (0 if every file synced) instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
        /// Keep state in this directory instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Port for the Ferry API (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Runs the Ferry service (REST API + sync workers).
    ///
    /// Settings come from defaults, the config file, `FERRY_<KEY>` environment variables and
    /// these flags, in that order (docs/configuration.md lists every key).
    Serve {
        #[command(flatten)]
        settings: Settings,
        /// Log lines as text or as JSON objects (one per line).
        #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// A running Ferry's queue, files and connections.
    Status {
        #[command(flatten)]
        remote: Remote,
    },
    /// Records: list, show, sync.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Rules: list, apply from a file, preview.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// The sync log: recent entries, follow, export.
    Log {
        #[command(flatten)]
        remote: Remote,
        /// Only this record, kind/key.
        #[arg(long)]
        record: Option<String>,
        /// Only this connection.
        #[arg(long)]
        connection: Option<String>,
        /// Only this action (upload, delete, import, ...).
        #[arg(long)]
        action: Option<String>,
        /// Only this outcome (ok, failed, skipped).
        #[arg(long)]
        outcome: Option<String>,
        /// Only entries at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// How many of the newest entries to show.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
        /// Keep printing new entries as they are logged.
        #[arg(long, short)]
        follow: bool,
        /// Stream the whole selection as csv or jsonl instead.
        #[arg(long, value_name = "FORMAT", value_parser = ["csv", "jsonl"], conflicts_with = "follow")]
        export: Option<String>,
    },
    /// Console admins: set a password, print a one-time sign-in link.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Dropbox connections.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Dead-lettered records; `--requeue` runs them again.
    Dead {
        #[command(flatten)]
        remote: Remote,
        /// Put every dead letter back in the queue.
        #[arg(long)]
        requeue: bool,
        /// With --requeue: wait until they ran.
        #[arg(long, requires = "requeue")]
        wait: bool,
    },
    /// Backups of Ferry's database to Dropbox (`[backup]` in the config).
    Backup {
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// Restores a backup into a new data directory (then start `ferry serve` on it, with the
    /// same token key).
    Restore {
        /// The data directory to restore into (must not hold a database yet).
        #[arg(long = "to", value_name = "DIR")]
        to: PathBuf,
        /// A backup file on this machine (`ferry-….db.zst`).
        #[arg(
            long,
            value_name = "FILE",
            conflicts_with = "backup",
            required_unless_present = "backup"
        )]
        file: Option<PathBuf>,
        /// A backup's name, downloaded through a running Ferry (`ferry backup list`).
        #[arg(long, value_name = "NAME")]
        backup: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Runs the deterministic simulation: random edits on both sides with injected faults,
    /// then checks that everything converged and nothing was lost.
    Simulate {
        /// How many seeds to run (0..N).
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// Run (replay) only this seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Random operations per seed.
        #[arg(long, default_value_t = 60)]
        steps: u32,
        /// Seeds run at the same time.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
        /// Run on PostgreSQL (a throwaway server the run starts, one database per seed) with
        /// two engines sharing it, as two processes would.
        #[arg(long)]
        postgres: bool,
        /// With --seed: write the seed's transcript (its trace, every Dropbox call with the
        /// fault it met, the sync log without times) to this file. Two runs of one seed write
        /// the same bytes.
        #[arg(long, value_name = "FILE", requires = "seed")]
        transcript: Option<PathBuf>,
    },
    /// Runs the benchmarks (docs/benchmarks.md): every figure beside a baseline measured in
    /// the same run, against the in-process emulator with its default contention model.
    Bench {
        /// Small sizes (seconds): proves every scenario runs; the figures mean little.
        #[arg(long)]
        quick: bool,
        /// Write the report (a JSON list of figures) to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Run only this scenario (repeatable): small-files, large-files, latency, scale,
        /// content-hash.
        #[arg(long, value_name = "SCENARIO")]
        only: Vec<ferry::bench::Scenario>,
        /// Where test files and temporary state go (the large-file scenario needs ~5 GiB).
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Records in the scale scenario (10 files each; default 100000, 200 with --quick).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
        scale_records: Option<u64>,
        /// Records in the many-records scenario (one file each; default 10000, 60 with
        /// --quick).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        many_records: Option<u64>,
        /// Seconds the engine's full reconciliation may take before it is reported unfinished.
        #[arg(long, value_name = "SECS", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..))]
        scale_timeout: u64,
        /// Change an emulator knob for exploration (e.g. `--set latency_ms=50`); the
        /// documented figures use none.
        #[arg(long = "set", value_name = "KNOB=VALUE")]
        settings: Vec<String>,
        /// Internal: run one part of the scale scenario in this (child) process.
        #[arg(long, hide = true, value_name = "MODE")]
        scale_child: Option<String>,
        /// Internal: the scale scenario's directory.
        #[arg(long, hide = true, value_name = "DIR")]
        scale_dir: Option<PathBuf>,
        /// Internal: be one side of the large-file scenario's physical baseline, writing
        /// standard input to this file.
        #[arg(long, hide = true, value_name = "FILE")]
        physical_side: Option<PathBuf>,
        /// Internal: that side also passes its input on to standard output.
        #[arg(long, hide = true)]
        physical_forward: bool,
    },
    /// Runs the Dropbox API emulator alone.
    Emulator {
        /// Port (0 = any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Where the emulated Dropbox keeps its state.
        #[arg(long)]
        data_dir: PathBuf,
        /// Accept this bearer token instead of a random one.
        #[arg(long, env = "FERRY_EMULATOR_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Serve HTTPS with a self-signed certificate (written to <data dir>/tls/cert.pem).
        #[arg(long)]
        tls: bool,
        /// A TOML file: quota_bytes, [model] knobs, [[accounts]] (see docs/emulator.md).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Set a contention/fault knob, e.g. `--set lock_hold_ms=20 --set rate_limit=false`.
        #[arg(long = "set", value_name = "KNOB=VALUE")]
        settings: Vec<String>,
    },
}

/// The settings `serve` and `config check` share: the file, then the flags that override it.
#[derive(clap::Args)]
struct Settings {
    /// TOML config file (see docs/configuration.md).
    #[arg(long, env = "FERRY_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (database, blobs, keys).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// API listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Database URL (default sqlite in the data dir).
    #[arg(long)]
    database_url: Option<String>,
    /// API key (default: generated into <data dir>/api-key).
    #[arg(long)]
    api_key: Option<String>,
    /// Token encryption key, 64 hex digits (default: <data dir>/secret.key).
    #[arg(long)]
    secret_key: Option<String>,
    /// Records synced in parallel.
    #[arg(long)]
    workers: Option<usize>,
    /// Any other key, as KEY=VALUE (repeatable), e.g. `--set max_connections=4096`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl Settings {
    /// The layered configuration: defaults, file, environment, flags.
    fn load(&self) -> anyhow::Result<Config> {
        let mut flags: Vec<(&str, String)> = Vec::new();
        let named = [
            (
                "data_dir",
                self.data_dir.as_ref().map(|v| v.display().to_string()),
            ),
            ("listen", self.listen.map(|v| v.to_string())),
            ("database_url", self.database_url.clone()),
            ("api_key", self.api_key.clone()),
            ("secret_key", self.secret_key.clone()),
            ("workers", self.workers.map(|v| v.to_string())),
        ];
        flags.extend(named.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        for pair in &self.set {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--set {pair:?}: write KEY=VALUE"))?;
            let key = ferry::config::KEYS
                .iter()
                .map(|(k, _)| *k)
                .find(|k| *k == key.trim())
                .with_context(|| {
                    format!("--set {pair:?}: no configuration key {:?}", key.trim())
                })?;
            flags.push((key, value.to_owned()));
        }
        Config::load_layered(self.config.as_deref(), std::env::vars(), &flags)
    }
}

/// Where the running Ferry is, and how to talk to it.
#[derive(clap::Args)]
struct Remote {
    /// The Ferry API's base URL.
    #[arg(long, env = "FERRY_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The API key (default: read from <data dir>/api-key).
    #[arg(long, env = "FERRY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The data directory whose api-key file to read when no key is given.
    #[arg(long, env = "FERRY_DATA_DIR", default_value = "ferry-data")]
    data_dir: PathBuf,
    /// Print the API's JSON instead of tables.
    #[arg(long)]
    json: bool,
}

impl Remote {
    fn admin(&self) -> anyhow::Result<ferry::admin::Admin> {
        let key = match &self.api_key {
            Some(key) => key.clone(),
            None => {
                let path = self.data_dir.join("api-key");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no API key: give --api-key or FERRY_API_KEY, or --data-dir with an api-key file ({} is not readable)",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let api = ferry::api_client::ApiClient::new(
            self.url.trim_end_matches('/'),
            ferry_core::secret::Secret::new(key),
        );
        Ok(ferry::admin::Admin::new(api, self.json))
    }
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Records with their sync summary.
    List {
        #[command(flatten)]
        remote: Remote,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only keys containing this text.
        #[arg(long)]
        q: Option<String>,
        /// Only records in this state.
        #[arg(long, value_parser = ["synced", "pending", "failed", "dead"])]
        state: Option<String>,
        /// Every page, not only the first 1000 records.
        #[arg(long)]
        all: bool,
    },
    /// A record, its folders and its files in Dropbox.
    Show {
        #[command(flatten)]
        remote: Remote,
        /// Record kind.
        kind: String,
        /// Record key.
        key: String,
    },
    /// A sync pass for a record now.
    Sync {
        #[command(flatten)]
        remote: Remote,
        /// Record kind.
        kind: String,
        /// Record key.
        key: String,
        /// Wait until the pass ran; exit non-zero if a file is not synced.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Every rule.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Checks and stores the rules of a TOML or JSON file ([rules.<name>] tables).
    Apply {
        #[command(flatten)]
        remote: Remote,
        /// The rules file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Only check them.
        #[arg(long)]
        dry_run: bool,
        /// Wait until the back-fill is done.
        #[arg(long)]
        wait: bool,
    },
    /// What the rules of a file would do for existing records; stores nothing.
    Preview {
        #[command(flatten)]
        remote: Remote,
        /// The rules file.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Every connection and its state.
    List {
        #[command(flatten)]
        remote: Remote,
    },
    /// Connects a Dropbox account through Dropbox's own page: prints the link to open and
    /// choose Allow on (needs `dropbox_app_key` on the server).
    Connect {
        #[command(flatten)]
        remote: Remote,
        /// The connection's name.
        name: String,
        /// Its root folder (`/Folder`; empty: the whole Dropbox or app folder).
        #[arg(long, default_value = "")]
        root: String,
        /// One base URL for all Dropbox hosts (an emulator).
        #[arg(long)]
        base_url: Option<String>,
        /// `home`, `team` (the team space) or a namespace id.
        #[arg(long)]
        path_root: Option<String>,
        /// With a team app: the member to act as (`dbmid:…`).
        #[arg(long)]
        select_user: Option<String>,
        /// Wait until the account is connected (at most while the link works).
        #[arg(long)]
        wait: bool,
    },
    /// Disconnects: every file only Dropbox holds comes back into Ferry first (nothing is
    /// deleted in Dropbox), then the connection goes.
    Remove {
        #[command(flatten)]
        remote: Remote,
        /// The connection.
        name: String,
        /// Wait until it is gone.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Creates a console admin or sets a new password, read from standard input (one line;
    /// hidden when typed at a terminal). A new password ends the admin's sessions.
    SetPassword {
        #[command(flatten)]
        remote: Remote,
        /// The admin's name.
        #[arg(long, default_value = "admin")]
        name: String,
    },
    /// Prints a link that signs the admin in to the console once, within ten minutes.
    LoginLink {
        #[command(flatten)]
        remote: Remote,
        /// The admin's name.
        #[arg(long, default_value = "admin")]
        name: String,
    },
}

#[derive(Subcommand)]
enum BackupCommand {
    /// A verified backup now.
    Now {
        #[command(flatten)]
        remote: Remote,
    },
    /// The backups in Dropbox, newest first.
    List {
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Loads the configuration as `serve` would, checks it, and prints the effective
    /// settings (secrets redacted). Exits non-zero when it is invalid.
    Check {
        #[command(flatten)]
        settings: Settings,
    },
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn init_json_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Status { remote } => remote.admin()?.status().await.map(|()| true),
        Command::Records { command } => match command {
            RecordsCommand::List {
                remote,
                kind,
                q,
                state,
                all,
            } => remote
                .admin()?
                .records_list(kind, q, state, all)
                .await
                .map(|()| true),
            RecordsCommand::Show { remote, kind, key } => remote
                .admin()?
                .records_show(&kind, &key)
                .await
                .map(|()| true),
            RecordsCommand::Sync {
                remote,
                kind,
                key,
                wait,
            } => remote.admin()?.records_sync(&kind, &key, wait).await,
        },
        Command::Rules { command } => match command {
            RulesCommand::List { remote } => remote.admin()?.rules_list().await.map(|()| true),
            RulesCommand::Apply {
                remote,
                file,
                dry_run,
                wait,
            } => remote
                .admin()?
                .rules_apply(&file, dry_run, wait)
                .await
                .map(|()| true),
            RulesCommand::Preview { remote, file } => {
                remote.admin()?.rules_preview(&file).await.map(|()| true)
            }
        },
        Command::Log {
            remote,
            record,
            connection,
            action,
            outcome,
            since,
            limit,
            follow,
            export,
        } => remote
            .admin()?
            .log(
                ferry::admin::LogFilters {
                    connection,
                    record,
                    action,
                    outcome,
                    since,
                    limit,
                },
                follow,
                export,
            )
            .await
            .map(|()| true),
        Command::Connections { command } => match command {
            ConnectionsCommand::List { remote } => {
                remote.admin()?.connections_list().await.map(|()| true)
            }
            ConnectionsCommand::Connect {
                remote,
                name,
                root,
                base_url,
                path_root,
                select_user,
                wait,
            } => {
                remote
                    .admin()?
                    .connections_connect(
                        &name,
                        serde_json::json!({"root": root, "base_url": base_url,
                                           "path_root": path_root, "select_user": select_user}),
                        wait,
                    )
                    .await
            }
            ConnectionsCommand::Remove { remote, name, wait } => remote
                .admin()?
                .connections_remove(&name, wait)
                .await
                .map(|()| true),
        },
        Command::Dead {
            remote,
            requeue,
            wait,
        } => remote.admin()?.dead(requeue, wait).await.map(|()| true),
        Command::Admin { command } => match command {
            AdminCommand::SetPassword { remote, name } => {
                let password = read_password(&name)?;
                remote
                    .admin()?
                    .set_admin_password(&name, &password)
                    .await
                    .map(|()| true)
            }
            AdminCommand::LoginLink { remote, name } => {
                let url = remote.admin()?.admin_login_link(&name).await?;
                println!("{url}");
                Ok(true)
            }
        },
        Command::Backup { command } => match command {
            BackupCommand::Now { remote } => remote.admin()?.backup_now().await.map(|()| true),
            BackupCommand::List { remote } => remote.admin()?.backup_list().await.map(|()| true),
        },
        Command::Restore {
            to,
            file,
            backup,
            remote,
        } => {
            let data = match (file, backup) {
                (Some(file), _) => std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
                (None, Some(name)) => remote.admin()?.backup_download(&name).await?,
                (None, None) => anyhow::bail!("give --file or --backup"),
            };
            let db = ferry::admin::restore(data, &to).await?;
            println!("restored into {}", db.display());
            if !to.join("secret.key").exists() {
                println!(
                    "its connections' tokens need the token key of the Ferry it came from: copy its secret.key into {} or set secret_key",
                    to.display()
                );
            }
            Ok(true)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
            Ok(true)
        }
        Command::Config {
            command: ConfigCommand::Check { settings },
        } => {
            let cfg = settings.load()?;
            print!("{}", cfg.to_redacted_toml());
            Ok(true)
        }
        Command::Demo {
            once,
            data_dir,
            port,
        } => {
            init_tracing("warn");
            ferry::demo::run(ferry::demo::DemoOptions {
                once,
                data_dir,
                port,
            })
            .await
        }
        Command::Serve {
            settings,
            log_format,
        } => {
            match log_format {
                LogFormat::Text => init_tracing("info"),
                LogFormat::Json => init_json_tracing("info"),
            }
            let cfg = settings.load()?;
            // Files this process creates (database, WAL, blobs, keys) are its owner's only.
            #[cfg(unix)]
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
            let app = ferry::app::RunningApp::start(&cfg).await?;
            println!(
                "Ferry API on {} (data in {})",
                app.base_url(),
                cfg.data_dir.display()
            );
            if cfg.api_key.is_none() {
                println!("API key in {}", cfg.data_dir.join("api-key").display());
            }
            stop_signal().await?;
            tracing::info!("stopping: finishing running passes");
            app.shutdown().await;
            Ok(true)
        }
        Command::Simulate {
            seeds,
            seed,
            steps,
            parallel,
            postgres,
            transcript,
        } => {
            init_tracing("error");
            let backend = if postgres {
                ferry::simulate::SimBackend::Postgres
            } else {
                ferry::simulate::SimBackend::Sqlite
            };
            if let (Some(file), Some(seed)) = (transcript, seed) {
                let run = ferry::simulate::replay(seed, steps, backend).await;
                std::fs::write(&file, &run.transcript)
                    .with_context(|| format!("writing {}", file.display()))?;
                println!(
                    "seed {seed}: transcript of {} lines in {}",
                    run.transcript.lines().count(),
                    file.display()
                );
                if let Err(e) = &run.outcome {
                    println!("seed {seed} FAILED: {e:#}");
                }
                return Ok(run.outcome.is_ok());
            }
            let list: Vec<u64> = match seed {
                Some(s) => vec![s],
                None => (0..seeds).collect(),
            };
            let started = std::time::Instant::now();
            // In chunks, so a long run shows progress (and partial results if stopped).
            let mut report = ferry::simulate::Report::default();
            for chunk in list.chunks(1000) {
                let part =
                    ferry::simulate::run_seeds(chunk.to_vec(), steps, parallel, backend).await;
                report.merge(part);
                if list.len() > 1000 {
                    println!(
                        "... {} seeds, {} failed, {:.0} s",
                        report.seeds,
                        report.failures.len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            let t = &report.totals;
            println!(
                "{} seeds in {:.1} s: {} app ops, {} Dropbox ops, {} engine steps, {} Dropbox faults and {} store faults injected, {} crashes; {} root moves, {} shared links made, {} files offloaded at the end, {} brought back; {} steps by a second engine; {} folders read from the mirror, {} listed",
                report.seeds,
                started.elapsed().as_secs_f64(),
                t.app_ops,
                t.dropbox_ops,
                t.engine_steps,
                t.faults,
                t.store_faults,
                t.crashes,
                t.root_moves,
                t.links,
                t.offloaded,
                t.brought_back,
                t.second_engine_steps,
                t.mirror_reads,
                t.listings
            );
            for (seed, failure) in &report.failures {
                let on = if postgres { " --postgres" } else { "" };
                println!(
                    "seed {seed} FAILED (replay: ferry simulate{on} --seed {seed}): {failure}"
                );
            }
            println!(
                "{} passed, {} failed",
                report.seeds - report.failures.len() as u64,
                report.failures.len()
            );
            Ok(report.failures.is_empty())
        }
        Command::Bench {
            quick,
            json,
            only,
            work_dir,
            scale_records,
            many_records,
            scale_timeout,
            settings,
            scale_child,
            scale_dir,
            physical_side,
            physical_forward,
        } => {
            init_tracing("error");
            if let Some(out) = physical_side {
                ferry::bench::run_physical_side(&out, physical_forward)?;
                return Ok(true);
            }
            let timeout = std::time::Duration::from_secs(scale_timeout);
            if let Some(mode) = scale_child {
                let dir = scale_dir.context("--scale-child needs --scale-dir")?;
                ferry::bench::run_scale_child(ferry::bench::ScaleChildArgs { mode, dir, timeout })
                    .await?;
                return Ok(true);
            }
            let mut options = ferry::bench::BenchOptions::new();
            options.quick = quick;
            options.json = json;
            options.only = only;
            if let Some(dir) = work_dir {
                options.work_dir = dir;
            }
            options.scale_records = scale_records
                .map(usize::try_from)
                .transpose()
                .context("--scale-records is too large")?;
            options.many_records = many_records
                .map(usize::try_from)
                .transpose()
                .context("--many-records is too large")?;
            options.scale_timeout = timeout;
            options.model_settings = settings;
            ferry::bench::run(options).await?;
            Ok(true)
        }
        Command::Emulator {
            port,
            host,
            data_dir,
            token,
            tls,
            config: config_file,
            settings,
        } => {
            init_tracing("info");
            let mut config = ferry_emulator::EmulatorConfig::new(data_dir.clone());
            config.bind = SocketAddr::new(host, port);
            config.token = token;
            config.tls = tls;
            if let Some(file) = &config_file {
                config.apply_file(file)?;
            }
            for setting in &settings {
                config.model = config
                    .model
                    .with_setting(setting)
                    .map_err(|e| anyhow::anyhow!("--set {setting}: {e}"))?;
            }
            let emulator = ferry_emulator::RunningEmulator::start(config).await?;
            print!("{}", emulator.banner());
            tokio::signal::ctrl_c()
                .await
                .context("cannot wait for Ctrl-C")?;
            emulator.shutdown().await;
            Ok(true)
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (what service managers and container runtimes send).
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot wait for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}

/// One line from standard input; at a terminal, asked for with the typing hidden.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let saved = if terminal {
        eprint!("New console password for {name}: ");
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(mut quiet) = saved.clone() {
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        eprintln!();
    }
    read.context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
