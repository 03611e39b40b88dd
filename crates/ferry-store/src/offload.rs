//! Offloaded content on SQLite (see [`OffloadStore`]).

use crate::rows::*;
use crate::sqlite::{SqliteStore, now_ms};
use crate::{ContentTotals, OffloadCandidate, OffloadStore, StoreResult};
use async_trait::async_trait;
use ferry_core::model::AttachmentId;
use sqlx::Row;

/// Whether anything needs a content hash's blob: a current attachment holding it here, or an
/// archived version (archived versions always have their content).
const NEEDED: &str = "(EXISTS (SELECT 1 FROM attachments b WHERE b.content_hash = ?1 AND b.offloaded_at IS NULL) \
     OR EXISTS (SELECT 1 FROM archived_attachments c WHERE c.content_hash = ?1))";

#[async_trait]
impl OffloadStore for SqliteStore {
    async fn offload_candidates(
        &self,
        connection: &str,
        rule: &str,
        limit: u32,
    ) -> StoreResult<Vec<OffloadCandidate>> {
        let rows = sqlx::query(
            "SELECT a.id, a.record_id, a.content_hash, a.size, f.rev FROM attachments a \
             JOIN sync_files f ON f.attachment_id = a.id \
             JOIN records r ON r.id = a.record_id \
             WHERE f.connection = ?1 AND f.rule_name = ?2 AND f.state = 'synced' \
             AND f.rev IS NOT NULL AND f.content_hash = a.content_hash \
             AND a.offloaded_at IS NULL AND r.deleting = 0 \
             AND NOT EXISTS (SELECT 1 FROM sync_queue q WHERE q.record_id = a.record_id) \
             ORDER BY a.id LIMIT ?3",
        )
        .bind(connection)
        .bind(rule)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| offload_candidate_from_row(connection, r))
            .collect()
    }

    async fn mark_offloaded(&self, c: &OffloadCandidate) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE attachments SET offload_connection = ?1, offload_rev = ?2, offloaded_at = ?3, \
             offload_dropped_at = NULL \
             WHERE id = ?4 AND content_hash = ?5 AND offloaded_at IS NULL \
             AND EXISTS (SELECT 1 FROM sync_files f WHERE f.attachment_id = attachments.id \
                 AND f.connection = ?1 AND f.rev = ?2 AND f.content_hash = attachments.content_hash \
                 AND f.state = 'synced') \
             AND EXISTS (SELECT 1 FROM records r WHERE r.id = attachments.record_id AND r.deleting = 0) \
             AND NOT EXISTS (SELECT 1 FROM sync_queue q WHERE q.record_id = attachments.record_id)",
        )
        .bind(&c.connection)
        .bind(&c.rev)
        .bind(now_ms())
        .bind(c.attachment_id)
        .bind(&c.content_hash)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn clear_offloaded(
        &self,
        attachment_id: AttachmentId,
        content_hash: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE attachments SET offload_connection = NULL, offload_rev = NULL, \
             offloaded_at = NULL, offload_dropped_at = NULL \
             WHERE id = ? AND content_hash = ? AND offloaded_at IS NOT NULL",
        )
        .bind(attachment_id)
        .bind(content_hash)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn droppable_blobs(&self, limit: u32) -> StoreResult<Vec<String>> {
        let hashes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT a.content_hash FROM attachments a \
             WHERE a.offloaded_at IS NOT NULL AND a.offload_dropped_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM attachments b WHERE b.content_hash = a.content_hash AND b.offloaded_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM archived_attachments c WHERE c.content_hash = a.content_hash) \
             LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(hashes)
    }

    async fn needs_blob(&self, content_hash: &str) -> StoreResult<bool> {
        let needed: i64 = sqlx::query_scalar(&format!("SELECT {NEEDED}"))
            .bind(content_hash)
            .fetch_one(&self.pool)
            .await?;
        Ok(needed != 0)
    }

    async fn set_blob_dropped(&self, content_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE attachments SET offload_dropped_at = ? \
             WHERE content_hash = ? AND offloaded_at IS NOT NULL",
        )
        .bind(now_ms())
        .bind(content_hash)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn content_totals(&self) -> StoreResult<ContentTotals> {
        let row = sqlx::query(
            "SELECT \
             COALESCE(SUM(CASE WHEN offloaded_at IS NULL THEN 1 ELSE 0 END), 0) AS stored_files, \
             COALESCE(SUM(CASE WHEN offloaded_at IS NULL THEN size ELSE 0 END), 0) AS stored_bytes, \
             COALESCE(SUM(CASE WHEN offloaded_at IS NULL THEN 0 ELSE 1 END), 0) AS offloaded_files, \
             COALESCE(SUM(CASE WHEN offloaded_at IS NULL THEN 0 ELSE size END), 0) AS offloaded_bytes \
             FROM attachments",
        )
        .fetch_one(&self.pool)
        .await?;
        let n = |name: &str| -> StoreResult<u64> {
            Ok(u64::try_from(row.try_get::<i64, _>(name)?).unwrap_or(0))
        };
        Ok(ContentTotals {
            stored_files: n("stored_files")?,
            stored_bytes: n("stored_bytes")?,
            offloaded_files: n("offloaded_files")?,
            offloaded_bytes: n("offloaded_bytes")?,
        })
    }
}
