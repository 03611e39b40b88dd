//! Verified backups of Ferry's own database to Dropbox. A backup is a consistent snapshot
//! (the store's `snapshot_to`), compressed with zstd, uploaded (Dropbox checks the content
//! hash Ferry sends, and Ferry the one Dropbox answers), and restored once into a scratch
//! file that must open and pass its integrity check. Only then are older backups beyond the
//! retention count deleted. Each run is logged (`backup` in the sync log).

use crate::{Engine, EngineError};
use ferry_dropbox::{DropboxError, Entry, WriteMode};
use ferry_store::LogEntry;
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// Where backups go and how many stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// The connection they are uploaded to.
    pub connection: String,
    /// Their folder, relative to the connection's root.
    pub folder: String,
    /// How many to keep (the newest); older ones are deleted after a verified backup.
    pub keep: usize,
    /// Backups older than this are deleted too (never the newest one).
    pub max_age: Option<Duration>,
    /// How often to make one on a schedule (`None`: only when asked)…
    pub every: Option<Duration>,
    /// …or when: a cron expression (UTC), checked by [`parse_cron`].
    pub cron: Option<String>,
}

/// A cron schedule, five fields (`min hour day month weekday`, as crontab) or six (with
/// seconds first); times are UTC.
pub fn parse_cron(expr: &str) -> Result<cron::Schedule, String> {
    let fields = expr.split_whitespace().count();
    let full = match fields {
        5 => format!("0 {expr}"),
        6 | 7 => expr.to_owned(),
        _ => {
            return Err(format!(
                "cron expression {expr:?} must have 5 fields (min hour day month weekday)"
            ));
        }
    };
    full.parse::<cron::Schedule>()
        .map_err(|e| format!("cron expression {expr:?}: {e}"))
}

impl BackupSettings {
    /// How long until the next scheduled backup, if there is a schedule.
    fn next_wait(&self) -> Option<Duration> {
        if let Some(expr) = &self.cron {
            let schedule = parse_cron(expr).ok()?;
            let next = schedule.upcoming(chrono::Utc).next()?;
            return (next - chrono::Utc::now())
                .to_std()
                .ok()
                .or(Some(Duration::ZERO));
        }
        self.every
    }
}

/// One backup in Dropbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackupEntry {
    /// File name (`ferry-20261201T120000Z.db.zst`; the names sort by time).
    pub name: String,
    /// Its Dropbox path.
    pub path: String,
    /// Size in bytes (compressed).
    pub size: u64,
    /// Dropbox content hash.
    pub content_hash: Option<String>,
}

/// What a backup run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackupReport {
    /// The new backup.
    pub backup: BackupEntry,
    /// Size of the database snapshot before compression.
    pub database_bytes: u64,
    /// Dropbox's content hash matched, and the uploaded bytes restored into a database that
    /// passed its integrity check.
    pub verified: bool,
    /// Older backups deleted to keep `keep`.
    pub pruned: Vec<String>,
    /// How long it took.
    pub took_ms: u64,
}

/// All backups, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub backups: Vec<BackupEntry>,
}

const PREFIX: &str = "ferry-";
const SUFFIX: &str = ".db.zst";

/// When a backup was made, from its name.
fn backup_time(name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let stamp = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S%.3fZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Whether a file name is one of Ferry's backups (nothing else in the folder is touched).
fn is_backup_name(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(SUFFIX)
}

fn failed(what: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("backup failed while {what}: {e}"))
}

impl Engine {
    fn backup_folder(root: &str, settings: &BackupSettings) -> String {
        let folder = settings.folder.trim_matches('/');
        if folder.is_empty() {
            root.to_owned()
        } else {
            format!("{root}/{folder}")
        }
    }

    /// Makes, verifies and uploads a backup now, then prunes old ones. `scratch` is a
    /// directory for the snapshot and the test restore (cleaned up after).
    pub async fn backup_now(
        &self,
        settings: &BackupSettings,
        scratch: &Path,
    ) -> Result<BackupReport, EngineError> {
        let started = Instant::now();
        let result = self.backup_run(settings, scratch, started).await;
        let (outcome, path, bytes, error) = match &result {
            Ok(r) => ("ok", r.backup.path.clone(), r.backup.size, None),
            Err(e) => ("failed", settings.folder.clone(), 0, Some(e.to_string())),
        };
        let _ = self
            .store
            .log(&LogEntry {
                id: 0,
                at: 0,
                connection: settings.connection.clone(),
                binding_id: None,
                record_id: 0,
                path,
                action: "backup".into(),
                outcome: outcome.into(),
                bytes,
                duration_ms: started.elapsed().as_millis() as u64,
                error,
            })
            .await;
        result
    }

