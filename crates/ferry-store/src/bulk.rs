//! Bulk tools for benchmarks and large installations: load a million synced files without a
//! million single-row transactions, and read a connection's whole synced tree in one
//! streaming query. They work on the database file with a connection of their own, next to
//! any [`SqliteStore`] open on it.

use crate::{SqliteStore, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection};
use std::path::Path;
use std::time::Duration;

/// Rows per multi-row `INSERT` (the widest table has 14 columns: 7,000 parameters).
const ROWS_PER_INSERT: usize = 500;

/// Records per transaction while bulk loading.
const RECORDS_PER_TX: usize = 5_000;

/// A record to load, with its files already synced through one binding.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkRecord {
    /// Record kind.
    pub kind: String,
    /// Record key.
    pub key: String,
    /// Fields (a JSON object).
    pub fields: serde_json::Value,
    /// The binding its files are synced through.
    pub binding: BulkBinding,
    /// Its attachments, each with the synced state both sides agree on.
    pub files: Vec<BulkFile>,
}

/// The binding of a [`BulkRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkBinding {
    /// The rule.
    pub rule_name: String,
    /// The connection.
    pub connection: String,
    /// Absolute Dropbox folder, as shown.
    pub folder_display: String,
    /// Its comparison key (`ferry_core::names::dropbox_lower`).
    pub folder_lower: String,
}

/// One attachment and the Dropbox file it is synced with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFile {
    /// Attachment name.
    pub name: String,
    /// Attachment tags.
    pub tags: Vec<String>,
    /// Content hash (the content must be in the blob store).
    pub content_hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Path relative to the binding's folder, as shown.
    pub rel_display: String,
    /// Its comparison key.
    pub rel_lower: String,
    /// Dropbox file id.
    pub dropbox_id: String,
    /// Dropbox revision.
    pub rev: String,
}

/// What a bulk load inserted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkLoaded {
    /// Records.
    pub records: u64,
    /// Attachments (and as many synced rows).
    pub files: u64,
}

use ferry_core::clock::now_ms;

async fn connect(path: &Path) -> StoreResult<SqliteConnection> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    Ok(SqliteConnection::connect_with(&options).await?)
}

fn placeholders(columns: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

fn to_i64(n: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} too large")))
}

async fn next_id(conn: &mut SqliteConnection, table: &str) -> StoreResult<i64> {
    let max: Option<i64> = sqlx::query_scalar(&format!("SELECT MAX(id) FROM {table}"))
        .fetch_one(&mut *conn)
        .await?;
    Ok(max.unwrap_or(0) + 1)
}