    async fn backup_run(
        &self,
        settings: &BackupSettings,
        scratch: &Path,
        started: Instant,
    ) -> Result<BackupReport, EngineError> {
        let (client, root) = self.client(&settings.connection).await?;
        let work = tempfile::Builder::new()
            .prefix("backup-")
            .tempdir_in(scratch)
            .map_err(|e| failed("making a scratch directory", e))?;
        let snapshot = work.path().join("snapshot.db");
        self.store.snapshot_to(&snapshot).await?;
        let database_bytes = std::fs::metadata(&snapshot)
            .map_err(|e| failed("reading the snapshot", e))?
            .len();
        let compressed = {
            let snapshot = snapshot.clone();
            tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&snapshot)?;
                zstd::stream::encode_all(file, 3)
            })
            .await
            .map_err(|e| failed("compressing", e))?
            .map_err(|e| failed("compressing", e))
            .map(bytes::Bytes::from)?
        };
        // The test restore: what is uploaded must come back as a sound copy.
        let restored = work.path().join("restore-test");
        decompress_backup(compressed.clone(), &restored).await?;
        self.store.verify_snapshot(&restored).await?;
        let name = format!(
            "{PREFIX}{}{SUFFIX}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
        );
        let folder = Self::backup_folder(&root, settings);
        let path = format!("{folder}/{name}");
        // `upload` sends the content hash and checks the one Dropbox answers.
        let info = client.upload(&path, compressed, &WriteMode::Add).await?;
        let pruned = self.prune_backups(&client, &folder, settings).await?;
        Ok(BackupReport {
            backup: BackupEntry {
                name,
                path: info.path_display,
                size: info.size,
                content_hash: info.content_hash,
            },
            database_bytes,
            verified: true,
            pruned,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Deletes Ferry's backups in `folder` beyond the newest `keep`, and those older than
    /// `max_age` (never the newest); returns their names.
    async fn prune_backups(
        &self,
        client: &ferry_dropbox::DropboxClient,
        folder: &str,
        settings: &BackupSettings,
    ) -> Result<Vec<String>, EngineError> {
        let backups = list_backups(client, folder).await?;
        let now = chrono::Utc::now();
        let too_old = |name: &str| {
            settings.max_age.is_some_and(|max| {
                backup_time(name).is_some_and(|at| (now - at).to_std().is_ok_and(|age| age > max))
            })
        };
        let mut pruned = Vec::new();
        for (i, old) in backups.into_iter().enumerate() {
            if i == 0 || (i < settings.keep && !too_old(&old.name)) {
                continue;
            }
            match client.delete(&old.path, None).await {
                Ok(_) | Err(DropboxError::NotFound(_)) => pruned.push(old.name),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(pruned)
    }

    /// The backups in Dropbox, newest first.
    pub async fn backups(&self, settings: &BackupSettings) -> Result<BackupList, EngineError> {
        let (client, root) = self.client(&settings.connection).await?;
        let folder = Self::backup_folder(&root, settings);
        Ok(BackupList {
            backups: list_backups(&client, &folder).await?,
        })
    }

    /// One backup's content, streamed from Dropbox (for `ferry restore`).
    pub async fn backup_content(
        &self,
        settings: &BackupSettings,
        name: &str,
    ) -> Result<(u64, Box<dyn futures::AsyncRead + Send + Unpin>), EngineError> {
        if !is_backup_name(name) || name.contains('/') {
            return Err(EngineError::NotFound(format!("no backup named {name:?}")));
        }
        let (client, root) = self.client(&settings.connection).await?;
        let path = format!("{}/{name}", Self::backup_folder(&root, settings));
        match client.download_stream(&path).await {
            Ok((info, body)) => Ok((info.size, Box::new(body))),
            Err(DropboxError::NotFound(_)) => {
                Err(EngineError::NotFound(format!("no backup named {name:?}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs backups on `settings`' schedule (interval or cron) until `shutdown` turns true; `None`
    /// without a schedule. A failed run is logged
    /// (and in the sync log) and tried again at the next time.
    pub fn spawn_backups(
        self: &std::sync::Arc<Self>,
        settings: BackupSettings,
        scratch: std::path::PathBuf,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        settings.next_wait()?;
        let engine = std::sync::Arc::clone(self);
        Some(tokio::spawn(async move {
            loop {
                let Some(wait) = settings.next_wait() else {
                    return;
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                // Of several processes, the one holding the duty makes the scheduled backup.
                if !engine.holds_duty("backups").await {
                    continue;
                }
                match engine.backup_now(&settings, &scratch).await {
                    Ok(report) => {
                        tracing::info!(backup = %report.backup.path, size = report.backup.size, pruned = report.pruned.len(), "backup made and verified")
                    }
                    Err(e) => tracing::error!(error = %e, "backup failed"),
                }
            }
        }))
    }
}

/// Decompresses a backup (zstd-compressed SQLite) into `db`, which must not exist, and
/// checks that it opens and passes its integrity check (`ferry restore`).
pub async fn restore_database(compressed: bytes::Bytes, db: &Path) -> Result<(), EngineError> {
    decompress_backup(compressed, db).await?;
    let store = ferry_store::SqliteStore::open(db).await?;
    let problems = ferry_store::MaintenanceStore::integrity_problems(&store).await?;
    if !problems.is_empty() {
        return Err(EngineError::Invalid(format!(
            "the restored database is damaged: {}",
            problems.join("; ")
        )));
    }
    Ok(())
}

/// Decompresses a backup (a zstd-compressed copy of the database: an SQLite file, or a
/// `pg_dump` archive) into `target`, which must not exist.
pub async fn decompress_backup(compressed: bytes::Bytes, target: &Path) -> Result<(), EngineError> {
    let db = target;
    let target = db.to_path_buf();
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut out = std::fs::File::create_new(&target)?;
        let decoded = zstd::stream::copy_decode(std::io::Cursor::new(compressed), &mut out);
        if decoded.is_err() {
            // Nothing half-written is left behind.
            let _ = std::fs::remove_file(&target);
        }
        decoded?;
        out.sync_all()
    })
    .await
    .map_err(|e| EngineError::Invalid(format!("cannot restore: {e}")))?;
    written.map_err(|e| {
        EngineError::Invalid(format!(
            "cannot restore into {}: {e} (is it a Ferry backup?)",
            db.display()
        ))
    })
}

async fn list_backups(
    client: &ferry_dropbox::DropboxClient,
    folder: &str,
) -> Result<Vec<BackupEntry>, EngineError> {
    let entries = match client.list_all(folder, false).await {
        Ok((entries, _)) => entries,
        Err(DropboxError::NotFound(_)) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut backups: Vec<BackupEntry> = entries
        .into_iter()
        .filter_map(|e| match e {
            Entry::File(f) => {
                let name = f.path_display.rsplit('/').next()?.to_owned();
                is_backup_name(&name).then_some(BackupEntry {
                    name,
                    path: f.path_display,
                    size: f.size,
                    content_hash: f.content_hash,
                })
            }
            _ => None,
        })
        .collect();
    backups.sort_by(|a, b| b.name.cmp(&a.name));
    Ok(backups)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backup_names_carry_their_time() {
        let t = super::backup_time("ferry-20261201T120000.250Z.db.zst").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T12:00:00.250+00:00");
        assert!(super::backup_time("ferry-yesterday.db.zst").is_none());
        assert!(super::is_backup_name("ferry-20261201T120000.250Z.db.zst"));
        assert!(!super::is_backup_name("notes.txt"));
    }

    #[test]
    fn cron_takes_crontab_and_seconds_forms() {
        assert!(super::parse_cron("0 2 * * *").is_ok());
        assert!(super::parse_cron("30 0 2 * * *").is_ok());
        assert!(super::parse_cron("every day").is_err());
        assert!(super::parse_cron("61 2 * * *").is_err());
        let settings = super::BackupSettings {
            connection: "c".into(),
            folder: "f".into(),
            keep: 1,
            max_age: None,
            every: None,
            cron: Some("* * * * *".into()),
        };
        assert!(settings.next_wait().unwrap() <= std::time::Duration::from_secs(60));
    }
}