impl SqliteStore {
    /// Loads records with their attachments, one binding each and a synced row per file —
    /// the state after everything was synced once — in a few large transactions. The
    /// database at `path` is created and migrated if needed. Content must already be in the
    /// blob store, and the same files must exist in Dropbox with these ids and revisions.
    pub async fn bulk_load_synced(
        path: &Path,
        records: &[BulkRecord],
        mut progress: impl FnMut(u64),
    ) -> StoreResult<BulkLoaded> {
        // Migrates a new database.
        drop(SqliteStore::open(path).await?);
        let mut conn = connect(path).await?;
        let mut loaded = BulkLoaded::default();
        let now = now_ms();
        for chunk in records.chunks(RECORDS_PER_TX) {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let first_record = next_id(&mut tx, "records").await?;
            let first_attachment = next_id(&mut tx, "attachments").await?;
            let first_binding = next_id(&mut tx, "bindings").await?;
            let first_row = next_id(&mut tx, "sync_files").await?;

            for (n, part) in chunk.chunks(ROWS_PER_INSERT).enumerate() {
                let sql = format!(
                    "INSERT INTO records (id, kind, key, fields, parent_id, created_at, updated_at) VALUES {}",
                    placeholders(7, part.len())
                );
                let mut q = sqlx::query(&sql);
                for (i, r) in part.iter().enumerate() {
                    let id = first_record + (n * ROWS_PER_INSERT + i) as i64;
                    q = q
                        .bind(id)
                        .bind(&r.kind)
                        .bind(&r.key)
                        .bind(r.fields.to_string())
                        .bind(None::<i64>)
                        .bind(now)
                        .bind(now);
                }
                q.execute(&mut *tx).await?;

                let sql = format!(
                    "INSERT INTO bindings (id, record_id, rule_name, connection, folder_display, \
                     folder_lower, paused_reason, confirm_deletions, updated_at) VALUES {}",
                    placeholders(9, part.len())
                );
                let mut q = sqlx::query(&sql);
                for (i, r) in part.iter().enumerate() {
                    let offset = (n * ROWS_PER_INSERT + i) as i64;
                    q = q
                        .bind(first_binding + offset)
                        .bind(first_record + offset)
                        .bind(&r.binding.rule_name)
                        .bind(&r.binding.connection)
                        .bind(&r.binding.folder_display)
                        .bind(&r.binding.folder_lower)
                        .bind(None::<String>)
                        .bind(0i64)
                        .bind(now);
                }
                q.execute(&mut *tx).await?;
            }

            // Files, flattened with their record's offset in this chunk.
            let files: Vec<(i64, &BulkRecord, &BulkFile)> = chunk
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r.files.iter().map(move |f| (i as i64, r, f)))
                .collect();
            for (n, part) in files.chunks(ROWS_PER_INSERT).enumerate() {
                let sql = format!(
                    "INSERT INTO attachments (id, record_id, name, tags, content_hash, size, \
                     origin_path, created_at, updated_at) VALUES {}",
                    placeholders(9, part.len())
                );
                let mut q = sqlx::query(&sql);
                for (i, (offset, _, f)) in part.iter().enumerate() {
                    let tags = serde_json::to_string(&f.tags)
                        .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?;
                    q = q
                        .bind(first_attachment + (n * ROWS_PER_INSERT + i) as i64)
                        .bind(first_record + offset)
                        .bind(&f.name)
                        .bind(tags)
                        .bind(&f.content_hash)
                        .bind(to_i64(f.size, "size")?)
                        .bind(None::<String>)
                        .bind(now)
                        .bind(now);
                }
                q.execute(&mut *tx).await?;

                let sql = format!(
                    "INSERT INTO sync_files (id, record_id, binding_id, rule_name, connection, \
                     attachment_id, rel_display, rel_lower, dropbox_id, rev, content_hash, state, \
                     last_error, updated_at) VALUES {}",
                    placeholders(14, part.len())
                );
                let mut q = sqlx::query(&sql);
                for (i, (offset, r, f)) in part.iter().enumerate() {
                    let index = (n * ROWS_PER_INSERT + i) as i64;
                    q = q
                        .bind(first_row + index)
                        .bind(first_record + offset)
                        .bind(first_binding + offset)
                        .bind(&r.binding.rule_name)
                        .bind(&r.binding.connection)
                        .bind(first_attachment + index)
                        .bind(&f.rel_display)
                        .bind(&f.rel_lower)
                        .bind(&f.dropbox_id)
                        .bind(&f.rev)
                        .bind(&f.content_hash)
                        .bind("synced")
                        .bind(None::<String>)
                        .bind(now);
                }
                q.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            loaded.records += chunk.len() as u64;
            loaded.files += files.len() as u64;
            progress(loaded.records);
        }
        conn.close().await?;
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    fn record(i: usize) -> BulkRecord {
        BulkRecord {
            kind: "job".into(),
            key: format!("J{i}"),
            fields: serde_json::json!({"n": i}),
            binding: BulkBinding {
                rule_name: "jobs".into(),
                connection: "dropbox".into(),
                folder_display: format!("/Root/J{i}"),
                folder_lower: format!("/root/j{i}"),
            },
            files: (0..3)
                .map(|f| BulkFile {
                    name: format!("f{f}.txt"),
                    tags: vec!["final".into()],
                    content_hash: "ab".repeat(32),
                    size: 10,
                    rel_display: format!("f{f}.txt"),
                    rel_lower: format!("f{f}.txt"),
                    dropbox_id: format!("id:{i}-{f}"),
                    rev: format!("{:09x}", i * 10 + f + 1),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn bulk_loaded_state_reads_like_synced_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.db");
        let records: Vec<BulkRecord> = (0..1200).map(record).collect();
        let mut seen = 0;
        let loaded = SqliteStore::bulk_load_synced(&path, &records, |n| seen = n)
            .await
            .unwrap();
        assert_eq!(loaded.records, 1200);
        assert_eq!(loaded.files, 3600);
        assert_eq!(seen, 1200);
        // A second load continues the ids.
        let more: Vec<BulkRecord> = (1200..1210).map(record).collect();
        SqliteStore::bulk_load_synced(&path, &more, |_| {})
            .await
            .unwrap();

        let store = SqliteStore::open(&path).await.unwrap();
        let r = store.record("job", "J1205").await.unwrap().unwrap();
        let rows = store.sync_rows(r.id).await.unwrap();
        assert_eq!(rows.len(), 3);
        let bindings = store.bindings_for_record(r.id).await.unwrap();
        assert_eq!(bindings[0].folder_display, "/Root/J1205");
        assert_eq!(rows[0].binding_id, Some(bindings[0].id));
        let attachments = store.attachments(r.id).await.unwrap();
        assert_eq!(rows[0].attachment_id, Some(attachments[0].id));
        assert_eq!(store.sync_counts().await.unwrap().synced, 3630);

        let scanned: Vec<_> =
            futures::TryStreamExt::try_collect(store.synced_files_by_path("dropbox"))
                .await
                .unwrap();
        assert_eq!(scanned.len(), 3630);
        assert!(
            scanned
                .iter()
                .all(|s| s.synced && s.content_hash.len() == 64)
        );
    }
}
